"""SparseEngine on whole TinyFormer models: CLI build/run/compare vs quant.run_int8, bit for bit."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from core.engine import cli, models
from core.engine.pipeline import deploy
from core.errors import WorkbenchError

TINY = {
    "resolution": 16,
    "classes": 10,
    "downsample": [{"kind": "conv_pool", "out": 8}],
    "mbv2": {"out": 8, "expand": [2]},
    "vit": [{"dim": 16, "heads": 2, "mlp": 32, "layers": 1}],
    "last": 32,
    "pool": "attn",
}


@pytest.fixture
def nas_data(tmp_path, monkeypatch):
    """A candidates table in the format of core.tinyformer.candidates with one tiny candidate."""
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    (tmp_path / "nas").mkdir()
    row = {
        "id": 0,
        "arch": json.dumps(TINY),
        "sparsity": json.dumps({"mb0.expand": 0.75, "vit0.layer0.fc1": 0.9}),
        "sparsity_target": json.dumps({"mb0.expand": 0.75, "vit0.layer0.fc1": 0.9}),
        "block": json.dumps({"mb0.expand": 4, "vit0.layer0.fc1": 4}),
        "storage": json.dumps({}),
    }
    pd.DataFrame([row]).to_parquet(tmp_path / "nas" / "candidates.parquet", index=False)
    return tmp_path


def test_whole_model_dense_and_sparse_bit_exact(tmp_path):
    qm = models.prune_int8(models.quantize_arch(TINY, seed=3), 0.8, 4)
    x = np.random.default_rng(0).integers(-128, 128, size=(16, 16, 3)).astype(np.int8)
    dense = deploy(qm, tmp_path / "d", x, "dense")
    sparse = deploy(qm, tmp_path / "s", x, "auto")
    assert dense.exact and sparse.exact  # every layer equals quant.run_int8
    np.testing.assert_array_equal(dense.output, sparse.output)
    assert sparse.summary()["sparse_layers"] > 0
    assert sparse.build.flash_bytes < dense.build.flash_bytes
    assert sparse.cycles < dense.cycles
    # per-layer attribution covers every op the schedule runs (each attention chain fused into one
    # row-tiled layer) and the MAC count is the graph's
    from core.tinyformer.schedule import fuse_attention

    assert [r.name for r in dense.layers] == [op.name for op in fuse_attention(qm.graph)[0].ops]
    assert "attention" in {r.kind for r in dense.layers}
    assert sum(r.macs for r in dense.layers) == qm.graph.macs


def test_cli_compare_writes_manifest(nas_data, capsys):
    args = argparse.Namespace(action="compare", candidate=0, sparse="auto", seed=0)
    assert cli.main(args) == 0
    manifest = json.loads((nas_data / "engine" / "0" / "manifest.json").read_text())
    assert manifest["bit_exact"] is True
    assert manifest["sparse_layers"] == 2  # the two pruned layers are stored sparse
    assert manifest["flash_bytes"] > 0 and manifest["sram_bytes"] > manifest["arena_bytes"]
    assert (nas_data / "engine" / "0" / "engine_compare.md").is_file()
    assert "cycles_per_mac" in capsys.readouterr().out


def test_cli_unknown_candidate(nas_data):
    with pytest.raises(WorkbenchError, match="candidate id 5 is not in"):
        cli.main(argparse.Namespace(action="build", candidate=5, sparse="auto", seed=0))


@pytest.mark.slow
def test_bench_engine_small_config():
    """One kernel, one sparsity: sparse, dense and CMSIS-NN agree with the reference; sparse beats both."""
    from core.engine import bench

    res = bench.run(bench.BenchConfig(sparsities=(0.9,), kernels=("conv1x1 64ch 8x8",),
                                      ops=("attention QK^T 64 tokens d=32 1 head",), whole_model=False))
    rows = res["kernels"]
    assert len(rows) == 2  # blocks 1 and 4
    assert all(r["mismatches_sparse"] == r["mismatches_dense"] == r["mismatches_cmsis_nn"] == 0 for r in rows)
    assert all(r["speedup_vs_dense"] > 2 and r["speedup_vs_cmsis_nn"] > r["speedup_vs_dense"] for r in rows)
    for r in rows:  # every cycle figure carries its bounds around the point estimate
        for p in ("sparse", "dense", "cmsis_nn"):
            assert r[f"{p}_cycles_optimistic"] <= r[f"{p}_cycles"] <= r[f"{p}_cycles_conservative"]
    (op,) = res["ops"]
    assert op["mismatches_engine"] == op["mismatches_cmsis_nn"] == 0
    floor = res["requant_floor"]
    assert floor["tight_mismatches"] == floor["general_mismatches"] == 0
    assert floor["tight_cycles_per_output"] < floor["general_cycles_per_output"]
    assert res["emulator_ips"] > 0
    md = bench.markdown(res)
    assert "| conv1x1 64ch 8x8 | 4 | 0.9 |" in md and "4 cyc" not in md


def test_calibration_runs_on_one_thread_and_restores_the_setting(monkeypatch):
    """Calibration ranges do not depend on the machine's core count: run_float sees one torch thread,
    and the caller's thread setting is back afterwards."""
    import torch

    from core.tinyformer import qfloat

    seen = []
    real = qfloat.run_float

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(qfloat, "run_float", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        models.quantize_arch(TINY, seed=0)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_code_size_model_within_5_percent_of_the_elf(tmp_path):
    """core.engine.codesize's estimate (no build) vs the linked ELF's code (.text + vector table)."""
    from core.engine import codegen, codesize, toolchain

    base = models.quantize_arch(TINY, seed=1)
    for label, qm, mode in (("dense", base, "dense"), ("sparse", models.prune_int8(base, 0.8, 4), "auto")):
        fmts = codegen.choose_formats(qm, mode)
        storage = {n: "sparse" if f.sparse else "dense" for n, f in fmts.items()}
        prog = codegen.generate(qm, tmp_path / label, fmts)
        # the estimate is of the graph the program executes (attention fused, core.tinyformer.schedule)
        est = codesize.estimate(prog.graph, storage, {n: f.block for n, f in fmts.items() if f.sparse})
        fw = toolchain.build(prog.sources, tmp_path / label)
        code = fw.sections[".text"] + fw.sections[".isr_vector"]
        assert not est["unknown"]
        assert abs(est["bytes"] - code) <= 0.05 * code, (label, est, code)
