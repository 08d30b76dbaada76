"""SparseEngine: C kernels on the emulated Cortex-M7 against the integer reference, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from core.engine import codegen, cycles, synth, toolchain
from core.engine.lowering import WeightFormat
from core.errors import WorkbenchError


def _run(model, formats, tmp_path, seed=1):
    prog = codegen.generate(model, tmp_path, formats)
    fw = toolchain.build(prog.sources, tmp_path)
    shape = model.graph.tensors[model.graph.input].shape
    x = np.random.default_rng(seed).integers(-128, 128, size=shape).astype(np.int8)
    return prog, fw, x, codegen.execute(prog, fw, x)


def _check_layers(model, x, ex):
    """Every layer's emulated output equals run_qop on the emulated inputs of that layer."""
    env = {model.graph.input: x}
    for i, q in enumerate(model.qops):
        env[q.op.output] = ex.layer_outputs[i]
        ins = [env[t].reshape(model.graph.tensors[t].shape) for t in q.op.inputs]
        ref = synth.reference_op(q, ins).reshape(ex.layer_outputs[i].shape)
        np.testing.assert_array_equal(ex.layer_outputs[i], ref, err_msg=f"layer {q.op.name} ({q.op.kind})")


DENSE_CASES = [
    ("conv2d", {"k": 3, "cin": 3, "cout": 5, "h": 7, "w": 5}),  # stem-like: Cin not a multiple of 4
    ("conv2d", {"k": 3, "cin": 8, "cout": 6, "stride": 2, "act": "relu6"}),
    ("conv2d", {"k": 1, "cin": 12, "cout": 7, "h": 3, "w": 3}),  # odd pixels and channels
    ("dwconv2d", {"k": 3, "cin": 8, "stride": 2, "h": 7, "w": 7}),
    ("dwconv2d", {"k": 3, "cin": 5, "act": "relu"}),
    ("linear", {"n": 5, "cin": 6, "cout": 9}),
    ("linear", {"n": 1, "cin": 16, "cout": 10}),
    ("matmul_qk", {"n": 7, "d": 12, "heads": 2}),
    ("matmul_av", {"n": 5, "heads": 2}),
    ("softmax", {"n": 9, "heads": 2}),
    ("layernorm", {"n": 5, "d": 12}),
    ("add", {"n": 6, "d": 5, "act": "relu"}),
    ("maxpool", {"h": 6, "w": 4, "cin": 5}),
    ("avgpool", {"h": 5, "w": 3, "cin": 6}),
]


@pytest.mark.parametrize(
    ("kind", "shape"), DENSE_CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(DENSE_CASES)]
)
def test_dense_kernels_bit_exact(kind, shape, tmp_path):
    model = synth.single_op(kind, np.random.default_rng(7), **shape)
    _, _, x, ex = _run(model, codegen.choose_formats(model, "dense"), tmp_path)
    _check_layers(model, x, ex)


SPARSE_CASES = [
    ("conv2d", {"k": 1, "cin": 8, "cout": 6}, 4),
    ("conv2d", {"k": 1, "cin": 8, "cout": 5}, 2),
    ("conv2d", {"k": 1, "cin": 6, "cout": 4}, 1),
    ("conv2d", {"k": 3, "cin": 8, "cout": 4, "stride": 2}, 4),
    ("conv2d", {"k": 3, "cin": 4, "cout": 3}, 1),
    ("linear", {"n": 5, "cin": 8, "cout": 6}, 4),
    ("linear", {"n": 3, "cin": 6, "cout": 6}, 2),
    ("dwconv2d", {"k": 3, "cin": 6, "stride": 2}, 3),
    ("dwconv2d", {"k": 3, "cin": 4}, 1),
]


