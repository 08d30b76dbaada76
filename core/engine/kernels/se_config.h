/* Default kernel configuration for sources outside a generated program (code generation writes its
 * own se_config.h next to the program): the exact requantization path only. */
#define SE_FAST_REQUANT 0
