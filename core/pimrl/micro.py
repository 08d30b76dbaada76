"""The micro-scale module: a PeRCNN Π-block cell stepping at the fine step δt with forward Euler.

    u ← u + h·F(u),   F(u) = D ⊙ Δ₄u + W₀ ⋆ Π_{l=1..L} (K_l ⋆ u + b_l)

* D ⊙ Δ₄u is the *known* physics: diffusion through the FIXED 4th-order 5-point Laplacian stencil
  ``core.physics.LAPLACE_4TH / dx²`` (per axis, periodic), times a LEARNABLE coefficient per field.
  The coefficient starts from a rough guess, not the truth: ``guess_factor`` (0.7 by default) times
  the system's physical diffusivity, i.e. we assume the order of magnitude is known but not the
  value. Systems without diffusion (KdV) get no known term; the Π-block learns everything.
* The Π-block (unknown terms) multiplies L parallel periodic convolutions elementwise and mixes the
  product with a 1×1 convolution W₀, so polynomial terms like u·u_x (L ≥ 2) or u·v² (L ≥ 3) are
  representable.
* h = δt / substeps: forward Euler is only stable for h·D·λ_max ≤ 2 with λ_max = ndim·(16/3)/dx² for
  the 4th-order Laplacian, so each δt is split into `substeps` Euler steps chosen (when not given)
  as ceil(δt·D₀·λ_max): stable while the learned D stays below twice the initial guess D₀.
  Dispersive systems (KdV) have no diffusion to bound h; give `substeps` explicitly there (the
  registry does), since Euler amplifies oscillatory modes by sqrt(1 + (hω)²) per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from core.errors import WorkbenchError
from core.pimrl.base import DataMeta, periodic_conv


@dataclass(frozen=True)
class MicroConfig:
    """Π-block cell hyper-parameters. `diffusion`: initial D per field (None: guess from the system)."""

    hidden: int = 12
    branches: int = 3
    kernel: int = 5
    diffusion: tuple[float, ...] | None = None
    guess_factor: float = 0.7
    substeps: int | None = None

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.branches < 1:
            raise WorkbenchError(f"micro hidden={self.hidden} and branches={self.branches} must be >= 1")
        if self.kernel not in (3, 5):
            raise WorkbenchError(f"micro kernel={self.kernel} is not allowed; use 3 or 5")
        if self.substeps is not None and self.substeps < 1:
            raise WorkbenchError(f"micro substeps={self.substeps} must be >= 1 (or None for automatic)")
        if not 0 < self.guess_factor:
            raise WorkbenchError(f"micro guess_factor={self.guess_factor} must be > 0")
        if self.diffusion is not None:
            object.__setattr__(self, "diffusion", tuple(float(d) for d in self.diffusion))
            if any(d < 0 for d in self.diffusion):
                raise WorkbenchError(f"micro diffusion={self.diffusion} must be >= 0")


def diffusion_guess(meta: DataMeta, factor: float) -> tuple[float, ...]:
    """`factor` × the physical diffusivity of each field (0 for fields without diffusion).

    Looks up ``D_u``/``Du``/``D``/``nu`` style names in ``core.physics.get_system(...).params()``.
    """
    from core.physics import get_system

    params = {k.lower(): float(v) for k, v in get_system(meta.system, meta.preset).params().items()}
    fields = meta.fields or (("u",) if meta.channels == 1 else ("u", "v", "w")[: meta.channels])
    out = []
    for f in fields:
        value = 0.0
        for key in (f"d_{f}", f"d{f}", "nu", "d"):
            if key in params:
                value = params[key]
                break
        out.append(factor * value)
    return tuple(out)


def laplace_4th_kernel(meta: DataMeta) -> Tensor:
    """The fixed depthwise Laplacian kernel: Σ_axes LAPLACE_4TH/dx², shape (C, 1, 5, ..., 5)."""
    from core.physics import LAPLACE_4TH

    stencil = torch.as_tensor(LAPLACE_4TH, dtype=torch.float64).flatten()
    if stencil.numel() != 5:
        raise WorkbenchError(f"LAPLACE_4TH must have 5 coefficients, got {stencil.numel()}")
    kernel = torch.zeros((5,) * meta.ndim, dtype=torch.float64)
    for axis, dx in enumerate(meta.dx):
        index = [2] * meta.ndim
        for i in range(5):
            index[axis] = i
            kernel[tuple(index)] += stencil[i] / dx**2
    return kernel.expand(meta.channels, 1, *kernel.shape).clone().float()


class MicroCell(torch.nn.Module):
    """F(u) = D ⊙ Δ₄u + Π-block(u); `step` advances one fine step δt (in `substeps` Euler steps)."""

    def __init__(self, meta: DataMeta, config: MicroConfig) -> None:
        super().__init__()
        self.meta, self.config = meta, config
        d0 = config.diffusion if config.diffusion is not None else diffusion_guess(meta, config.guess_factor)
        if len(d0) != meta.channels:
            raise WorkbenchError(f"micro diffusion has {len(d0)} values but the data has "
                                 f"{meta.channels} fields")
        self.has_diffusion = any(d > 0 for d in d0)
        # D = scale · θ, θ learnable from 1: Adam's step is relative to D's magnitude (D spans 1e-5…1e2)
        scale = torch.tensor([d if d > 0 else 1.0 for d in d0])
        self.register_buffer("d_scale", scale)
        self.theta = torch.nn.Parameter(torch.tensor([1.0 if d > 0 else 0.0 for d in d0]),
                                        requires_grad=self.has_diffusion)
        self.register_buffer("lap_kernel", laplace_4th_kernel(meta))
        self.branches = torch.nn.ModuleList(
            periodic_conv(meta.ndim, meta.channels, config.hidden, config.kernel)
            for _ in range(config.branches))
        self.mix = periodic_conv(meta.ndim, config.hidden, meta.channels, 1)
        with torch.no_grad():  # small initial unknown term: start close to the known physics
            self.mix.weight.mul_(0.1)
            self.mix.bias.zero_()
        lam = meta.ndim * (16.0 / 3.0) / min(meta.dx) ** 2
        auto = math.ceil(meta.dt_fine * max(d0, default=0.0) * lam - 1e-9)
        self.substeps = int(config.substeps or max(1, auto))

    @property
    def diffusion(self) -> Tensor:
        """The current diffusion coefficient per field (C,)."""
        return self.d_scale * self.theta

    def laplacian(self, u: Tensor) -> Tensor:
        """Δ₄u with periodic padding, per field: (B, C, *n) -> (B, C, *n)."""
        pad = (2, 2) * self.meta.ndim
        conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}
        padded = torch.nn.functional.pad(u, pad, mode="circular")
        return conv[self.meta.ndim](padded, self.lap_kernel.to(u.dtype), groups=self.meta.channels)

    def rhs(self, u: Tensor) -> Tensor:
        """F(u) (B, C, *n)."""
        prod = self.branches[0](u)
        for branch in self.branches[1:]:
            prod = prod * branch(u)
        out = self.mix(prod)
        if self.has_diffusion:
            shape = (1, -1) + (1,) * self.meta.ndim
            out = out + self.diffusion.view(shape) * self.laplacian(u)
        return out

    def step(self, u: Tensor) -> Tensor:
        """One fine step δt: `substeps` forward-Euler steps of δt/substeps."""
        h = self.meta.dt_fine / self.substeps
        for _ in range(self.substeps):
            u = u + h * self.rhs(u)
        return u

    def fine_rollout(self, u0: Tensor, n_steps: int) -> Tensor:
        """n fine steps after u0: (B, C, *n) -> (B, n_steps, C, *n) (micro pretraining)."""
        frames, u = [], u0
        for _ in range(int(n_steps)):
            u = self.step(u)
            frames.append(u)
        return torch.stack(frames, dim=1)

    def coarse_step(self, u: Tensor) -> Tensor:
        """k fine steps: u_j -> u_{j+1} at +Δt."""
        for _ in range(self.meta.k):
            u = self.step(u)
        return u
