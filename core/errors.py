"""User-facing errors.

`WorkbenchError` carries one clear sentence that names the bad value and what is allowed. The CLI
prints it on one line and exits with status 2; the app shows it as a notification. Anything else
that escapes is a bug.
"""

from __future__ import annotations

from collections.abc import Iterable


class WorkbenchError(ValueError):
    """A bad input or an unusable resource, described in one sentence for the user."""


def unknown(kind: str, value: object, known: Iterable[object]) -> WorkbenchError:
    """`unknown system 'foo'; known: a, b, c` -- the registry error used everywhere."""
    names = ", ".join(str(k) for k in known)
    return WorkbenchError(f"unknown {kind} {value!r}; known: {names}")


def brief(exc: BaseException) -> str:
    """`TypeName: first sentence of the message` -- a library's exception inside one sentence of ours
    (torch and pyarrow messages run over many lines and sentences)."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    first = lines[0].strip()
    cut = first.find(". ")
    return f"{type(exc).__name__}: {first[:cut] if cut > 0 else first.rstrip('.')}"
