"""The PIMRL benchmark's aggregation: divergence counts, inf propagation, ratios to the best baseline."""

from __future__ import annotations

import math

import pytest

from core.bench.pimrl import aggregate, ratio_table, ratios, table


def row(nrmse, diverged=0, first=0, samples=2, **extra):
    base = {"nrmse_10": nrmse / 2, "nrmse_25": nrmse * 0.8, "nrmse": nrmse, "rmse_10": nrmse,
            "rmse_25": nrmse, "rmse": nrmse, "mae": nrmse, "hct": 10.0 if math.isfinite(nrmse) else 0.0,
            "diverged": diverged, "first_diverged": first, "samples": samples}
    return {**base, **extra}


def test_aggregate_keeps_divergence_and_ratios_use_the_best_sound_baseline():
    seeds = [
        {"persistence": row(2.0), "pimrl": row(0.4), "percnn": row(math.inf, diverged=1, first=7),
         "fno": row(0.5)},
        {"persistence": row(2.0), "pimrl": row(0.6), "percnn": row(0.1), "fno": row(0.7)},
    ]
    agg = aggregate(seeds)
    assert agg["pimrl"]["nrmse"] == pytest.approx((0.5, 0.1))
    assert agg["percnn"]["nrmse"][0] == math.inf  # one diverged seed makes the mean inf, never skipped
    assert agg["percnn"]["diverged"] == 1 and agg["percnn"]["first_diverged"] == 7
    assert agg["percnn"]["trajectories"] == 4
    assert agg["pimrl"]["vs_persistence_10"] == pytest.approx(0.25 / 1.0)
    r = ratios(agg)
    assert r["nrmse"] == pytest.approx(0.5 / 0.6)  # fno (0.6) is the best baseline; percnn diverged
    assert r["hct_minus_best"] == pytest.approx(0.0)
    results = {"burgers2d": {"aggregate": agg, "ratios": r}}
    md = table(results)
    assert "| burgers2d | percnn | 1/4 (step 7) | " in md and "inf (diverged)" in md
    assert "| burgers2d | 0.833 |" in ratio_table(results)


def test_validation_rows_summarise_the_last_stage_and_count_a_diverged_validation(tmp_path):
    import torch

    from core.bench.pimrl import validation_rows
    from core.io import repo_root
    from core.pimrl.base import read_checkpoint

    payload = read_checkpoint(repo_root() / "data" / "checkpoints" / "kdv1d" / "pimrl.pt")
    fine = [{"iteration": i, "stage": "fine", "val_nrmse": 0.001} for i in (10, 20)]  # not the last stage
    coarse = [0.5, math.inf, 0.4, 0.3, 0.35, 0.2, 0.25, 0.22]  # a diverged validation is inf, kept
    payload["validation"] = fine + [{"iteration": 100 + 10 * i, "stage": "coarse", "val_nrmse": v}
                                    for i, v in enumerate(coarse)]
    (tmp_path / "kdv1d").mkdir()
    torch.save(payload, tmp_path / "kdv1d" / "pimrl.pt")
    rows = validation_rows(tmp_path, ["kdv1d", "burgers2d"], ["pimrl", "fno"])
    assert len(rows) == 1  # only checkpoints that exist
    system, model, stage, n, its, best, at, best1, best2, gain2, gain4, last = rows[0]
    assert (system, model, stage, n, its) == ("kdv1d", "pimrl", "coarse", 8, "100-170")
    assert (best, at, last) == (0.2, 150, 0.22)
    assert (best1, best2) == (0.3, 0.2)  # halves: [0.5, inf, 0.4, 0.3] and [0.35, 0.2, 0.25, 0.22]
    assert gain2 == pytest.approx(1 - 0.2 / 0.3)
    assert gain4 == pytest.approx(1 - 0.22 / 0.2)  # last quarter [0.25, 0.22] vs best before it (0.2)
