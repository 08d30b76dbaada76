"""The micro-scale module: a PeRCNN-lineage Π-block cell stepping at the fine step δt.

    ∂u/∂t = F(u) = Σ_known c_t ⊙ S_t u  +  W₀ · Π_{l=1..L} (W_l · Φ(u) + b_l)

* Known physics (``known``): fixed finite-difference stencils S_t with BOUNDED learnable
  coefficients, as in PeRCNN: c = c_max · sigmoid(θ), c_max = ``bound`` × the physical value, so a
  coefficient can neither change sign nor run off (an unbounded one drifted to 0.4–0.6× the true
  diffusivity and fronts moved too slowly). θ starts at ``guess_factor`` × the physical value: we
  assume the order of magnitude is known, not the value.
    - ``diffusion``: the 4th-order 5-point Laplacian Δ₄ per axis / dx² (per field);
    - ``dispersion``: the 4th-order 7-point third derivative −∂³ₓ (KdV's −δ u_xxx).
* Unknown terms: a Π-block of L parallel convolutions over the feature stack Φ(u), multiplied
  elementwise and mixed by a 1×1 convolution W₀. With ``features="u"`` Φ(u) = u and ``kernel=1``
  the Π-block is PeRCNN's reaction-term form (pointwise polynomials such as u·v² or u³); with
  ``features="grad"`` Φ(u) = [u, ∂₁u, …] (fixed 4th-order gradient stencils), so transport terms
  such as u·u_x are pointwise products too and still need only 1×1 kernels.
* Scaling (``scaling``): the Π-block sees its features centred and scaled to unit std and its
  output is multiplied by the std of the training data's rate of change, both fixed per channel and
  fitted once before training (`fit_scaling`, from burst pairs when the model pretrains on them).
* Integrator (``integrator``): ``euler`` (PeRCNN's choice) or ``rk4``; each δt is split into
  ``substeps`` steps, by default the fewest that keep the KNOWN linear operator stable at its
  largest admissible coefficients (c_max), from the stencil's Fourier symbol against the
  integrator's stability polynomial (``core.physics.base.largest_stable_dt``). Dispersion has an
  imaginary spectrum on which forward Euler is unstable at every step size, so it requires rk4.

All stencils are applied as shifted slices of ONE circular padding per right-hand side, and a 1×1
Π-block as two matrix products (measured on Gray–Scott 64², batch 1: 1.29 ms per right-hand side
with depthwise and 1×1 convolutions, see `python -m core bench pimrl --speed`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from core.errors import WorkbenchError
from core.pimrl.base import DataMeta, conv_nd

KNOWN_TERMS: tuple[str, ...] = ("diffusion", "dispersion")
FEATURES: tuple[str, ...] = ("u", "grad")
INTEGRATORS: tuple[str, ...] = ("euler", "rk4")

#: 4th-order central third derivative on offsets −3..3, divide by dx³
D3_4TH = np.array([1.0, -8.0, 13.0, 0.0, -13.0, 8.0, -1.0]) / 8.0


@dataclass(frozen=True)
class MicroConfig:
    """Micro cell hyper-parameters (see the module docstring)."""

    hidden: int = 8
    branches: int = 3
    kernel: int = 1
    features: str = "u"
    known: tuple[str, ...] = ("diffusion",)
    integrator: str = "euler"
    bound: float = 2.0
    guess_factor: float = 0.7
    substeps: int | None = None
    scaling: bool = True  # fit the Π-block's fixed input/output scaling to the training data
    physical: tuple[tuple[float, ...], ...] | None = None  # per known term, per field; None: the system's

    def __post_init__(self) -> None:
        object.__setattr__(self, "known", tuple(str(t) for t in self.known))
        if self.physical is not None:
            object.__setattr__(self, "physical", tuple(tuple(float(v) for v in row) for row in self.physical))
            if len(self.physical) != len(self.known) or any(v < 0 for row in self.physical for v in row):
                raise WorkbenchError(f"micro physical={self.physical} must hold one row of non-negative "
                                     f"coefficients per known term {self.known}")
        if self.hidden < 1 or self.branches < 1:
            raise WorkbenchError(f"micro hidden={self.hidden} and branches={self.branches} must be >= 1")
        if self.kernel not in (1, 3, 5):
            raise WorkbenchError(f"micro kernel={self.kernel} is not allowed; use 1, 3 or 5")
        if self.features not in FEATURES:
            raise WorkbenchError(f"micro features={self.features!r} is not allowed; use one of {FEATURES}")
        if self.integrator not in INTEGRATORS:
            raise WorkbenchError(f"micro integrator={self.integrator!r} is not allowed; "
                                 f"use one of {INTEGRATORS}")
        bad = [t for t in self.known if t not in KNOWN_TERMS]
        if bad:
            raise WorkbenchError(f"micro known term {bad[0]!r} is not known; use any of {KNOWN_TERMS}")
        if self.substeps is not None and self.substeps < 1:
            raise WorkbenchError(f"micro substeps={self.substeps} must be >= 1 (or None for automatic)")
        if not 0 < self.guess_factor < self.bound:
            raise WorkbenchError(f"micro guess_factor={self.guess_factor} must lie in (0, bound="
                                 f"{self.bound})")
        if "dispersion" in self.known and self.integrator == "euler":
            raise WorkbenchError("a known dispersion term needs integrator='rk4' (forward Euler is "
                                 "unstable on its imaginary spectrum at every step size)")


def physical_coefficients(meta: DataMeta, term: str) -> tuple[float, ...]:
    """The system's true coefficient of a known term, per field (0 where the field has none).

    diffusion: ``D_u``/``Du``/``nu``/``D`` style parameters; dispersion: KdV's ``delta``.
    """
    from core.physics import get_system

    params = {k.lower(): float(v) for k, v in get_system(meta.system, meta.preset).params().items()}
    fields = meta.fields or (("u",) if meta.channels == 1 else ("u", "v", "w")[: meta.channels])
    keys = {"diffusion": lambda f: (f"d_{f}", f"d{f}", "nu", "d"), "dispersion": lambda f: ("delta",)}[term]
    return tuple(next((params[k] for k in keys(f) if k in params), 0.0) for f in fields)


def _stencils(meta: DataMeta, features: str, known: tuple[str, ...]) -> tuple[list[str], Tensor, int]:
    """Names and the depthwise kernel bank (S, *w) of every fixed stencil, and its half-width."""
    names: list[str] = []
    if features == "grad":
        names += [f"d{axis}" for axis in range(meta.ndim)]
    names += [t for t in known]
    half = 3 if "dispersion" in known else 2
    width = 2 * half + 1
    bank = torch.zeros((len(names),) + (width,) * meta.ndim, dtype=torch.float64)
    from core.physics import GRAD_4TH, LAPLACE_4TH

    def put(s: int, axis: int, weights: np.ndarray, scale: float) -> None:
        off = (len(weights) - 1) // 2
        index = [half] * meta.ndim
        for i, w in enumerate(weights):
            index[axis] = half - off + i
            bank[(s, *index)] += float(w) * scale

    for s, name in enumerate(names):
        if name.startswith("d") and name[1:].isdigit():
            axis = int(name[1:])
            put(s, axis, np.asarray(GRAD_4TH), 1.0 / meta.dx[axis])
        elif name == "diffusion":
            for axis, dx in enumerate(meta.dx):
                put(s, axis, np.asarray(LAPLACE_4TH), 1.0 / dx**2)
        elif name == "dispersion":
            if meta.ndim != 1:
                raise WorkbenchError(f"a dispersion term is only defined in 1D; the data are {meta.ndim}D")
            put(s, 0, -D3_4TH, 1.0 / meta.dx[0] ** 3)  # −∂³ₓ: the term is −δ u_xxx
    return names, bank.float(), half


def _symbol(kernel: np.ndarray, n: tuple[int, ...], half: int) -> np.ndarray:
    """Fourier symbol of a periodic stencil (eigenvalues of the circulant operator) on grid n."""
    full = np.zeros(n)
    for idx in np.ndindex(*kernel.shape):
        if kernel[idx] != 0:
            # correlation: out_i = Σ_o w_o u_{i+o}  ->  symbol(θ) = Σ_o w_o e^{i o θ}
            pos = tuple((half - j) % m for j, m in zip(idx, n))  # convolution index of offset o = j − half
            full[pos] += kernel[idx]
    return np.fft.fftn(full)


class MicroCell(torch.nn.Module):
    """F(u) = known terms + Π-block(Φ(u)); `step` advances one fine step δt."""

    def __init__(self, meta: DataMeta, config: MicroConfig) -> None:
        super().__init__()
        self.meta, self.config = meta, config
        self.names, bank, self.half = _stencils(meta, config.features, config.known)
        c = meta.channels
        self.register_buffer("bank", bank.repeat(c, *([1] * meta.ndim)).unsqueeze(1))  # (C·S, 1, *w)
        # every stencil is a sum of 1D stencils along the axes (a "cross"): ≤ (w−1)·ndim + 1 taps, kept
        # as (offset, weight) lists; the same for every field
        kernels = self.bank[: len(self.names), 0].double().numpy()  # (S, *w) of field 0
        self._taps: list[list[tuple[tuple[int, ...], float]]] = []
        for kernel in kernels:
            taps = [(tuple(int(i) - self.half for i in idx), float(kernel[idx]))
                    for idx in zip(*np.nonzero(kernel))]
            if any(sum(o != 0 for o in off) > 1 for off, _ in taps):
                raise WorkbenchError("the micro cell's stencils must be sums of 1D stencils along the axes")
            self._taps.append(taps)
        # bounded known-term coefficients: c_max · sigmoid(θ), per (term, field)
        true = list(config.physical) if config.physical is not None else \
            [physical_coefficients(meta, t) for t in config.known]
        if any(len(row) != c for row in true):
            raise WorkbenchError(f"micro physical coefficients {true} must have one value per field ({c})")
        self.known_mask = [[v > 0 for v in vals] for vals in true]
        cmax = torch.tensor([[config.bound * v if v > 0 else 0.0 for v in vals] for vals in true]
                            ).reshape(len(config.known), c)
        self.register_buffer("cmax", cmax)
        p0 = config.guess_factor / config.bound
        self.theta = torch.nn.Parameter(torch.full_like(cmax, math.log(p0 / (1 - p0))),
                                        requires_grad=bool(config.known))
        n_feat = c * (1 + (meta.ndim if config.features == "grad" else 0))
        conv = conv_nd(meta.ndim)
        pad = config.kernel // 2
        self.branches = torch.nn.ModuleList(
            conv(n_feat, config.hidden, config.kernel, padding=pad, padding_mode="circular")
            for _ in range(config.branches))
        self.mix = conv(config.hidden, c, 1)
        # fixed affine scaling of the Π-block's input features and output (per channel), fitted to the
        # training data once before training (`fit_scaling`); identity until then. Uncentred inputs
        # (Gray–Scott's u ≈ 0.3–1) and outputs 100× smaller than the weights made the polynomial fit
        # ill-conditioned.
        self.register_buffer("feat_shift", torch.zeros(n_feat))
        self.register_buffer("feat_scale", torch.ones(n_feat))
        self.register_buffer("out_scale", torch.ones(c))
        with torch.no_grad():  # small initial unknown term: start close to the known physics
            self.mix.weight.mul_(0.1)
            self.mix.bias.zero_()
        self.substeps = int(config.substeps or self.stable_substeps())

    @property
    def coefficients(self) -> Tensor:
        """Current known-term coefficients (terms, C)."""
        return self.cmax * torch.sigmoid(self.theta)

    @property
    def diffusion(self) -> Tensor:
        """Current diffusion coefficient per field (C,) (zeros if diffusion is not a known term)."""
        if "diffusion" not in self.config.known:
            return torch.zeros(self.meta.channels)
        return self.coefficients[self.config.known.index("diffusion")]

    def stable_substeps(self) -> int:
        """Fewest substeps per δt that keep the known linear terms at c_max stable."""
        from core.physics.base import largest_stable_dt

        if not self.config.known:
            return 1
        kernels = self.bank[:, 0].double().numpy().reshape(self.meta.channels, len(self.names),
                                                            *self.bank.shape[2:])
        worst = 0.0
        for ch in range(self.meta.channels):
            total = np.zeros(self.bank.shape[2:])
            for t, term in enumerate(self.config.known):
                total += float(self.cmax[t, ch]) * kernels[ch, self.names.index(term)]
            mu = _symbol(total, self.meta.n, self.half).ravel()
            mu = mu[np.real(mu) <= 1e-9 * max(1.0, np.max(np.abs(mu)))]
            dt = largest_stable_dt(self.config.integrator, mu)
            if dt == 0.0:
                raise WorkbenchError(f"the known terms {self.config.known} are unstable under "
                                     f"{self.config.integrator} at every step size; use rk4")
            worst = max(worst, self.meta.dt_fine / dt)
        return max(1, math.ceil(worst * 1.0001))

    def stencils(self, u: Tensor) -> Tensor:
        """Every fixed stencil (`self.names`) applied to every field: (B, C, *n) -> (B, C, S, *n).

        One circular padding, then each stencil as a sum of shifted slices of it (the stencils are
        the same for every field; a depthwise convolution did the same 10x slower at these sizes)."""
        nd = self.meta.ndim
        padded = torch.nn.functional.pad(u, (self.half, self.half) * nd, mode="circular")
        n = u.shape[2:]
        out = []
        for taps in self._taps:
            acc = None
            for offset, weight in taps:
                window = padded[(slice(None), slice(None)) + tuple(
                    slice(self.half + o, self.half + o + m) for o, m in zip(offset, n))]
                acc = weight * window if acc is None else acc + weight * window
            out.append(acc)
        return torch.stack(out, dim=2)  # (B, C, S, *n)

    def rhs(self, u: Tensor) -> Tensor:
        """F(u): (B, C, *n) -> (B, C, *n)."""
        nd, c = self.meta.ndim, self.meta.channels
        st = self.stencils(u) if self.names else None
        feats = self.features(u, st)
        shape_f = (1, -1) + (1,) * nd
        feats = (feats - self.feat_shift.view(shape_f)) / self.feat_scale.view(shape_f)
        if self.config.kernel == 1:  # pointwise Π-block: one matmul for all branches, one for the mix
            b, spatial = u.shape[0], u.shape[2:]
            x = feats.reshape(b, feats.shape[1], -1)  # (B, F, N)
            weight = torch.cat([br.weight.flatten(1) for br in self.branches])  # (L·H, F)
            bias = torch.cat([br.bias for br in self.branches])
            y = (torch.matmul(weight, x) + bias[:, None]).view(b, len(self.branches), self.config.hidden, -1)
            prod = y[:, 0]
            for level in range(1, len(self.branches)):
                prod = prod * y[:, level]
            out = torch.matmul(self.mix.weight.flatten(1), prod) + self.mix.bias[:, None]
            out = out.view(b, c, *spatial)
        else:
            prod = self.branches[0](feats)
            for branch in self.branches[1:]:
                prod = prod * branch(feats)
            out = self.mix(prod)
        out = out * self.out_scale.view(shape_f)
        if self.config.known:
            shape = (1, c) + (1,) * nd
            coef = self.coefficients
            for t, term in enumerate(self.config.known):
                out = out + coef[t].view(shape) * st[:, :, self.names.index(term)]
        return out

    def features(self, u: Tensor, st: Tensor | None = None) -> Tensor:
        """The Π-block's unscaled input Φ(u): (B, C, *n) -> (B, F, *n); `st` = `stencils(u)` when
        the caller has it already."""
        if self.config.features != "grad":
            return u
        nd, c = self.meta.ndim, self.meta.channels
        st = self.stencils(u) if st is None else st
        grads = st[:, :, :nd].reshape(u.shape[0], c * nd, *u.shape[2:])  # (B, C·ndim, *n)
        return torch.cat([u, grads], dim=1)

    @torch.no_grad()
    def fit_scaling(self, before: Tensor, after: Tensor, dt: float) -> None:
        """Set the Π-block's fixed input/output scaling from training pairs (u(t), u(t+dt)):
        features centred and scaled to unit std, output scaled by the std of (u(t+dt) − u(t))/dt."""
        feats = self.features(before.to(self.bank.dtype)).double()
        axes = (0,) + tuple(range(2, feats.dim()))
        def usable(std: Tensor) -> Tensor:  # a constant channel keeps scale 1
            return torch.where(std > 1e-9 * std.max().clamp_min(1e-300), std, torch.ones_like(std))

        self.feat_shift.copy_(feats.mean(dim=axes))
        self.feat_scale.copy_(usable(feats.std(dim=axes)))
        rate = (after - before).double() / dt
        self.out_scale.copy_(usable(rate.std(dim=axes)))

    def step(self, u: Tensor) -> Tensor:
        """One fine step δt in `substeps` Euler or RK4 steps."""
        h = self.meta.dt_fine / self.substeps
        for _ in range(self.substeps):
            if self.config.integrator == "euler":
                u = u + h * self.rhs(u)
            else:
                k1 = self.rhs(u)
                k2 = self.rhs(u + 0.5 * h * k1)
                k3 = self.rhs(u + 0.5 * h * k2)
                k4 = self.rhs(u + h * k3)
                u = u + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
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