@pytest.mark.parametrize(
    ("kind", "shape", "block"),
    SPARSE_CASES,
    ids=[f"{k}-b{b}-{i}" for i, (k, _, b) in enumerate(SPARSE_CASES)],
)
def test_sparse_equals_dense_and_reference(kind, shape, block, tmp_path):
    """Sparse kernels on pruned weights give the dense kernel's output, which is intref's."""
    model = synth.single_op(kind, np.random.default_rng(3), sparsity=0.6, block=block, **shape)
    w = model.qops[-1].weight
    assert 0 < np.mean(w == 0) < 1
    _, _, x, sparse = _run(model, {"layer": WeightFormat(True, block)}, tmp_path / "s")
    _, _, _, dense = _run(model, {"layer": WeightFormat()}, tmp_path / "d")
    np.testing.assert_array_equal(sparse.output, dense.output)
    _check_layers(model, x, sparse)


@pytest.mark.parametrize("block", [1, 4])
def test_sparse_long_gaps_use_fillers(block, tmp_path):
    """A row with > 256 zero blocks between kept blocks (filler entries) decodes correctly in C."""
    from core.tinyformer import sparse

    cin = 600 * block
    model = synth.single_op("linear", np.random.default_rng(0), n=3, cin=cin, cout=3)
    w = model.qops[-1].weight
    w[:] = 0
    w[0, [3 * block, 500 * block]] = (5, -7)
    w[1, cin - 1] = 9
    w[2, [block, 2 * block, 400 * block]] = (1, 2, -3)
    assert sparse.encoded_size(w, block) > 2 * 3 + 6 * (1 + block)  # fillers were needed
    _, _, x, ex = _run(model, {"layer": WeightFormat(True, block)}, tmp_path)
    _check_layers(model, x, ex)


def test_sizes_measured_from_elf(tmp_path):
    model = synth.single_op("linear", np.random.default_rng(0), n=4, cin=64, cout=32)
    prog, fw, _, _ = _run(model, codegen.choose_formats(model, "dense"), tmp_path)
    # the dense weights (32 x 64 int8) sit in .rodata; the arena and the 4 KB stack in SRAM
    assert fw.sections[".rodata"] >= 32 * 64
    assert fw.flash_bytes == sum(fw.sections.get(s, 0) for s in (".isr_vector", ".text", ".rodata", ".data"))
    assert fw.sections[".noinit"] >= prog.arena_bytes
    assert fw.sram_bytes >= prog.arena_bytes + toolchain.Target().stack_bytes
    sparse = synth.single_op("linear", np.random.default_rng(0), n=4, cin=64, cout=32, sparsity=0.9, block=4)
    fw2 = toolchain.build(
        codegen.generate(sparse, tmp_path / "s", {"layer": WeightFormat(True, 4)}).sources, tmp_path / "s"
    )
    assert fw2.sections[".rodata"] < fw.sections[".rodata"] - 1000  # ~0.1·(1 + 1/4)·2048 + row headers


def test_memory_fault_names_layer_and_address(tmp_path):
    model = synth.single_op("linear", np.random.default_rng(0), n=2, cin=4, cout=4)
    prog = codegen.generate(model, tmp_path, codegen.choose_formats(model, "dense"))
    src = prog.sources[0].read_text()
    mark = next(line for line in src.splitlines(keepends=True) if line.startswith("  se_mark(0);"))
    bad = mark + "  *(volatile int32_t *)0x30000000u = 1; /* outside flash, SRAM and the marker page */\n"
    prog.sources[0].write_text(src.replace(mark, bad))
    fw = toolchain.build(prog.sources, tmp_path)
    with pytest.raises(WorkbenchError, match=r"layer 0 \(layer\).*0x30000000"):
        codegen.execute(prog, fw, np.zeros(8, np.int8))


def test_over_budget_refused_before_compiling(tmp_path):
    model = synth.single_op("softmax", np.random.default_rng(0), n=300, heads=4)  # 360 KB attention map
    with pytest.raises(WorkbenchError, match=r"needs about \d+ bytes of SRAM .* target has 327680"):
        codegen.generate(model, tmp_path)
    assert not (tmp_path / "model.c").exists()


def test_unsupported_op_names_itself_and_layer(tmp_path):
    import dataclasses

    model = synth.single_op("maxpool", np.random.default_rng(0))
    op = model.qops[0].op
    object.__setattr__(op, "kind", "gelu")  # an op kind the graph IR does not have either
    with pytest.raises(WorkbenchError, match=r"layer 'layer' has op kind 'gelu'"):
        codegen.generate(dataclasses.replace(model), tmp_path)


