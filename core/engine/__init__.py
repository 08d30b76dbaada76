"""SparseEngine: int8 dense and sparse kernels for a Cortex-M7, C code generation, cross-compilation
with zig cc, emulation with Unicorn, and a per-instruction-class cycle model.

Public face:

- `deploy(qm, out_dir, x, sparse="auto")` -> `Deployment` (generate C, compile, run on the emulated M7,
  compare every layer with `quant.run_int8`; per-layer instructions, estimated cycles, flash, SRAM);
- `generate` / `execute` (codegen), `build` / `Target` (toolchain), `run` (emulator),
  `estimate_cycles` / `milliseconds` (cycle model), `choose_formats` (dense vs sparse per layer);
- `models.candidate(cid)` (a NAS candidate as a QuantizedModel), `models.prune_int8`.
"""

from core.engine.codegen import Program, choose_formats, execute, generate
from core.engine.cycles import CLASSES, estimate_cycles, milliseconds
from core.engine.emulator import RunResult, run
from core.engine.pipeline import Deployment, LayerReport, deploy
from core.engine.toolchain import Build, Target, build

__all__ = ["CLASSES", "Build", "Deployment", "LayerReport", "Program", "RunResult", "Target", "build",
           "choose_formats", "deploy", "estimate_cycles", "execute", "generate", "milliseconds", "run"]
