"""ConvLSTM baseline: the macro module alone (encoder → ConvLSTM → decoder, residual at Δt)."""

from __future__ import annotations

from torch import Tensor

from core.pimrl.base import DataMeta, State, Surrogate
from core.pimrl.macro import MacroConfig, MacroModule


class ConvLSTM(Surrogate):
    """u_{j+1} = u_j + D(h_j), (h_{j+1}, c_{j+1}) = ConvLSTM(E(u_{j+1}), h_j, c_j); state = (u, h, c)."""

    name = "convlstm"
    stages = ("coarse",)

    def __init__(self, meta: DataMeta, config: MacroConfig) -> None:
        super().__init__(meta, config)
        self.macro = MacroModule(meta, config)

    def start(self, u0: Tensor) -> State:
        self.check_input(u0)
        return (u0, *self.macro.initial_state(u0))

    def advance(self, state: State) -> tuple[Tensor, State]:
        u, h, c = self.macro.step(*state)
        return u, (u, h, c)
