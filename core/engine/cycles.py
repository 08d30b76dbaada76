"""A per-instruction-class cycle model of the Cortex-M7 (an estimate, not a measurement).

An instruction-level emulator counts instructions, not cycles. We turn counts into cycles with a
single-issue cost table taken from the Cortex-M7 Technical Reference Manual's instruction timings
and ARM's optimisation notes, ignoring dual issue (which makes the M7 faster: these estimates are an
upper-ish bound for code that hits the TCM) and cache misses (which make it slower on code in
external flash):

| class        | examples                         | cycles                                           |
|--------------|----------------------------------|--------------------------------------------------|
| mac          | SMLAD, SMLABB, MLA, MLS, SMLAL   | 1 (SMLAD = 2 int16 MACs: the 2 MAC/cycle limit)  |
| mul          | MUL, SMULL, SMMUL, SMULBB        | 1                                                |
| div          | SDIV, UDIV                       | 8 (2-12 depending on operands; midpoint)         |
| load         | LDR, LDRB, LDRSH, ...            | 1 (pipelined: the result is ready next cycle)    |
| store        | STR, STRB, STRH                  | 1                                                |
| multi        | LDM, STM, PUSH, POP, LDRD, STRD  | 1 + 1 per extra register (`extra_regs`)          |
| branch       | B, BL, BX, CBZ, IT blocks' heads | 1, plus `TAKEN_PENALTY` when the branch is taken |
| alu          | ADD, SUB, SXTB16, PKHBT, SSAT... | 1                                                |
| fp           | VMOV, VADD.F32 ...               | 1 (the engine's kernels use none)                |

Estimated cycles = Σ_class count·cost + extra_regs + TAKEN_PENALTY·taken_branches;
milliseconds = cycles / f_clk (216 MHz on the STM32F746).
"""

from __future__ import annotations

import numpy as np

#: instruction classes (counted once per executed instruction) followed by two extra counters:
#: `extra_regs` (registers beyond the first moved by a multi-register load/store) and
#: `branch_taken` (taken branches, detected from control flow between blocks)
CLASSES = ("mac", "mul", "div", "load", "store", "multi", "branch", "alu", "fp", "extra_regs", "branch_taken")
N_INSTRUCTION_CLASSES = 9
COST = {
    "mac": 1,
    "mul": 1,
    "div": 8,
    "load": 1,
    "store": 1,
    "multi": 1,
    "branch": 1,
    "alu": 1,
    "fp": 1,
    "extra_regs": 1,
    "branch_taken": 1,
}
TAKEN_PENALTY = COST["branch_taken"]
CLOCK_HZ = 216_000_000

_MAC = ("smla", "smlsd", "smlsl", "mla", "mls", "umlal", "umaal", "smmla", "smmls")
_MUL = ("mul", "smul", "umul", "smmul", "smuad", "smusd")
_BRANCH = ("b", "bl", "blx", "bx", "cbz", "cbnz", "tbb", "tbh")
_COND = ("eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al")


def _strip(mnemonic: str) -> str:
    m = mnemonic.lower().split(".")[0]
    return m


def _is_branch(m: str) -> bool:
    if m in _BRANCH:
        return True
    for base in ("b", "bl", "bx"):
        if m.startswith(base) and m[len(base) :] in _COND:
            return True
    return False


def classify(mnemonic: str, op_str: str) -> tuple[str, int]:
    """(class, 1) for an instruction; multi-register transfers also report their register count.

    Returns ("multi", n) for LDM/STM/PUSH/POP/LDRD/STRD with n registers (the emulator adds n - 1 to
    `extra_regs`); any instruction writing the PC (POP {..., pc}, LDR pc, MOV pc) is a branch.
    """
    m = _strip(mnemonic)
    ops = op_str.lower()
    if m.startswith(("ldm", "stm", "push", "pop", "ldrd", "strd", "vpush", "vpop", "vldm", "vstm")):
        n = 2 if m.startswith(("ldrd", "strd")) else 1
        if "{" in ops:
            inside = ops[ops.index("{") + 1 : ops.index("}")]
            n = sum(_range_len(part) for part in inside.split(","))
        return ("branch" if "pc" in ops and m.startswith(("pop", "ldm")) else "multi", n)
    if m.startswith("v"):
        return ("fp", 1)
    if m.startswith(_MAC):
        return ("mac", 1)
    if m.startswith(_MUL):
        return ("mul", 1)
    if m in ("sdiv", "udiv"):
        return ("div", 1)
    if _is_branch(m):
        return ("branch", 1)
    if m.startswith("ldr"):
        return ("branch" if ops.startswith("pc") else "load", 1)
    if m.startswith("str"):
        return ("store", 1)
    if m in ("mov", "add") and ops.startswith("pc"):
        return ("branch", 1)
    return ("alu", 1)


def _range_len(part: str) -> int:
    part = part.strip()
    if "-" in part:
        lo, hi = (p.strip().lstrip("rsd") for p in part.split("-"))
        try:
            return int(hi) - int(lo) + 1
        except ValueError:
            return 1
    return 1


def estimate_cycles(counts: np.ndarray) -> int:
    """Σ count·cost over `CLASSES` (instruction classes plus the two extra counters)."""
    costs = np.array([COST[c] for c in CLASSES], np.int64)
    return int(np.asarray(counts, np.int64) @ costs)


def instructions(counts: np.ndarray) -> int:
    """Executed instructions (the extra counters excluded)."""
    return int(np.asarray(counts, np.int64)[:N_INSTRUCTION_CLASSES].sum())


def milliseconds(cycles: int, clock_hz: int = CLOCK_HZ) -> float:
    """Wall time on the board at `clock_hz`."""
    return 1e3 * cycles / clock_hz


def breakdown(counts: np.ndarray) -> dict[str, int]:
    """Counts by class name (for tables and the app)."""
    return {c: int(v) for c, v in zip(CLASSES, np.asarray(counts, np.int64))}
