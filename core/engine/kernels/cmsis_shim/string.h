/* string.h for building CMSIS-NN with zig cc's freestanding target (core/engine/cmsis.py).
 * -ffreestanding implies -fno-builtin, so memcpy(&v, p, 4) would call startup.c's byte loop; a hosted
 * toolchain (arm-none-eabi-gcc + newlib) inlines these as builtins, and so does this header. */
#ifndef SE_CMSIS_SHIM_STRING_H
#define SE_CMSIS_SHIM_STRING_H
#include <stddef.h>
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
void *memmove(void *dst, const void *src, size_t n);
#define memcpy(d, s, n) __builtin_memcpy((d), (s), (n))
#define memset(d, c, n) __builtin_memset((d), (c), (n))
#define memmove(d, s, n) __builtin_memmove((d), (s), (n))
#endif
