"""Error accumulation page: per-step error of several models at once, with spread over test samples.

The curves are `core.metrics.evaluate` on the held-out trajectories: mean over test samples (line)
and mean ± std (band), per step j·Δt after the given initial frame; HCT markers (dashed vertical
lines) show when each model's mean correlation first drops below the threshold. Reference
predictors (persistence, mean field; core's `REFERENCES`) are always drawn, dashed grey: a model
above them has learned nothing. When a teaching control changes, the previous curves stay as grey
ghosts, so the effect of the change is seen, not remembered.

Teaching controls recompute (in the page's task, with progress and ETA):
- noise σ on the initial state (relative to each field's spatial std): sensitivity to the IC;
- fewer training trajectories / a longer macro step: learned models are trained now on that data,
  ALWAYS next to the same model trained now on all trajectories with the same budget (the shipped
  checkpoints had another budget, so they would not be a fair comparison);
- the classic-scheme baseline: forward Euler vs RK4 at dt = Δt/m.
Results are cached on disk, keyed by every input (settings, dataset key, checkpoint content hashes),
so the shipped-checkpoint curves appear in well under a second after the first compute.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import Any

import numpy as np
import panel as pn
import param
from bokeh.models import Legend, LegendItem, Span
from bokeh.plotting import figure

from core.errors import WorkbenchError
from core.physics import PRESETS, SYSTEMS
from pages._cache import disk_cached, file_hash
from pages._core import (
    LEARNED,
    REFERENCES,
    SCHEME_SUBSTEPS,
    SCHEMES,
    checkpoint_path,
    load_surrogates,
    reference_dataset_config,
)
from pages._stream_views import GHOST_COLOR, PALETTE, REFERENCE_COLOR, TOOLS, readable_log_axis
from pages._widgets import TaskRunner, int_input, notify_error, on_session_end

TITLE = "Error accumulation"
EXTENSIONS: tuple[str, ...] = ()

#: the compared models, PIMRL's ablations (micro, macro, no message passing) and the schemes
CHOICES: tuple[str, ...] = LEARNED + SCHEMES
METRIC_LABELS = {"rmse": "RMSE", "mae": "MAE", "corr": "correlation", "rel_l2": "relative L2"}
#: "shipped": the checkpoints in data/checkpoints (trained on the checkpoints' full training split)
TRAIN_CHOICES = {"shipped checkpoints": 0, "1 (train now)": 1, "2 (train now)": 2, "all (train now)": -1}
#: noise levels offered: from invisible to dominant, so the effect can be seen growing
NOISE_LEVELS: tuple[float, ...] = (0.0, 0.01, 0.05, 0.2, 0.5)
#: the quick look: fresh trajectories (a seed no checkpoint saw), 4 of them held out for scoring
QUICK_LOOK = {"n_samples": 6, "n_coarse": 41, "splits": (2, 0, 4), "seed": 1000}
#: trained-now models kept per session (oldest dropped first)
MODEL_CACHE_SIZE = 4
REFERENCE_DASH = ("dashed", "dotdash")


def data_config(system: str, preset: str, quick: bool, k_multiple: int) -> Any:
    """The evaluation dataset: the checkpoints' own (or the quick look) with k × k_multiple.

    A longer macro step keeps the physical horizon: n_coarse shrinks by the same factor.
    """
    from core.datasets import preset_defaults

    config = reference_dataset_config(system, preset, **(QUICK_LOOK if quick else {}))
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


class ModelCache:
    """Trained-now models of one session, at most `size` (least recently used dropped)."""

    def __init__(self, size: int = MODEL_CACHE_SIZE):
        self.size, self._items, self.hits = size, OrderedDict(), 0

    def get(self, key, make):
        if key in self._items:
            self._items.move_to_end(key)
            self.hits += 1
            return self._items[key]
        value = make()
        self._items[key] = value
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)


def _models(s: dict[str, Any], ds, progress, cache: ModelCache) -> tuple[dict[str, Any], dict[str, str]]:
    from pages._core import train_model

    learned = [m for m in s["models"] if m not in SCHEMES]
    schemes = [m for m in s["models"] if m in SCHEMES]
    models, problems = load_surrogates(ds, schemes, scheme_substeps=s["substeps"])
    models = {(f"{m} (dt=Δt/{s['substeps']})" if s["substeps"] > 1 else f"{m} (dt=Δt)"): v
              for m, v in models.items()}
    if s["n_train"] == 0 and s["k_multiple"] == 1:  # the shipped checkpoints fit this data
        loaded, problems = load_surrogates(ds, learned)
        models.update(loaded)
    elif learned:  # other data than the checkpoints saw: train small models now, all with one budget
        n_all = int((ds["split"].values == "train").sum())
        sizes = sorted({s["n_train"] if s["n_train"] > 0 else n_all, n_all})
        jobs = [(name, n) for name in learned for n in sizes]
        for i, (name, n) in enumerate(jobs):
            def sub_progress(done, total, msg, _i=i, _n=name, _k=n):
                progress(_i * total + done, len(jobs) * total, f"training {_n} on {_k} traj.: {msg}")
            key = (ds.attrs["key"], name, n, s["iterations"], s["seed"])

            def make(_n=name, _k=n, _p=sub_progress):
                return train_model(_n, train_subset(ds, _k), s["iterations"], s["seed"], _p)

            models[f"{name} ({n} traj., {s['iterations']} its)"] = cache.get(key, make)
    if REFERENCES:
        models.update(load_surrogates(ds, list(REFERENCES))[0])
    return models, problems


def compute(settings: dict[str, Any], progress, cache: ModelCache) -> dict[str, Any]:
    """Off the UI thread: data, models (loaded or trained now), metrics over the test split --
    read from the disk cache when these exact inputs were computed before."""
    from core.datasets import generate
    from core.metrics import evaluate

    s = settings
    ds = generate(data_config(s["system"], s["preset"], s["quick"], s["k_multiple"]), progress=progress)
    shipped = s["n_train"] == 0 and s["k_multiple"] == 1
    hashes = {m: file_hash(checkpoint_path(s["system"], m)) for m in s["models"] if m in LEARNED and shipped}
    inputs = {"settings": s, "dataset": ds.attrs["key"], "checkpoints": hashes,
              "references": list(REFERENCES), "training_code": "" if shipped else training_fingerprint()}
    problems: dict[str, str] = {}

    def run():
        models, found = _models(s, ds, progress, cache)
        problems.update(found)
        if not models:
            raise WorkbenchError("none of the chosen models could be loaded: "
                                 + "; ".join(f"{k}: {v}" for k, v in found.items()))
        return evaluate(models, ds, "test", progress=progress, ic_noise=s["noise"], seed=s["seed"])

    missing = [m for m, h in hashes.items() if not h]
    if missing:  # nothing to cache for a missing checkpoint: say so every time
        metrics, cached = run(), False
    else:
        metrics, cached = disk_cached("error-metrics", inputs, run)
    return {"metrics": metrics, "problems": problems, "dt": float(ds.attrs["dt_coarse"]),
            "k": int(ds.attrs["k"]), "n_test": int(metrics.sizes["sample"]), "cached": cached,
            "label": describe(s)}


def training_fingerprint() -> str:
    """Content hash of core's training loop: models trained now change when it changes."""
    import core.training.loop

    return file_hash(core.training.loop.__file__)


