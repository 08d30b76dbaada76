"""`python -m core data ...` and generation on a Dask cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from core.datasets import DatasetConfig, dataset_path, generate, list_datasets

REPO = Path(__file__).resolve().parent.parent
TINY_ARGS = ["burgers2d", "--samples", "2", "--k", "2", "--n-coarse", "4", "--n-bursts", "1",
             "--set", "n=16,16"]
TINY = DatasetConfig("burgers2d", n_samples=2, k=2, n_coarse=4, n_bursts=1, overrides=(("n", (16, 16)),))


def _run(args: list[str], cache: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, WORKBENCH_CACHE=str(cache))
    return subprocess.run([sys.executable, "-m", "core", "data", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # two fresh interpreters / a 2-worker cluster: 25-30 s on 2 loaded cores
def test_cli_generate_then_list(tmp_path):
    out = _run(["generate", *TINY_ARGS], tmp_path)
    assert out.returncode == 0, out.stderr
    path = dataset_path(TINY, tmp_path)
    lines = out.stdout.strip().splitlines()
    assert lines[0] == str(path) and path.is_dir()
    assert "burgers2d cpu: 2 trajectories (1 train / 0 val / 1 test) x 4 coarse frames" in lines[1]
    assert "trajectory" in out.stderr  # the tqdm bar
    listed = _run(["list"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.strip().splitlines()
    assert rows[0].split()[:4] == ["key", "system", "preset", "samples"] and len(rows) == 2
    assert rows[1].split()[:5] == [TINY.key(), "burgers2d", "cpu", "2", "4"] and str(path) in rows[1]


def test_cli_bad_input_exits_2_with_one_line(tmp_path):
    out = _run(["generate", "nope"], tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [out.stderr.strip()]
    assert out.stderr.startswith("error: unknown system 'nope'; known: kdv1d, burgers2d")
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["fhn2d", "--preset", "huge"], "unknown preset 'huge'"),
    (["burgers2d", "--dt-fine", "-1"], "dt_fine=-1.0 must be a finite positive"),
    (["burgers2d", "--dt-fine", "0.0007"], "dt_fine=0.0007 must be a positive integer multiple of the "
                                           "solver dt=0.0005"),
    (["burgers2d", "--k", "0"], "k=0 must be an integer >= 1"),
    (["burgers2d", "--samples", "1"], "n_samples=1"),
    (["burgers2d", "--set", "n=4,4"], "smaller than the 5-point stencil"),
    (["fhn2d", "--set", "dt=0.01"], "exceeds the RK4 stability bound"),
    (["burgers2d", "--set", "bogus"], "NAME=VALUE"),
    (["burgers2d", "--ic", "nope"], "unknown initial condition"),
    (["burgers2d", "--scheduler", "bogus", *TINY_ARGS[1:]], "scheduler="),
])
def test_cli_errors(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    assert main(["data", "generate", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    leftovers = list((tmp_path / "cache").iterdir()) if (tmp_path / "cache").exists() else []
    assert leftovers == []  # no store, no temporary folder


def test_cli_unwritable_and_corrupted_cache(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["data", "generate", *TINY_ARGS, "--cache", str(blocker / "cache")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: directory") and "is not writable" in err and "\n" not in err
    assert blocker.read_text() == "x"
    cache = tmp_path / "cache"
    assert main(["data", "generate", *TINY_ARGS, "--cache", str(cache)]) == 0
    path = dataset_path(TINY, cache)
    (path / "u" / "zarr.json").write_text("garbage")
    capsys.readouterr()
    assert main(["data", "generate", *TINY_ARGS, "--cache", str(cache)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: dataset store") and str(path) in err and "--overwrite" in err
    assert main(["data", "list", "--cache", str(cache)]) == 0  # listing survives a broken store
    assert "INVALID" in capsys.readouterr().out
    assert main(["data", "generate", *TINY_ARGS, "--cache", str(cache), "--overwrite"]) == 0
    assert [r["valid"] for r in list_datasets(cache)] == [True]


@pytest.mark.slow  # two fresh interpreters / a 2-worker cluster: 25-30 s on 2 loaded cores
def test_dask_cluster_matches_in_process(tmp_path):
    from distributed import Client, LocalCluster

    cfg = DatasetConfig("grayscott2d", n_samples=3, k=2, n_coarse=5, n_bursts=2, warmup=6, splits=(1, 1, 1),
                        overrides=(("n", (12, 12)),))
    local = generate(cfg, cache=tmp_path / "local")
    seen = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = generate(cfg, cache=tmp_path / "dask", scheduler=cluster.scheduler_address,
                          progress=lambda d, t, m: seen.append((d, t)))
        with Client(cluster) as client:
            again = generate(cfg, cache=tmp_path / "client", scheduler=client)
    for ds in (remote, again):
        for var in ("u", "v", "u_fine", "v_fine"):
            np.testing.assert_array_equal(ds[var].values, local[var].values)
        assert ds.attrs["key"] == local.attrs["key"]
    assert seen[-1][0] == seen[-1][1] and len(seen) == 3  # one report per finished trajectory
