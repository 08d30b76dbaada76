"""A NAS candidate as a firmware project for a real Cortex-M7 board, checked on two emulators.

    result = export_firmware(0, "fw0", board="mps2-an500")   # python -m core engine export 0 --out fw0

writes a self-contained folder (README.md, Makefile, CMakeLists.txt, a linker script, `src/` with the
startup code, the board file and `main.c`, `model/` with the generated `model.c`/`model.h`, the weights as
const arrays and the kernels) and checks it:

1. the integer reference (`quant.run_int8`) runs the built-in test input (shapes10 test image 0, quantized
   with the model's input parameters) and gives every layer's CRC-32 and the predicted class; both are
   embedded, so the firmware checks itself and prints PASS or FAIL;
2. the folder is built with Debian's arm-none-eabi-gcc through its own Makefile, warnings as errors; its
   flash and SRAM come from `arm-none-eabi-size`;
3. the same `model/` sources are built with the engine's zig cc (`toolchain.build`) and run on the Unicorn
   emulator (`codegen.execute`): per-layer CRC-32s of the emulated outputs;
4. for `mps2-an500`, the gcc ELF boots in `qemu-system-arm -M mps2-an500` and its UART output is parsed.

Two compilers, two emulators, one answer: the export is refused unless every CRC-32 and the class agree.
`core.engine.firmware_report` writes the size table, the checks and the README from the results.
The folder appears complete or not at all (`core.io.atomic_path`), with `manifest.json` recording the
command, the candidate and every file's SHA-256; an existing folder is only replaced with `overwrite=True`
and only if that manifest says it is an earlier export.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import WorkbenchError, unknown
from core.io import Progress, atomic_path, command_line, no_progress

FIRMWARE_DIR = Path(__file__).resolve().parent / "firmware"
MANIFEST = "manifest.json"
EXPORT_KIND = "sparseengine-firmware-export"
KERNELS = ("own", "cmsis-nn")
SPARSE = ("auto", "dense")
QEMU_TIMEOUT_S = 60.0
#: the Debian package of each program the export runs
PACKAGES = {"arm-none-eabi-gcc": "gcc-arm-none-eabi", "arm-none-eabi-size": "binutils-arm-none-eabi",
            "make": "make", "qemu-system-arm": "qemu-system-arm"}


@dataclass(frozen=True)
class Board:
    """A board the firmware runs on: memory map, clock, CPU flags, UART, how to flash or emulate it."""

    name: str
    title: str
    flash_origin: int
    flash_bytes: int
    sram_bytes: int
    clock_hz: int
    fpu: str
    uart: str
    qemu_machine: str | None = None
    flash_address: str | None = None
    defines: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        return "board_" + self.name.replace("-", "_") + ".c"

    @property
    def cpu_flags(self) -> str:
        return f"-mcpu=cortex-m7 -mthumb -mfloat-abi=hard -mfpu={self.fpu}"


BOARDS = {
    b.name: b
    for b in (
        Board("stm32f746g-disco", "STM32F746G-DISCO (STM32F746NG, Cortex-M7 at 216 MHz)", 0x08000000,
              1024 * 1024, 320 * 1024, 216_000_000, "fpv5-sp-d16",
              "USART1 (PA9/PB7) through the ST-LINK virtual COM port, 115200 8N1",
              flash_address="0x08000000"),
        Board("mps2-an500", "Arm MPS2+ AN500 (Cortex-M7 FPGA image, as QEMU emulates it)", 0x00000000,
              4 * 1024 * 1024, 4 * 1024 * 1024, 25_000_000, "fpv5-sp-d16",
              "CMSDK APB UART0 at 0x40004000, 115200 baud (QEMU: stdio)",
              qemu_machine="mps2-an500", defines=("FW_SEMIHOSTING=$(SEMIHOSTING)",)),
    )
}
STACK_BYTES = 8192  # the linker scripts' STACK_BYTES


@dataclass
class FirmwareExport:
    """What `export_firmware` wrote and measured."""

    path: Path
    board: str
    candidate: int
    report: dict[str, Any]
    uart: str = ""
    files: list[str] = field(default_factory=list)

    @property
    def sizes(self) -> list[dict[str, Any]]:
        """Rows: source, flash_bytes, sram_bytes (NAS estimate, zig ELF, gcc ELF)."""
        return self.report["sizes"]

    def markdown(self) -> str:
        from core.engine.firmware_report import report_markdown

        return report_markdown(self.report)


# ------------------------------------------------------------------------------------ validation --
def board(name: str) -> Board:
    if name not in BOARDS:
        raise unknown("board", name, BOARDS)
    return BOARDS[name]


def tool(name: str) -> str:
    """Path of a host program, or one sentence naming the Debian package that provides it."""
    path = shutil.which(name)
    if path is None:
        raise WorkbenchError(f"{name} is not installed; install Debian's {PACKAGES[name]} package "
                             f"(apt-get install {PACKAGES[name]})")
    return path


def is_export(path: Path) -> bool:
    """True when `path` holds a manifest written by `export_firmware` (an earlier export)."""
    try:
        return json.loads((Path(path) / MANIFEST).read_text()).get("kind") == EXPORT_KIND
    except (OSError, ValueError, AttributeError):
        return False


def _check_out(out: Path, overwrite: bool) -> None:
    if not (out.exists() or out.is_symlink()):
        return
    if not overwrite:
        raise WorkbenchError(f"the output folder {str(out)!r} already exists; pass --overwrite to replace "
                             "an earlier export, or choose another --out")
    if not out.is_dir() or not is_export(out):
        raise WorkbenchError(f"{str(out)!r} exists and is not an earlier firmware export (no {MANIFEST} "
                             "written by `engine export`), so it is not replaced; choose another --out")


# ----------------------------------------------------------------------------- reference and input --
def test_input(qm: Any) -> tuple[np.ndarray, str]:
    """The built-in input: shapes10 test image 0 as the model's int8 (H, W, C) input, and its description."""
    from core.tinyformer.data import get_dataset, resize
    from core.tinyformer.quant import quantize_input

    ds = get_dataset("shapes10", "test", n=1)
    x, labels = ds.tensors(1)
    x = quantize_input(qm, resize(x, int(qm.graph.tensors[qm.graph.input].shape[0])))[0]
    label = int(labels[0])
    return x, f"shapes10 test image 0 (label {label}, {ds.classes[label]})"


