"""Cross-compilation for the Cortex-M7 with the `ziglang` wheel's clang, and ELF size accounting.

`build(sources, out_dir)` compiles C sources (plus the engine's startup file and the kernels'
headers) with ``python -m ziglang cc -target thumb-freestanding-eabihf -mcpu=cortex_m7 -O2`` and
links them with a generated linker script (flash 0x08000000, SRAM 0x20000000; the sizes come from
`Target`). No libc: `kernels/startup.c` gives the vector table, the reset handler (copy .data, zero
.bss, call `main`, park in `se_halt`) and memset/memcpy.

Sizes are measured from the linked ELF with pyelftools:

    flash = .isr_vector + .text + .rodata + .data      (what is programmed into flash)
    sram  = .data + .bss + .noinit + .stack             (what occupies SRAM at run time)

A compile error becomes a `WorkbenchError` that quotes the offending generated source line.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from core.errors import WorkbenchError

HERE = Path(__file__).resolve().parent
KERNEL_DIR = HERE / "kernels"
TEMPLATE_DIR = HERE / "templates"
FLASH_ORIGIN = 0x08000000
SRAM_ORIGIN = 0x20000000
#: the MMIO-like word the generated code writes the current layer index to (the emulator hooks it)
MARKER_ADDRESS = 0x40000000
CFLAGS = (
    "-target",
    "thumb-freestanding-eabihf",
    "-mcpu=cortex_m7",
    "-O2",
    "-ffreestanding",
    "-fno-builtin",
    "-ffunction-sections",
    "-fdata-sections",
    "-std=c11",
    "-Wall",
    "-Werror=implicit-function-declaration",
    "-Wno-unused-function",
)
FLASH_SECTIONS = (".isr_vector", ".text", ".rodata", ".data")
SRAM_SECTIONS = (".data", ".bss", ".noinit", ".stack")


@dataclass(frozen=True)
class Target:
    """The microcontroller: STM32F746 by default (1 MB flash, 320 KB SRAM, Cortex-M7 at 216 MHz)."""

    flash_bytes: int = 1024 * 1024
    sram_bytes: int = 320 * 1024
    stack_bytes: int = 4096
    clock_hz: int = 216_000_000

    def __post_init__(self) -> None:
        for name in ("flash_bytes", "sram_bytes", "stack_bytes", "clock_hz"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise WorkbenchError(f"Target.{name} must be a positive integer, got {value!r}")
        if self.stack_bytes % 8 or self.stack_bytes >= self.sram_bytes:
            raise WorkbenchError(
                f"Target.stack_bytes={self.stack_bytes} must be a multiple of 8 and "
                f"smaller than sram_bytes={self.sram_bytes}"
            )


@dataclass(frozen=True)
class Build:
    """A linked firmware image and what it occupies."""

    elf: Path
    flash_bytes: int
    sram_bytes: int
    sections: dict[str, int] = field(default_factory=dict)
    symbols: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (address, size)

    def address(self, name: str) -> int:
        """Address of a global symbol (Thumb bit cleared for functions)."""
        if name not in self.symbols:
            raise WorkbenchError(f"symbol {name!r} is not in {self.elf.name}")
        return self.symbols[name][0] & ~1


def linker_script(target: Target) -> str:
    """The linker script for `target`, from templates/link.ld."""
    text = (TEMPLATE_DIR / "link.ld").read_text()
    return Template(text).substitute(
        FLASH_BYTES=target.flash_bytes, SRAM_BYTES=target.sram_bytes, STACK_BYTES=target.stack_bytes
    )


def _zig(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ziglang", "cc", *args], capture_output=True, text=True, check=False
    )


_DIAG = re.compile(
    r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?P<col>\d+): (?:fatal )?error: (?P<msg>.*)$", re.MULTILINE
)


def compile_error(stderr: str) -> WorkbenchError:
    """One sentence naming the file, line, message and the source line itself."""
    m = _DIAG.search(stderr)
    if not m:
        tail = " | ".join(line for line in stderr.strip().splitlines()[-4:])
        return WorkbenchError(f"the Cortex-M7 build failed: {tail}")
    path, line = Path(m["file"]), int(m["line"])
    try:
        source = path.read_text().splitlines()[line - 1].strip()
    except (OSError, IndexError):
        source = "<source unavailable>"
    return WorkbenchError(f"compiling {path.name} failed at line {line}: {m['msg']} -- in `{source}`")


def _link_error(stderr: str, target: Target) -> WorkbenchError:
    over = re.findall(r"section '([^']+)' will not fit in region '(\w+)': overflowed by (\d+) bytes", stderr)
    if over:
        sec, region, n = over[0]
        limit = target.flash_bytes if region == "FLASH" else target.sram_bytes
        return WorkbenchError(
            f"the image does not fit: {sec} overflows {region} ({limit} bytes) by {n} bytes"
        )
    tail = " | ".join(line for line in stderr.strip().splitlines()[-4:])
    return WorkbenchError(f"linking for the Cortex-M7 failed: {tail}")


def compile_object(source: Path, obj: Path, include_dirs: tuple[Path, ...] = ()) -> Path:
    """Compile one C file to a Cortex-M7 object file; compile errors quote the source line."""
    incs = [f"-I{d}" for d in (KERNEL_DIR, *include_dirs)]
    res = _zig([*CFLAGS, *incs, "-c", str(source), "-o", str(obj)])
    if res.returncode != 0:
        raise compile_error(res.stderr)
    return obj


def build(
    sources: list[Path],
    out_dir: Path,
    target: Target | None = None,
    name: str = "firmware",
    include_dirs: tuple[Path, ...] = (),
    objects: tuple[Path, ...] = (),
) -> Build:
    """Compile `sources` + startup.c, link with the target's linker script, measure flash and SRAM.

    Objects and the ELF go to `out_dir` (created). `objects`: prebuilt object files linked in too (a
    library such as CMSIS-NN; `--gc-sections` keeps only what is called). Returns the `Build` with
    section sizes and the global symbol table (the emulator uses it to find the halt address, arena
    and I/O buffers).
    """
    target = target or Target()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    extra, objects = tuple(objects), []
    for src in [KERNEL_DIR / "startup.c", *map(Path, sources)]:
        objects.append(compile_object(src, out_dir / (src.stem + ".o"), (out_dir, *include_dirs)))
    script = out_dir / "link.ld"
    script.write_text(linker_script(target))
    elf = out_dir / f"{name}.elf"
    args = ["-target", "thumb-freestanding-eabihf", "-mcpu=cortex_m7", "-nostdlib", "-T", str(script),
            "-Wl,--gc-sections", "-o", str(elf), *map(str, objects), *map(str, extra)]
    res = _zig([*args, "-lcompiler_rt"])
    if res.returncode != 0 and "compiler_rt" in res.stderr:  # zig versions that link it implicitly
        res = _zig(args)
    if res.returncode != 0:
        raise _link_error(res.stderr, target)
    return measure(elf)


def measure(elf: Path) -> Build:
    """Section sizes, flash/SRAM totals and global symbols of a linked ELF."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    with open(elf, "rb") as fh:
        ef = ELFFile(fh)
        sections = {
            s.name: s["sh_size"] for s in ef.iter_sections() if s.name in set(FLASH_SECTIONS + SRAM_SECTIONS)
        }
        symbols: dict[str, tuple[int, int]] = {}
        for sec in ef.iter_sections():
            if isinstance(sec, SymbolTableSection):
                for sym in sec.iter_symbols():
                    if sym.name and sym["st_info"]["bind"] in ("STB_GLOBAL", "STB_WEAK"):
                        symbols[sym.name] = (sym["st_value"], sym["st_size"])
    flash = sum(sections.get(s, 0) for s in FLASH_SECTIONS)
    sram = sum(sections.get(s, 0) for s in SRAM_SECTIONS)
    return Build(elf=Path(elf), flash_bytes=flash, sram_bytes=sram, sections=sections, symbols=symbols)
