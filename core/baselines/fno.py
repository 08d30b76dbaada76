"""FNO baseline: an autoregressive Fourier neural operator in 1D/2D/3D (residual form).

    v₀ = P(u_j);  v_{l+1} = GELU(W_l v_l + F⁻¹[R_l · F[v_l]]_{|ξ| < modes});  u_{j+1} = u_j + Q(v_L)

F is ``torch.fft.rfftn`` over the grid axes; R_l holds complex weights for the lowest `modes`
frequencies per axis (both signs on all but the last axis, which rfft halves). Periodic data need no
grid-coordinate channels, and the operator commutes exactly with periodic shifts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from core.errors import WorkbenchError
from core.pimrl.base import DataMeta, State, Surrogate, periodic_conv


@dataclass(frozen=True)
class FNOConfig:
    """`modes` retained Fourier modes per axis, `width` channels, `layers` Fourier layers."""

    modes: int = 12
    width: int = 24
    layers: int = 4

    def __post_init__(self) -> None:
        if self.modes < 1 or self.width < 1 or self.layers < 1:
            raise WorkbenchError(f"fno modes={self.modes}, width={self.width}, layers={self.layers} "
                                 "must all be >= 1")


class SpectralConv(torch.nn.Module):
    """Multiply the lowest Fourier modes by learned complex (in, out) matrices."""

    def __init__(self, ndim: int, width: int, n: tuple[int, ...], modes: int) -> None:
        super().__init__()
        self.ndim = ndim
        # modes per axis, clipped so the ± blocks of a full axis never overlap
        self.modes = tuple(min(modes, m // 2) for m in n[:-1]) + (min(modes, n[-1] // 2 + 1),)
        shape = tuple(2 * m for m in self.modes[:-1]) + (self.modes[-1],)
        scale = 1.0 / (width * width)
        self.weight = torch.nn.Parameter(scale * torch.randn(width, width, *shape, 2))

    def forward(self, v: Tensor) -> Tensor:
        axes = tuple(range(2, 2 + self.ndim))
        spec = torch.fft.rfftn(v, dim=axes)  # (B, W, *n[:-1], n[-1]//2+1) complex
        block = spec
        for a, m in zip(axes[:-1], self.modes[:-1]):  # gather the ± low modes of full axes
            block = torch.cat([block.narrow(a, 0, m), block.narrow(a, block.shape[a] - m, m)], dim=a)
        block = block.narrow(axes[-1], 0, self.modes[-1])
        w = torch.view_as_complex(self.weight)
        out = torch.einsum("bi...,io...->bo...", block, w)  # (B, W, *low modes)
        out = torch.nn.functional.pad(out, (0, spec.shape[axes[-1]] - self.modes[-1]))
        for a, m in zip(axes[:-1], self.modes[:-1]):  # scatter back: zeros between the ± blocks
            gap = spec.shape[a] - 2 * m
            zeros_shape = list(out.shape)
            zeros_shape[a] = gap
            zeros = torch.zeros(zeros_shape, dtype=out.dtype, device=out.device)
            out = torch.cat([out.narrow(a, 0, m), zeros, out.narrow(a, m, m)], dim=a)
        return torch.fft.irfftn(out, s=v.shape[2:], dim=axes)


class FNO(Surrogate):
    """u_{j+1} = u_j + FNO(u_j); state = the current frame."""

    name = "fno"
    stages = ("coarse",)

    def __init__(self, meta: DataMeta, config: FNOConfig) -> None:
        super().__init__(meta, config)
        nd, w = meta.ndim, config.width
        self.lift = periodic_conv(nd, meta.channels, w, 1)
        self.spectral = torch.nn.ModuleList(
            SpectralConv(nd, w, meta.n, config.modes) for _ in range(config.layers))
        self.pointwise = torch.nn.ModuleList(periodic_conv(nd, w, w, 1) for _ in range(config.layers))
        self.project = torch.nn.Sequential(periodic_conv(nd, w, 2 * w, 1), torch.nn.GELU(),
                                           periodic_conv(nd, 2 * w, meta.channels, 1))
        with torch.no_grad():  # start near persistence
            self.project[-1].weight.mul_(0.1)
            self.project[-1].bias.zero_()

    def increment(self, u: Tensor) -> Tensor:
        v = self.lift(u)
        for i, (spec, point) in enumerate(zip(self.spectral, self.pointwise)):
            v = spec(v) + point(v)
            if i < len(self.spectral) - 1:
                v = torch.nn.functional.gelu(v)
        return self.project(v)

    def start(self, u0: Tensor) -> State:
        self.check_input(u0)
        return u0

    def advance(self, state: State) -> tuple[Tensor, State]:
        u = state + self.increment(state)
        return u, u
