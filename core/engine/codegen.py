"""QuantizedModel -> model.c / model.h a person can read, then build and run it on the emulated M7.

The generated program is: weights and quantization parameters as `const` arrays (they go to flash),
every activation at its `core.tinyformer.memory.plan` offset inside one static arena
(`se_arena`, in `.noinit` so the host can write the input before reset), and `model_run()` with one
kernel call per layer, each preceded by `se_mark(i)` so the emulator can attribute instructions to
layers. `main()` calls `model_run()` once.

    program = generate(qm, out_dir)           # writes C, returns what the host needs to know
    build = toolchain.build(program.sources, out_dir)
    run = execute(program, build, x_int8)     # logits, per-layer outputs, instruction counts
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.engine import kernels
from core.engine.emulator import RunResult, run
from core.engine.lowering import Lowered, WeightFormat, lower_op
from core.engine.toolchain import Build, Target
from core.errors import WorkbenchError
from core.tinyformer.ops import kinds_where

SRAM_OVERHEAD_BYTES = 256


@dataclass
class Program:
    """A generated program: its sources and the host-side map of the arena."""

    sources: list[Path]
    layers: list[str]
    kinds: list[str]
    formats: dict[str, WeightFormat]
    macs: list[int]
    input_offset: int
    input_size: int
    output_offset: int
    output_shape: tuple[int, ...]
    layer_outputs: list[tuple[int, tuple[int, ...]]]  # (arena offset, shape) of each layer's output
    arena_bytes: int
    weight_bytes: int
    scratch: dict[str, int] = field(default_factory=dict)
    #: per layer: "engine" or "cmsis-nn"
    backends: list[str] = field(default_factory=list)
    #: prebuilt objects and include folders the build needs (CMSIS-NN when a layer runs on it)
    objects: tuple[Path, ...] = ()
    include_dirs: tuple[Path, ...] = ()
    #: the QOp each layer runs (the schedule's: a fused attention layer has the QOp of its three ops)
    qops: list[Any] = field(default_factory=list)
    #: fused layer -> the source graph's ops it replaces (`core.tinyformer.schedule.Schedule.fused`)
    fused: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: the executed graph (the schedule's: fused attention ops in place of their three source ops)
    graph: Any = None


def choose_formats(qm: Any, sparse: str | dict[str, int] = "auto") -> dict[str, WeightFormat]:
    """Weight format per weighted layer.

    "dense": all dense. "auto": sparse where the blockwise encoding is smaller than int8 dense, with the
    layer's block size from `qop.extra["block"]` if quantization recorded one, else the largest valid
    one (4, 2, 1 along input channels; 3, 1 for depthwise). A dict maps layer name -> block size
    (layers not named stay dense).
    """
    from core.tinyformer import sparse as codec

    out: dict[str, WeightFormat] = {}
    for qop in qm.qops:
        op = qop.op
        if op.kind not in kinds_where("sparse_capable") or qop.weight is None:
            continue
        w = np.asarray(qop.weight)
        shape4 = w.shape if w.ndim == 4 else (w.shape[0], 1, 1, w.shape[1])
        choices = codec.block_size_choices(shape4)
        if isinstance(sparse, dict):
            b = sparse.get(op.name)
            if b is not None and b not in choices:
                raise WorkbenchError(f"block size {b} is not valid for layer {op.name!r}; allowed: {choices}")
            out[op.name] = WeightFormat(b is not None, b or 0)
        elif sparse == "dense":
            out[op.name] = WeightFormat()
        elif sparse == "auto":
            b = int((getattr(qop, "extra", None) or {}).get("block", max(choices)))
            kind, _ = codec.storage_bytes(w.reshape(shape4), b)
            out[op.name] = WeightFormat(kind == "sparse", b if kind == "sparse" else 0)
        else:
            raise WorkbenchError(f"sparse mode {sparse!r} is not known; use 'auto', 'dense' or a dict")
    return out


def _c_array(name: str, ctype: str, values: np.ndarray) -> str:
    vals = np.asarray(values).ravel().tolist()
    rows = [", ".join(str(v) for v in vals[i : i + 24]) for i in range(0, len(vals), 24)]
    body = ",\n  ".join(rows)
    return f"static const {ctype} {name}[{max(len(vals), 1)}] __attribute__((aligned(4))) = {{\n  {body}\n}};"


def _describe(low: Lowered, qop: Any, graph: Any) -> str:
    """`conv2d (16, 16, 20) -> (16, 16, 60), sparse b4` for the comment above a layer's call."""
    shapes = ", ".join(str(graph.tensors[t].shape) for t in qop.op.inputs)
    store = (f", sparse b{low.fmt.block}" if low.fmt.sparse else ", dense") if low.key is not None else ""
    return f"{low.kind} {shapes} -> {graph.tensors[qop.op.output].shape}{store}"


