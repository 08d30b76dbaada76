"""The coupled PIMRL model: micro (physics, δt) and macro (data-driven, Δt) modules in cycles of N.

State: the current frame u_j and the macro latent state (h_j, c_j), which has absorbed every frame up
to u_j exactly once (`start` absorbs u0 into a zero state). One cycle of N coarse steps from u_j:

1. micro step: u_{j+1} = micro^k(u_j) (k fine steps of δt);
   *temporal message passing*: the macro latent state absorbs the micro output,
   (h, c) ← ConvLSTM(E(u_{j+1}), h, c), so the data-driven module continues from the physics' state;
2. N−1 macro steps: u_{i+1} = u_i + D(h_i), then (h, c) absorbs u_{i+1}; the cycle's last macro
   output is absorbed like every other frame before the next micro step.

Ablations (same class, flags in `PIMRLConfig`): ``use_macro=False`` is the micro module alone (every
step a micro step), ``use_micro=False`` the macro module alone (every step a macro step),
``message_passing=False`` keeps the cycle but the macro latent state skips the micro output (the
macro module then continues from a state that last saw the frame before the micro step).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from core.errors import WorkbenchError
from core.pimrl.base import DataMeta, State, Surrogate
from core.pimrl.macro import MacroConfig, MacroModule
from core.pimrl.micro import MicroCell, MicroConfig


@dataclass(frozen=True)
class PIMRLConfig:
    """`cycle` = N (one micro step then N−1 macro steps); flags select the ablations."""

    micro: MicroConfig = field(default_factory=MicroConfig)
    macro: MacroConfig = field(default_factory=MacroConfig)
    cycle: int = 4
    message_passing: bool = True
    use_micro: bool = True
    use_macro: bool = True

    def __post_init__(self) -> None:
        if self.cycle < 1:
            raise WorkbenchError(f"cycle N={self.cycle} must be >= 1")
        if not (self.use_micro or self.use_macro):
            raise WorkbenchError("use_micro and use_macro cannot both be False; keep at least one module")


class PIMRL(Surrogate):
    """Micro/macro multi-scale recurrent model; state = (u, h, c, step index)."""

    name = "pimrl"
    stages = ("fine", "coarse")

    def __init__(self, meta: DataMeta, config: PIMRLConfig) -> None:
        super().__init__(meta, config)
        self.micro = MicroCell(meta, config.micro) if config.use_micro else None
        self.macro = MacroModule(meta, config.macro) if config.use_macro else None
        self.stages = ("fine", "coarse") if config.use_micro else ("coarse",)

    def _is_micro_step(self, j: int) -> bool:
        if self.micro is None:
            return False
        return self.macro is None or j % self.config.cycle == 0

    def start(self, u0: Tensor) -> State:
        self.check_input(u0)
        h, c = self.macro.initial_state(u0) if self.macro is not None else (None, None)
        return (u0, h, c, 0)

    def advance(self, state: State) -> tuple[Tensor, State]:
        u, h, c, j = state
        if self._is_micro_step(j):
            u = self.micro.coarse_step(u)
            if self.macro is not None and self.config.message_passing:
                h, c = self.macro.absorb(u, h, c)
        else:
            u, h, c = self.macro.step(u, h, c)
        return u, (u, h, c, j + 1)
