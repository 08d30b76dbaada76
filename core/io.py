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
import re
import shutil
import socket
import sys
import tempfile
import time
import zlib
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


# ---- atomic writes ---------------------------------------------------------------------------------
# A write goes to a hidden sibling `.<name>.<pid>-<host>.<ns>.tmp` and is renamed into place. A folder
# that replaces an existing one is swapped in under an exclusive lock on the parent folder: the old
# folder is renamed to `.<name>.aside`, the new one renamed in, and only then is the old one deleted.
# A kill between the two renames leaves the previous folder intact under the aside name, and
# `recover` (called before every read of such a folder) renames it back.

#: a temporary sibling is removed by `clean_stale_tmp` when its writer (same host) is gone, or
#: whatever wrote it once it is older than this
STALE_TMP_SECONDS = 2 * 24 * 3600
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-(?P<host>[0-9a-f]{8})\.(?P<ns>\d+)\.tmp$")
#: names written before the host tag existed (`.<name>.<pid>.<ns>.tmp`, `.<name>.<pid>.old.tmp`): their
#: host is unknown, so a dead pid only counts after LEGACY_GRACE_SECONDS
_LEGACY_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?:\d+|old)\.tmp$")
LEGACY_GRACE_SECONDS = 3600.0


def _host_tag() -> str:
    return f"{zlib.crc32(socket.gethostname().encode()):08x}"


def _tmp_sibling(final: Path) -> Path:
    return final.parent / f".{final.name}.{os.getpid()}-{_host_tag()}.{time.time_ns()}.tmp"


