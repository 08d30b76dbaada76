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

#: flash taken by the kernels, startup and glue code (measured on built models, rounded up)
CODE_BYTES_ESTIMATE = 24 * 1024
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
        if op.kind not in ("conv2d", "dwconv2d", "linear") or qop.weight is None:
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


def lower(qm: Any, formats: dict[str, WeightFormat]) -> list[Lowered]:
    """One `Lowered` per op, in graph order."""
    return [lower_op(qop, qm.graph, formats.get(qop.op.name, WeightFormat())) for qop in qm.qops]


def check_budget(qm: Any, layers: list[Lowered], arena_bytes: int, target: Target) -> None:
    """Refuse a model that cannot fit, before compiling, with the numbers."""
    weights = sum(low.weight_bytes for low in layers)
    flash = weights + CODE_BYTES_ESTIMATE
    sram = arena_bytes + target.stack_bytes + SRAM_OVERHEAD_BYTES
    if flash > target.flash_bytes:
        raise WorkbenchError(
            f"the model needs about {flash} bytes of flash ({weights} of weights and parameters "
            f"+ {CODE_BYTES_ESTIMATE} of code) but the target has {target.flash_bytes}"
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
) -> Program:
    """Write model.h, model.c and the kernels for `qm` into `out_dir`; return the `Program`."""
    from core.tinyformer import memory

    target = target or Target()
    formats = choose_formats(qm, "dense") if formats is None else formats
    graph = qm.graph
    layers = lower(qm, formats)
    scratch = {low.name: low.scratch for low in layers if low.scratch}
    plan = memory.plan(graph, scratch, align=4)
    check_budget(qm, layers, plan.arena_bytes, target)

    def offset(name: str) -> int:
        return plan.offsets[name] if name in plan.offsets else plan.offsets[plan.buffer_of[name]]

    def addr(name: str) -> str:
        if name.endswith(".scratch") and name not in plan.offsets:
            return "(void *)0"
        return f"(se_arena + {offset(name)})"

    out_dir = Path(out_dir)
    fast = max((low.acc_bound for low in layers), default=0) < kernels.FAST_REQUANT_BOUND
    files = kernels.emit([low.key for low in layers if low.key is not None], out_dir, fast)
    in_shape, out_shape = graph.tensors[graph.input].shape, graph.tensors[graph.output].shape
    (out_dir / "model.h").write_text(
        f"/* {title}: generated by core/engine/codegen.py. Input {in_shape} int8 at se_arena + "
        f"{offset(graph.input)}, output {out_shape} int8 at se_arena + {offset(graph.output)}. */\n"
        "#ifndef MODEL_H\n#define MODEL_H\n#include <stdint.h>\n"
        f"#define SE_ARENA_BYTES {plan.arena_bytes}\n#define SE_INPUT_OFFSET {offset(graph.input)}\n"
        f"#define SE_OUTPUT_OFFSET {offset(graph.output)}\n"
        "extern int8_t se_arena[SE_ARENA_BYTES];\nvoid model_run(void);\n#endif\n"
    )
    lines = [
        f"/* {title}: {len(layers)} layers, {graph.macs} MACs, arena {plan.arena_bytes} bytes.",
        " * Generated by core/engine/codegen.py from the quantized model; do not edit. */",
        '#include "model.h"',
        '#include "se_kernels.h"',
        '#include "se_ops.h"',
        "",
    ]
    for low in layers:
        for name, ctype, values in low.arrays:
            lines.append(f"/* {low.name} ({low.kind}) */")
            lines.append(_c_array(name, ctype, values))
    lines += [
        "",
        "/* the activation arena: every tensor at its memory-plan offset; not zeroed at reset */",
        '__attribute__((section(".noinit"), aligned(8))) int8_t se_arena[SE_ARENA_BYTES];',
        "",
        "void model_run(void) {",
    ]
    for i, low in enumerate(layers):
        lines.append(f"  se_mark({i}); /* {low.name}: {low.kind} */")
        lines.append(f"  {low.call(addr)}")
    lines += [
        f"  se_mark({len(layers)}); /* done */",
        "}",
        "",
        "int main(void) {",
        "  model_run();",
        "  return 0;",
        "}",
        "",
    ]
    (out_dir / "model.c").write_text("\n".join(lines))
    return Program(
        sources=[out_dir / "model.c", *files],
        layers=[low.name for low in layers],
        kinds=[low.kind for low in layers],
        formats=formats,
        macs=[qop.op.macs for qop in qm.qops],
        input_offset=offset(graph.input),
        input_size=int(np.prod(in_shape)),
        output_offset=offset(graph.output),
        output_shape=tuple(out_shape),
        layer_outputs=[(offset(qop.op.output), tuple(graph.tensors[qop.op.output].shape)) for qop in qm.qops],
        arena_bytes=plan.arena_bytes,
        weight_bytes=sum(low.weight_bytes for low in layers),
        scratch=scratch,
    )


@dataclass
class Execution:
    """The result of running a program once."""

    output: np.ndarray
    layer_outputs: list[np.ndarray]
    result: RunResult


def execute(program: Program, build: Build, x: np.ndarray, target: Target | None = None) -> Execution:
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

    res = run(
        build,
        {base + program.input_offset: x.tobytes()},
        layer_names=program.layers + ["(done)"],
        on_layer_end=on_end,
        target=target,
    )
    outs = [snaps[i] for i in range(len(program.layers))]
    return Execution(output=outs[-1], layer_outputs=outs, result=res)
