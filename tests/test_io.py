"""core.io: atomic writes never delete what the workbench did not write, survive kills and races;
core.limits: numbers, work and memory are checked before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import core.io as io
from core.errors import WorkbenchError
from core.io import atomic_path, cache_dir, clean_stale_tmp, recover, repo_root, torch_device
from core.limits import check_memory, check_number, check_work


def _ours(path: Path) -> bool:
    return (path / "MARK").is_file()


def _make_dir(path: Path, text: str) -> None:
    path.mkdir()
    (path / "MARK").write_text(text)
    (path / "data.txt").write_text(text * 100)


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ---- never delete what the workbench did not write --------------------------------------------------
def test_a_file_never_replaces_an_existing_directory(tmp_path):
    target = tmp_path / "v"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    ran = []
    with pytest.raises(WorkbenchError, match=r"'.*v' is an existing directory.*move that directory away"):
        with atomic_path(target) as tmp:
            ran.append(True)
            tmp.write_text("checkpoint")
    assert ran == []  # refused before the work, not after
    assert (target / "notes.txt").read_text() == "mine" and _hidden(tmp_path) == []


def test_a_folder_the_workbench_did_not_write_is_not_replaced(tmp_path):
    target = tmp_path / "store.zarr"
    target.mkdir()
    (target / "thesis.tex").write_text("years of work")
    with pytest.raises(WorkbenchError, match="did not write"):
        with atomic_path(target, replace_dir=_ours) as tmp:
            tmp.mkdir()
    assert (target / "thesis.tex").read_text() == "years of work"
    (tmp_path / "file.zarr").write_text("x")  # a file where a folder goes: not replaced either
    with pytest.raises(WorkbenchError, match="is a file where the workbench writes a folder"):
        with atomic_path(tmp_path / "file.zarr", replace_dir=_ours) as tmp:
            tmp.mkdir()
    assert (tmp_path / "file.zarr").read_text() == "x"


def test_a_folder_the_workbench_wrote_is_replaced_and_files_still_are(tmp_path):
    target = tmp_path / "store"
    _make_dir(target, "old")
    with atomic_path(target, replace_dir=_ours) as tmp:
        _make_dir(tmp, "new")
    assert (target / "MARK").read_text() == "new" and _hidden(tmp_path) == []
    f = tmp_path / "a.json"
    f.write_text("old")
    io.write_text_atomic(f, "new")
    assert f.read_text() == "new" and _hidden(tmp_path) == []


def test_a_directory_appearing_while_a_file_is_written_survives(tmp_path):
    target = tmp_path / "out.pt"
    with pytest.raises(WorkbenchError, match="existing directory"):
        with atomic_path(target) as tmp:
            tmp.write_text("x")
            target.mkdir()
            (target / "keep").write_text("k")
    assert (target / "keep").read_text() == "k" and _hidden(tmp_path) == []


# ---- kills and races --------------------------------------------------------------------------------
def test_a_kill_between_the_renames_loses_nothing(tmp_path, monkeypatch):
    """Killed after the old store is moved aside but before the new one is in place: `recover`
    brings the old store back; killed after the new one is in place: the aside copy is dropped."""
    target = tmp_path / "store"
    _make_dir(target, "old")
    real = os.replace
    calls = []

    def killed_at_second(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise KeyboardInterrupt  # stands in for SIGKILL between the two renames
        return real(src, dst)

    monkeypatch.setattr(io.os, "replace", killed_at_second)
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target, replace_dir=_ours) as tmp:
            _make_dir(tmp, "new")
    monkeypatch.setattr(io.os, "replace", real)
    assert not target.exists()  # the window the old code had: no store at the target ...
    assert recover(target) is True  # ... but the previous store is still there, under the aside name
    assert (target / "MARK").read_text() == "old" and (target / "data.txt").read_text() == "old" * 100
    assert recover(target) is False and _hidden(tmp_path) == []

    calls.clear()

    def killed_at_third(src, dst):
        calls.append((src, dst))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(io.os, "replace", killed_at_third)
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target, replace_dir=_ours) as tmp:
            _make_dir(tmp, "new")
    monkeypatch.setattr(io.os, "replace", real)
    assert (target / "MARK").read_text() == "new"
    assert recover(target) is True and (target / "MARK").read_text() == "new" and _hidden(tmp_path) == []


@pytest.mark.parametrize("trial", range(6))
def test_writers_finishing_together_never_fail(tmp_path, trial):
    """Four writers replace the same folder at the same moment: none raises, the store is whole and
    is one writer's."""
    target = tmp_path / "store"
    _make_dir(target, "first")
    n = 4
    barrier, errors = threading.Barrier(n), []

    def writer(i: int) -> None:
        try:
            with atomic_path(target, replace_dir=_ours) as tmp:
                _make_dir(tmp, f"w{i}")
                barrier.wait(timeout=30)
        except BaseException as exc:  # noqa: BLE001 -- collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    mark = (target / "MARK").read_text()
    assert mark in {f"w{i}" for i in range(n)} and (target / "data.txt").read_text() == mark * 100
    assert _hidden(tmp_path) == []


