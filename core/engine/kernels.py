"""The kernel library: keys, the one emitter that writes kernel C into an output folder, scratch sizes.

Convolution kernels are specialised per (op, kernel, stride, pad[, block]) and named from that key
(`se_conv2d_k3x3_s1_p1`, `se_sparse_conv2d_k1x1_s1_p0_b4`, ...): `templates/<op>.tmpl.c` is filled in
with the key's constants, so the compiler sees fixed loop bounds. Shape-generic kernels (attention
matmuls, softmax, LayerNorm, add, pooling) live in `kernels/se_ops.c` and are copied as they are.
`linear` is a 1×1 convolution over an (1, N) "image" of tokens and uses the same kernels.

Scratch (bytes, placed in the activation arena by the memory planner; the formulas live in
`core.tinyformer.memory.default_scratch` so that NAS's SRAM estimate uses the same numbers):

    dense conv2d/linear:  2 im2col columns of K4 = 4·⌈kh·kw·Cin/4⌉ q15 values  4·K4
    sparse conv2d/linear, sparse dwconv2d: one int32 accumulator per pixel    4·Ho·Wo
    matmul_qk:  q15 K_h (Nk rows) + 2 q15 Q rows, rows padded to K4 = ⌈d/4⌉·4   2·K4·(Nk + 2)
    matmul_av:  q15 V_hᵀ (d rows) + 2 q15 P rows, K4 = ⌈Nk/4⌉·4                 2·K4·(d + 2)
    softmax: one int32 row of exponentials 4·L;  global avgpool: int32 per channel 4·C
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from string import Template

from core.engine.toolchain import KERNEL_DIR, TEMPLATE_DIR
from core.errors import WorkbenchError, unknown
from core.tinyformer.memory import default_scratch

#: kernels generated from templates/<op>.tmpl.c
TEMPLATED = ("conv2d", "dwconv2d", "sparse_conv2d", "sparse_dwconv2d")
#: the shape-generic library (kernels/se_ops.c) and its headers
LIBRARY = ("se_ops.c",)
HEADERS = ("se_common.h", "se_ops.h")


@dataclass(frozen=True)
class KernelKey:
    """(op, kernel, stride, pad, block) -> one specialised C function."""

    op: str
    kh: int = 1
    kw: int = 1
    stride: int = 1
    pad: int = 0
    block: int = 0

    def __post_init__(self) -> None:
        if self.op not in TEMPLATED:
            raise unknown("templated kernel", self.op, TEMPLATED)
        if min(self.kh, self.kw, self.stride) < 1 or self.pad < 0:
            raise WorkbenchError(f"kernel key {self} needs kh, kw, stride >= 1 and pad >= 0")
        sparse = self.op.startswith("sparse_")
        allowed = ((1, 3) if self.op == "sparse_dwconv2d" else (1, 2, 4)) if sparse else (0,)
        if self.block not in allowed:
            raise WorkbenchError(f"block size {self.block} is not valid for {self.op}; allowed: {allowed}")

    @property
    def name(self) -> str:
        base = f"se_{self.op}_k{self.kh}x{self.kw}_s{self.stride}_p{self.pad}"
        return base + (f"_b{self.block}" if self.block else "")

    def source(self) -> str:
        """The kernel's C source: the template with this key's constants."""
        text = (TEMPLATE_DIR / f"{self.op}.tmpl.c").read_text()
        return Template(text).substitute(
            NAME=self.name, KH=self.kh, KW=self.kw, S=self.stride, P=self.pad, B=self.block
        )

    def prototype(self) -> str:
        """The C declaration of the generated function (for se_kernels.h)."""
        conv_in = "const int8_t *in, int32_t H, int32_t W, int32_t Cin"
        qparams = "const int32_t *bias, const int32_t *mult, const int32_t *shift"
        tail = "int32_t in_zp, int32_t out_zp, int32_t act_min, int32_t act_max"
        if self.op == "conv2d":
            return (
                f"void {self.name}({conv_in}, const int8_t *wt, {qparams}, int32_t per_channel, int8_t *out, "
                f"int32_t Ho, int32_t Wo, int32_t Cout, {tail}, int16_t *col);"
            )
        if self.op == "sparse_conv2d":
            return (
                f"void {self.name}({conv_in}, const uint8_t *enc, {qparams}, int32_t per_channel, "
                f"int8_t *out, int32_t Ho, int32_t Wo, int32_t Cout, {tail}, int32_t *acc);"
            )
        if self.op == "dwconv2d":
            return (
                f"void {self.name}(const int8_t *in, int32_t H, int32_t W, int32_t C, const int8_t *wt, "
                f"{qparams}, int8_t *out, int32_t Ho, int32_t Wo, {tail});"
            )
        return (
            f"void {self.name}(const int8_t *in, int32_t H, int32_t W, int32_t C, const uint8_t *enc, "
            f"{qparams}, int8_t *out, int32_t Ho, int32_t Wo, {tail}, int32_t *acc);"
        )


#: |accumulator| bound below which the SMMULR requantization shortcut is exact (se_common.h)
FAST_REQUANT_BOUND = 1 << 30


def emit(keys: list[KernelKey], out_dir: Path, fast_requant: bool = False) -> list[Path]:
    """Write every kernel the program needs into `out_dir`; return the C files to compile.

    One file per key (`<name>.c`), the library files, the shared headers, `se_kernels.h` with the
    prototypes of the generated functions and `se_config.h` (`SE_FAST_REQUANT`: 1 only when the caller
    proved every accumulator of the program's conv/linear/matmul layers below `FAST_REQUANT_BOUND`).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    unique = sorted(set(keys), key=lambda k: k.name)
    for key in unique:
        path = out_dir / f"{key.name}.c"
        path.write_text(key.source())
        files.append(path)
    for name in LIBRARY + HEADERS:
        shutil.copyfile(KERNEL_DIR / name, out_dir / name)
    files += [out_dir / name for name in LIBRARY]
    (out_dir / "se_config.h").write_text(
        "/* Generated by core/engine/kernels.py: 1 when the code generator proved |acc| < 2^30 in every\n"
        " * layer that requantizes with se_rq_apply (the SMMULR shortcut is then exact). */\n"
        f"#define SE_FAST_REQUANT {int(bool(fast_requant))}\n")
    protos = "\n".join(k.prototype() for k in unique)
    (out_dir / "se_kernels.h").write_text(
        "/* Prototypes of the kernels generated for this program (core/engine/kernels.py). */\n"
        '#ifndef SE_KERNELS_H\n#define SE_KERNELS_H\n#include "se_common.h"\n'
        f"{protos}\n#endif\n"
    )
    return files


def emit_cmsis_glue(out_dir: Path) -> list[Path]:
    """Copy the CMSIS-NN glue (kernels/se_cmsis.c, .h) into `out_dir`; return the C file to compile."""
    out_dir = Path(out_dir)
    for name in ("se_cmsis.c", "se_cmsis.h"):
        shutil.copyfile(KERNEL_DIR / name, out_dir / name)
    return [out_dir / "se_cmsis.c"]


#: the kernels' scratch formulas live with the memory planner (one source for NAS and codegen)
scratch_bytes = default_scratch
