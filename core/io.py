"""Paths, atomic writes and result files shared by every concern.

Every result written to disk records the command and config that made it, and every write is
atomic: content goes to a temporary sibling first and is renamed into place, so a crash or a bad
input never leaves a half-written file or folder behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from core.errors import WorkbenchError

#: progress(done, total, message) -- every long operation takes one of these.
Progress = Callable[[int, int, str], None]


def no_progress(done: int, total: int, message: str = "") -> None:
    """The default progress callback: does nothing."""


def repo_root() -> Path:
    """The folder that holds `core/` (the checkout, for an editable install)."""
    return Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Root of the workbench's data: `$WORKBENCH_DATA` if set, else `<repo>/data`.

    Shipped artefacts (checkpoints, result tables, NAS candidates) live here; generated datasets go
    to the git-ignored `cache/` below it.
    """
    env = os.environ.get("WORKBENCH_DATA")
    return Path(env).expanduser().resolve() if env else repo_root() / "data"


def cache_dir() -> Path:
    """Where generated datasets go: `$WORKBENCH_CACHE` if set, else `<data_dir>/cache`."""
    env = os.environ.get("WORKBENCH_CACHE")
    return Path(env).expanduser().resolve() if env else data_dir() / "cache"


def ensure_writable_dir(path: Path) -> Path:
    """Create `path` if needed and check that files can be written in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError as exc:
        raise WorkbenchError(f"directory {str(path)!r} is not writable ({exc.strerror}); "
                             "choose a writable location (e.g. set WORKBENCH_CACHE)") from exc
    return path


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path next to `final`; rename it to `final` only if the block succeeds.

    Works for files and directories (e.g. a zarr store). An existing `final` is replaced.
    """
    final = Path(final)
    ensure_writable_dir(final.parent)
    tmp = final.parent / f".{final.name}.{os.getpid()}.{time.monotonic_ns()}.tmp"
    try:
        yield tmp
        if final.is_dir() and not final.is_symlink():
            old = final.parent / f".{final.name}.{os.getpid()}.old.tmp"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_text_atomic(path: Path, text: str) -> Path:
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(text)
    return Path(path)


def command_line() -> str:
    """How this process was started, e.g. `python -m core bench solvers --preset cpu`."""
    argv = list(sys.argv)
    if not argv:
        return ""
    script = Path(argv[0])
    if script.parent.name == "core" and script.name == "__main__.py":
        argv[0] = "python -m core"
    else:
        argv[0] = script.name
    return " ".join(argv)


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, paths, numpy scalars and tuples to plain JSON types."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return obj.item()
    return obj


def write_json_atomic(path: Path, payload: Any) -> Path:
    return write_text_atomic(Path(path), json.dumps(to_jsonable(payload), indent=2, sort_keys=False) + "\n")


def write_result(name: str, markdown: str, payload: dict[str, Any], config: Any = None,
                 folder: Path | None = None) -> tuple[Path, Path]:
    """Write `<name>.md` and `<name>.json` under `data/results/` (or `folder`), recording provenance.

    The JSON gets `command`, `config`, `created` and the payload; the markdown gets a footer that
    names the command that made it.
    """
    folder = Path(folder) if folder is not None else data_dir() / "results"
    cmd = command_line()
    created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    doc = {"command": cmd, "created": created, "config": to_jsonable(config), **payload}
    md = markdown.rstrip() + f"\n\n_Made by `{cmd}` on {created}._\n"
    return (write_text_atomic(folder / f"{name}.md", md), write_json_atomic(folder / f"{name}.json", doc))


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-markdown table; floats get 4 significant digits."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def torch_device(prefer: str | None = None) -> str:
    """`cuda` when available (or asked for), else `cpu`."""
    import torch

    if prefer:
        if prefer.startswith("cuda") and not torch.cuda.is_available():
            raise WorkbenchError(f"device {prefer!r} requested but CUDA is not available; use 'cpu'")
        return prefer
    return "cuda" if torch.cuda.is_available() else "cpu"


@contextlib.contextmanager
def tqdm_progress(desc: str, unit: str = "it") -> Iterator[Progress]:
    """A `Progress` callback that drives a tqdm bar (the CLI's progress display)."""
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit=unit, dynamic_ncols=True, file=sys.stderr)

    def update(done: int, total: int, message: str = "") -> None:
        if bar.total != total:
            bar.total = total
        bar.n = done
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()