def describe(s: dict[str, Any]) -> str:
    """The teaching controls of a result, in words (the ghost curves' legend)."""
    parts = [f"σ={s['noise']:g}"]
    if s["n_train"]:
        parts.append(f"{'all' if s['n_train'] < 0 else s['n_train']} traj.")
    if s["k_multiple"] > 1:
        parts.append(f"k×{s['k_multiple']}")
    if s["substeps"] > 1:
        parts.append(f"dt=Δt/{s['substeps']}")
    return ", ".join(parts)


class ErrorAccumulationPage(pn.viewable.Viewer):
    """Per-session state of the error-accumulation page."""

    system = param.Selector(default="burgers2d", objects=list(SYSTEMS))
    preset = param.Selector(default="cpu", objects=list(PRESETS))
    quick = param.Boolean(default=False, label="quick look (4 fresh test trajectories)")
    models = param.ListSelector(default=["pimrl", "percnn", "convlstm", "fno"], objects=list(CHOICES))
    metric = param.Selector(default="rmse", objects=list(METRIC_LABELS))
    log_y = param.Boolean(default=True, label="log scale")
    threshold = param.Number(default=0.8, bounds=(0.05, 0.99), step=0.05, label="HCT threshold")
    noise = param.Selector(default=0.0, objects=list(NOISE_LEVELS), label="noise σ on the initial state")
    n_train = param.Selector(default="shipped checkpoints", objects=list(TRAIN_CHOICES),
                             label="training trajectories")
    k_multiple = param.Integer(default=1, bounds=(1, 4), label="macro step multiple (k × m)")
    substeps = param.Selector(default=1, objects=list(SCHEME_SUBSTEPS),
                              label="Euler/RK4 sub-steps per frame (dt = Δt/m)")
    # measured on burgers2d's quick look (2 training trajectories, loaded 2-core machine): PIMRL
    # 20 its 5 s, 60 its 36 s; FNO 20-150 its 1.8-3 min; test RMSE 0.085-0.106 at 20-150 its, all
    # next to persistence (0.093). Beyond 300 a class waits many minutes per model for no visible
    # change; below 10 a model has not moved from its initialisation.
    iterations = param.Integer(default=60, bounds=(10, 300), label="on-the-fly training iterations")
    seed = param.Integer(default=0, bounds=(0, 2**31 - 1))
    ghosts = param.Boolean(default=True, label="keep the previous curves (grey)")
    result = param.Parameter(default=None, precedence=-1)
    previous = param.Parameter(default=None, precedence=-1, doc="the result before the last compute")

    def __init__(self, **params):
        super().__init__(**params)
        self.runner = TaskRunner()
        self._cache = ModelCache()
        self.compute_button = pn.widgets.Button(label="Compute", color="primary",
                                                disabled=self.runner.param.busy)
        self.compute_button.on_click(lambda _e: self.compute())
        self.cancel_button = pn.widgets.Button(label="Cancel", width=90, visible=self.runner.param.busy)
        self.cancel_button.on_click(lambda _e: self.runner.cancel())
        self._plot = pn.pane.Bokeh(None, sizing_mode="stretch_width", height=480,
                                   css_classes=["wb-error-plot"])
        self._table = pn.pane.Markdown("Press **Compute** to roll every model out over the test split.")
        self.param.watch(self._redraw, ["result", "metric", "log_y", "threshold", "ghosts"])
        on_session_end(self.runner.cancel)

    def sidebar(self) -> pn.viewable.Viewable:
        if getattr(self, "_sidebar", None) is None:
            self._sidebar = self._build_sidebar()
        return self._sidebar

    def _build_sidebar(self) -> pn.viewable.Viewable:
        w = pn.widgets
        return pn.Column(
            "### Error accumulation",
            w.Select.from_param(self.param.system), w.Select.from_param(self.param.preset),
            w.Checkbox.from_param(self.param.quick),
            "**models** (references, dashed grey, are always drawn)",
            w.CheckBoxGroup.from_param(self.param.models, inline=False),
            "**teaching controls** (recompute)",
            w.Select.from_param(self.param.noise), w.Select.from_param(self.param.n_train),
            w.IntSlider.from_param(self.param.k_multiple), w.Select.from_param(self.param.substeps),
            int_input(self, "iterations"), int_input(self, "seed"),
            pn.Row(self.compute_button, self.cancel_button), self.runner, sizing_mode="stretch_width")

    def __panel__(self) -> pn.viewable.Viewable:
        w = pn.widgets
        controls = pn.Row(w.RadioButtonGroup.from_param(self.param.metric, width=320),
                          w.Checkbox.from_param(self.param.log_y, width=100),
                          w.Checkbox.from_param(self.param.ghosts, width=250),
                          w.FloatSlider.from_param(self.param.threshold, width=200))
        return pn.Column(controls, self._plot, self._table, sizing_mode="stretch_width")

    def settings(self) -> dict[str, Any]:
        return {"system": self.system, "preset": self.preset, "quick": self.quick,
                "models": list(self.models), "noise": float(self.noise),
                "n_train": TRAIN_CHOICES[self.n_train], "k_multiple": self.k_multiple,
                "substeps": self.substeps, "iterations": self.iterations, "seed": self.seed}

    def compute(self) -> bool:
        """Recompute the metrics off the UI thread (returns False if a job is already running)."""
        if not self.models:
            notify_error("choose at least one model")
            return False
        settings = self.settings()
        return self.runner.run(lambda task: compute(settings, task, self._cache), self._done,
                               label="computing")

    def _done(self, result: dict[str, Any]) -> None:
        for name, reason in result["problems"].items():
            notify_error(f"{name}: {reason}")
        if self.result is not None:
            self.previous = self.result
        self.result = result

    # --------------------------------------------------------------------------------- plotting --
    def _redraw(self, *_events) -> None:
        if self.result is None:
            return
        ghost = self.previous if self.ghosts else None
        self._plot.object = error_plot(self.result["metrics"], self.metric, self.log_y, self.threshold,
                                       ghost=ghost and ghost["metrics"], ghost_label=ghost and ghost["label"])
        self._table.object = summary_markdown(self.result, self.threshold)


