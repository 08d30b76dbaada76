"""Refuse, before it starts, work that cannot finish: checked numbers, work, memory and disk estimates.

Every long operation estimates what it will need from its inputs alone (no trial run) and calls
these checks first, so `--dt-fine 1e300` or `--n-coarse 1000000000000` gets one sentence naming the
estimate instead of a run that never ends or a multi-terabyte allocation. Time estimates are lower
bounds: they assume a rate well above anything measured on the development machines, so a refusal
is never a close call.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

from core.errors import WorkbenchError

#: estimated work longer than this is refused (a week of one machine; a typo is the likelier cause)
MAX_SECONDS = 7 * 24 * 3600.0
#: at most this share of the memory the OS reports as available may be planned for
MEMORY_SHARE = 0.8


def human_seconds(seconds: float) -> str:
    """3.2 s, 4.1 min, 2.5 h, 3.0 days or 1.2e+40 years."""
    if not math.isfinite(seconds):  # a lower bound past float range is still a lower bound
        return "1e+300 years"
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            value = seconds / size
            return f"{value:.3g} {unit}" if value < 1e6 else f"{value:.2g} {unit}"
    return f"{seconds:.2g} s"


def human_bytes(n: float) -> str:
    """1.5 KiB, 7.3 TiB or 3.2e+20 TiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.3g} {unit}" if value < 1e6 else f"{value:.2g} {unit}"
        value /= 1024
    return f"{value:.2g} TiB"


def check_number(name: str, value: object, minimum: float | None = None, integer: bool = False,
                 strict: bool = False) -> float | int:
    """`value` as a finite number (an int if `integer`), at least `minimum` (above it if `strict`).

    NaN, infinities, booleans, non-numbers and (with `integer`) fractional values raise
    `WorkbenchError` naming `name`, e.g. `--flash-kb=nan must be a finite number > 0`.
    """
    rule = ("an integer" if integer else "a finite number") + (
        f" {'>' if strict else '>='} {minimum:g}" if minimum is not None else "")
    if isinstance(value, bool):
        raise WorkbenchError(f"{name}={value!r} must be {rule}")
    if not isinstance(value, int | float):
        try:
            value = float(value)  # numpy scalars and numeric strings
        except (TypeError, ValueError):
            raise WorkbenchError(f"{name}={value!r} must be {rule}") from None
    if not math.isfinite(value) or (integer and value != int(value)):
        raise WorkbenchError(f"{name}={value!r} must be {rule}")
    if minimum is not None and (value < minimum or (strict and value == minimum)):
        raise WorkbenchError(f"{name}={value!r} must be {rule}")
    return int(value) if integer else float(value)


def check_work(what: str, seconds: float, basis: str, hint: str, limit: float = MAX_SECONDS) -> None:
    """Refuse work estimated (as a lower bound) to take longer than `limit` seconds.

    `basis` says how the estimate was made (e.g. "8e+303 solver steps at >= 5e+07 values/s") and
    `hint` what to change; both go into the one-sentence error.
    """
    if not seconds <= limit:  # also catches NaN
        raise WorkbenchError(f"{what} would take at least {human_seconds(seconds)} ({basis}), more than "
                             f"the {human_seconds(limit)} the workbench allows; {hint}")


def available_memory() -> int | None:
    """Bytes of memory the OS reports as available (Linux `MemAvailable`), or None if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(what: str, nbytes: float, hint: str, available: int | None = None) -> None:
    """Refuse a plan that needs more than `MEMORY_SHARE` of the available memory at once."""
    available = available_memory() if available is None else available
    if available is not None and not nbytes <= MEMORY_SHARE * available:
        raise WorkbenchError(f"{what} needs about {human_bytes(nbytes)} of memory at once, but this machine "
                             f"has {human_bytes(available)} available; {hint}")


def check_disk(what: str, nbytes: float, folder: Path, hint: str) -> None:
    """Refuse writing about `nbytes` into `folder` (or its nearest existing parent) when the disk
    holds less free space than that."""
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return
    if not nbytes <= free:
        raise WorkbenchError(f"{what} needs about {human_bytes(nbytes)} on disk, but {str(probe)!r} has "
                             f"{human_bytes(free)} free; {hint}")
