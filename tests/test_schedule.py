"""One schedule for the planner, NAS and the engine: row-tiled attention (integer reference, C kernel,
planner) bit for bit against the three-op attention, and the linked arena against the plan."""

from __future__ import annotations

import numpy as np
import pytest

from core.engine import codegen, synth, toolchain
from core.errors import WorkbenchError
from core.tinyformer import cost, intref, qmath
from core.tinyformer.graph import graph_of
from core.tinyformer.schedule import fuse_attention, schedule

SMALL = {"resolution": 16, "classes": 4, "downsample": [{"kind": "conv_pool", "out": 8}],
         "mbv2": {"out": 8, "expand": [2]}, "vit": [{"dim": 8, "heads": 2, "mlp": 16, "layers": 2}],
         "last": 16, "pool": "attn"}
#: a transformer-heavy synthetic graph: 32×32 input, one 2× downsample -> 256 tokens of D = 64
BIG = {"resolution": 32, "classes": 10, "downsample": [{"kind": "conv_pool", "out": 16}],
       "mbv2": {"out": 24, "expand": [2]}, "vit": [{"dim": 64, "heads": 4, "mlp": 128, "layers": 2}],
       "last": 96, "pool": "avg"}


@pytest.mark.parametrize(("nq", "nk", "d", "heads", "rows"),
                         [(7, 7, 12, 2, 2), (5, 9, 8, 1, 1), (16, 16, 16, 4, 3), (1, 6, 4, 1, 2)])
