"""Real CMSIS-NN as the SparseEngine's baseline: built from a user's checkout, run on the same emulator.

CMSIS-NN (https://github.com/ARM-software/CMSIS-NN, Apache-2.0) is not shipped with the workbench:
`locate()` finds a checkout from, in order, an explicit path (`--cmsis-nn DIR`), the environment
variable `WORKBENCH_CMSIS_NN`, or `../shared/third_party/CMSIS-NN` next to the repository (where
tests and CI find it). `library()` compiles every fixed-point source of its `Source/` tree (float,
f16 and Python bindings left out) with the project's zig cc and flags for the Cortex-M7 into a cache
folder under the system temp dir (keyed by the checkout's path, file sizes and times and the flags;
the checkout itself is never written). The link uses `--gc-sections`, so only the kernels a program
calls take flash.

Two details make the build a fair one:

- zig's freestanding target implies `-fno-builtin`, so CMSIS-NN's small `memcpy(&v, p, 4)` reads
  would become calls to a byte loop. `kernels/cmsis_shim/string.h` maps memcpy/memset/memmove to
  `__builtin_*` (what arm-none-eabi-gcc does with its newlib headers), so they compile to LDR/STR.
- `-mcpu=cortex_m7` defines `__ARM_FEATURE_DSP`, from which `arm_nn_math_types.h` enables
  `ARM_MATH_DSP`: the SMLAD/SXTB16 code paths CMSIS-NN ships for the M7 (checked by `library()`).

`kernels/se_cmsis.c` adapts the engine's calling convention to CMSIS-NN's structs. Which CMSIS-NN
function runs each op (`CMSIS_OPS`) and where the semantics differ (`SEMANTICS`) is stated here;
layers of other kinds stay on the engine's own kernels in a "CMSIS-NN deployment".
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from core.engine.toolchain import CFLAGS, KERNEL_DIR, compile_error
from core.errors import WorkbenchError

ENV_VAR = "WORKBENCH_CMSIS_NN"
REPO_ROOT = Path(__file__).resolve().parents[2]
#: where tests and CI find the checkout (relative to the repository root)
DEFAULT_RELATIVE = Path("..") / "shared" / "third_party" / "CMSIS-NN"
SHIM_DIR = KERNEL_DIR / "cmsis_shim"
GLUE = KERNEL_DIR / "se_cmsis.c"
#: sources left out of the build: float and f16 kernels, the Python bindings
_SKIP = ("_f16", "_f32", "Bindings")
#: nothing extra: CMSIS-NN derives ARM_MATH_DSP from the compiler's __ARM_FEATURE_DSP (checked), and its
#: default requantization is TFLite's double rounding, the integer reference's (no
#: CMSIS_NN_USE_SINGLE_ROUNDING)
EXTRA_DEFINES: tuple[str, ...] = ()
HOW_TO_GET = ("clone https://github.com/ARM-software/CMSIS-NN and pass --cmsis-nn DIR "
              f"(or set {ENV_VAR})")

#: engine op kind -> the CMSIS-NN function the glue calls
CMSIS_OPS = {
    "conv2d": "arm_convolve_wrapper_s8 (1x1 -> arm_convolve_1x1_s8_fast, else arm_convolve_s8)",
    "dwconv2d": "arm_depthwise_conv_wrapper_s8 (3x3, C % 4 == 0, pad <= 1 -> arm_depthwise_conv_3x3_s8)",
    "linear": "arm_fully_connected_s8 (per-tensor) / arm_fully_connected_per_channel_s8",
    "matmul_qk": "arm_batch_matmul_s8 on each head (Q_h, K_h gathered into contiguous rows)",
    "matmul_av": "arm_nn_vec_mat_mult_t_s8 (arm_batch_matmul_s8's row kernel) on each row, V_h^T gathered",
    "softmax": "arm_softmax_s8 (TFLite's input_beta multiplier/shift and diff_min for beta 1)",
}
#: how CMSIS-NN's softmax relates to the integer reference's (compared bit for bit wherever it runs)
SOFTMAX_NOTE = ("arm_softmax_s8 computes exp in gemmlowp fixed point (Q5.26 input, diff_min cut-off) and a "
                "fixed-point reciprocal, the integer reference a 256-entry exp LUT and a 2^46/sum "
                "reciprocal: different algorithms that agree on most outputs but not all (off by one LSB "
                "on rare elements), so a CMSIS-NN deployment keeps the engine's softmax to stay bit-exact")
#: ops CMSIS-NN has no kernel for (the engine's kernel runs in a CMSIS-NN deployment)
SEMANTICS = {
    "layernorm": "CMSIS-NN has no LayerNorm kernel",
    "add": "not benchmarked here (arm_elementwise_add_s8 is TFLite ADD; the engine's se_add runs)",
    "maxpool": "not benchmarked here (the engine's se_maxpool runs)",
    "avgpool": "not benchmarked here (the engine's global pooling runs)",
}


@dataclass(frozen=True)
class Library:
    """A compiled CMSIS-NN: its object files and the include folders a caller compiles against."""

    root: Path
    objects: tuple[Path, ...]
    include_dirs: tuple[Path, ...]
    version: str


def locate(path: str | Path | None = None) -> Path:
    """The CMSIS-NN checkout: `path`, else $WORKBENCH_CMSIS_NN, else ../shared/third_party/CMSIS-NN."""
    if path is not None:
        where, origin = Path(path), "--cmsis-nn"
    elif os.environ.get(ENV_VAR):
        where, origin = Path(os.environ[ENV_VAR]), ENV_VAR
    else:
        where, origin = REPO_ROOT / DEFAULT_RELATIVE, "the default location"
    where = where if where.is_absolute() else (REPO_ROOT / where if origin != "--cmsis-nn" else where)
    where = where.resolve()
    if not (where / "Include" / "arm_nnfunctions.h").is_file() or not (where / "Source").is_dir():
        raise WorkbenchError(
            f"no CMSIS-NN checkout at {where} ({origin}): it needs Include/arm_nnfunctions.h and "
            f"Source/; {HOW_TO_GET}"
        )
    return where


def _sources(root: Path) -> list[Path]:
    return sorted(p for p in (root / "Source").glob("*/*.c") if not any(s in str(p) for s in _SKIP))


def _cflags(root: Path) -> list[str]:
    return [*CFLAGS, *EXTRA_DEFINES, "-Wno-error", "-w", f"-I{SHIM_DIR}", f"-I{root / 'Include'}"]


def _cache_key(root: Path, sources: list[Path]) -> str:
    h = hashlib.sha256(str(root).encode())
    for p in sources + sorted((root / "Include").rglob("*.h")) + [SHIM_DIR / "string.h"]:
        st = p.stat()
        h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}".encode())
    h.update(" ".join(_cflags(root)).encode())
    h.update(sys.version.encode())
    return h.hexdigest()[:16]


def _version(root: Path) -> str:
    for name in ("VERSION", "README.md"):
        f = root / name
        if f.is_file():
            return f.read_text(errors="replace").strip().splitlines()[0][:120]
    return "unknown version"


def library(path: str | Path | None = None, cache_dir: Path | None = None) -> Library:
    """Compile CMSIS-NN for the Cortex-M7 once per checkout (cached); one-sentence error on failure."""
    root = locate(path)
    sources = _sources(root)
    if not sources:
        raise WorkbenchError(f"the CMSIS-NN checkout at {root} has no C sources under Source/; {HOW_TO_GET}")
    key = _cache_key(root, sources)
    base = Path(cache_dir) if cache_dir is not None else Path(tempfile.gettempdir()) / "workbench-cmsis-nn"
    final = base / key
    includes = (SHIM_DIR, root / "Include")
    if not (final / "done").is_file():
        base.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=base))
        try:
            _compile_all(root, sources, work)
            (work / "done").write_text(_version(root))
            try:
                work.rename(final)
            except OSError:  # another process finished first: use theirs
                shutil.rmtree(work, ignore_errors=True)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    objects = tuple(sorted(final.glob("*.o")))
    return Library(root, objects, includes, (final / "done").read_text())


def _compile_all(root: Path, sources: list[Path], out: Path) -> None:
    flags = _cflags(root)
    probe = subprocess.run([sys.executable, "-m", "ziglang", "cc", *flags, "-dM", "-E", "-x", "c",
                            str(root / "Include" / "arm_nn_math_types.h")], capture_output=True, text=True)
    if probe.returncode != 0 or "#define ARM_MATH_DSP 1" not in probe.stdout:
        raise WorkbenchError(
            f"CMSIS-NN at {root} does not configure its DSP (SMLAD) code paths for the Cortex-M7 "
            f"(ARM_MATH_DSP is not 1 in Include/arm_nn_math_types.h); use a CMSIS-NN v6 or later checkout"
        )

    def one(src: Path) -> tuple[Path, subprocess.CompletedProcess]:
        obj = out / f"{src.parent.name}__{src.stem}.o"
        res = subprocess.run([sys.executable, "-m", "ziglang", "cc", *flags, "-c", str(src), "-o", str(obj)],
                             capture_output=True, text=True, check=False)
        return src, res

    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        results = list(pool.map(one, sources))
    for src, res in results:
        if res.returncode != 0:
            err = compile_error(res.stderr)
            raise WorkbenchError(
                f"building CMSIS-NN from {root} failed in {src.relative_to(root)}: {err} -- check that the "
                f"folder is an unmodified ARM-software/CMSIS-NN checkout (v6 or later)"
            )


def scratch_bytes(kind: str, **dims: int) -> int:
    """Bytes of CMSIS-NN's ctx.buf for an op (the DSP formulas of its *_get_buffer_size functions).

    conv2d: arm_convolve_s8 2·(2·K4) for K = kh·kw·Cin rounded up to 4 (1x1 fast: 0; the glue passes
    the buffer anyway); dwconv2d: arm_depthwise_conv_s8_opt C·kh·kw·2; matmul_qk: Q_h and K_h gathered
    (Nq + Nk)·d; matmul_av: V_hᵀ gathered d·Nk; linear: 0.
    """
    if kind == "conv2d":
        k = dims["kh"] * dims["kw"] * dims["cin"]
        return 4 * (-(-k // 4) * 4)
    if kind == "dwconv2d":
        return 2 * dims["c"] * dims["kh"] * dims["kw"]
    if kind == "matmul_qk":
        return -(-(dims["nq"] + dims["nk"]) * dims["d"] // 4) * 4
    if kind == "matmul_av":
        return -(-dims["d"] * dims["nk"] // 4) * 4
    return 0
