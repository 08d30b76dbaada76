"""Error accumulation page: per-step error of several models at once, with spread over test samples.

The curves are `core.metrics.evaluate` on the held-out trajectories: mean over test samples (line)
and mean ± std (band), per step j·Δt after the given initial frame; HCT markers (dashed vertical
lines) show when each model's mean correlation first drops below the threshold.

Teaching controls recompute (off the UI thread, with a progress bar):
- noise σ on the initial state (relative to each field's spatial std): sensitivity to the IC;
- fewer training trajectories / a longer macro step (k multiple): the learned models are trained
  on the fly on that data with a small iteration budget (the shipped checkpoints were trained on the
  default data, so they cannot answer these questions);
- the classic-scheme baseline: forward Euler vs RK4 at dt = Δt/m, showing that error accumulation
  is not special to neural surrogates.
Metric, log scale and HCT threshold only redraw.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import holoviews as hv
import numpy as np
import panel as pn
import param

from core.baselines.numerical import SCHEMES
from core.errors import WorkbenchError
from core.physics import PRESETS, SYSTEMS
from core.pimrl import MODELS
from pages._widgets import TaskRunner, notify_error

TITLE = "Error accumulation"
EXTENSIONS: tuple[str, ...] = ()

CHOICES: tuple[str, ...] = MODELS + SCHEMES
METRIC_LABELS = {"rmse": "RMSE", "mae": "MAE", "corr": "correlation", "rel_l2": "relative L2"}
PALETTE = ("#1f6f8b", "#d1495b", "#edae49", "#66a182", "#8d6a9f", "#2e4057")
#: "shipped": the checkpoints in data/checkpoints (trained on the checkpoints' full training split)
TRAIN_CHOICES = {"shipped checkpoints": 0, "1 (train now)": 1, "2 (train now)": 2, "all (train now)": -1}


def data_config(system: str, preset: str, quick: bool, k_multiple: int) -> Any:
    """The evaluation dataset: the checkpoints' own (or a quick 3-trajectory one) with k × k_multiple.

    A longer macro step keeps the physical horizon: n_coarse shrinks by the same factor.
    """
    from core.datasets import preset_defaults
    from core.rollout import reference_dataset_config

    quick_look = {"n_samples": 4, "n_coarse": 41, "splits": (2, 0, 2), "seed": 1000}
    changes: dict[str, Any] = quick_look if quick else {}
    config = reference_dataset_config(system, preset, **changes)
    if k_multiple > 1:
        d = preset_defaults(system, preset)
        k = (config.k or d["k"]) * k_multiple
        n_coarse = max(6, ((config.n_coarse or d["n_coarse"]) - 1) // k_multiple + 1)
        config = dataclasses.replace(config, k=k, n_coarse=n_coarse, burst_len=None)
    return config


def train_subset(ds, n_train: int):
    """`ds` keeping only its first `n_train` training trajectories (val and test untouched)."""
    split = ds["split"].values
    train_idx = np.flatnonzero(split == "train")
    if n_train > len(train_idx):
        raise WorkbenchError(f"{n_train} training trajectories requested but the dataset has "
                             f"{len(train_idx)}; choose at most {len(train_idx)}")
    keep = np.concatenate([train_idx[:n_train], np.flatnonzero(split != "train")])
    return ds.isel(sample=np.sort(keep))


def compute(settings: dict[str, Any], progress, cache: dict) -> dict[str, Any]:
    """Off the UI thread: data, models (loaded or trained on the fly), metrics over the test split."""
    import torch

    from core.datasets import generate
    from core.metrics import evaluate
    from core.pimrl import TrainConfig, train
    from core.rollout import load_surrogates

    s = settings
    ds = generate(data_config(s["system"], s["preset"], s["quick"], s["k_multiple"]), progress=progress)
    learned = [m for m in s["models"] if m not in SCHEMES]
    schemes = [m for m in s["models"] if m in SCHEMES]
    models, problems = load_surrogates(ds, schemes, scheme_substeps=s["substeps"])
    models = {(f"{m} (dt=Δt/{s['substeps']})" if s["substeps"] > 1 else f"{m} (dt=Δt)"): v
              for m, v in models.items()}
    if s["n_train"] == 0 and s["k_multiple"] == 1:  # the shipped checkpoints fit this data
        loaded, problems = load_surrogates(ds, learned)
        models.update(loaded)
    elif learned:  # other data than the checkpoints saw: train small models now (cached per session)
        n_train = s["n_train"] if s["n_train"] > 0 else int((ds["split"].values == "train").sum())
        sub = train_subset(ds, n_train)
        its = s["iterations"]
        config = TrainConfig(iterations=its, pretrain_iterations=max(1, its // 3), rollout=4, rollout_start=2,
                             lr_step=max(1, its // 2), seed=s["seed"])
        torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
        for i, name in enumerate(learned):
            key = (ds.attrs["key"], name, n_train, config)
            if key not in cache:
                def sub_progress(done, total, msg, _i=i, _n=name):
                    progress(_i * total + done, len(learned) * total, f"training {_n}: {msg}")
                cache[key] = train(name, sub, config, progress=sub_progress).model
            models[f"{name} ({n_train} traj.)"] = cache[key]
    if not models:
        raise WorkbenchError("none of the chosen models could be loaded: "
                             + "; ".join(f"{k}: {v}" for k, v in problems.items()))
    metrics = evaluate(models, ds, "test", progress=progress, ic_noise=s["noise"], seed=s["seed"])
    return {"metrics": metrics, "problems": problems, "dt": float(ds.attrs["dt_coarse"]),
            "k": int(ds.attrs["k"]), "n_test": int(metrics.sizes["sample"])}


class ErrorAccumulationPage(pn.viewable.Viewer):
    """Per-session state of the error-accumulation page."""

    system = param.Selector(default="burgers2d", objects=list(SYSTEMS))
    preset = param.Selector(default="cpu", objects=list(PRESETS))
    quick = param.Boolean(default=False, label="quick look (4 fresh short trajectories)")
    models = param.ListSelector(default=["pimrl", "percnn", "convlstm", "fno"], objects=list(CHOICES))
    metric = param.Selector(default="rmse", objects=list(METRIC_LABELS))
    log_y = param.Boolean(default=True, label="log scale")
    threshold = param.Number(default=0.8, bounds=(0.05, 0.99), step=0.05, label="HCT threshold")
    noise = param.Number(default=0.0, bounds=(0.0, 1.0), step=0.01, label="noise σ on the initial state")
    n_train = param.Selector(default="shipped checkpoints", objects=list(TRAIN_CHOICES),
                             label="training trajectories")
    k_multiple = param.Integer(default=1, bounds=(1, 4), label="macro step multiple (k × m)")
    substeps = param.Integer(default=1, bounds=(1, 100), label="Euler/RK4 sub-steps per frame (dt = Δt/m)")
    iterations = param.Integer(default=60, bounds=(10, 2000), label="on-the-fly training iterations")
    seed = param.Integer(default=0, bounds=(0, None))
    result = param.Parameter(default=None, precedence=-1)

    def __init__(self, **params):
        super().__init__(**params)
        self.runner = TaskRunner()
        self._cache: dict = {}
        self.compute_button = pn.widgets.Button(label="Compute", color="primary",
                                                disabled=self.runner.param.busy)
        self.compute_button.on_click(lambda _e: self.compute())
        self._plot = pn.pane.HoloViews(None, sizing_mode="stretch_width", height=480)
        self._table = pn.pane.Markdown("Press **Compute** to roll every model out over the test split.")
        self.param.watch(self._redraw, ["result", "metric", "log_y", "threshold"])

    def sidebar(self) -> pn.viewable.Viewable:
        w = pn.widgets
        return pn.Column(
            "### Error accumulation",
            w.Select.from_param(self.param.system), w.Select.from_param(self.param.preset),
            w.Checkbox.from_param(self.param.quick),
            "**models**", w.CheckBoxGroup.from_param(self.param.models, inline=False),
            "**teaching controls** (recompute)",
            w.FloatSlider.from_param(self.param.noise), w.Select.from_param(self.param.n_train),
            w.IntSlider.from_param(self.param.k_multiple), w.IntInput.from_param(self.param.substeps),
            w.IntInput.from_param(self.param.iterations), w.IntInput.from_param(self.param.seed),
            self.compute_button, self.runner, sizing_mode="stretch_width")

    def __panel__(self) -> pn.viewable.Viewable:
        w = pn.widgets
        controls = pn.Row(w.RadioButtonGroup.from_param(self.param.metric, width=320),
                          w.Checkbox.from_param(self.param.log_y, width=110),
                          w.FloatSlider.from_param(self.param.threshold, width=220))
        return pn.Column(controls, self._plot, self._table, sizing_mode="stretch_width")

    def settings(self) -> dict[str, Any]:
        return {"system": self.system, "preset": self.preset, "quick": self.quick,
                "models": list(self.models), "noise": self.noise, "n_train": TRAIN_CHOICES[self.n_train],
                "k_multiple": self.k_multiple,
                "substeps": self.substeps, "iterations": self.iterations, "seed": self.seed}

    def compute(self) -> bool:
        """Recompute the metrics off the UI thread (returns False if a job is already running)."""
        if not self.models:
            notify_error("choose at least one model")
            return False
        settings = self.settings()
        return self.runner.run(lambda progress: compute(settings, progress, self._cache), self._done,
                               label="computing")

    def _done(self, result: dict[str, Any]) -> None:
        for name, reason in result["problems"].items():
            notify_error(f"{name}: {reason}")
        self.result = result

    # --------------------------------------------------------------------------------- plotting --
    def _redraw(self, *_events) -> None:
        if self.result is None:
            return
        self._plot.object = error_plot(self.result["metrics"], self.metric, self.log_y, self.threshold)
        self._table.object = summary_markdown(self.result, self.threshold)


def error_plot(m, metric: str, log_y: bool, threshold: float) -> hv.Overlay:
    """Mean (line) and mean ± std (band) over test samples per model; HCT of the mean correlation
    as a dashed vertical line per model."""
    from core.metrics import band, hct

    layers = []
    t = m["time"].values
    log_y = log_y and metric != "corr"
    for i, name in enumerate(m["model"].values):
        color = PALETTE[i % len(PALETTE)]
        b = band(m[metric].sel(model=name))
        mean, std = b["mean"].values, b["std"].values
        label = METRIC_LABELS[metric]
        if log_y:  # a log axis cannot show the band's non-positive lower edge
            lo = np.where(mean - std > 0, mean - std, mean / 10)
            band_el = hv.Area((t, lo, mean + std), kdims=["time"], vdims=[label, f"{label} (upper)"])
        else:
            band_el = hv.Spread((t, mean, std), kdims=["time"], vdims=[label, f"{label} (std)"])
        layers.append(band_el.opts(color=color, alpha=0.2, line_alpha=0))
        layers.append(hv.Curve((t, mean), "time", label, label=str(name)).opts(color=color, line_width=2.5))
        h = float(hct(m["corr"].sel(model=name).mean("sample"), threshold))
        if h < t[-1]:
            layers.append(hv.VLine(h).opts(color=color, line_dash="dashed", line_width=1.5))
    if metric == "corr":
        layers.append(hv.HLine(threshold).opts(color="#888888", line_dash="dotted"))
    title = (f"{METRIC_LABELS[metric]} per step over {m.sizes['sample']} test trajectories "
             "(band: mean ± std; dashed: HCT)")
    # explicit axis labels: an Overlay otherwise takes them from its first layer (the band)
    return hv.Overlay(layers).opts(hv.opts.Overlay(responsive=True, height=460, logy=log_y, show_grid=True,
                                                   legend_position="top_left", title=title,
                                                   xlabel="time", ylabel=METRIC_LABELS[metric]))


def summary_markdown(result: dict[str, Any], threshold: float) -> str:
    """The per-model summary table (core.metrics.summarize) as markdown."""
    from core.io import markdown_table
    from core.metrics import hct, summarize

    m = result["metrics"].drop_vars("hct")
    m["hct"] = hct(m["corr"], threshold)
    table = summarize(m, threshold)
    diverged = result["metrics"]["diverged_step"].max("sample")
    rows = [[name, f"{r.rmse:.4g} ± {r.rmse_std:.2g}", f"{r.mae:.4g} ± {r.mae_std:.2g}",
             f"{r.hct:.4g} ± {r.hct_std:.2g}", int(diverged.sel(model=name))] for name, r in table.iterrows()]
    head = (f"Δt = {result['dt']:.4g} (k = {result['k']}), horizon {table['horizon'].iloc[0]:.4g}, "
            f"{result['n_test']} test trajectories; rollout RMSE = sqrt(mean over steps and grid of the "
            f"squared error), HCT at correlation {threshold:g}; 'diverged at' = first non-finite step "
            "(latest over samples; 0: never)\n\n")
    return head + markdown_table(["model", "RMSE", "MAE", "HCT", "diverged at"], rows)


def create() -> ErrorAccumulationPage:
    return ErrorAccumulationPage()
