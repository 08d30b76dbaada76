"""What a dataset is made of: the frozen `DatasetConfig`, the per-system preset defaults, the key.

A dataset samples each reference trajectory at two rates (burst sampling, PIMRL §3):

    solver step dt  (core.physics, per system and preset)
    fine step   δt = m·dt          recorded only inside short *bursts*
    coarse step Δt = k·δt = k·m·dt recorded over the whole horizon, t_j = j·Δt, j = 0..n_coarse-1

`warmup` solver steps are run and discarded before t = 0 so that the recorded part shows developed
dynamics (Gray–Scott spots need O(10³) steps to form from the seeds; FitzHugh–Nagumo noise needs
time to organise into waves).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from core.errors import WorkbenchError, unknown
from core.io import to_jsonable

#: bump when the generator's output changes for the same config (it is part of every key)
GENERATOR_VERSION = "1"

#: Preset defaults per (system, preset), in physical units so that they survive a change of the
#: solver dt: `dt_fine` is a target δt (rounded to the nearest multiple m >= 1 of the solver dt),
#: `t_warmup` the discarded time before t = 0. Chosen so that 8 `cpu` trajectories of any system
#: take well under a minute on one core (measured numbers in the core.datasets docstring).
_DEFAULTS: dict[str, dict[str, dict[str, float]]] = {
    # solitons (speed ≈ 2·amplitude) cross the L = 40 domain about once over T = 40
    "kdv1d": {
        "cpu": dict(dt_fine=0.04, k=5, n_coarse=201, n_bursts=4, t_warmup=0.0),
        "paper": dict(dt_fine=0.04, k=5, n_coarse=401, n_bursts=8, t_warmup=0.0),
    },
    # the random field decays to about half its spread over T = 1 (cpu) / 2 (paper)
    "burgers2d": {
        "cpu": dict(dt_fine=0.002, k=5, n_coarse=101, n_bursts=4, t_warmup=0.0),
        "paper": dict(dt_fine=0.002, k=5, n_coarse=201, n_bursts=8, t_warmup=0.0),
    },
    # noise grows into patterns between t = 2 and t = 8; δt = 0.002 sits at the forward-Euler limit
    # of the D_v = 100 diffusion for a micro step (2 / (D_v·λ_max) ≈ 0.0019 at dx = 1)
    "fhn2d": {
        "cpu": dict(dt_fine=0.002, k=10, n_coarse=101, n_bursts=4, t_warmup=3.0),
        "paper": dict(dt_fine=0.002, k=10, n_coarse=301, n_bursts=8, t_warmup=3.0),
    },
    # seeds split after the warmup and spots fill the domain by t ≈ 750; δt = 0.5 keeps a
    # forward-Euler micro step stable for D_u (δt <= 0.57 at dx = 1/128)
    "grayscott2d": {
        "cpu": dict(dt_fine=0.5, k=10, n_coarse=201, n_bursts=4, t_warmup=100.0),
        "paper": dict(dt_fine=0.5, k=10, n_coarse=401, n_bursts=8, t_warmup=200.0),
    },
    # the 3D pattern forms by t ≈ 300 and then oscillates with a period of about 200
    "grayscott3d": {
        "cpu": dict(dt_fine=1.0, k=10, n_coarse=51, n_bursts=4, t_warmup=100.0),
        "paper": dict(dt_fine=1.0, k=10, n_coarse=201, n_bursts=8, t_warmup=100.0),
    },
}


def _system(name: str, preset: str, overrides: tuple[tuple[str, Any], ...] = ()):
    """The physics system a config refers to (validates name, preset and overrides)."""
    from core.physics import PRESETS, SYSTEMS, get_system

    if name not in SYSTEMS:
        raise unknown("system", name, SYSTEMS)
    if preset not in PRESETS:
        raise unknown("preset", preset, PRESETS)
    try:
        return get_system(name, preset, **dict(overrides))
    except TypeError as exc:  # an override name the system's dataclass does not have
        raise WorkbenchError(f"bad system override for {name!r}: {exc}") from exc


def preset_defaults(system: str, preset: str) -> dict[str, Any]:
    """The defaults a `DatasetConfig` resolves to for `system` at `preset`.

    Returns a dict with `dt_fine` (= dt_mult · solver dt, the multiple of the solver dt nearest to
    the table's target), `dt_mult`, `k`, `dt_coarse` (= k·δt),
    `n_coarse`, `n_bursts`, `burst_len` (= 2k fine steps: two coarse intervals per burst), `warmup`
    (solver steps), `ic` (the system's default initial condition), `solver_dt` and the horizon
    `t_end` = (n_coarse − 1)·Δt.
    """
    return _defaults_for(_system(system, preset), preset)


def _defaults_for(sysobj, preset: str) -> dict[str, Any]:
    """`preset_defaults` for a concrete (possibly overridden) system: δt and warmup follow its dt."""
    table = _DEFAULTS.get(sysobj.name, {}).get(preset)
    if table is None:
        raise unknown("preset for datasets of " + sysobj.name, preset, sorted(_DEFAULTS.get(sysobj.name, {})))
    m = max(1, round(table["dt_fine"] / sysobj.dt))
    k, n_coarse = int(table["k"]), int(table["n_coarse"])
    return {
        "dt_mult": m, "dt_fine": m * sysobj.dt, "k": k, "dt_coarse": k * m * sysobj.dt,
        "n_coarse": n_coarse, "t_end": (n_coarse - 1) * k * m * sysobj.dt,
        "n_bursts": int(table["n_bursts"]), "burst_len": 2 * k,
        "warmup": round(table["t_warmup"] / sysobj.dt), "ic": sysobj.ic_kinds[0], "solver_dt": sysobj.dt,
    }


def _check_splits(splits: tuple, n_samples: int) -> tuple[int, int, int]:
    """Split sizes (train, val, test) from fractions or counts; at least 1 train and 1 test."""
    if len(splits) != 3:
        raise WorkbenchError(f"splits={splits!r} must have three entries (train, val, test)")
    if all(isinstance(s, int) and not isinstance(s, bool) for s in splits):
        counts = tuple(int(s) for s in splits)
        if sum(counts) != n_samples or min(counts) < 0:
            raise WorkbenchError(f"split counts {counts} must be non-negative and sum to "
                                 f"n_samples={n_samples}")
    else:
        fr = tuple(float(s) for s in splits)
        if min(fr) < 0 or not math.isclose(sum(fr), 1.0, abs_tol=1e-9):
            raise WorkbenchError(f"split fractions {splits!r} must be non-negative and sum to 1")
        n_test = max(1, math.floor(fr[2] * n_samples + 0.5)) if fr[2] > 0 else 0
        n_val = math.floor(fr[1] * n_samples + 0.5)
        while n_samples - n_val - n_test < 1 and n_val > 0:  # small n: val gives way first
            n_val -= 1
        counts = (n_samples - n_val - n_test, n_val, n_test)
    if counts[0] < 1 or counts[2] < 1:
        raise WorkbenchError(f"splits={splits!r} with n_samples={n_samples} give {counts} "
                             "(train, val, test); at least 1 train and 1 test trajectory are needed")
    return counts


@dataclass(frozen=True)
class DatasetConfig:
    """Everything that determines a dataset (None = the preset default, see `preset_defaults`).

    Trajectory s starts from `system.initial_condition(np.random.default_rng([seed, s]), ic)`, so
    the data do not depend on how the work is split across processes. `splits` are fractions
    (summing to 1) or counts (summing to n_samples); trajectories 0..n_train-1 are train, then val,
    then test (they are i.i.d., so the order carries no bias).
    `overrides` are system overrides passed to `core.physics.get_system`, e.g. `(("n", (32, 32)),)`.
    """

    system: str
    preset: str = "cpu"
    n_samples: int = 8
    seed: int = 0
    dt_fine: float | None = None
    k: int | None = None
    n_coarse: int | None = None
    n_bursts: int | None = None
    burst_len: int | None = None
    ic: str | None = None
    warmup: int | None = None
    splits: tuple = (0.6, 0.2, 0.2)
    overrides: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "splits", tuple(self.splits))
        norm = tuple(sorted((str(n), _freeze(v)) for n, v in dict(self.overrides).items()))
        object.__setattr__(self, "overrides", norm)
        if not isinstance(self.n_samples, int) or self.n_samples < 2:
            raise WorkbenchError(f"n_samples={self.n_samples!r} must be an integer >= 2 (1 train + 1 test)")
        for name, low in (("k", 1), ("n_coarse", 2), ("n_bursts", 1), ("burst_len", 1), ("warmup", 0)):
            val = getattr(self, name)
            if val is not None and (not isinstance(val, int) or isinstance(val, bool) or val < low):
                raise WorkbenchError(f"{name}={val!r} must be an integer >= {low}")
        _check_splits(self.splits, self.n_samples)
        system = _system(self.system, self.preset, self.overrides)
        if self.dt_fine is not None and not (isinstance(self.dt_fine, int | float)
                                             and not isinstance(self.dt_fine, bool)
                                             and math.isfinite(self.dt_fine) and self.dt_fine > 0):
            raise WorkbenchError(f"dt_fine={self.dt_fine!r} must be a finite positive multiple of the solver "
                                 f"dt={system.dt:g} of {self.system}")
        if self.ic is not None and self.ic not in system.ic_kinds:
            raise unknown(f"initial condition for {self.system}", self.ic, system.ic_kinds)

    def solver(self):
        """The `core.physics.System` this config simulates (preset + overrides)."""
        return _system(self.system, self.preset, self.overrides)

    def resolved(self) -> DatasetConfig:
        """This config with every None replaced by the preset default, validated as a whole."""
        system = self.solver()
        d = _defaults_for(system, self.preset)
        dt_fine = self.dt_fine if self.dt_fine is not None else d["dt_fine"]
        m = dt_fine / system.dt
        if round(m) < 1 or not math.isclose(m, round(m), rel_tol=1e-9, abs_tol=1e-9):
            raise WorkbenchError(f"dt_fine={dt_fine:g} must be a positive integer multiple of the solver "
                                 f"dt={system.dt:g} of {self.system} (e.g. {system.dt:g} or "
                                 f"{2 * system.dt:g})")
        k = self.k if self.k is not None else d["k"]
        out = dataclasses.replace(
            self, dt_fine=round(m) * system.dt, k=k,
            n_coarse=self.n_coarse if self.n_coarse is not None else d["n_coarse"],
            n_bursts=self.n_bursts if self.n_bursts is not None else d["n_bursts"],
            burst_len=self.burst_len if self.burst_len is not None else 2 * k,
            ic=self.ic if self.ic is not None else system.ic_kinds[0],
            warmup=self.warmup if self.warmup is not None else d["warmup"],
        )
        if out.burst_len < out.k:
            raise WorkbenchError(f"burst_len={out.burst_len} must be >= k={out.k} so that every burst "
                                 "reaches the next coarse frame")
        burst_starts(out)  # raises if the bursts do not fit the horizon
        return out

    @property
    def split_counts(self) -> tuple[int, int, int]:
        """(n_train, n_val, n_test)."""
        return _check_splits(self.splits, self.n_samples)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (overrides as a dict)."""
        d = to_jsonable(self)
        d["overrides"] = {n: to_jsonable(v) for n, v in self.overrides}
        return d

    def key(self) -> str:
        """12 hex digits: sha256 of the resolved config, the system's physics and GENERATOR_VERSION."""
        cfg = self.resolved()
        system = cfg.solver()
        payload = {
            "config": cfg.to_dict(), "generator": GENERATOR_VERSION,
            "physics": {"n": list(system.n), "lengths": list(system.lengths), "dt": system.dt,
                        "method": system.method, "params": system.params()},
        }
        blob = json.dumps(to_jsonable(payload), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _freeze(value: Any) -> Any:
    """Lists become tuples so the config stays hashable."""
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def burst_starts(config: DatasetConfig) -> list[int]:
    """Coarse indices where bursts start: `n_bursts` evenly spread over [0, last start], rounded.

    A burst starting at coarse index b covers fine indices b·k .. b·k + burst_len, so the last
    possible start is n_coarse − 1 − ceil(burst_len / k); the first burst starts at t = 0 and the
    last one at that bound, so the micro model sees early and developed dynamics alike.
    """
    last = config.n_coarse - 1 - math.ceil(config.burst_len / config.k)
    if last < 0:
        raise WorkbenchError(f"burst_len={config.burst_len} does not fit n_coarse={config.n_coarse} frames "
                             f"at k={config.k}; use n_coarse >= {math.ceil(config.burst_len / config.k) + 1}")
    if config.n_bursts > last + 1:
        raise WorkbenchError(f"n_bursts={config.n_bursts} bursts do not fit n_coarse={config.n_coarse} "
                             f"(at most {last + 1} distinct starts); lower n_bursts or raise n_coarse")
    if config.n_bursts == 1:
        return [0]
    return [round(i * last / (config.n_bursts - 1)) for i in range(config.n_bursts)]