def _model_c(header: str, layers: list[Lowered], addr: Any, notes: list[str]) -> str:
    """model.c: the constants, the arena, `model_run()` with one marked call per layer, `main()`."""
    lines = [f"/* {header}", " * Generated by core/engine/codegen.py from the quantized model. */",
             '#include "model.h"', '#include "se_kernels.h"', '#include "se_ops.h"']
    if any(low.backend == "cmsis-nn" for low in layers):
        lines.append('#include "se_cmsis.h"')
    lines.append("")
    for low in layers:
        for name, ctype, values in low.arrays:
            lines.append(f"/* {low.name} ({low.kind}) */")
            lines.append(_c_array(name, ctype, values))
    lines += ["", "/* the activation arena: every tensor at its memory-plan offset; not zeroed at reset */",
              '__attribute__((section(".noinit"), aligned(8))) int8_t se_arena[SE_ARENA_BYTES];', "",
              "void model_run(void) {"]
    for i, low in enumerate(layers):
        lines.append(f"  se_mark({i}); /* {low.name}: {notes[i]} */")
        lines.append(f"  {low.call(addr)}".replace("SE_LAYER", str(i)))
    lines += [f"  se_mark({len(layers)}); /* done */", "}", "",
              "/* weak: a firmware's own main() (python -m core engine export) replaces this one */",
              "__attribute__((weak)) int main(void) {", "  model_run();", "  return 0;", "}", ""]
    return "\n".join(lines)


def lower(qm: Any, formats: dict[str, WeightFormat], backends: dict[str, str] | None = None,
          graph: Any = None, qops: Any = None) -> list[Lowered]:
    """One `Lowered` per op, in graph order (`backends`: layer name -> "cmsis-nn" for CMSIS-NN layers).

    `graph`/`qops` replace `qm`'s (the schedule's executed graph and its QOps)."""
    backends = backends or {}
    graph = qm.graph if graph is None else graph
    return [lower_op(qop, graph, formats.get(qop.op.name, WeightFormat()),
                     backends.get(qop.op.name, "engine")) for qop in (qm.qops if qops is None else qops)]


def schedule_of(qm: Any, formats: dict[str, WeightFormat], backends: dict[str, str] | None = None,
                attention: str = "tiled") -> tuple[Any, list[Any], list[Lowered]]:
    """The execution schedule of `qm` (`core.tinyformer.schedule`, the planner's), its QOps and their
    lowerings. Layers on CMSIS-NN are never fused and reserve CMSIS-NN's scratch; every engine
    kernel's scratch must equal the schedule's (one number for NAS, the planner and the code)."""
    from core.tinyformer.schedule import ATTENTION_MODES, fuse_attention, schedule, scheduled_qops

    backends = backends or {}
    cmsis = [name for name, b in backends.items() if b == "cmsis-nn"]
    sparse = [name for name, f in formats.items() if f.sparse]
    if attention not in ATTENTION_MODES:
        from core.errors import unknown

        raise unknown("attention schedule", attention, ATTENTION_MODES)
    graph, fused = fuse_attention(qm.graph, cmsis) if attention == "tiled" else (qm.graph, {})
    qops = scheduled_qops(graph, fused, qm.qops)
    layers = lower(qm, formats, backends, graph, qops)  # names any layer the engine cannot run
    own = {low.name: low.scratch for low in layers if low.backend == "cmsis-nn"}
    sched = schedule(qm.graph, sparse, attention, keep=cmsis, scratch=own)
    for low in layers:
        if low.backend == "engine" and low.scratch != sched.scratch.get(low.name, 0):
            raise WorkbenchError(f"layer {low.name!r}: the kernel needs {low.scratch} bytes of scratch but "
                                 f"the schedule planned {sched.scratch.get(low.name, 0)}")
    return sched, qops, layers


