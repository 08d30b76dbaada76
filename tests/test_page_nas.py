"""NAS explorer page (no browser): built from the shipped candidates table, budgets filter it,
Pareto front and per-layer tables against brute force and the table, engine glue on a tiny model.

The shipped table is `data/nas/candidates.parquet` (`python -m core nas sparsenas`); expected values
are recomputed here from the parquet file with pandas, not through the page.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn
import pytest

from core.errors import WorkbenchError
from core.io import data_dir
from core.tinyformer import cost, graph_of, sparse
from core.tinyformer.prune import prunable_ops
from core.tinyformer.schedule import fuse_attention, schedule

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "app"))  # as `panel serve app` does

from conftest import FakeNotifications
from pages import _nas_data as nd  # noqa: E402
from pages import nas_explorer as ne  # noqa: E402

TABLE = data_dir() / "nas" / "candidates.parquet"


@pytest.fixture(scope="module")
def shipped() -> pd.DataFrame:
    assert TABLE.is_file(), f"the shipped candidates table {TABLE} is missing"
    return pd.read_parquet(TABLE)


@pytest.fixture(scope="module")
def page(shipped) -> ne.NasExplorer:
    return ne.create()


def brute_fit(df: pd.DataFrame, flash_kb: float, sram_kb: float) -> list[int]:
    return sorted(int(r.id) for r in df.itertuples()
                  if r.flash_bytes <= flash_kb * 1024 and r.sram_bytes <= sram_kb * 1024)


def test_page_builds_from_the_shipped_table(page, shipped):
    assert page.error == ""
    assert sorted(page.table["id"]) == sorted(shipped["id"])
    assert sorted(page.param.candidate.objects.values()) == sorted(int(i) for i in shipped["id"])
    assert page.fitting_ids == brute_fit(shipped, 1024, 320)
    assert f"**{page.n_fit} of {len(shipped)}**" in page.count.object
    pn.panel(page).get_root()  # every view renders
    assert shipped["dataset"].iloc[0] in page.dataset


def test_moving_the_flash_budget_changes_the_fitting_set(page, shipped):
    before = page.fitting_ids
    flash = np.sort(shipped["flash_kb"].to_numpy())
    cut = int(np.floor(flash[len(flash) // 2]))  # half the candidates are above this
    try:
        page.flash_kb = cut
        expected = brute_fit(shipped, cut, page.sram_kb)
        assert page.fitting_ids == expected != before
        assert f"**{len(expected)} of {len(shipped)}** candidates fit {cut} KB flash" in page.count.object
        frame = page.frame()
        assert int(np.isfinite(frame["c"]).sum()) == len(expected)  # over-budget points are grey (NaN)
        front = page.front("flash_kb")
        assert set(page.table["id"].iloc[front]) <= set(expected)
    finally:
        page.flash_kb = 1024


def test_pareto_front_with_ties_matches_the_general_sort():
    """The explorer's O(n log n) front equals NSGA's non-dominated sort (`core.tinyformer.pareto`) with
    duplicate points kept once, also with many ties in cost and accuracy."""
    from core.tinyformer.pareto import pareto_front as general

    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(0, 50))
        cost, acc = rng.integers(0, 6, n).astype(float), rng.integers(0, 6, n).astype(float)
        seen, want = set(), []
        for i in sorted(general(list(zip(cost, -acc))), key=lambda i: (cost[i], -acc[i])):
            if (cost[i], acc[i]) not in seen:
                seen.add((cost[i], acc[i]))
                want.append(i)
        assert nd.pareto_front(cost, acc).tolist() == want
    assert nd.pareto_front([1.0, np.nan, 2.0], [0.5, 0.9, np.nan]).tolist() == [0]  # NaN: left out


def test_read_candidates_refuses_bad_tables(tmp_path, shipped):
    with pytest.raises(WorkbenchError, match="does not exist"):
        nd.read_candidates(tmp_path / "none.parquet")
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(WorkbenchError, match="not a readable candidates table"):
        nd.read_candidates(tmp_path / "junk.parquet")
    shipped.drop(columns=["latency_ms"]).to_parquet(tmp_path / "old.parquet")
    with pytest.raises(WorkbenchError, match="no column latency_ms"):
        nd.read_candidates(tmp_path / "old.parquet")
    a, b = nd.read_candidates(TABLE), nd.read_candidates(TABLE)
    a.loc[0, "accuracy"] = -1.0  # each caller gets its own copy of the table read once
    assert b.loc[0, "accuracy"] != -1.0


def test_pareto_front_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(1, 40))
        cost, acc = rng.random(n), rng.random(n)
        dominated = {i for i in range(n) for j in range(n)
                     if j != i and cost[j] <= cost[i] and acc[j] >= acc[i]}
        front = nd.pareto_front(cost, acc)
        assert sorted(front.tolist()) == sorted(set(range(n)) - dominated)
        assert np.all(np.diff(cost[front]) > 0) and np.all(np.diff(acc[front]) > 0)


def test_clicking_a_point_selects_that_candidate(page, shipped):
    k = len(shipped) - 1
    page.scatters.points.selected.indices = [k]  # what a tap on the point does (one source, 3 plots)
    cid = int(page.table["id"].iloc[k])
    assert page.candidate == cid
    assert page.detail_card.title == f"Candidate #{cid}"
    ring = page.scatters.ring.data
    assert list(ring["flash_kb"]) == [page.table["flash_kb"].iloc[k]]  # the ring moved to it


def test_scatters_follow_the_budgets(page, shipped):
    try:
        page.param.update(flash_kb=256, sram_kb=200)
        fit = np.asarray(page.fits())
        c = np.asarray(page.scatters.points.data["c"], dtype=float)
        assert np.array_equal(np.isfinite(c), fit)  # grey (NaN) exactly where over a budget
        for x in ("flash_kb", "sram_kb", "latency_ms"):
            front = page.front(x)
            assert list(page.scatters.fronts[x].data["x"]) == list(page.table[x].to_numpy()[front])
        span, box = page.scatters.marks["flash_kb"]
        assert span.location == box.left == 256
        assert page.scatters.figures["sram_kb"].title.text == "SRAM ≤ 200 KB"
        dense = page.scatters.dense.data  # the same paths stored dense where that does not fit
        assert sorted(dense["id"]) == sorted(shipped.loc[~shipped["fits_dense"], "id"])
    finally:
        page.param.update(flash_kb=1024, sram_kb=320)


def test_detail_tabs_are_drawn_when_opened(shipped):
    fresh = ne.create()
    assert fresh.bars == [] and fresh.cdf is None and fresh.kernel_plot is None  # not made at build
    try:
        fresh.detail_tabs.active = 1
        assert [b.object is not None for b in fresh.bars] == [True] * 4
        fresh.detail_tabs.active = 2
        assert fresh.kernel_plot.object is not None and "Break-even sparsity" in fresh.kernel_text.object
        fresh.detail_tabs.active = 3
        assert fresh.cdf.object is not None and "SuperNAS picked" in fresh.cdf_text.object
        assert len(fresh.cdf_table.object) == len(fresh.supernas["spaces"])
        other = int(shipped["id"].iloc[1])
        fresh.candidate = other  # opened tabs follow the selection
        assert f"#{other}" in fresh.run_button.label and fresh.bars[0].object is not None
    finally:
        fresh.detail_tabs.active = 0


def test_tab_builds_without_holoviews(tmp_path):
    """The tab opens with Bokeh figures only: HoloViews (seconds to import and render) comes with the
    detail tabs. Built in a fresh interpreter, as the server does for its first session."""
    code = ("import sys; sys.path.insert(0, 'app'); import panel as pn; "
            "from pages import nas_explorer as ne; p = ne.create(); "
            "pn.Column(p).get_root(); p.sidebar().get_root(); "
            "assert p.error == '', p.error; assert 'holoviews' not in sys.modules; "
            "assert 'torch' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_layer_table_adds_up_to_the_candidate(shipped):
    for cid in shipped["id"][:3]:
        row = nd.candidate(nd.load_candidates(), int(cid))
        layers = nd.layer_table(row)
        assert layers["macs"].sum() == row["macs"]
        # the peak of live bytes of the engine's schedule; the table's SRAM is its placed arena (>= peak)
        sched = schedule(graph_of(row["arch"]), [k for k, v in row["storage"].items() if v == "sparse"])
        assert layers["sram_bytes"].max() == sched.peak_bytes <= row["sram_bytes"] == sched.arena_bytes
        # per-layer flash uses the analytic encoding of each layer's achieved sparsity (rows pruned
        # evenly, no gap fillers): within 3 % of the table's exact encoded constants (flash - code)
        g = graph_of(row["arch"])
        constants = row["flash_bytes"] - cost.code_bytes(g, row["storage"], row["block"])
        assert abs(layers["flash_bytes"].sum() - constants) <= 0.03 * constants
        for op, r in zip(g.ops, layers.itertuples(), strict=True):
            if r.storage == "dense":  # int8 weights + 8 B requantization per channel + int32 bias
                assert r.flash_bytes == op.weight_count + 8 * op.weight_shape[0] + 4 * op.bias_count


def test_engine_summary_from_shipped_runs(page, tmp_path):
    cid = page.candidate
    layers = [{"name": "a", "kind": "conv2d", "storage": "sparse", "macs": 100, "instructions": 300,
               "cycles": 400, "exact": True}]
    run = {"flash_bytes": 2048, "sram_bytes": 4096, "cycles": 400, "cycles_optimistic": 300,
           "cycles_conservative": 600, "instructions": 300, "cycles_per_mac": 4.0,
           "milliseconds_at_216MHz": 400 / 216e3, "bit_exact": True, "layers": layers, "sparse_layers": 1}
    def dense(cycles: int) -> dict:
        return {**run, "cycles": cycles, "layers": [{**layers[0], "storage": "dense", "cycles": cycles}]}

    runs = {"cmsis-nn": dense(1200), "dense": dense(1000), "sparse": run}
    (tmp_path / "engine").mkdir()
    (tmp_path / "engine" / f"{cid}.json").write_text(json.dumps({"command": "x", "runs": runs}))
    shipped = nd.engine_runs(cid, tmp_path)
    assert list(shipped) == ["cmsis-nn", "dense", "sparse"]
    page.engine_results[cid] = shipped
    try:
        page.detail_tabs.active = 2  # the Engine tab is drawn when opened
        page._show_engine()
        text = page.engine_text.object
        assert "2.50× vs the engine's dense kernels" in text and "3.00× vs a CMSIS-NN deployment" in text
        assert "| flash, ELF" in text and "2.0 KB" in text and "Where the time goes" in text
        assert page.engine_box.visible
        ratios = nd.layer_speedups(shipped)
        assert ratios["vs_dense"].tolist() == [2.5] and ratios["vs_cmsis_nn"].tolist() == [3.0]
    finally:
        del page.engine_results[cid]
        page.detail_tabs.active = 0


def test_kernel_curve_break_even():
    curve = pd.DataFrame({"kernel": ["k"] * 3 + ["fast"] * 2 + ["slow"] * 2,
                          "sparsity": [0.5, 0.7, 0.9, 0.5, 0.9, 0.5, 0.9],
                          "vs_dense": [0.5, 0.9, 1.9, 1.2, 3.0, 0.2, 0.4]})
    even = nd.break_even(curve)
    assert even["k"] == pytest.approx(0.7 + 0.1 * 0.2 / 1.0)
    assert even["fast"] == "<0.5" and even["slow"] is None


def tiny_table(folder: Path) -> dict:
    """A one-row candidates table of a tiny arch: every conv/linear with ≥16 in and out channels at
    90 % sparsity (blocks of 4) and stored sparse."""
    arch = {"resolution": 16, "classes": 10, "downsample": [{"kind": "conv_pool", "out": 16}],
            "mbv2": {"out": 32, "expand": [2]}, "vit": [{"dim": 32, "heads": 2, "mlp": 64, "layers": 1}],
            "last": 64, "pool": "avg"}
    sp, bl, st = {}, {}, {}
    for op in prunable_ops(graph_of(arch)):
        big = op.kind != "dwconv2d" and min(op.weight_shape[0], op.weight_shape[-1]) >= 16
        sp[op.name], st[op.name] = (0.9, "sparse") if big else (0.0, "dense")
        bl[op.name] = 4 if big else max(sparse.block_size_choices(op.weight_shape))
    row = {"id": 0, "arch": json.dumps(arch), "dataset": "shapes10", "sparsity": json.dumps(sp),
           "sparsity_target": json.dumps(sp), "block": json.dumps(bl), "storage": json.dumps(st)}
    folder.mkdir(parents=True)
    pd.DataFrame([row]).to_parquet(folder / "candidates.parquet")
    return {"arch": arch, "storage": st}


def test_run_engine_measures_dense_and_sparse_bit_exact(tmp_path):
    spec = tiny_table(tmp_path / "nas")
    seen = []
    runs = nd.run_engine(0, tmp_path / "nas", progress=lambda d, t, m="": seen.append((d, t)),
                         modes=("dense", "sparse"))
    assert set(runs) == {"dense", "sparse"}
    assert seen[-1] == (9, 9) and all(d <= t for d, t in seen)
    names = [op.name for op in fuse_attention(graph_of(spec["arch"]))[0].ops]  # the engine's schedule
    for mode, run in runs.items():
        assert run["bit_exact"] is True, mode
        assert [r["name"] for r in run["layers"]] == names
    dense, sp = ({r["name"]: r for r in runs[m]["layers"]} for m in ("dense", "sparse"))
    for name in names:
        want = spec["storage"].get(name, "-")
        assert sp[name]["storage"] == want
        assert dense[name]["storage"] == ("-" if want == "-" else "dense")
        if want == "sparse":  # 90 % of the MACs skipped: at least 2x fewer estimated cycles
            assert sp[name]["cycles"] * 2 < dense[name]["cycles"], name
        elif want == "-":  # same kernel in both builds: identical counts
            assert sp[name]["cycles"] == dense[name]["cycles"], name
    table = nd.engine_layers(runs)
    assert len(table) == 2 * len(names)




def test_supernas_rerun_at_the_slider_budgets_and_refusal(page, monkeypatch):
    notes = FakeNotifications()
    monkeypatch.setattr(type(pn.state), "notifications", property(lambda self: notes))
    shipped = page.supernas
    page.detail_tabs.active = 3  # SuperNAS's tab shows the re-run
    try:
        page.param.update(flash_kb=512, sram_kb=256)
        assert page.rerun_supernas() and page.runner.wait(120)
        res = page.supernas
        assert (res["flash_budget"], res["sram_budget"]) == (512 * 1024, 256 * 1024)
        eligible = [r for r in res["spaces"] if r["eligible"]]
        assert res["best"] == max(eligible, key=lambda r: (r["mean_mmacs"], r["p80_mmacs"]))["space"]
        assert f"SuperNAS picked **{res['best']}**" in page.cdf_text.object
        assert "512 KB flash and 256 KB SRAM" in page.cdf_text.object
        page.param.update(flash_kb=16, sram_kb=16)  # nothing fits: one sentence, as a notification
        assert page.rerun_supernas() and page.runner.wait(120)
        assert "smallest reachable" in page.error and notes.errors[-1] == page.error
        assert page.supernas is res  # the last good result stays on screen
    finally:
        page.param.update(flash_kb=1024, sram_kb=320)
        page.supernas = shipped
        page.detail_tabs.active = 0
