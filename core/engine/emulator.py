"""Run a SparseEngine ELF on an emulated Cortex-M7 (Unicorn) and count instructions by class.

The image is loaded as a board would hold it (segments at their load addresses: code, constants and
the initial values of .data in flash), the host writes the input into SRAM buffers that the reset
handler does not touch (`.noinit`), and the core runs from the reset vector until the PC reaches
`se_halt`. Counting uses `UC_HOOK_BLOCK`: each translated block is disassembled once with capstone
and its instruction classes (see `core.engine.cycles.CLASSES`) are cached by (address, size); every
execution of the block adds the cached vector to the current layer. A block whose last instruction
is a branch and whose successor does not start right after it counted one *taken* branch.

Per-layer attribution: the generated code stores the index of the layer about to run to
`MARKER_ADDRESS`; a `UC_HOOK_MEM_WRITE` on that word switches the current layer and lets the caller
snapshot the previous layer's output (`on_layer_end`). Unmapped or protected accesses become a
`WorkbenchError` that names the layer and the address.
"""

from __future__ import annotations

import contextlib
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.engine.cycles import CLASSES, N_INSTRUCTION_CLASSES, classify
from core.engine.toolchain import FLASH_ORIGIN, MARKER_ADDRESS, SRAM_ORIGIN, Build, Target
from core.errors import WorkbenchError, brief

N_CLASSES = len(CLASSES)
TAKEN = CLASSES.index("branch_taken")
FLASH_LINES = CLASSES.index("flash_lines")
LINE_BYTES = 32
EXTRA = CLASSES.index("extra_regs")
PAGE = 0x1000


@dataclass
class RunResult:
    """What one emulated run measured.

    `counts[layer]` is an int64 vector over `CLASSES` (layer -1 = startup/epilogue outside any
    marker); `instructions` is the total executed; `seconds` the host wall time of the run.
    """

    counts: dict[int, np.ndarray] = field(default_factory=dict)
    instructions: int = 0
    seconds: float = 0.0
    outputs: dict[str, bytes] = field(default_factory=dict)
    #: per layer: (block address << 16 | block size) -> executions (for profiles of hot loops)
    blocks: dict[int, dict[int, int]] = field(default_factory=dict)

    @property
    def instructions_per_second(self) -> float:
        return self.instructions / self.seconds if self.seconds > 0 else 0.0

    def total_counts(self) -> np.ndarray:
        return np.sum(list(self.counts.values()), axis=0) if self.counts else np.zeros(N_CLASSES, np.int64)


def _round_up(n: int, to: int = PAGE) -> int:
    return (n + to - 1) // to * to


def _block_vector(md, code: bytes, address: int) -> tuple[np.ndarray, bool]:
    vec = np.zeros(N_CLASSES, np.int64)
    last_branch = False
    for insn in md.disasm(code, address):
        cls, regs = classify(insn.mnemonic, insn.op_str)
        vec[CLASSES.index(cls)] += 1
        vec[EXTRA] += max(regs - 1, 0)
        last_branch = cls == "branch"
    return vec, last_branch


