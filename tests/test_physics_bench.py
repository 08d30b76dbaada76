"""`python -m core bench solvers`: the table, the result files and the trajectory-length bookkeeping."""

from __future__ import annotations

import json

from core.cli import main
from core.datasets import preset_defaults


def test_bench_solvers_writes_table_and_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    rc = main(["bench", "solvers", "--preset", "cpu", "--steps", "3", "--repeat", "1",
               "--systems", "kdv1d", "grayscott2d"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| kdv1d | cpu | 128 | etdrk4 | 0.005 |" in out
    doc = json.loads((tmp_path / "results" / "bench_solvers.json").read_text())
    assert doc["config"]["systems"] == ["kdv1d", "grayscott2d"] and "command" in doc
    rows = {r["system"]: r for r in doc["rows"]}
    for name, row in rows.items():
        d = preset_defaults(name, "cpu")
        # solver steps of one dataset trajectory: warmup + (n_coarse - 1) coarse intervals of k·m steps
        assert row["trajectory_steps"] == d["warmup"] + (d["n_coarse"] - 1) * d["k"] * d["dt_mult"]
        assert row["steps_per_s"] > 0
        assert abs(row["seconds_per_trajectory"] * row["steps_per_s"] - row["trajectory_steps"]) < 1e-6
    assert rows["grayscott2d"]["grid"] == "64×64"
    assert (tmp_path / "results" / "bench_solvers.md").read_text().startswith("## Reference solvers")


def test_bench_solvers_rejects_bad_input(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    assert main(["bench", "solvers", "--steps", "0"]) == 2
    assert "--steps=0 must be at least 1" in capsys.readouterr().err
    assert main(["bench", "solvers", "--systems", "heat"]) == 2
    assert "unknown system 'heat'" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_bench_convergence_writes_the_measured_orders(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    assert main(["bench", "convergence"]) == 0
    out = capsys.readouterr().out
    doc = json.loads((tmp_path / "results" / "bench_convergence.json").read_text())
    studies = {s["name"]: s for s in doc["studies"]}
    assert set(studies) == {"laplacian", "gradient", "burgers_rhs", "rk4_time", "euler_time", "etdrk4_time",
                            "ifrk4_time", "kdv_space"}
    for s in studies.values():
        if s["expected"] is not None:  # every finite order within 0.3 of its theory
            assert abs(s["order"] - s["expected"]) < 0.3, s
        assert f"| {s['what']} |" in out
    assert [t["method"] for t in doc["soliton"]] == ["etdrk4", "ifrk4"]
    assert all(t["speed_rel_error"] < 1e-5 and t["mass_drift"] < 1e-10 for t in doc["soliton"])
    assert (tmp_path / "results" / "bench_convergence.md").read_text().startswith("## Reference solvers")
