"""PeRCNN baseline: the Π-block micro cell used alone as a coarse-step model.

Each coarse frame is k Euler steps of δt (in the cell's stability substeps) — the same cell as the
PIMRL micro module, but trained only on coarse frames (no burst pretraining), with the same budget.
"""

from __future__ import annotations

from torch import Tensor

from core.pimrl.base import DataMeta, State, Surrogate
from core.pimrl.micro import MicroCell, MicroConfig


class PeRCNN(Surrogate):
    """u_{j+1} = micro^k(u_j); state = the current frame."""

    name = "percnn"
    stages = ("coarse",)

    def __init__(self, meta: DataMeta, config: MicroConfig) -> None:
        super().__init__(meta, config)
        self.micro = MicroCell(meta, config)

    def start(self, u0: Tensor) -> State:
        self.check_input(u0)
        return u0

    def advance(self, state: State) -> tuple[Tensor, State]:
        u = self.micro.coarse_step(state)
        return u, u


class MicroOnly(PeRCNN):
    """Ablation "micro": PIMRL's micro module alone, pretrained on the fine bursts only."""

    name = "micro"
    stages = ("fine",)