def test_compile_error_quotes_source_line(tmp_path):
    src = tmp_path / "broken.c"
    src.write_text("int main(void) {\n  int x = 1;\n  return x +* ;\n}\n")
    with pytest.raises(WorkbenchError, match=r"broken.c failed at line 3: .*`return x \+\* ;`"):
        toolchain.build([src], tmp_path)


def test_cycle_model_hand_counts():
    """classify + estimate on hand-picked instructions (costs from the table in cycles.py)."""
    assert cycles.classify("smlad", "r0, r1, r2, r0") == ("mac", 1)
    assert cycles.classify("ldr.w", "r0, [r1, #4]") == ("load", 1)
    assert cycles.classify("push.w", "{r4, r5, r6, r7, lr}") == ("multi", 5)
    assert cycles.classify("pop", "{r4, r5, pc}")[0] == "branch"
    assert cycles.classify("ldm", "r0!, {r2-r5}") == ("multi", 4)
    assert cycles.classify("sdiv", "r0, r1, r2") == ("div", 1)
    assert cycles.classify("bne", "#0x100") == ("branch", 1)
    counts = np.zeros(len(cycles.CLASSES), np.int64)
    for cls, n in (("mac", 8), ("load", 6), ("alu", 4), ("branch", 1), ("branch_taken", 1), ("div", 1)):
        counts[cycles.CLASSES.index(cls)] = n
    assert cycles.instructions(counts) == 20
    assert cycles.estimate_cycles(counts) == 8 + 6 + 4 + 1 + 1 + 8
    counts[cycles.CLASSES.index("flash_lines")] = 3
    assert cycles.estimate_cycles(counts) == 28  # flash lines cost nothing in the point estimate
    # optimistic: max(MAC pipe 8 + 2·div, ½·20 instructions) = 10; conservative: loads +1 each, the
    # taken branch mispredicted (5), SDIV 12, 3 flash lines × 7 wait states
    assert cycles.bounds(counts) == (10, 28, 8 + 2 * 6 + 4 + 1 + 5 + 12 + 3 * 7)


def test_emulator_counts_a_known_loop(tmp_path):
    """A hand-written SMLAD loop: 16 iterations -> exactly 16 SMLAD and 15 taken back-branches."""
    src = tmp_path / "loop.c"
    src.write_text(
        '#include <stdint.h>\n#include <arm_acle.h>\n#include "se_common.h"\n'
        '__attribute__((section(".noinit"))) int32_t g_buf[17];\n'
        "int main(void) {\n  se_mark(0);\n  int32_t s = 0;\n"
        "#pragma clang loop unroll(disable)\n"
        "  for (int i = 0; i < 16; i++) s = __smlad(g_buf[i], 0x00010001, s);\n"
        "  g_buf[16] = s;\n  se_mark(1);\n  return 0;\n}\n"
    )
    fw = toolchain.build([src], tmp_path)
    from core.engine.emulator import run

    data = np.zeros(17, np.int32)
    data[:16] = np.arange(16) | (np.arange(16) << 16)
    res = run(fw, {"g_buf": data.tobytes()}, {"g_buf": 68})
    assert np.frombuffer(res.outputs["g_buf"], np.int32)[16] == 2 * sum(range(16))
    layer = res.counts[0]
    assert layer[cycles.CLASSES.index("mac")] == 16
    assert layer[cycles.CLASSES.index("branch_taken")] >= 15


