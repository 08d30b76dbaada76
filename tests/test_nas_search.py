"""SuperNAS, SparseNAS end to end on a tiny space, the candidates table, CLI errors."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.errors import WorkbenchError
from core.tinyformer import cost, prune, sparse
from core.tinyformer.candidates import load_candidate, load_finetuned, run_sparsenas, write_candidates
from core.tinyformer.cli import main as nas_main
from core.tinyformer.graph import graph_of
from core.tinyformer.model import extract
from core.tinyformer.space import SpaceConfig, sample
from core.tinyformer.sparsenas import SearchConfig
from core.tinyformer.supernas import run_supernas
from core.tinyformer.supernet import TrainConfig, load_checkpoint, train_supernet

TINY = SpaceConfig(name="tiny", resolution=16, ds_widths=(8,), mbv2_widths=(8, 12), mbv2_depths=(1,),
                   vit_dims=(8, 16), vit_mlp=(16,), last_widths=(16,), vit_blocks=(1,), vit_layers=(1,))
SEARCH = SearchConfig(flash_budget=45000, sram_budget=40000, population=4, generations=2, parents=2,
                      val_size=48, calib_size=32, test_size=48, finetune_top=1, finetune_steps=2, int8_size=4,
                      threads=1)


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("nas")
    calls = []
    train_supernet(TINY, TrainConfig(train_size=96, epochs=1, batch=32, threads=1),
                   out=folder / "supernet.pt", progress=lambda d, t, m: calls.append((d, t)))
    assert calls[-1] == (3, 3)
    calls.clear()
    table = run_sparsenas(folder / "supernet.pt", SEARCH, out_dir=folder,
                          progress=lambda d, t, m: calls.append((d, t)))
    total = 4 + (4 - 2) + 1  # population + one generation of children + one fine-tuned candidate
    assert calls[-1] == (total, total) and all(t == total for _, t in calls)
    write_candidates(table, folder / "candidates.parquet")
    return folder


def _int8_like(w: np.ndarray) -> np.ndarray:
    """Any int8 tensor with the zero pattern of w (non-zeros stay non-zero)."""
    magnitude = np.clip(np.abs(np.round(w * 50)), 1, 127)
    return np.where(w == 0, 0, np.where(w > 0, 1, -1) * magnitude).astype(np.int8)


def test_table_costs_are_exact_and_within_budget(searched: Path) -> None:
    import pandas as pd

    sup, _, _ = load_checkpoint(searched / "supernet.pt")
    table = pd.read_parquet(searched / "candidates.parquet")
    assert list(table["id"]) == list(range(len(table))) and len(table) >= 4
    assert (table["flash_bytes"] <= SEARCH.flash_budget).all()
    assert (table["sram_bytes"] <= SEARCH.sram_budget).all()
    assert table["accuracy"].is_monotonic_decreasing
    assert table["finetuned"].tolist() == [True] + [False] * (len(table) - 1)
    assert not math.isnan(table["accuracy_test"][0]) and math.isnan(table["accuracy_test"][1])
    assert 0 <= table["accuracy_int8"][0] <= 1
    for cid in range(1, len(table)):  # recount flash independently: encode int8 weights, dense fallback
        row = load_candidate(searched / "candidates.parquet", cid)
        g = graph_of(row["arch"])
        model = extract(sup, row["arch"])
        prune.apply_masks(model, g, prune.make_masks(model, g, row["sparsity_target"], row["block"]))
        total = 0
        for op in g.ops:
            if op.kind in prune.PRUNABLE:
                w = _int8_like(prune.deploy_weight(model, op))
                total += min(len(sparse.encode(w, row["block"][op.name])), w.size)
                total += 8 * op.weight_shape[0] + 4 * op.bias_count
            elif op.kind == "layernorm":
                total += 4 * (op.weight_count + op.bias_count)
            elif op.kind == "softmax":
                total += 1024
        total += cost.code_bytes(g, row["storage"], row["block"])  # the engine's code (codesize model)
        assert total == row["flash_bytes"], cid
        sparse_layers = [name for name, kind in row["storage"].items() if kind == "sparse"]
        assert row["sram_bytes"] == cost.sram_bytes(g, sparse_layers) and row["macs"] == g.macs


def test_finetuned_weights_reload(searched: Path) -> None:
    model, entry = load_finetuned(searched / "finetuned.pt", 0)
    row = load_candidate(searched / "candidates.parquet", 0)
    assert entry["arch"] == row["arch"]
    g = graph_of(row["arch"])
    for name, s in row["sparsity"].items():
        assert float((prune.deploy_weight(model, g.op(name)) == 0).mean()) == pytest.approx(s)
    with pytest.raises(WorkbenchError, match="no fine-tuned weights"):
        load_finetuned(searched / "finetuned.pt", 3)


def test_bad_candidate_id_and_cli_errors(searched: Path, capsys) -> None:
    with pytest.raises(WorkbenchError, match="candidate id 99"):
        load_candidate(searched / "candidates.parquet", 99)
    assert nas_main(["show", "--id", "99", "--out", str(searched)]) == 2
    assert "candidate id 99" in capsys.readouterr().err
    assert nas_main(["show", "--id", "0", "--out", str(searched)]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == 0
    assert nas_main(["supernet", "--dataset", "mnist", "--out", str(searched), "--space", "default"]) == 2
    assert "unknown dataset 'mnist'" in capsys.readouterr().err
    assert nas_main(["supernet", "--space", "tf-nope", "--out", str(searched)]) == 2
    assert "unknown search space" in capsys.readouterr().err


def test_nas_latency_reprices_latency_and_flash(searched: Path, tmp_path: Path) -> None:
    """`nas latency` recomputes stale latency and flash columns (and the front) of the same search:
    with unchanged latency model and code-size table it gives back the table the search wrote (the
    fine-tuned row's flash from its own weights), fits_dense under the budgets of the table's manifest,
    and records what it moved."""
    import shutil

    import pandas as pd

    from core.tinyformer.cli import record

    folder = tmp_path / "nas"
    shutil.copytree(searched, folder)
    fresh = pd.read_parquet(folder / "candidates.parquet")
    budget = int(fresh["dense_flash_bytes"].median())  # the manifest's budget decides fits_dense
    record(folder, "candidates.parquet", {"search": replace(SEARCH, flash_budget=budget)})
    expected = fresh.copy()
    expected["fits_dense"] = ((fresh["dense_flash_bytes"] <= budget)
                              & (fresh["dense_sram_kb"] * 1024 <= SEARCH.sram_budget))
    assert expected["fits_dense"].nunique() == 2
    cols = ["latency_ms", "latency_cycles", "latency_cycles_optimistic", "latency_cycles_conservative",
            "dense_latency_ms", "flash_bytes", "flash_kb", "dense_flash_bytes", "dense_flash_kb"]
    stale = fresh.copy()
    stale[cols] = stale[cols] * 2 + 1
    stale["pareto"] = 7
    write_candidates(stale, folder / "candidates.parquet")
    assert nas_main(["latency", "--out", str(folder)]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(folder / "candidates.parquet"), expected)
    moved = json.loads((folder / "manifest.json").read_text())["artefacts"]["candidates.parquet:latency"]
    assert moved["summary"]["latency_changed"] == moved["summary"]["flash_changed"] == len(fresh)
    assert moved["summary"]["front_before"] == []
    assert moved["summary"]["front"] == sorted(int(i) for i in fresh.loc[fresh["pareto"] == 0, "id"])
    over = (fresh["flash_bytes"] > budget) | (fresh["sram_bytes"] > SEARCH.sram_budget)
    assert moved["summary"]["over_budget_ids"] == [int(i) for i in fresh.loc[over, "id"]]


def test_nothing_fits_names_smallest(searched: Path) -> None:
    with pytest.raises(WorkbenchError, match=r"smallest reachable are about [\d.]+ KB flash .* KB SRAM"):
        run_sparsenas(searched / "supernet.pt", replace(SEARCH, flash_budget=2000))
    with pytest.raises(WorkbenchError, match="smallest reachable"):
        run_supernas(1024, 1024, m=5, spaces=[TINY])


def test_supernas_prefers_more_macs_within_budget() -> None:
    small, big = replace(TINY, name="small"), replace(TINY, name="big", width_mult=2.0)
    result = run_supernas(10**7, 10**7, m=20, spaces=[small, big])
    assert result["best"] == "big"
    rows = {r["space"]: r for r in result["spaces"]}
    assert rows["big"]["mean_mmacs"] > rows["small"]["mean_mmacs"]
    cdf = result["cdf"]["big"]
    assert cdf["macs"] == sorted(cdf["macs"]) and cdf["p"][-1] == 1.0
    # a tight SRAM budget rules the big space out: the small one wins
    rng = random.Random(1)  # the sampler score_space uses for the second space (seed 0 + index 1)
    sram_big = min(cost.sram_bytes(graph_of(sample(big, rng))) for _ in range(20))
    tight = run_supernas(10**7, sram_big - 1, m=20, spaces=[small, big], min_fit=1)
    assert tight["best"] == "small"


def test_warm_start_keeps_history_and_checks_space(searched: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(train_size=32, epochs=1, batch=32, threads=1, seed=2)
    train_supernet(TINY, cfg, out=tmp_path / "more.pt", init=searched / "supernet.pt")
    _, _, meta = load_checkpoint(tmp_path / "more.pt")
    assert [h["run"]["train_size"] for h in meta["history"]] == [96, 32]
    with pytest.raises(WorkbenchError, match="is for space tiny"):
        train_supernet(replace(TINY, name="other", width_mult=2.0), cfg, init=searched / "supernet.pt")
