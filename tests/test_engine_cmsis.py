"""Real CMSIS-NN (../shared/third_party/CMSIS-NN, or $WORKBENCH_CMSIS_NN) on the emulated Cortex-M7:
each kernel type bit for bit against the integer reference, a whole-model CMSIS-NN deployment, and the
one-sentence errors for a missing checkout, a broken build and an op CMSIS-NN cannot run.

The library is compiled once and cached under the system temp dir (core.engine.cmsis.library)."""

from __future__ import annotations

import numpy as np
import pytest

from core.engine import cmsis, codegen, synth
from core.errors import WorkbenchError


@pytest.fixture(scope="module")
def lib():
    return cmsis.library()


def _run(model, tmp_path, lib, seed=1):
    prog = codegen.generate(model, tmp_path, codegen.choose_formats(model, "dense"),
                            backends={"layer": "cmsis-nn"}, cmsis_nn=lib)
    fw = codegen.build_program(prog, tmp_path)
    x = np.random.default_rng(seed).integers(-128, 128, size=model.graph.tensors[model.graph.input].shape)
    ex = codegen.execute(prog, fw, x.astype(np.int8))
    env = {model.graph.input: x.astype(np.int8)}
    for i, q in enumerate(model.qops):
        env[q.op.output] = ex.layer_outputs[i]
    last = model.qops[-1]
    ref = synth.reference_op(last, [env[t].reshape(model.graph.tensors[t].shape) for t in last.op.inputs])
    return prog, ref.reshape(ex.output.shape), ex.output


CASES = [  # every CMSIS-NN kernel type the engine lowers to, on small shapes
    ("conv2d", {"k": 1, "cin": 8, "cout": 6, "h": 4, "w": 3}),  # arm_convolve_1x1_s8_fast
    ("conv2d", {"k": 3, "cin": 3, "cout": 5, "h": 7, "w": 5}),  # arm_convolve_s8, Cin % 4 != 0
    ("conv2d", {"k": 3, "cin": 8, "cout": 4, "stride": 2, "act": "relu6"}),
    ("dwconv2d", {"k": 3, "cin": 8, "h": 6, "w": 6}),  # arm_depthwise_conv_3x3_s8
    ("dwconv2d", {"k": 3, "cin": 5, "stride": 2, "act": "relu"}),  # arm_depthwise_conv_s8
    ("linear", {"n": 5, "cin": 12, "cout": 7}),  # arm_fully_connected_s8
    ("matmul_qk", {"n": 6, "d": 8, "heads": 1}),  # arm_batch_matmul_s8
    ("matmul_qk", {"n": 5, "d": 12, "heads": 2}),  # per head, gathered
    ("matmul_av", {"n": 5, "heads": 2}),  # arm_nn_vec_mat_mult_t_s8 per row
]


@pytest.mark.parametrize(("kind", "shape"), CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CASES)])
def test_cmsis_kernels_bit_exact(kind, shape, lib, tmp_path):
    model = synth.single_op(kind, np.random.default_rng(11), **shape)
    prog, ref, got = _run(model, tmp_path, lib)
    assert prog.backends[-1] == "cmsis-nn"
    np.testing.assert_array_equal(got, ref)


def test_cmsis_fc_per_channel(lib, tmp_path):
    """arm_fully_connected_per_channel_s8 when a linear layer has one multiplier per output feature
    (the project's models quantize linear per tensor; intref.linear takes per-feature arrays)."""
    import dataclasses

    from core.tinyformer import intref, qmath

    model = synth.single_op("linear", np.random.default_rng(2), n=4, cin=8, cout=6)
    q = model.qops[-1]
    m, s = qmath.quantize_multipliers(np.linspace(0.5, 2.0, 6) / (60 * np.sqrt(8)))
    q = dataclasses.replace(q, multiplier=m, shift=s)
    model.qops = (*model.qops[:-1], q)
    prog = codegen.generate(model, tmp_path, {}, backends={"layer": "cmsis-nn"}, cmsis_nn=lib)
    fw = codegen.build_program(prog, tmp_path)
    x = np.random.default_rng(1).integers(-128, 128, size=(4, 8)).astype(np.int8)
    got = codegen.execute(prog, fw, x).output
    ref = intref.linear(x, q.weight, q.bias, in_zp=q.in_q[0].zero_point, out_zp=q.out_q.zero_point, mult=m,
                        shift=s, act_min=q.act_min, act_max=q.act_max)
    np.testing.assert_array_equal(got, ref)