def run(
    build: Build,
    inputs: dict[str | int, bytes],
    read: dict[str, int] | None = None,
    layer_names: list[str] | None = None,
    on_layer_end: Callable[[int, Callable[[int, int], bytes]], None] | None = None,
    target: Target | None = None,
    max_instructions: int = 2_000_000_000,
    count_flash: bool = True,
) -> RunResult:
    """Run `build` from reset to `se_halt`.

    inputs: symbol name (or address) -> bytes written there before reset (e.g. the input image).
    read: symbol name -> byte count read back after the run (e.g. the logits).
    on_layer_end(layer, read_mem): called when layer `layer` finishes (next marker or halt);
    `read_mem(address, size)` reads emulated memory, so the caller can snapshot the layer's output.
    count_flash: count 32-byte flash lines read as data (the conservative cycle bound's wait states);
    a Python hook on every .rodata read, which makes weight-heavy runs about 5x slower. False leaves
    `flash_lines` at 0 (then the conservative bound assumes every weight read hits the cache).
    """
    from unicorn import UC_HOOK_BLOCK, UC_HOOK_MEM_INVALID, UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE, UcError
    from unicorn.arm_const import UC_ARM_REG_PC

    uc, reset = _machine(build, inputs, target or Target())

    def read_mem(address: int, size: int) -> bytes:
        return bytes(uc.mem_read(address, size))

    counter = _Counter(on_layer_end, read_mem)
    uc.hook_add(UC_HOOK_BLOCK, counter.on_block)
    uc.hook_add(UC_HOOK_MEM_INVALID, _on_invalid)
    uc.hook_add(UC_HOOK_MEM_WRITE, counter.on_marker, begin=MARKER_ADDRESS, end=MARKER_ADDRESS + 3)
    lo, hi = _rodata_range(build)
    if count_flash and hi > lo:  # data reads of flash constants (the weights): 32-byte line changes
        uc.hook_add(UC_HOOK_MEM_READ, counter.on_flash_read, begin=lo, end=hi - 1)
    halt = build.address("se_halt")
    t0 = time.perf_counter()
    try:
        uc.emu_start(reset, halt, count=max_instructions)
    except UcError as exc:
        raise _fault(exc, uc, counter.layer(), layer_names) from exc
    result = RunResult(seconds=time.perf_counter() - t0)
    pc = uc.reg_read(UC_ARM_REG_PC)
    if pc != halt:
        raise WorkbenchError(
            f"the emulated program did not reach se_halt within {max_instructions} "
            f"instructions (stopped at pc=0x{pc:08x} in {_layer_label(counter.layer(), layer_names)})"
        )
    counter.finish(result)
    for name, size in (read or {}).items():
        result.outputs[name] = read_mem(build.address(name), size)
    return result


def _machine(build: Build, inputs: dict[str | int, bytes], target: Target):
    """A Cortex-M7 Unicorn with the image loaded, the inputs written and SP set; returns (uc, reset pc)."""
    from unicorn import UC_ARCH_ARM, UC_MODE_MCLASS, UC_MODE_THUMB, Uc
    from unicorn.arm_const import UC_ARM_REG_SP, UC_CPU_ARM_CORTEX_M7

    uc = Uc(UC_ARCH_ARM, UC_MODE_THUMB | UC_MODE_MCLASS)
    uc.ctl_set_cpu_model(UC_CPU_ARM_CORTEX_M7)
    uc.mem_map(FLASH_ORIGIN, _round_up(target.flash_bytes))
    uc.mem_map(SRAM_ORIGIN, _round_up(target.sram_bytes))
    uc.mem_map(MARKER_ADDRESS, PAGE)
    _load(uc, build)
    for name, data in inputs.items():
        uc.mem_write(name if isinstance(name, int) else build.address(name), bytes(data))
    sp, reset = np.frombuffer(bytes(uc.mem_read(FLASH_ORIGIN, 8)), "<u4")  # the vector table
    uc.reg_write(UC_ARM_REG_SP, int(sp))
    return uc, int(reset)


def _on_invalid(uc, _access, address, _size, _value, _user) -> bool:
    uc._se_fault_addr = address  # read back by _fault for the error message
    return False