def test_row_tiled_attention_equals_the_three_ops(nq, nk, d, heads, rows):
    rng = np.random.default_rng(nq * 100 + d)
    q, k, v = (rng.integers(-128, 128, (n, d)).astype(np.int8) for n in (nq, nk, nk))
    s_mult, s_shift = qmath.quantize_multiplier(0.05)
    mult, shift = qmath.quantize_multiplier(0.004)
    lut = qmath.softmax_lut(0.08)
    zp = {"q_zp": 3, "k_zp": -7}
    s = intref.matmul_qk(q, k, heads=heads, out_zp=-5, mult=s_mult, shift=s_shift, act_min=-128, act_max=127,
                         **zp)
    want = intref.matmul_av(intref.softmax(s, lut), v, p_zp=-128, v_zp=11, out_zp=2, mult=mult, shift=shift,
                            act_min=-100, act_max=120)
    got = intref.attention(q, k, v, heads=heads, s_zp=-5, s_mult=s_mult, s_shift=s_shift, s_min=-128,
                           s_max=127, lut=lut, p_zp=-128, v_zp=11, out_zp=2, mult=mult, shift=shift,
                           act_min=-100, act_max=120, rows=rows, **zp)
    np.testing.assert_array_equal(got, want)
    assert np.unique(want).size > min(5, want.size // 2)  # not a degenerate (saturated) case


@pytest.mark.parametrize("shape", [{"n": 7, "d": 12, "heads": 2}, {"n": 9, "d": 8, "heads": 1},
                                   {"n": 16, "d": 16, "heads": 4}])
def test_attention_kernel_bit_exact(shape, tmp_path):
    """se_attention on the emulated M7 == intref.attention on the emulated inputs."""
    model = synth.single_op("attention", np.random.default_rng(7), **shape)
    prog = codegen.generate(model, tmp_path, codegen.choose_formats(model, "dense"))
    fw = toolchain.build(prog.sources, tmp_path)
    x = np.random.default_rng(1).integers(-128, 128, model.graph.tensors["input"].shape).astype(np.int8)
    ex = codegen.execute(prog, fw, x)
    env = {"input": x}
    for i, q in enumerate(model.qops):
        env[q.op.output] = ex.layer_outputs[i]
    q = model.qops[-1]
    ref = synth.reference_op(q, [env[t].reshape(model.graph.tensors[t].shape) for t in q.op.inputs])
    np.testing.assert_array_equal(ex.layer_outputs[-1], ref)
    assert np.unique(ref).size > 5


def test_fusion_removes_every_score_map():
    g = graph_of(SMALL)
    fused, origin = fuse_attention(g)
    assert sorted(origin) == ["vit0.layer0.attn", "vit0.layer1.attn"]  # pool's softmax has no matmul_qk
    assert origin["vit0.layer0.attn"] == ("vit0.layer0.attn.qk", "vit0.layer0.attn.softmax",
                                          "vit0.layer0.attn.av")
    assert len(fused.ops) == len(g.ops) - 4 and fused.macs == g.macs
    assert not any(len(t.shape) == 3 and t.shape[0] == 2 for t in fused.tensors.values())
    full, tiled = schedule(g, attention="full"), schedule(g)
    n = 8 * 8  # tokens
    assert full.peak_bytes - tiled.peak_bytes >= 2 * n * n - tiled.scratch["vit0.layer0.attn"]
    with pytest.raises(WorkbenchError, match="unknown attention schedule 'rows'"):
        schedule(g, attention="rows")


def test_kept_ops_are_not_fused():
    g = graph_of(SMALL)
    _, origin = fuse_attention(g, keep={"vit0.layer1.attn.av"})
    assert list(origin) == ["vit0.layer0.attn"]


@pytest.mark.parametrize("arch", [SMALL, BIG], ids=["small", "big"])
def test_whole_model_bit_exact_and_linked_arena_is_the_plan(arch, tmp_path):
    """A model with fused attention runs bit-exact on the emulator, layer by layer; the ELF's arena
    is NAS's SRAM figure (cost.sram_bytes: the same schedule), within 2% of the live-bytes peak."""
    from core.engine import models
    from core.engine.pipeline import deploy

    qm = models.quantize_arch(arch, seed=1)
    x = np.random.default_rng(0).integers(-128, 128, qm.graph.tensors["input"].shape).astype(np.int8)
    dep = deploy(qm, tmp_path, x, sparse="dense", count_flash=False)
    assert dep.exact and all(r.exact for r in dep.layers)
    assert "attention" in {r.kind for r in dep.layers} and "matmul_qk" not in {r.kind for r in dep.layers}
    linked = dep.build.symbols["se_arena"][1]  # (address, size) of the ELF symbol
    planned = cost.sram_bytes(qm.graph)
    assert linked == dep.program.arena_bytes == planned
    sched = schedule(qm.graph)
    assert planned <= 1.02 * sched.peak_bytes  # the greedy placement reaches the live peak here


def test_shipped_candidates_row_tiled_and_in_place():
    from core.io import data_dir
    from core.tinyformer.candidates import load_candidate

    path = data_dir() / "nas" / "candidates.parquet"
    for cid in (0, 1):
        row = load_candidate(path, cid)
        g = graph_of(row["arch"])
        sparse = [n for n, s in (row.get("sparsity") or {}).items() if s > 0]
        sched, full = schedule(g, sparse), schedule(g, sparse, attention="full")
        assert sched.fused and not any(op.kind == "matmul_qk" for op in sched.graph.ops)  # every chain fused
        assert sched.peak_bytes <= sched.arena_bytes <= full.arena_bytes
        assert sched.peak_bytes <= full.peak_bytes
        # row tiling lowers the peak where the three-op attention sets it (a score map is live there);
        # where a conv/pool layer sets it (8x8 tokens: 76,800 B at ds0.pool), both plans share that peak
        full_peak_op = full.graph.ops[full.plan.peak_step]
        if any(full_peak_op.name in chain for chain in sched.fused.values()):
            assert sched.peak_bytes < full.peak_bytes
        else:
            assert sched.peak_bytes == full.peak_bytes
        for op in sched.graph.ops:  # the row-tiled output overwrites Q in place
            if op.kind == "attention":
                assert sched.plan.buffer_of[op.output] == sched.plan.buffer_of[op.inputs[0]]