def cmsis_backends(qm: Any) -> dict[str, str]:
    """A CMSIS-NN deployment: conv, depthwise, fully connected and attention matmul layers on CMSIS-NN;
    LayerNorm (CMSIS-NN has none), softmax (arm_softmax_s8 is not bit-exact with the integer
    reference, see cmsis.SOFTMAX_NOTE), add and pooling on the engine's kernels."""
    from core.engine.lowering import CMSIS_DEPLOY_KINDS

    return {q.op.name: "cmsis-nn" for q in qm.qops if q.op.kind in CMSIS_DEPLOY_KINDS}


def check_budget(qm: Any, layers: list[Lowered], arena_bytes: int, target: Target, graph: Any = None) -> None:
    """Refuse a model that cannot fit, before compiling, with the numbers (`graph`: the executed one)."""
    from core.engine.codesize import estimate

    weights = sum(low.weight_bytes for low in layers)
    storage = {low.name: "sparse" if low.fmt.sparse else "dense" for low in layers if low.key is not None}
    blocks = {low.name: low.fmt.block for low in layers if low.fmt.sparse}
    code = estimate(qm.graph if graph is None else graph, storage, blocks)["bytes"]
    flash = weights + code
    sram = arena_bytes + target.stack_bytes + SRAM_OVERHEAD_BYTES
    if flash > target.flash_bytes:
        raise WorkbenchError(
            f"the model needs about {flash} bytes of flash ({weights} of weights and parameters "
            f"+ {code} of code, core/engine/codesize.py) but the target has {target.flash_bytes}"
        )
    if sram > target.sram_bytes:
        raise WorkbenchError(
            f"the model needs about {sram} bytes of SRAM ({arena_bytes} arena + "
            f"{target.stack_bytes} stack) but the target has {target.sram_bytes}"
        )


def generate(
    qm: Any,
    out_dir: Path,
    formats: dict[str, WeightFormat] | None = None,
    target: Target | None = None,
    title: str = "model",
    backends: dict[str, str] | None = None,
    cmsis_nn: Any = None,
    attention: str = "tiled",
) -> Program:
    """Write model.h, model.c and the kernels for `qm` into `out_dir`; return the `Program`.

    backends: layer name -> "cmsis-nn" runs that layer on CMSIS-NN; then `cmsis_nn` is the compiled
    library (`core.engine.cmsis.library()`; located and built on demand when None). attention:
    "tiled" runs each attention chain as one row-tiled op, "full" as three ops over the whole
    score map (`core.tinyformer.schedule`). Tensors sit at the schedule's arena offsets.
    """
    target = target or Target()
    formats = choose_formats(qm, "dense") if formats is None else formats
    sched, qops, layers = schedule_of(qm, formats, backends, attention)
    graph, plan = sched.graph, sched.plan
    uses_cmsis = any(low.backend == "cmsis-nn" for low in layers)
    if uses_cmsis and cmsis_nn is None:
        from core.engine import cmsis

        cmsis_nn = cmsis.library()
    scratch = dict(sched.scratch)
    check_budget(qm, layers, plan.arena_bytes, target, graph)

    def offset(name: str) -> int:
        return plan.offsets[name] if name in plan.offsets else plan.offsets[plan.buffer_of[name]]

    def addr(name: str) -> str:
        if name.endswith(".scratch") and name not in plan.offsets:
            return "(void *)0"
        return f"(se_arena + {offset(name)})"

    out_dir = Path(out_dir)
    fast = max((low.acc_bound for low in layers), default=0) < kernels.FAST_REQUANT_BOUND
    files = kernels.emit([low.key for low in layers if low.key is not None], out_dir, fast)
    if uses_cmsis:
        files += kernels.emit_cmsis_glue(out_dir)
    in_shape, out_shape = graph.tensors[graph.input].shape, graph.tensors[graph.output].shape
    (out_dir / "model.h").write_text(
        f"/* {title}: generated by core/engine/codegen.py. Input {in_shape} int8 at se_arena + "
        f"{offset(graph.input)}, output {out_shape} int8 at se_arena + {offset(graph.output)}. */\n"
        "#ifndef MODEL_H\n#define MODEL_H\n#include <stdint.h>\n"
        f"#define SE_ARENA_BYTES {plan.arena_bytes}\n#define SE_INPUT_OFFSET {offset(graph.input)}\n"
        f"#define SE_OUTPUT_OFFSET {offset(graph.output)}\n"
        "extern int8_t se_arena[SE_ARENA_BYTES];\nvoid model_run(void);\n#endif\n"
    )
    header = f"{title}: {len(layers)} layers, {graph.macs} MACs, arena {plan.arena_bytes} bytes."
    notes = [_describe(low, qop, graph) for low, qop in zip(layers, qops)]
    (out_dir / "model.c").write_text(_model_c(header, layers, addr, notes))
    return Program(
        sources=[out_dir / "model.c", *files],
        layers=[low.name for low in layers],
        kinds=[low.kind for low in layers],
        formats=formats,
        macs=[qop.op.macs for qop in qops],
        input_offset=offset(graph.input),
        input_size=int(np.prod(in_shape)),
        output_offset=offset(graph.output),
        output_shape=tuple(out_shape),
        layer_outputs=[(offset(qop.op.output), tuple(graph.tensors[qop.op.output].shape)) for qop in qops],
        arena_bytes=plan.arena_bytes,
        weight_bytes=sum(low.weight_bytes for low in layers),
        scratch=scratch,
        backends=[low.backend for low in layers],
        objects=tuple(cmsis_nn.objects) if uses_cmsis else (),
        include_dirs=tuple(cmsis_nn.include_dirs) if uses_cmsis else (),
        qops=qops,
        fused=dict(sched.fused),
        graph=graph,
    )


