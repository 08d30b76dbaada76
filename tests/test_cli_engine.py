"""The engine's CLI faults: concurrent runs of one candidate, a garbled ELF, and `bench engine --quick`
never overwriting the full committed table."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

import pytest

from core.errors import WorkbenchError
from core.io import repo_root

NAS = repo_root() / "data" / "nas"


def _build(path, **kw):
    from core.engine.toolchain import Build

    return Build(elf=path, flash_bytes=0, sram_bytes=0, sections={}, symbols={"se_halt": (0x08000001, 2)},
                 **kw)


@pytest.mark.parametrize("content", [
    b"this is not an ELF file at all" * 10,
    b"\x7fELF\x01\x01\x01" + bytes(9) + b"\x02\x00\x28\x00" + bytes(20),  # an ARM header, cut short
    b"",
])
def test_a_garbled_elf_is_one_sentence(tmp_path, content):
    from core.engine.emulator import run

    elf = tmp_path / "firmware.elf"
    elf.write_bytes(content)
    pattern = r"firmware '.*firmware.elf' is not a loadable Cortex-M ELF image \(\w+: .*\); rebuild it"
    with pytest.raises(WorkbenchError, match=pattern) as info:
        run(_build(elf), {})
    assert "\n" not in str(info.value)


def test_bench_engine_quick_writes_its_own_table(tmp_path, monkeypatch):
    import core.engine.bench as bench

    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    seen = []
    monkeypatch.setattr(bench, "run", lambda cfg, progress: seen.append(cfg) or {"quick": True})
    monkeypatch.setattr(bench, "markdown", lambda res: "table")
    assert bench.main(argparse.Namespace(quick=True, no_whole=False, cmsis_nn=None)) == 0
    results = tmp_path / "results"
    assert sorted(p.name for p in results.iterdir()) == ["bench_engine_quick.json", "bench_engine_quick.md"]
    assert seen[0].kernels == ("conv1x1 64ch 8x8",) and not seen[0].whole_model
    assert bench.main(argparse.Namespace(quick=False, no_whole=True, cmsis_nn=None)) == 0
    assert (results / "bench_engine.md").is_file()
    assert json.loads((results / "bench_engine_quick.json").read_text())["quick"] is True


@pytest.mark.slow
def test_concurrent_engine_runs_of_one_candidate_do_not_collide(tmp_path):
    """Three `engine build 0` at once (the issue saw one of three fail in the shared build folder):
    all succeed, build/0 holds one complete build, and no temporary folder is left."""
    data = tmp_path / "data"
    (data / "nas").mkdir(parents=True)
    for name in ("candidates.parquet", "finetuned.pt"):
        shutil.copy(NAS / name, data / "nas")
    env = dict(os.environ, WORKBENCH_DATA=str(data))
    procs = [subprocess.Popen([sys.executable, "-m", "core", "engine", "build", "0", *extra], cwd=repo_root(),
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for extra in ([], [], ["--sparse", "dense"])]
    outs = [p.communicate(timeout=500) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1][-2000:] for o in outs]
    build = data / "engine" / "build"
    assert sorted(p.name for p in build.iterdir()) == ["0"]
    assert {"model.c", "model.h", "firmware.elf"} <= {p.name for p in (build / "0").iterdir()}
    manifest = json.loads((data / "engine" / "0" / "manifest.json").read_text())
    assert manifest["build_dir"] == "engine/build/0" and manifest["flash_bytes"] > 0