def test_stale_temporaries_of_killed_writers_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    host = io._host_tag()
    stale = tmp_path / f".store.{dead_pid}-{host}.{time.time_ns()}.tmp"
    stale.mkdir()
    (stale / "chunk").write_text("x")
    live = tmp_path / f".store.{os.getppid()}-{host}.{time.time_ns()}.tmp"  # a running process
    live.mkdir()
    foreign_old = tmp_path / f".store.{dead_pid}-0badc0de.{time.time_ns()}.tmp"  # another host, 3 days
    foreign_old.write_text("x")
    old = time.time() - 3 * 24 * 3600
    os.utime(foreign_old, (old, old))
    foreign_new = tmp_path / f".store.{dead_pid}-0badc0de.{time.time_ns() + 1}.tmp"  # another host, now
    foreign_new.write_text("x")
    users = tmp_path / ".store.notes.tmp"  # not a name the workbench makes
    users.write_text("x")
    legacy_old = tmp_path / f".store.{dead_pid}.12345.tmp"  # named by earlier versions, 2 h old
    legacy_old.mkdir()
    two_hours = time.time() - 7200
    os.utime(legacy_old, (two_hours, two_hours))
    (tmp_path / "other").mkdir()  # its replacement finished: the aside copy is garbage
    legacy_aside = tmp_path / f".other.{dead_pid}.old.tmp"
    legacy_aside.mkdir()
    os.utime(legacy_aside, (two_hours, two_hours))
    legacy_new = tmp_path / f".store.{dead_pid}.67890.tmp"  # host unknown and recent: kept for now
    legacy_new.mkdir()
    removed = clean_stale_tmp(tmp_path)
    assert sorted(removed) == sorted([stale, foreign_old, legacy_old, legacy_aside])
    assert live.exists() and foreign_new.exists() and users.exists() and legacy_new.exists()
    orphan = tmp_path / f".lost.{dead_pid}.old.tmp"  # an earlier version killed between its renames
    _make_dir(orphan, "previous")
    os.utime(orphan, (two_hours, two_hours))
    assert clean_stale_tmp(tmp_path) == [] and (tmp_path / "lost" / "MARK").read_text() == "previous"
    # atomic_path sweeps its own target's leftovers on the way in
    stale.mkdir()
    with atomic_path(tmp_path / "store", replace_dir=_ours) as tmp:
        _make_dir(tmp, "x")
    assert not stale.exists() and live.exists()


# ---- tests never write into the checkout -------------------------------------------------------------
@pytest.fixture(scope="module")
def module_cache():
    return cache_dir()


def test_module_fixtures_see_a_temporary_cache(module_cache):
    """A module-scoped fixture runs before function-scoped ones: the cache must be redirected for
    the whole session, or such fixtures write datasets into the checkout's data/cache."""
    assert repo_root() not in module_cache.parents and module_cache != repo_root() / "data" / "cache"


# ---- devices and limits ---------------------------------------------------------------------------------
@pytest.mark.parametrize("device, message", [
    ("foo", "device 'foo' is not a device; use 'cpu', 'cuda' or 'cuda:N'"),
    ("meta", "device 'meta' is not supported"),
    ("cuda:99", "device 'cuda:99'"),
])
def test_bad_devices_are_one_sentence(device, message):
    with pytest.raises(WorkbenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        torch_device(device)
    assert torch_device("cpu") == "cpu"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), "x", None, True, 0.0])
def test_check_number_refuses_non_finite_and_out_of_range(value):
    with pytest.raises(WorkbenchError, match=r"^--flash-kb=.* must be a finite number > 0$"):
        check_number("--flash-kb", value, 0, strict=True)


def test_check_number_integers_and_limits():
    assert check_number("n", 3.0, 1, integer=True) == 3 and check_number("x", "2.5", 0) == 2.5
    with pytest.raises(WorkbenchError, match="n=2.5 must be an integer >= 1"):
        check_number("n", 2.5, 1, integer=True)
    with pytest.raises(WorkbenchError, match=r"at least 3.2e\+292 years \(1e\+300 steps\).*; lower it"):
        check_work("training", 1e300, "1e+300 steps", "lower it")
    check_work("training", 3600.0, "1 h", "x")  # an hour is fine
    with pytest.raises(WorkbenchError, match=r"needs about 8 GiB of memory at once, but this machine has "
                                             r"1 GiB available"):
        check_memory("the dataset", 8 * 2**30, "lower n", available=2**30)
    check_memory("the dataset", 2**20, "x", available=2**30)