def error_plot(m, metric: str, log_y: bool, threshold: float, *, ghost=None, ghost_label: str | None = None):
    """A Bokeh figure: mean (line) and mean ± std (band) over test samples per model, references
    dashed grey, the previous result's means as grey ghosts, HCT of the mean correlation as a dashed
    vertical line per model; the legend outside the data, plain log tick labels."""
    from core.metrics import band, hct

    log_y = log_y and metric != "corr"
    label = METRIC_LABELS[metric]
    n = m.sizes["sample"]
    fig = figure(height=460, sizing_mode="stretch_width", y_axis_type="log" if log_y else "linear",
                 tools=TOOLS, x_axis_label="time", y_axis_label=label,
                 # short enough for a half-width plot; the legend names references and ghosts
                 title=f"{label} per step over {n} test trajector{'y' if n == 1 else 'ies'} "
                       "(band: ± std; dashed vertical: HCT)")
    if log_y:
        readable_log_axis(fig.yaxis[0])
    items = []
    t = m["time"].values
    if ghost is not None and metric in ghost:
        for name in ghost["model"].values:
            mean = ghost[metric].sel(model=name).mean("sample").values
            r = fig.line(ghost["time"].values, _positive(mean, log_y), color=GHOST_COLOR, line_width=2)
            items.append(LegendItem(label=f"before ({ghost_label}): {name}", renderers=[r]))
    refs = [str(x) for x in m["model"].values if str(x) in REFERENCES]
    colors = iter(PALETTE * 4)
    for name in [str(x) for x in m["model"].values]:
        b = band(m[metric].sel(model=name))
        mean, std = b["mean"].values, b["std"].values
        if name in refs:
            r = fig.line(t, _positive(mean, log_y), color=REFERENCE_COLOR, line_width=2,
                         line_dash=REFERENCE_DASH[refs.index(name) % 2])
            items.append(LegendItem(label=f"{name} (reference)", renderers=[r]))
            continue
        color = next(colors)
        lo = np.where(mean - std > 0, mean - std, mean / 10) if log_y else mean - std
        a = fig.varea(x=t, y1=_positive(lo, log_y), y2=_positive(mean + std, log_y), color=color, alpha=0.2)
        r = fig.line(t, _positive(mean, log_y), color=color, line_width=2.5)
        items.append(LegendItem(label=name, renderers=[r, a]))
        h = float(hct(m["corr"].sel(model=name).mean("sample"), threshold))
        if h < t[-1]:
            fig.add_layout(Span(location=h, dimension="height", line_color=color, line_dash="dashed",
                                line_width=1.5))
    if metric == "corr":
        fig.add_layout(Span(location=threshold, dimension="width", line_color="#888888", line_dash="dotted"))
    fig.add_layout(Legend(items=items, click_policy="hide", label_text_font_size="9pt"), "right")
    return fig