class _Counter:
    """The hooks' state. The block hook only counts executions per (address, size) -- cheap in Python;
    class vectors (one capstone pass per new block) are applied once per layer in `finish`."""

    def __init__(self, on_layer_end: Callable | None, read_mem: Callable[[int, int], bytes]) -> None:
        from capstone import CS_ARCH_ARM, CS_MODE_MCLASS, CS_MODE_THUMB, Cs

        md = Cs(CS_ARCH_ARM, CS_MODE_THUMB | CS_MODE_MCLASS)
        self.vectors: dict[int, np.ndarray] = {}
        self.per_layer: dict[int, dict[int, int]] = {-1: {}}
        self.taken: dict[int, int] = {-1: 0}
        self.lines: dict[int, int] = {-1: 0}
        vectors, per_layer, taken, lines = self.vectors, self.per_layer, self.taken, self.lines
        last_line = -1
        branch_ends: set[int] = set()
        cur = per_layer[-1]
        layer, prev_end, prev_branch = -1, -1, False

        def on_block(uc, address, size, _user):
            nonlocal prev_end, prev_branch
            key = (address << 16) | size
            n = cur.get(key)
            if n is None:
                if key not in vectors:
                    vectors[key], last_branch = _block_vector(md, bytes(uc.mem_read(address, size)), address)
                    if last_branch:
                        branch_ends.add(key)
                cur[key] = 1
            else:
                cur[key] = n + 1
            if prev_branch and address != prev_end:  # the previous block's branch was taken
                taken[layer] += 1
            prev_end = address + size
            prev_branch = key in branch_ends

        def on_flash_read(uc, _access, address, _size, _value, _user):
            nonlocal last_line
            line = address >> 5
            if line != last_line:
                lines[layer] += 1
                last_line = line

        def on_marker(uc, _access, _address, _size, value, _user):
            nonlocal layer, cur, last_line
            if on_layer_end is not None and layer >= 0:
                on_layer_end(layer, read_mem)
            layer = int(value)
            cur = per_layer.setdefault(layer, {})
            taken.setdefault(layer, 0)
            lines.setdefault(layer, 0)
            last_line = -1

        def end() -> None:
            if on_layer_end is not None and layer >= 0:
                on_layer_end(layer, read_mem)

        self.on_block, self.on_marker, self.end = on_block, on_marker, end
        self.on_flash_read = on_flash_read
        self.layer = lambda: layer

    def finish(self, result: RunResult) -> None:
        """Close the last layer and fill `result.counts`, `blocks` and `instructions`."""
        self.end()
        for lay, blocks in self.per_layer.items():
            vec = np.zeros(N_CLASSES, np.int64)
            for key, n in blocks.items():
                vec += n * self.vectors[key]
            vec[TAKEN] += self.taken[lay]
            vec[FLASH_LINES] += self.lines.get(lay, 0)
            result.counts[lay] = vec
        result.blocks = self.per_layer
        result.instructions = int(sum(int(v[:N_INSTRUCTION_CLASSES].sum()) for v in result.counts.values()))


@contextlib.contextmanager
def _elf(build: Build) -> Iterator[Any]:
    """The firmware as a pyelftools `ELFFile`; a missing, truncated or foreign file (or one whose
    segments do not fit the target's memory map) becomes one WorkbenchError sentence."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    from unicorn import UcError

    try:
        with open(build.elf, "rb") as fh:
            yield ELFFile(fh)
    except (ELFError, OSError, UcError, ValueError, struct.error) as exc:
        raise WorkbenchError(f"firmware {str(build.elf)!r} is not a loadable Cortex-M ELF image "
                             f"({brief(exc)}); rebuild it (python -m core engine build ID)") from exc


def _rodata_range(build: Build) -> tuple[int, int]:
    """[start, end) of .rodata (the constants a program reads from flash)."""
    with _elf(build) as elf:
        sec = elf.get_section_by_name(".rodata")
        if sec is None or not sec["sh_size"]:
            return 0, 0
        return int(sec["sh_addr"]), int(sec["sh_addr"] + sec["sh_size"])


def _load(uc, build: Build) -> None:
    """Copy PT_LOAD segments to their physical (load) addresses, as a flash programmer would."""
    with _elf(build) as elf:
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_filesz"]:
                uc.mem_write(seg["p_paddr"], seg.data())


def _layer_label(layer: int, names: list[str] | None) -> str:
    if layer < 0:
        return "startup code (before the first layer)"
    if names and layer < len(names):
        return f"layer {layer} ({names[layer]})"
    return f"layer {layer}"


def _fault(exc, uc, layer: int, names: list[str] | None) -> WorkbenchError:
    from unicorn.arm_const import UC_ARM_REG_PC

    pc = uc.reg_read(UC_ARM_REG_PC)
    addr = getattr(uc, "_se_fault_addr", None)
    where = f"at address 0x{addr:08x}" if addr is not None else f"with pc=0x{pc:08x}"
    return WorkbenchError(f"memory fault in {_layer_label(layer, names)}: {exc} {where}")