@pytest.mark.parametrize("fast", [False, True])
def test_requantization_edge_cases_match_qmath(fast, tmp_path):
    """se_requant_column (exact path, and the SMMULR shortcut valid for |acc| < 2^30) vs qmath."""
    from core.engine import kernels
    from core.engine.emulator import run
    from core.tinyformer import qmath

    files = kernels.emit([], tmp_path, fast_requant=fast)
    main = tmp_path / "rq.c"
    main.write_text(
        '#include "se_common.h"\n'
        '__attribute__((section(".noinit"))) int32_t g_acc[256];\n'
        '__attribute__((section(".noinit"))) int32_t g_par[5];\n'
        '__attribute__((section(".noinit"))) int8_t g_out[256];\n'
        "int main(void) {\n"
        "  se_requant_column(g_acc, 256, g_out, 1, g_par[0], g_par[1], g_par[2], g_par[3], g_par[4]);\n"
        "  return 0;\n}\n")
    fw = toolchain.build([main, *files], tmp_path)
    rng = np.random.default_rng(5)
    limit = 2**30 - 1 if fast else 2**31 - 1
    for mult, shift, zp, lo, hi in ((1 << 30, -1, 0, -128, 127), (1 << 30, -3, -5, -5, 40),
                                    (1518500250, -9, 7, -128, 127), (2**31 - 1, 0, 0, -128, 127),
                                    (1 << 30, 2, -128, -128, 127)):
        acc = np.concatenate([np.arange(-64, 64), rng.integers(-limit, limit, 120), [limit, -limit, 0, 1,
                              -1, 2, -2, 3]]).astype(np.int32)
        par = np.array([mult, shift, zp, lo, hi], np.int32)
        res = run(fw, {"g_acc": acc.tobytes(), "g_par": par.tobytes()}, {"g_out": 256})
        got = np.frombuffer(res.outputs["g_out"], np.int8)
        np.testing.assert_array_equal(got, qmath.requantize(acc, mult, shift, zp, lo, hi),
                                      err_msg=f"mult={mult} shift={shift}")


def test_scratch_formula_matches_codegen():
    """kernels.scratch_bytes(graph) (what NAS can use without weights) == what codegen plans."""
    from core.engine import kernels, models
    from core.engine.lowering import WeightFormat

    arch = {"resolution": 16, "classes": 10, "downsample": [{"kind": "mbv2", "out": 8, "expand": 2}],
            "mbv2": {"out": 8, "expand": [2]}, "vit": [{"dim": 16, "heads": 2, "mlp": 32, "layers": 1}],
            "last": 32, "pool": "avg"}
    qm = models.quantize_arch(arch, seed=1)
    sparse = {"mb0.expand", "vit0.layer0.fc1", "ds0.dw"}
    formats = {n: WeightFormat(n in sparse, 3 if n.endswith("dw") else 4) for n in codegen.choose_formats(qm)}
    lowered = codegen.lower(qm, formats)
    planned = {low.name: low.scratch for low in lowered if low.scratch}
    assert kernels.scratch_bytes(qm.graph, sparse) == planned


def test_flash_lines_counted_per_layer(tmp_path):
    """Data reads of .rodata count one flash line per change of 32-byte line (a 256-byte table read
    sequentially = 8 lines; read twice = 16)."""
    src = tmp_path / "flash.c"
    src.write_text(
        '#include "se_common.h"\n'
        "static const int8_t k_table[256] __attribute__((aligned(32))) = {1, 2, 3};\n"
        '__attribute__((section(".noinit"))) volatile int32_t g_sum;\n'
        "int main(void) {\n  int32_t s = 0;\n  se_mark(0);\n"
        "  for (int i = 0; i < 256; i++) s += ((const volatile int8_t *)k_table)[i];\n  se_mark(1);\n"
        "  for (int r = 0; r < 2; r++)\n"
        "    for (int i = 0; i < 256; i++) s += ((const volatile int8_t *)k_table)[i];\n"
        "  g_sum = s;\n  se_mark(2);\n  return 0;\n}\n")
    from core.engine import kernels
    from core.engine.emulator import run

    fw = toolchain.build([src, *kernels.emit([], tmp_path)], tmp_path)

    res = run(fw, {}, {"g_sum": 4})
    assert np.frombuffer(res.outputs["g_sum"], np.int32)[0] == 3 * 6
    line = cycles.CLASSES.index("flash_lines")
    assert res.counts[0][line] == 8 and res.counts[1][line] == 16