def _positive(values: np.ndarray, log_y: bool) -> np.ndarray:
    """Non-positive values have no place on a log axis: NaN (a gap), never a fake value."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(values > 0, values, np.nan) if log_y else values


def summary_markdown(result: dict[str, Any], threshold: float) -> str:
    """The per-model summary table (core.metrics.summarize) as markdown."""
    from core.io import markdown_table
    from core.metrics import hct, summarize

    m = result["metrics"].drop_vars("hct")
    m["hct"] = hct(m["corr"], threshold)
    table = summarize(m, threshold)
    diverged = result["metrics"]["diverged_step"]
    rows = []
    for name, r in table.iterrows():
        steps = diverged.sel(model=name).values
        bad = steps[steps > 0]
        where = "never" if bad.size == 0 else (f"step {int(bad.min())} ({bad.size} of {steps.size} "
                                                "trajectories)")
        rows.append([name, f"{r.rmse:.4g} ± {r.rmse_std:.2g}", f"{r.mae:.4g} ± {r.mae_std:.2g}",
                     f"{r.hct:.4g} ± {r.hct_std:.2g}", where])
    src = " · read from the disk cache" if result.get("cached") else ""
    head = (f"Δt = {result['dt']:.4g} (k = {result['k']}), horizon {table['horizon'].iloc[0]:.4g}, "
            f"{result['n_test']} test trajectories{src}; rollout RMSE = sqrt(mean over steps and grid of the "
            f"squared error), HCT at correlation {threshold:g}; 'diverged' = first non-finite step\n\n")
    return head + markdown_table(["model", "RMSE", "MAE", "HCT", "diverged"], rows)


def create() -> ErrorAccumulationPage:
    return ErrorAccumulationPage()