def test_cmsis_softmax_runs_within_one_lsb(lib, tmp_path):
    """arm_softmax_s8 is a different algorithm (cmsis.SOFTMAX_NOTE): within one LSB of the reference."""
    model = synth.single_op("softmax", np.random.default_rng(4), n=9, heads=2)
    _, ref, got = _run(model, tmp_path, lib)
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1


@pytest.mark.slow
def test_cmsis_deployment_of_a_whole_model_bit_exact(lib, tmp_path):
    """CMSIS-NN where it has the op, the engine's kernels for LayerNorm, softmax, add, pooling."""
    from core.engine import models
    from core.engine.pipeline import deploy

    arch = {"resolution": 16, "classes": 10, "downsample": [{"kind": "conv_pool", "out": 8}],
            "mbv2": {"out": 8, "expand": [2]}, "vit": [{"dim": 16, "heads": 2, "mlp": 32, "layers": 1}],
            "last": 32, "pool": "attn"}
    qm = models.quantize_arch(arch, seed=3)
    x = np.random.default_rng(0).integers(-128, 128, size=(16, 16, 3)).astype(np.int8)
    dep = deploy(qm, tmp_path, x, backend="cmsis-nn", cmsis_nn=lib)
    assert dep.exact
    backend = {r.kind: r.backend for r in dep.layers}
    assert backend["conv2d"] == backend["linear"] == backend["matmul_qk"] == "cmsis-nn"
    assert backend["layernorm"] == backend["softmax"] == "engine"
    assert dep.summary()["cmsis_nn_layers"] == sum(r.backend == "cmsis-nn" for r in dep.layers) > 0


def test_layernorm_on_cmsis_names_the_gap(lib, tmp_path):
    model = synth.single_op("layernorm", np.random.default_rng(0), n=4, d=8)
    msg = r"layer 'layer' \(layernorm\) cannot run on CMSIS-NN: CMSIS-NN has no LayerNorm kernel; run it on"
    with pytest.raises(WorkbenchError, match=msg):
        codegen.generate(model, tmp_path, {}, backends={"layer": "cmsis-nn"}, cmsis_nn=lib)


def test_missing_checkout_names_the_path_and_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(WorkbenchError, match=rf"no CMSIS-NN checkout at {tmp_path / 'nope'} \(--cmsis-nn\).*"
                                             r"clone https://github.com/ARM-software/CMSIS-NN"):
        cmsis.locate(tmp_path / "nope")
    monkeypatch.setenv(cmsis.ENV_VAR, str(tmp_path))
    with pytest.raises(WorkbenchError, match=rf"no CMSIS-NN checkout at {tmp_path} \(WORKBENCH_CMSIS_NN\)"):
        cmsis.library()


def test_build_failure_names_the_source(tmp_path):
    """A checkout whose source does not compile: the sentence names the file; nothing is cached."""
    root = tmp_path / "CMSIS-NN"
    (root / "Include").mkdir(parents=True)
    (root / "Source" / "Broken").mkdir(parents=True)
    (root / "Include" / "arm_nnfunctions.h").write_text("/* empty */\n")
    (root / "Include" / "arm_nn_math_types.h").write_text(
        "#if defined(__ARM_FEATURE_DSP) && (__ARM_FEATURE_DSP == 1)\n#define ARM_MATH_DSP 1\n#endif\n")
    (root / "Source" / "Broken" / "arm_broken_s8.c").write_text("int arm_broken(int x) { return x +* ; }\n")
    cache = tmp_path / "cache"
    msg = r"building CMSIS-NN from .* failed in Source/Broken/arm_broken_s8\.c"
    with pytest.raises(WorkbenchError, match=msg):
        cmsis.library(root, cache_dir=cache)
    assert not any(p.name != "done" and p.is_dir() for p in cache.iterdir())


def test_bench_reports_other_rows_without_cmsis(tmp_path):
    """An unknown CMSIS-NN folder: its rows carry the sentence, every other row is measured."""
    from core.engine import bench

    cfg = bench.BenchConfig(sparsities=(0.9,), kernels=("fc 64 tokens 64->64",),
                            ops=("layernorm 64 tokens 64",), whole_model=False,
                            cmsis_nn=str(tmp_path / "missing"))
    res = bench.run(cfg)
    (row,) = res["kernels"]
    assert row["cmsis_nn_cycles"] is None and "no CMSIS-NN checkout" in row["note"]
    assert row["mismatches_sparse"] == row["mismatches_dense"] == 0 and row["speedup_vs_dense"] > 2
    assert "CMSIS-NN rows missing: no CMSIS-NN checkout" in bench.markdown(res)