def _one_row_patterns(cin: int, kept: list[int], rng: np.random.Generator) -> np.ndarray:
    """(len(kept), cin) int8 weights: row r keeps kept[r] random blocks of 4 (non-zero values)."""
    w = np.zeros((len(kept), cin), np.int8)
    for r, k in enumerate(kept):
        for b in rng.choice(cin // 4, size=k, replace=False):
            w[r, 4 * b: 4 * b + 4] = rng.choice([v for v in range(-127, 128) if v], size=4)
    return w


@pytest.mark.parametrize(("act", "shift"), [("none", None), ("relu", None), ("none", 2), ("none", -25)])
def test_sparse_1x1_paths_bit_exact(act, shift, tmp_path):
    """The sparse 1x1/FC kernel's paths: pruned channels (filled with one value), 1 and 2 kept blocks
    (output-stationary), 3-6 (accumulators + output-stationary tail), with and without an activation
    clamp, and shifts outside the tight requantization's range (general path)."""
    import dataclasses

    rng = np.random.default_rng(9)
    kept = [0, 1, 2, 3, 4, 5, 6, 0, 1, 2]
    model = synth.single_op("linear", rng, n=7, cin=32, cout=len(kept), act=act)
    q = model.qops[-1]
    q = dataclasses.replace(q, weight=_one_row_patterns(32, kept, rng))
    if shift is not None:
        q = dataclasses.replace(q, shift=np.array([shift], np.int32))
    model.qops = (*model.qops[:-1], q)
    _, _, x, ex = _run(model, {"layer": WeightFormat(True, 4)}, tmp_path)
    _check_layers(model, x, ex)


def test_tight_requantization_matches_qmath(tmp_path):
    """se_rq2_store (from 2*acc, SMMLAR) = qmath.requantize for |acc| < 2^30, shifts -1..-21, any zp."""
    from core.engine import kernels
    from core.engine.emulator import run
    from core.tinyformer import qmath

    files = kernels.emit([], tmp_path, fast_requant=True)
    main = tmp_path / "rq2.c"
    main.write_text(
        '#include "se_common.h"\n'
        '__attribute__((section(".noinit"))) int32_t g_acc[256];\n'
        '__attribute__((section(".noinit"))) int32_t g_par[5];\n'
        '__attribute__((section(".noinit"))) int8_t g_out[256];\n'
        '__attribute__((section(".noinit"))) int32_t g_ok;\n'
        "int main(void) {\n  se_rq2_t rq;\n"
        "  g_ok = se_rq2_prepare(&rq, g_par[0], g_par[1], g_par[2], g_par[3], g_par[4]);\n"
        "  if (g_ok) for (int i = 0; i < 256; i++) g_out[i] = se_rq2_store(g_acc[i] * 2, rq);\n"
        "  return 0;\n}\n")
    fw = toolchain.build([main, *files], tmp_path)
    rng = np.random.default_rng(5)
    lim = 2**30 - 1
    for mult, shift, zp, lo, hi in ((1 << 30, -1, 0, -128, 127), (1 << 30, -3, -5, -5, 40),
                                    (1518500250, -9, 7, -128, 127), (2**31 - 1, -21, 127, -128, 127),
                                    (1 << 30, -2, -128, -128, 127), (0, -4, 3, -128, 127),
                                    (1073741825, -1, 0, -128, 127)):
        acc = np.concatenate([np.arange(-64, 64), rng.integers(-lim, lim, 120),
                              [lim, -lim, 0, 1, -1, 2, -2, 3]]).astype(np.int32)
        par = np.array([mult, shift, zp, lo, hi], np.int32)
        res = run(fw, {"g_acc": acc.tobytes(), "g_par": par.tobytes()}, {"g_out": 256, "g_ok": 4})
        assert np.frombuffer(res.outputs["g_ok"], np.int32)[0] == 1
        np.testing.assert_array_equal(np.frombuffer(res.outputs["g_out"], np.int8),
                                      qmath.requantize(acc, mult, shift, zp, lo, hi),
                                      err_msg=f"mult={mult} shift={shift} zp={zp}")