def crc32(a: np.ndarray) -> int:
    """zlib's CRC-32 of an int8 tensor's bytes in C order (what main.c computes over the arena)."""
    return zlib.crc32(np.ascontiguousarray(a, np.int8).tobytes())


def reference(qm: Any, x: np.ndarray, qops: Any = None) -> dict[str, Any]:
    """Per-layer CRC-32s, logits and class of the integer reference (`quant.run_int8`) on `x`; `qops`:
    the layers the program runs (`Program.qops`, the schedule's), default every op of `qm`."""
    from core.tinyformer.quant import run_int8

    out, env = run_int8(qm, x, trace=True)
    logits = np.asarray(out, np.int8).ravel()
    return {"crc32": [crc32(env[q.op.output]) for q in (qops or qm.qops)], "logits": logits.tolist(),
            "class": int(np.argmax(logits))}


# ---------------------------------------------------------------------------------------- writing --
def _c_bytes(values: np.ndarray) -> str:
    vals = np.asarray(values).ravel().tolist()
    return ",\n  ".join(", ".join(str(v) for v in vals[i:i + 24]) for i in range(0, len(vals), 24))


def _c_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _firmware_data(title: str, program: Any, qm: Any, x: np.ndarray, ref: dict[str, Any],
                   input_text: str, classes: tuple[str, ...]) -> tuple[str, str]:
    """firmware_data.h / .c: the layer table with the reference CRC-32s, the input, the class names."""
    n_classes = len(ref["logits"])
    names = [classes[k] if k < len(classes) else f"class {k}" for k in range(n_classes)]
    header = (
        "/* Generated by core/engine/export.py: the model's layer table (arena offset, bytes and the\n"
        " * integer reference's CRC-32 of each layer's output), the test input and the class names. */\n"
        "#ifndef FIRMWARE_DATA_H\n#define FIRMWARE_DATA_H\n#include <stdint.h>\n\n"
        "typedef struct {\n  const char *name;\n  const char *kind;\n  uint32_t offset;\n  uint32_t bytes;\n"
        "  uint32_t crc32;\n} fw_layer_t;\n\n"
        f"#define FW_TITLE {_c_string(title)}\n#define FW_INPUT_DESCRIPTION {_c_string(input_text)}\n"
        f"#define FW_LAYERS {len(program.layers)}\n#define FW_MACS {int(qm.graph.macs)}u\n"
        f"#define FW_INPUT_BYTES {x.size}u\n#define FW_CLASSES {n_classes}\n"
        f"#define FW_EXPECTED_CLASS {ref['class']}\n\n"
        "extern const fw_layer_t fw_layers[FW_LAYERS];\nextern const int8_t fw_input[FW_INPUT_BYTES];\n"
        "extern const char *const fw_classes[FW_CLASSES];\n#endif\n")
    rows = []
    for name, kind, (offset, shape), crc in zip(program.layers, program.kinds, program.layer_outputs,
                                                ref["crc32"], strict=True):
        size = int(np.prod(shape))
        rows.append(f"  {{{_c_string(name)}, {_c_string(kind)}, {offset}u, {size}u, 0x{crc:08x}u}},")
    source = (
        '/* Generated by core/engine/export.py (see firmware_data.h). */\n#include "firmware_data.h"\n\n'
        "const fw_layer_t fw_layers[FW_LAYERS] = {\n" + "\n".join(rows) + "\n};\n\n"
        f"/* {input_text}: int8 (H, W, C) = {tuple(x.shape)}, the model's input quantization */\n"
        f"const int8_t fw_input[FW_INPUT_BYTES] = {{\n  {_c_bytes(x)}\n}};\n\n"
        "const char *const fw_classes[FW_CLASSES] = {" + ", ".join(_c_string(n) for n in names) + "};\n")
    return header, source