def _aside(final: Path) -> Path:
    return final.parent / f".{final.name}.aside"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def clean_stale_tmp(folder: Path, name: str | None = None) -> list[Path]:
    """Remove temporary siblings in `folder` left by killed writers; return what was removed.

    Only names this module makes (`.<name>.<pid>-<host>.<ns>.tmp`) are touched, and only when the
    writing process (on this host) no longer runs, or when the entry is older than
    `STALE_TMP_SECONDS` (a writer on another host sharing the folder, or a reused pid). `name`
    restricts the sweep to one target. A folder that cannot be listed or written is left alone.
    """
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    host, now = _host_tag(), time.time()
    for entry in entries:
        m = _TMP_RE.match(entry.name)
        legacy = None if m else _LEGACY_TMP_RE.match(entry.name)
        found = m or legacy
        if not found or (name is not None and found["name"] != name):
            continue
        try:
            age = now - entry.lstat().st_mtime
        except OSError:
            continue
        pid = int(found["pid"])
        same_host = m["host"] == host if m else age > LEGACY_GRACE_SECONDS
        dead = same_host and pid != os.getpid() and not _pid_alive(pid)
        if dead or age > STALE_TMP_SECONDS:
            target = folder / found["name"]
            if entry.name.endswith(".old.tmp") and not (target.exists() or target.is_symlink()):
                # earlier versions moved the previous folder here before renaming the new one in:
                # killed in between, this is the only copy left, so it goes back, never away
                with contextlib.suppress(OSError):
                    os.replace(entry, target)
                continue
            _remove(entry)
            if not entry.exists():
                removed.append(entry)
    return removed


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive `flock` on `folder` itself (no lock file is left behind); a no-op where the
    platform has no flock."""
    try:
        import fcntl
    except ImportError:  # not POSIX: renames stay atomic, only concurrent swaps are not serialised
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _recover_locked(final: Path) -> None:
    """Under the lock: restore `final` from its aside copy, or drop the aside copy if `final` exists."""
    aside = _aside(final)
    if not aside.exists():
        return
    if final.exists() or final.is_symlink():
        trash = _tmp_sibling(final)
        os.replace(aside, trash)
        _remove(trash)
    else:
        os.replace(aside, final)


def recover(final: Path) -> bool:
    """Finish a folder replacement that a killed process left half done (see `atomic_path`).

    If `final` is missing and its aside copy exists, the copy (the previous good folder) is renamed
    back; if both exist, the aside copy is deleted. Returns True when something was repaired. Costs
    one `stat` when there is nothing to do; a read-only folder is left as it is.
    """
    final = Path(final)
    if not _aside(final).exists():
        return False
    try:
        with _folder_lock(final.parent):
            _recover_locked(final)
    except OSError:
        return False
    return True


def check_target(final: Path, replace_dir: Callable[[Path], bool] | None = None) -> Path:
    """Refuse, before any work, a target that `atomic_path` would not replace.

    An existing directory is replaced only by a directory and only when `replace_dir(final)` says
    the workbench wrote it (e.g. a dataset store); anything else (a user's folder where a file
    goes, a file where a folder goes) raises `WorkbenchError`. Also checks that the parent folder is
    writable (it is created if needed). Returns `final`.
    """
    final = Path(final)
    if final.is_dir() and not final.is_symlink():
        if replace_dir is None:
            raise WorkbenchError(f"{str(final)!r} is an existing directory, and a file cannot replace "
                                 "it without deleting what is in it; move that directory away or write "
                                 "somewhere else")
        if not replace_dir(final):
            raise WorkbenchError(f"{str(final)!r} is a directory the workbench did not write, so it is "
                                 "not replaced; move or delete it yourself, or choose another path")
    elif replace_dir is not None and (final.exists() or final.is_symlink()) and not final.is_dir():
        raise WorkbenchError(f"{str(final)!r} is a file where the workbench writes a folder; "
                             "move or delete it yourself, or choose another path")
    ensure_writable_dir(final.parent)
    return final


def _commit(tmp: Path, final: Path, replace_dir: Callable[[Path], bool] | None) -> None:
    """Rename the finished `tmp` to `final` (see `atomic_path`)."""
    if not tmp.is_dir():
        if final.is_dir() and not final.is_symlink():  # appeared while we worked: never delete it
            check_target(final)
        os.replace(tmp, final)  # atomic for files; concurrent writers: the later one wins
        return
    trash = None
    with _folder_lock(final.parent):
        _recover_locked(final)
        if final.exists() or final.is_symlink():
            check_target(final, replace_dir or (lambda _p: False))
            aside = _aside(final)
            os.replace(final, aside)  # the previous folder survives a kill under the aside name
            os.replace(tmp, final)
            trash = _tmp_sibling(final)
            os.replace(aside, trash)
        else:
            os.replace(tmp, final)
    if trash is not None:
        _remove(trash)


@contextlib.contextmanager
def atomic_path(final: Path, replace_dir: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `final`; rename it to `final` only if the block succeeds.

    Works for files and directories (e.g. a zarr store): whatever the block creates at the yielded
    path is what lands at `final`. An existing file is replaced. An existing *directory* is
    replaced only by a directory and only when `replace_dir(final)` is true (the caller recognises
    it as something the workbench wrote); otherwise `WorkbenchError` is raised before the block
    runs and nothing is deleted. Directory replacement is serialised by a lock on the parent and
    never leaves a moment in which a kill loses both the old and the new folder (see `recover`).
    Stale temporary siblings of `final` left by killed writers are removed on the way in.
    """
    final = check_target(Path(final), replace_dir)
    clean_stale_tmp(final.parent, final.name)
    tmp = _tmp_sibling(final)
    try:
        yield tmp
        try:
            _commit(tmp, final, replace_dir)
        except OSError as exc:
            raise WorkbenchError(f"cannot move the new {final.name!r} into place in "
                                 f"{str(final.parent)!r} ({exc.strerror or exc}); nothing was replaced"
                                 ) from exc
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)


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
    """`cuda` when available (or asked for), else `cpu`; `prefer` is `cpu`, `cuda` or `cuda:N`."""
    import torch

    if prefer:
        prefer = str(prefer).strip()
        try:
            dev = torch.device(prefer)
        except (RuntimeError, ValueError) as exc:
            raise WorkbenchError(f"device {prefer!r} is not a device; use 'cpu', 'cuda' or 'cuda:N'") from exc
        if dev.type not in ("cpu", "cuda"):
            raise WorkbenchError(f"device {prefer!r} is not supported; use 'cpu', 'cuda' or 'cuda:N'")
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise WorkbenchError(f"device {prefer!r} requested but CUDA is not available; use 'cpu'")
            if dev.index is not None and dev.index >= torch.cuda.device_count():
                raise WorkbenchError(f"device {prefer!r} does not exist; this machine has "
                                     f"{torch.cuda.device_count()} CUDA device(s) (cuda:0 ..)")
        return prefer
    return "cuda" if torch.cuda.is_available() else "cpu"


@contextlib.contextmanager
def tqdm_progress(desc: str, unit: str = "it") -> Iterator[Progress]:
    """A `Progress` callback that drives a tqdm bar (the CLI's progress display).

    The bar opens at the first report, so an input refused before any work prints nothing but its
    `error:` line.
    """
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int, message: str = "") -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(desc=desc, unit=unit, dynamic_ncols=True, file=sys.stderr)
        if bar.total != total:
            bar.total = total
        bar.n = done
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    try:
        yield update
    finally:
        if bar is not None:
            bar.close()