def _check_cmsis_status(program: Program, build: Build, res: RunResult) -> None:
    status = int(np.frombuffer(res.outputs["se_cmsis_status"], "<i4")[0])
    if status:
        layer = int(np.frombuffer(res.outputs["se_cmsis_failed_layer"], "<i4")[0])
        name = program.layers[layer] if 0 <= layer < len(program.layers) else f"#{layer}"
        kind = program.kinds[layer] if 0 <= layer < len(program.kinds) else "?"
        raise WorkbenchError(
            f"CMSIS-NN returned status {status} (ARM_CMSIS_NN_ARG_ERROR is -1) in layer {name!r} "
            f"({kind}): the op's shape or scratch "
            f"is outside what the CMSIS-NN kernel accepts; run that layer on the engine's kernel"
        )


def build_program(program: Program, out_dir: Path, target: Target | None = None) -> Build:
    """`toolchain.build` of a generated program, with the objects and headers it needs (CMSIS-NN)."""
    from core.engine.toolchain import build

    return build(program.sources, Path(out_dir), target, include_dirs=program.include_dirs,
                 objects=program.objects)


@dataclass
class Execution:
    """The result of running a program once."""

    output: np.ndarray
    layer_outputs: list[np.ndarray]
    result: RunResult


def execute(program: Program, build: Build, x: np.ndarray, target: Target | None = None,
            count_flash: bool = True) -> Execution:
    """Write `x` (int8, the graph input's shape) into the arena, run, read every layer's output."""
    x = np.asarray(x)
    if x.dtype != np.int8 or x.size != program.input_size:
        raise WorkbenchError(
            f"the input must be int8 with {program.input_size} values, got {x.dtype} with {x.size}"
        )
    base = build.address("se_arena")
    snaps: dict[int, np.ndarray] = {}

    def on_end(layer: int, read_mem) -> None:
        if layer < len(program.layer_outputs):
            off, shape = program.layer_outputs[layer]
            snaps[layer] = (
                np.frombuffer(read_mem(base + off, int(np.prod(shape))), np.int8).reshape(shape).copy()
            )

    read = {n: 4 for n in ("se_cmsis_status", "se_cmsis_failed_layer") if n in build.symbols}
    res = run(
        build,
        {base + program.input_offset: x.tobytes()},
        read=read,
        layer_names=program.layers + ["(done)"],
        on_layer_end=on_end,
        target=target,
        count_flash=count_flash,
    )
    outs = [snaps[i] for i in range(len(program.layers))]
    if "se_cmsis_status" in build.symbols:
        _check_cmsis_status(program, build, res)
    return Execution(output=outs[-1], layer_outputs=outs, result=res)