def _copy(names: list[str], dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(FIRMWARE_DIR / name, dest / name)


def _copy_cmsis(third_party: Path, lib: Any) -> None:
    """CMSIS-NN's headers, the sources the engine builds (fixed point only) and its licence, plus the
    engine's string.h shim, into `third_party/` (the Makefile and CMakeLists.txt build what is there)."""
    from core.engine import cmsis

    dest = third_party / "CMSIS-NN"
    shutil.copytree(lib.root / "Include", dest / "Include")
    for src in cmsis._sources(lib.root):  # the same file list the engine's zig build compiles
        (dest / src.relative_to(lib.root)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest / src.relative_to(lib.root))
    for name in ("LICENSE", "README.md", "VERSION"):
        if (lib.root / name).is_file():
            shutil.copyfile(lib.root / name, dest / name)
    shutil.copytree(cmsis.SHIM_DIR, third_party / "cmsis_shim")


def _write_project(folder: Path, b: Board) -> None:
    """Build files, linker script and sources (not `model/`, `src/firmware_data.*` or the README)."""
    _copy(["main.c", "startup.c", "board.h", "cm7.h", b.source], folder / "src")
    _copy([f"{b.name}.ld", "Makefile"], folder)
    defines = " ".join(f"-D{d}" for d in b.defines)
    mk = [f"# Generated by core/engine/export.py for {b.title}", f"BOARD := {b.name}",
          f"CPU_FLAGS := {b.cpu_flags}", f"LDSCRIPT := {b.name}.ld",
          f"QEMU_MACHINE := {b.qemu_machine or ''}",
          f"FLASH_ADDRESS := {b.flash_address or ''}"]
    if b.qemu_machine:
        mk.append("SEMIHOSTING ?= 1")
    mk.append(f"BOARD_DEFINES := {defines}")
    (folder / "board.mk").write_text("\n".join(mk) + "\n")
    cmake = (FIRMWARE_DIR / "CMakeLists.txt").read_text()
    cmake_defines = " ".join(d.replace("$(SEMIHOSTING)", "1") for d in b.defines)
    for key, val in {"@BOARD@": b.name, "@CPU_FLAGS@": b.cpu_flags, "@LDSCRIPT@": f"{b.name}.ld",
                     "@CMAKE_DEFINES@": cmake_defines}.items():
        cmake = cmake.replace(key, val)
    (folder / "CMakeLists.txt").write_text(cmake)


# -------------------------------------------------------------------------------- build and run --
def _run(cmd: list[str], what: str, cwd: Path | None = None, timeout: float = 600) -> str:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    if res.returncode != 0:
        lines = [ln for ln in (res.stderr + res.stdout).splitlines() if "error" in ln.lower()]
        tail = lines[0] if lines else " | ".join((res.stderr or res.stdout).strip().splitlines()[-3:])
        raise WorkbenchError(f"{what} failed: {tail.strip()}")
    return res.stdout + res.stderr


def gcc_build(folder: Path, *make_args: str) -> dict[str, Any]:
    """`make` in an exported folder (arm-none-eabi-gcc, -Werror); sizes of build/firmware.elf.

    flash = text + data and SRAM = data + bss of `arm-none-eabi-size` (Berkeley format): text holds the
    vector table, code and constants; bss the zeroed data, the arena (.noinit) and the stack.
    """
    tool("arm-none-eabi-gcc")
    size = tool("arm-none-eabi-size")
    log = _run([tool("make"), "-C", str(folder), "--no-print-directory", "-j2", *make_args],
               "building the firmware with arm-none-eabi-gcc")
    elf = Path(folder) / "build" / "firmware.elf"
    out = _run([size, "--format=berkeley", str(elf)], "arm-none-eabi-size")
    text, data, bss = (int(v) for v in out.splitlines()[1].split()[:3])
    return {"elf": elf, "log": log, "text": text, "data": data, "bss": bss,
            "flash_bytes": text + data, "sram_bytes": data + bss}


def run_qemu(elf: Path, machine: str = "mps2-an500", timeout: float = QEMU_TIMEOUT_S) -> str:
    """Boot `elf` in qemu-system-arm (semihosting exit) and return what it wrote to the UART.

    A run that does not end within `timeout` seconds is killed and named with its last UART line.
    """
    cmd = [tool("qemu-system-arm"), "-M", machine, "-nographic", "-monitor", "none", "-serial", "stdio",
           "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]
    with subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace") as proc:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            lines = [ln.strip() for ln in out.replace("\r", "").splitlines() if ln.strip()]
            last = lines[-1] if lines else "(nothing)"
            raise WorkbenchError(f"QEMU did not finish within {timeout:g} s and was stopped; the last UART "
                                 f"line was {last!r}") from None
    text = out.replace("\r", "")
    if "done status=" not in text:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        raise WorkbenchError(f"QEMU exited with status {proc.returncode} before the firmware finished; the "
                             f"last line was {(lines[-1] if lines else '(nothing)')!r}")
    return text


_LAYER = re.compile(r"^layer (\d+) (\S+) (\S+) crc32=0x([0-9a-f]{8}) cycles=(\d+|n/a)$", re.M)
_CLASS = re.compile(r"^class=(-?\d+) \((.*)\) logits=(\S+)$", re.M)


def parse_uart(text: str) -> dict[str, Any]:
    """The firmware's report: per-layer CRC-32s and cycles (None = n/a), class, logits, status."""
    layers = [{"index": int(m[1]), "name": m[2], "kind": m[3], "crc32": int(m[4], 16),
               "cycles": None if m[5] == "n/a" else int(m[5])} for m in _LAYER.finditer(text)]
    cls = _CLASS.search(text)
    status = re.search(r"^done status=(\d+)$", text, re.M)
    if cls is None or status is None or not layers:
        raise WorkbenchError("the firmware's UART output has no complete report (layer lines, class= and "
                             "done status=)")
    return {"layers": layers, "class": int(cls[1]), "class_name": cls[2],
            "logits": [int(v) for v in cls[3].split(",")], "status": int(status[1]),
            "dwt": "DWT cycle counter: running" in text}


# ------------------------------------------------------------------------------------------ export --
def export_firmware(
    cid: int,
    out: Path | str,
    board_name: str = "mps2-an500",
    sparse: str = "auto",
    kernels: str = "own",
    overwrite: bool = False,
    run: bool = True,
    timeout: float = QEMU_TIMEOUT_S,
    nas_dir: Path | None = None,
    cmsis_nn: Path | str | None = None,
    progress: Progress = no_progress,
) -> FirmwareExport:
    """Write the firmware project of NAS candidate `cid` to `out` and check it (see the module docstring).

    run=False builds with both compilers (for the sizes) but runs neither emulator. kernels="cmsis-nn"
    runs conv, depthwise, fully connected and attention matmul layers on CMSIS-NN (`core.engine.cmsis`;
    the checkout from `cmsis_nn`, $WORKBENCH_CMSIS_NN or ../shared/third_party/CMSIS-NN), dense weights only,
    and copies its sources (Apache-2.0) into the project's third_party/. Every bad input is refused before
    anything is written: unknown board, sparse mode, kernels or candidate, an existing `out` (unless
    `overwrite` and it is an earlier export), a missing arm-none-eabi-gcc, make or (mps2-an500)
    qemu-system-arm, no CMSIS-NN checkout.
    """
    from core.engine import firmware_report as fr
    from core.engine import models
    from core.engine.codegen import choose_formats, generate
    from core.engine.toolchain import Target

    b = board(board_name)
    if sparse not in SPARSE:
        raise unknown("sparse mode", sparse, SPARSE)
    if kernels not in KERNELS:
        raise unknown("kernel library", kernels, KERNELS)
    if kernels == "cmsis-nn" and sparse != "dense":
        raise WorkbenchError("--kernels cmsis-nn runs dense weights only (CMSIS-NN has no sparse kernels); "
                             "pass --sparse dense")
    if cid < 0:
        raise WorkbenchError(f"candidate id {cid} must be >= 0")
    out = Path(out).expanduser().absolute()
    _check_out(out, overwrite)
    for name in ("arm-none-eabi-gcc", "arm-none-eabi-size", "make"):
        tool(name)
    if run and b.qemu_machine:
        tool("qemu-system-arm")
    if kernels == "cmsis-nn":
        from core.engine import cmsis

        cmsis.locate(cmsis_nn)
    steps = 6
    progress(0, steps, "loading and quantizing the candidate")
    qm, row = models.candidate(cid, nas_dir)
    x, input_text = test_input(qm)
    target = Target(flash_bytes=b.flash_bytes, sram_bytes=b.sram_bytes, stack_bytes=STACK_BYTES,
                    clock_hz=b.clock_hz)
    title = f"candidate {cid}"
    command = (f"python -m core engine export {cid} --out {out} --board {b.name} --sparse {sparse} "
               f"--kernels {kernels}" + ("" if run else " --no-run")
               + (f" --cmsis-nn {cmsis_nn}" if cmsis_nn and kernels == "cmsis-nn" else ""))
    backends, lib = None, None
    if kernels == "cmsis-nn":
        from core.engine.codegen import cmsis_backends

        progress(1, steps, "building CMSIS-NN for the emulator (cached)")
        lib, backends = cmsis.library(cmsis_nn), cmsis_backends(qm)
    with atomic_path(out, replace_dir=is_export) as tmp:
        tmp.mkdir()
        progress(2, steps, "generating C")
        program = generate(qm, tmp / "model", choose_formats(qm, sparse), target, title=title,
                           backends=backends, cmsis_nn=lib)
        if lib is not None:
            _copy_cmsis(tmp / "third_party", lib)
        from core.tinyformer.data import SHAPES10_CLASSES

        progress(2, steps, "integer reference")
        ref = reference(qm, x, program.qops)  # one CRC per layer the program runs (fused attention)
        header, source = _firmware_data(title, program, qm, x, ref, input_text, SHAPES10_CLASSES)
        _write_project(tmp, b)
        (tmp / "src" / "firmware_data.h").write_text(header)
        (tmp / "src" / "firmware_data.c").write_text(source)
        progress(3, steps, "building with arm-none-eabi-gcc (-Werror)")
        gcc = gcc_build(tmp)
        progress(4, steps, "building with zig cc" + (", running on Unicorn" if run else ""))
        zig = _zig(program, tmp / "model", x, target, run)
        uart = ""
        if run and b.qemu_machine:
            progress(5, steps, f"booting in qemu-system-arm -M {b.qemu_machine}")
            uart = run_qemu(gcc["elf"], b.qemu_machine, timeout)
        report = fr.build_report(cid, row, b, sparse, kernels, program, ref, gcc, zig, uart, input_text,
                                 command)
        problems = report["problems"]
        if problems:
            raise WorkbenchError("the exported firmware does not reproduce the integer reference: "
                                 + "; ".join(problems))
        for junk in [*(tmp / "build").rglob("*.o"), *(tmp / "build").rglob("*.d")]:
            junk.unlink()
        for folder in sorted((p for p in (tmp / "build").rglob("*") if p.is_dir()), reverse=True):
            if not any(folder.iterdir()):
                folder.rmdir()
        (tmp / "README.md").write_text(fr.readme(report, b, command))
        (tmp / "report.md").write_text(fr.report_markdown(report))
        (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
        manifest = {"kind": EXPORT_KIND, "command": command, "invoked_by": command_line(),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "candidate": cid, "board": b.name,
                    "sparse": sparse, "kernels": kernels, "run": run, "weights": row.get("weights"),
                    "arch": row["arch"],
                    "files": {f: hashlib.sha256((tmp / f).read_bytes()).hexdigest() for f in files}}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    progress(steps, steps, f"exported to {out}")
    return FirmwareExport(out, b.name, cid, report, uart, [*files, MANIFEST])


def _zig(program: Any, model_dir: Path, x: np.ndarray, target: Any, run: bool) -> dict[str, Any]:
    """Build `model/` with the engine's zig cc (`toolchain.build`); with `run`, emulate it on Unicorn."""
    from core.engine.codegen import execute
    from core.engine.toolchain import build

    with tempfile.TemporaryDirectory(prefix="se-export-zig-") as tmp:
        fw = build(program.sources, Path(tmp), target, include_dirs=(model_dir, *program.include_dirs),
                   objects=program.objects)
        result = {"flash_bytes": fw.flash_bytes, "sram_bytes": fw.sram_bytes}
        if run:
            ex = execute(program, fw, x, target)
            result |= {"crc32": [crc32(o) for o in ex.layer_outputs], "logits": ex.output.ravel().tolist(),
                       "class": int(np.argmax(ex.output.ravel())), "instructions": ex.result.instructions}
    return result
