"""Time stepping shared by every system: RK4 / forward Euler on `System.rhs`, spectral steps for KdV.

The loop that records frames lives here, not in the systems (py-pde's split): `step` advances one
reference step, `simulate` runs many and keeps every `record_every`-th frame.
"""

from __future__ import annotations

import math

import numpy as np

from core.errors import WorkbenchError
from core.io import Progress, no_progress
from core.physics.base import SPECTRAL_METHODS, System


def rk4_step(system: System, state: np.ndarray, dt: float, t: float = 0.0) -> np.ndarray:
    """Classical RK4: u + dt/6 (k1 + 2k2 + 2k3 + k4), k1 = F(u), k2 = F(u + dt/2 k1), ..."""
    f = system.rhs
    k1 = f(state, t)
    k2 = f(state + 0.5 * dt * k1, t + 0.5 * dt)
    k3 = f(state + 0.5 * dt * k2, t + 0.5 * dt)
    k4 = f(state + dt * k3, t + dt)
    return state + (dt / 6.0) * (k1 + 2.0 * (k2 + k3) + k4)


def euler_step(system: System, state: np.ndarray, dt: float, t: float = 0.0) -> np.ndarray:
    """Forward Euler: u + dt F(u) (first order; the PeRCNN micro cell's scheme)."""
    return state + dt * system.rhs(state, t)


def step(system: System, state: np.ndarray, dt: float | None = None, t: float = 0.0) -> np.ndarray:
    """One reference step of `system.method` (rk4, euler, etdrk4, ifrk4) of size `dt` (default system.dt).

    The hot path: no validation here beyond the method; `simulate` checks shapes and stability first.
    """
    dt = system.dt if dt is None else float(dt)
    state = np.asarray(state, dtype=np.float64)
    if system.method == "rk4":
        return rk4_step(system, state, dt, t)
    if system.method == "euler":
        return euler_step(system, state, dt, t)
    if system.method in SPECTRAL_METHODS:
        return system.spectral_step(state, dt)  # type: ignore[attr-defined]
    raise WorkbenchError(f"no stepper for method {system.method!r} of {system.name}")


def simulate(system: System, u0: np.ndarray, n_steps: int, record_every: int = 1,
             progress: Progress = no_progress, t0: float = 0.0) -> np.ndarray:
    """Run `n_steps` reference steps from `u0` and return every `record_every`-th frame.

    Returns (n_steps // record_every + 1, C, *n) float64 frames, frame j at time t0 + j·record_every·dt,
    frame 0 being `u0` itself. Checks before the first step: state shape and finiteness, and that
    `system.dt` respects the stability bound for this state (e.g. Burgers' advection speed max|u0|).
    Raises `WorkbenchError` naming the step if the state becomes non-finite.
    """
    if isinstance(n_steps, bool) or int(n_steps) != n_steps or n_steps < 0:
        raise WorkbenchError(f"n_steps={n_steps!r} must be a non-negative integer")
    if isinstance(record_every, bool) or int(record_every) != record_every or record_every < 1:
        raise WorkbenchError(f"record_every={record_every!r} must be a positive integer")
    n_steps, record_every = int(n_steps), int(record_every)
    state = system.check_state(u0, "initial state u0")
    system.check_stable(system.dt, state)
    frames = np.empty((n_steps // record_every + 1, *system.shape))  # (T, C, *n)
    frames[0] = state
    report_every = max(1, n_steps // 100)
    t = float(t0)
    # overflow is detected below and reported as a WorkbenchError, so numpy's warnings are noise
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(1, n_steps + 1):
            state = step(system, state, system.dt, t)
            t = t0 + i * system.dt
            # one reduction per step: a NaN/inf anywhere makes the sum non-finite
            if not math.isfinite(float(np.sum(state))):
                raise WorkbenchError(f"{system.name} became non-finite at step {i} (t={t:g}) with "
                                     f"dt={system.dt:g} and method {system.method}; "
                                     "reduce dt or check the initial state")
            if i % record_every == 0:
                frames[i // record_every] = state
            if i % report_every == 0 or i == n_steps:
                progress(i, n_steps, f"{system.name} t={t:.4g}")
    return frames
