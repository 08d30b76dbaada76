"""A per-instruction-class cycle model of the Cortex-M7: a point estimate with optimistic and
conservative bounds (estimates, not measurements).

An instruction-level emulator counts instructions, not cycles. ARM publishes no instruction timing
table for the Cortex-M7 (its Technical Reference Manual gives none), so the costs below come from
published measurements and descriptions of the core, as collected in the project's anchors
(/work/shared/ANCHORS.md, "Cortex-M7 timing facts"): an in-order, 6-stage, dual-issue pipeline; one
MAC (SMLAD = 2 int16 MACs) per cycle and MACs never dual-issue with each other, so 0.5 cycles/MAC is
the int8 ceiling; a load whose result the next instruction uses stalls; DSP/SIMD instructions issue
from the first slot only; SDIV takes 2-12 cycles; branch mispredicts cost several cycles; the
STM32F746 runs its flash with wait states (7 at 216 MHz, RM0385) behind the ART accelerator and a
4 KB L1 data cache.

The point estimate is single-issue with the costs below; the bounds bracket it:

| class        | examples                         | point | optimistic               | conservative          |
|--------------|----------------------------------|-------|--------------------------|-----------------------|
| mac          | SMLAD, SMLABB, MLA, SMMLAR       | 1     | 1 (MAC pipe, no pairing) | 1                     |
| mul          | MUL, SMULL, SMMUL, SMULBB        | 1     | 1                        | 1                     |
| div          | SDIV, UDIV                       | 8     | 2                        | 12                    |
| load         | LDR, LDRB, LDRSH, ...            | 1     | 1/2 (dual issue)         | 2 (load-use stall)    |
| store        | STR, STRB, STRH                  | 1     | 1/2                      | 1                     |
| multi        | LDM, STM, PUSH, POP, LDRD, STRD  | 1     | 1/2                      | 1                     |
| extra_regs   | each register after the first    | 1     | 1/2                      | 1                     |
| branch       | B, BL, BX, CBZ, IT blocks' heads | 1     | 1/2                      | 1                     |
| branch_taken | a taken branch (control flow)    | +1    | 0 (predicted)            | +5 (mispredicted)     |
| alu          | ADD, SUB, SXTB16, PKHBT, SSAT... | 1     | 1/2                      | 1                     |
| flash_lines  | 32-byte flash lines read as data | 0     | 0 (cache hits)           | +7 (wait states)      |

optimistic = max(mac + mul + 2·div, ½·(all instructions + extra registers)): perfect dual issue
of everything that may pair, bounded below by the single MAC/multiply pipe; conservative = point +
one load-use stall per load + 4 more cycles per taken branch (a mispredict instead of a predicted
taken branch) + `FLASH_WAIT_STATES` per change of 32-byte flash line between consecutive data reads
of .rodata (the weights streamed from flash with no cache hits; the emulator counts these).
milliseconds = cycles / f_clk (216 MHz on the STM32F746).
"""

from __future__ import annotations

import numpy as np

#: instruction classes (counted once per executed instruction) followed by three extra counters:
#: `extra_regs` (registers beyond the first moved by a multi-register load/store),
#: `branch_taken` (taken branches, detected from control flow between blocks) and `flash_lines`
#: (changes of 32-byte line between consecutive data reads of .rodata, i.e. of flash)
CLASSES = ("mac", "mul", "div", "load", "store", "multi", "branch", "alu", "fp", "extra_regs", "branch_taken",
           "flash_lines")
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
    "flash_lines": 0,
}
#: STM32F746 flash wait states at 216 MHz (RM0385, 2.7-3.6 V)
FLASH_WAIT_STATES = 7
#: cycles of a mispredicted taken branch on top of the instruction (conservative bound)
MISPREDICT_EXTRA = 5
#: the conservative bound's costs (see the module docstring)
CONSERVATIVE = COST | {"div": 12, "load": 2, "branch_taken": MISPREDICT_EXTRA,
                       "flash_lines": FLASH_WAIT_STATES}
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


def bounds(counts: np.ndarray) -> tuple[int, int, int]:
    """(optimistic, point, conservative) cycles for class counts (see the module docstring)."""
    c = dict(zip(CLASSES, (int(v) for v in np.asarray(counts, np.int64))))
    n = sum(c[k] for k in CLASSES[:N_INSTRUCTION_CLASSES])
    pipe = c["mac"] + c["mul"] + 2 * c["div"]
    optimistic = max(pipe, -(-(n + c["extra_regs"]) // 2))
    conservative = sum(CONSERVATIVE[k] * c[k] for k in CLASSES)
    return optimistic, estimate_cycles(counts), conservative


def instructions(counts: np.ndarray) -> int:
    """Executed instructions (the extra counters excluded)."""
    return int(np.asarray(counts, np.int64)[:N_INSTRUCTION_CLASSES].sum())


def milliseconds(cycles: int, clock_hz: int = CLOCK_HZ) -> float:
    """Wall time on the board at `clock_hz`."""
    return 1e3 * cycles / clock_hz


def breakdown(counts: np.ndarray) -> dict[str, int]:
    """Counts by class name (for tables and the app)."""
    return {c: int(v) for c, v in zip(CLASSES, np.asarray(counts, np.int64))}
