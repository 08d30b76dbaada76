"""Build, run and compare a quantized model on the emulated Cortex-M7; per-layer reports.

    report = deploy(qm, out_dir, x)   # generate C -> compile -> run -> compare with quant.run_int8

`LayerReport` rows carry instructions, estimated cycles, MACs and whether the layer's int8 output
equals the integer reference bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.engine import cycles
from core.engine.codegen import Program, choose_formats, cmsis_backends, execute, generate
from core.engine.toolchain import Build, Target, build
from core.io import Progress, no_progress


@dataclass
class LayerReport:
    name: str
    kind: str
    storage: str
    macs: int
    instructions: int
    cycles: int
    exact: bool | None
    classes: dict[str, int] = field(default_factory=dict)
    #: (optimistic, conservative) cycles around `cycles` (core.engine.cycles.bounds)
    cycle_bounds: tuple[int, int] = (0, 0)
    backend: str = "engine"


@dataclass
class Deployment:
    """A built and run model: sizes, per-layer counts and the comparison with the reference."""

    program: Program
    build: Build
    layers: list[LayerReport]
    instructions: int
    cycles: int
    milliseconds: float
    emulator_ips: float
    output: np.ndarray
    exact: bool | None
    graph: Any = None

    def summary(self) -> dict[str, Any]:
        macs = sum(r.macs for r in self.layers)
        return {
            "cycles_optimistic": sum(r.cycle_bounds[0] for r in self.layers),
            "cycles_conservative": sum(r.cycle_bounds[1] for r in self.layers),
            "cmsis_nn_layers": sum(r.backend == "cmsis-nn" for r in self.layers),
            "flash_bytes": self.build.flash_bytes,
            "code_bytes": self.build.sections.get(".text", 0) + self.build.sections.get(".isr_vector", 0),
            "code_bytes_estimate": _code_estimate(self),
            "sram_bytes": self.build.sram_bytes,
            "arena_bytes": self.program.arena_bytes,
            "macs": macs,
            "instructions": self.instructions,
            "cycles": self.cycles,
            "cycles_per_mac": self.cycles / max(macs, 1),
            "milliseconds_at_216MHz": self.milliseconds,
            "emulator_instructions_per_s": self.emulator_ips,
            "bit_exact": self.exact,
            "sparse_layers": sum(r.storage == "sparse" for r in self.layers),
        }


def _code_estimate(dep: Deployment) -> int | None:
    """The code-size model's estimate (core.engine.codesize) for this program's storage, no build
    (None for programs with CMSIS-NN layers, whose code the model does not cover)."""
    from core.engine.codesize import estimate

    if dep.graph is None or "cmsis-nn" in dep.program.backends:
        return None
    layers = {r.name: r for r in dep.layers}
    fmts = dep.program.formats
    storage = {n: "sparse" if f.sparse else "dense" for n, f in fmts.items() if n in layers}
    return int(estimate(dep.graph, storage, {n: f.block for n, f in fmts.items() if f.sparse})["bytes"])


def deploy(
    qm: Any,
    out_dir: Path,
    x: np.ndarray,
    sparse: str | dict[str, int] = "auto",
    target: Target | None = None,
    compare: bool = True,
    progress: Progress = no_progress,
    backend: str = "engine",
    cmsis_nn: Any = None,
    count_flash: bool = True,
) -> Deployment:
    """Generate, compile, run on `x` (int8 HWC) and (optionally) compare every layer with run_int8.

    backend "cmsis-nn": a CMSIS-NN deployment (`codegen.cmsis_backends`: CMSIS-NN where it has the
    op, the engine's kernels elsewhere; dense weights); `cmsis_nn` is the compiled library
    (`core.engine.cmsis.library()`, built on demand when None). count_flash=False skips counting
    flash line reads (about 5x faster emulation; the conservative bound then has no wait states).
    """
    target = target or Target()
    progress(0, 4, "generating C")
    if backend == "cmsis-nn":
        formats, backends = choose_formats(qm, "dense"), cmsis_backends(qm)
    elif backend == "engine":
        formats, backends = choose_formats(qm, sparse), None
    else:
        from core.errors import WorkbenchError

        raise WorkbenchError(f"backend {backend!r} is not known; use 'engine' or 'cmsis-nn'")
    program = generate(qm, Path(out_dir), formats, target, backends=backends, cmsis_nn=cmsis_nn)
    progress(1, 4, "compiling")
    fw = build(program.sources, Path(out_dir), target, include_dirs=program.include_dirs,
               objects=program.objects)
    progress(2, 4, "emulating")
    ex = execute(program, fw, x, target, count_flash)
    progress(3, 4, "comparing")
    env = None
    if compare:
        from core.tinyformer.quant import run_int8

        _, env = run_int8(qm, x, trace=True)
    rows = []
    for i, qop in enumerate(program.qops):
        counts = ex.result.counts.get(i, np.zeros(len(cycles.CLASSES), np.int64))
        fmt = formats.get(qop.op.name)
        exact = None
        if env is not None:
            exact = bool(
                np.array_equal(env[qop.op.output].reshape(ex.layer_outputs[i].shape), ex.layer_outputs[i])
            )
        rows.append(
            LayerReport(
                qop.op.name,
                qop.op.kind,
                "sparse" if fmt and fmt.sparse else ("dense" if fmt else "-"),
                int(qop.op.macs),
                cycles.instructions(counts),
                cycles.estimate_cycles(counts),
                exact,
                cycles.breakdown(counts),
                (lambda b: (b[0], b[2]))(cycles.bounds(counts)),
                program.backends[i] if program.backends else "engine",
            )
        )
    total = sum(r.cycles for r in rows)
    progress(4, 4, "done")
    return Deployment(
        program,
        fw,
        rows,
        sum(r.instructions for r in rows),
        total,
        cycles.milliseconds(total),
        ex.result.instructions_per_second,
        ex.output,
        None if env is None else all(r.exact for r in rows),
        program.graph,
    )
