"""Data explorer: generate or open burst-sampled datasets and scrub through them in time.

One `DataExplorer` per browser session owns the state (generation settings, the open dataset,
what is shown). Generation and opening run in a worker thread (`TaskRunner`) with a progress bar.
Everything in the main area (plot, equations, dataset table) describes the dataset SHOWN; the
system chosen for generation is previewed in the sidebar until its dataset arrives. A trajectory
gets one frame view (Bokeh curve / image, or a 3D scene) that replaces the previous one, and
playback only swaps that view's data.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, Span
from bokeh.plotting import figure

from core.datasets import DatasetConfig, generate, list_datasets, open_dataset
from core.errors import WorkbenchError
from core.io import cache_dir
from core.physics import PRESETS, SYSTEMS, get_system
from pages._scripts import when_loaded
from pages._widgets import (
    SpaceTime,
    TaskRunner,
    equation_pane,
    info_table,
    int_input,
    notify_error,
    on_session_end,
    stream_view,
    value_range,
)

log = logging.getLogger("workbench.app.data_explorer")

TITLE = "Data explorer"
EXTENSIONS = ("vtk", "katex")

#: grid choices offered in the UI ("preset" keeps the preset's grid); coarser grids are faster
GRID_CHOICES: tuple[str, ...] = ("preset", "16", "24", "32", "48", "64", "96", "128")
VIEWS: tuple[str, ...] = ("coarse", "fine burst")
#: playback rates offered (frames per second); 3D starts at 2
RATES: tuple[int, ...] = (1, 2, 5, 10, 20)


_LISTING: dict[str, tuple[tuple, list]] = {}


def cached_datasets() -> list[dict[str, Any]]:
    """`core.datasets.list_datasets()`, remembered per server while the cache folder's entries stay
    the same (every session's page lists the cache, and listing opens and checks every store: 0.2 s
    for a handful of stores, on every page load)."""
    folder = cache_dir()
    try:
        key = (folder.stat().st_mtime_ns, tuple(sorted(p.name for p in folder.glob("*.zarr"))))
    except OSError:  # no cache folder yet
        return list_datasets()
    if _LISTING.get(str(folder), (None,))[0] != key:
        _LISTING[str(folder)] = (key, list_datasets())
    return _LISTING[str(folder)][1]


class DataExplorer(pn.viewable.Viewer):
    """State and views of the Data explorer page (one instance per browser session)."""

    system = param.Selector(default="grayscott2d", objects=list(SYSTEMS), doc="PDE system")
    preset = param.Selector(default="cpu", objects=list(PRESETS), doc="size preset")
    samples = param.Integer(default=4, bounds=(2, 64), doc="trajectories (at least 1 train + 1 test)")
    seed = param.Integer(default=0, bounds=(0, 2**31 - 1), doc="random seed of the initial conditions")
    grid = param.Selector(default="preset", objects=list(GRID_CHOICES),
                          doc="grid points per dimension (same domain); coarser than the preset is faster")
    frames = param.Integer(default=0, bounds=(0, 5000),
                           doc="coarse frames per trajectory (0 = the preset's; 4 bursts need >= 6)")
    cached = param.Selector(default=None, objects=[], allow_None=True, doc="datasets in the cache")
    sample = param.Selector(default=0, objects=[0], doc="trajectory shown")
    field = param.Selector(default="u", objects=["u"], doc="field shown")
    view = param.Selector(default="coarse", objects=list(VIEWS),
                          doc="coarse frames every Δt, or one fine burst every δt")
    burst = param.Selector(default=0, objects=[0], doc="fine burst shown")
    time_index = param.Integer(default=0, bounds=(0, None), doc="frame shown (coarse index or burst step)")
    rate = param.Selector(default=10, objects=list(RATES), label="playback (frames/s)")
    error = param.String(default="", doc="last error shown to the user")
    shown_system = param.String(default="", doc="system of the dataset shown ('' before any)")

    def __init__(self, **params):
        super().__init__(**params)
        self.ds = None
        self._traj: dict[str, Any] = {}
        self.runner = TaskRunner()
        self.runner.param.watch(lambda e: setattr(self, "error", e.new), "error")
        self.frame_view = None  # the frame view of the trajectory shown
        self.volume = None  # the page's one 3D view (built on first use, then reset)
        self._shown_dims: tuple[str, ...] = ()
        self.spacetime: SpaceTime | None = None
        self._build_panes()
        # the cache listing opens every store: after the page is drawn, not before (a served session)
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            pn.state.onload(self.refresh_cached)
        else:
            self.refresh_cached()
        self._on_system()
        self.param.watch(self._on_system, ["system", "preset"])
        self.param.watch(self._on_selection, ["sample", "field", "view", "burst"])
        self.param.watch(self._on_time, ["time_index"])
        self.param.watch(lambda e: setattr(self.player, "interval", int(1000 / e.new)), "rate")
        on_session_end(self.close)

    @property
    def views(self) -> dict[int, Any]:
        """The frame view on the page, by dimensionality (at most one)."""
        return {} if self.frame_view is None else {len(self._traj["dims"]): self.frame_view}

    # ------------------------------------------------------------------------- settings -> core --
    def config(self) -> DatasetConfig:
        """The dataset config the generation settings describe (raises WorkbenchError if invalid)."""
        overrides: tuple = ()
        if self.grid != "preset":
            ndim = get_system(self.system, self.preset).ndim
            overrides = (("n", (int(self.grid),) * ndim),)
        return DatasetConfig(system=self.system, preset=self.preset, n_samples=self.samples, seed=self.seed,
                             n_coarse=self.frames or None, overrides=overrides)

    def generate(self, *_events) -> bool:
        """Generate (or reuse from the cache) the configured dataset in the background."""
        try:
            config = self.config()
        except WorkbenchError as exc:
            self._fail(str(exc))
            return False
        return self.runner.run(lambda task: generate(config, progress=task), self.show_dataset,
                               label=f"generating {config.system} (the dataset shown stays until ready)")

    def open(self, *_events) -> bool:
        """Open the dataset selected in `cached` in the background."""
        if not self.cached:
            self._fail("no cached dataset selected; generate one first or pick one in the list")
            return False
        path = self.cached
        return self.runner.run(lambda task: open_dataset(path), self.show_dataset, label="opening")

    def refresh_cached(self, *_events) -> None:
        """Re-read the cache folder; newest first, unreadable stores listed (opening one explains why)."""
        options = {}
        for r in reversed(cached_datasets()):
            if r["valid"]:
                grid = "×".join(str(r["sizes"][d]) for d in ("z", "y", "x") if d in r["sizes"])
                label = f"{r['system']}-{r['preset']} · {r['n_samples']} samples · {grid} · {r['key']}"
            else:
                label = f"⚠ unreadable · {Path(r['path']).name}"
            options[label] = r["path"]
        self.param.cached.objects = options  # label -> path: the select shows the labels
        if self.cached not in options.values():
            self.cached = next(iter(options.values()), None)

    def _fail(self, message: str) -> None:
        self.error = message
        notify_error(message)

    # ----------------------------------------------------------------------------- show a dataset --
    def show_dataset(self, ds) -> None:
        """Make `ds` the dataset shown (called on the document's thread); a 3D dataset once the
        browser has vtk.js (loaded on demand: `pages._scripts`)."""
        if "z" in ds.dims:
            when_loaded("vtk", self._show_dataset, ds)
        else:
            self._show_dataset(ds)

    def _show_dataset(self, ds) -> None:
        a = ds.attrs
        self.ds = ds
        fields = list(a["fields"])
        splits = ds["split"].values
        samples = ds["sample"].values.tolist()
        self.param.sample.objects = {f"{s} ({splits[i]})": s for i, s in enumerate(samples)}
        self.param.field.objects = fields
        self.param.burst.objects = ds["burst"].values.tolist()
        self.equation.object = equation_pane(a["latex"]).object
        self.info.object = info_table(dataset_summary(ds))
        self.shown_system = a["system"]
        with param.parameterized.discard_events(self):
            self.param.update(sample=samples[0], field=fields[0], burst=0, time_index=0)
        self.refresh_cached()
        shown = [path for path in self.param.cached.objects if path.endswith(f"-{a['key']}.zarr")]
        if shown:
            self.cached = shown[0]
        self.error = ""
        self._load()

    def _load(self) -> None:
        """Read the shown trajectory (sample, field, coarse or burst) and reset the views to it."""
        ds, a = self.ds, self.ds.attrs
        coarse = np.asarray(ds[self.field].sel(sample=self.sample).values)  # (T, *n)
        fine_all = np.asarray(ds[f"{self.field}_fine"].sel(sample=self.sample).values)  # (B, S, *n)
        clim = value_range(np.concatenate([coarse.ravel(), fine_all.ravel()]))
        if self.view == "coarse":
            frames, times = coarse, ds["time"].values
        else:
            b = self.param.burst.objects.index(self.burst)
            start = float(ds["burst_time"].values[b])
            frames, times = fine_all[b], start + ds["fine_time"].values
        dims = tuple(d for d in ("z", "y", "x") if d in ds[self.field].dims)
        coords = {d: ds[d].values for d in dims}
        self._traj = {"frames": frames, "times": np.asarray(times, dtype=np.float64), "clim": clim,
                      "dims": dims, "system": a["system"]}
        # a 3D frame takes ~0.2 s to contour and send: 3D plays at 2 frames/s unless asked otherwise
        before = len(self._shown_dims) if self._shown_dims else 0
        if len(dims) == 3 and before != 3:
            self.rate = 2
        elif len(dims) < 3 and before == 3:
            self.rate = 10
        self._shown_dims = dims
        self.player.param.update(end=len(frames) - 1, value=0, interval=int(1000 / self.rate))
        with param.parameterized.discard_events(self):
            self.time_index = 0
        self._replace_view(dims, coords, clim, frames[0])
        if len(dims) == 1:
            self.spacetime = SpaceTime(coords["x"], times, frames, clim, label=self.field)
            self.spacetime_area[:] = [self.spacetime]
        else:
            self.spacetime = None
            self.spacetime_area[:] = []
        span = float(ds["fine_time"].values[-1])  # a burst covers burst_len fine steps
        bursts = [(float(t0), float(t0) + span) for t0 in ds["burst_time"].values]
        self.timeline.show(ds["time"].values, bursts, float(times[0]))
        self.hint.visible = False

    def _replace_view(self, dims, coords, clim, frame) -> None:
        """One frame view on the page whatever was shown before: a new 1D / 2D view (with its first
        frame before it enters the page) REPLACES the one shown; 3D reuses the page's single VTK
        view, whose container is hidden while a 1D / 2D field shows (vtk.js breaks on a scene taken
        out of the page)."""
        nd = len(dims)
        if nd == 3:
            if self.volume is None:
                self.volume = stream_view(dims, coords, clim, label=self.field, height=440)
                self.volume.update(frame, self._title(0))
                self.volume_area[:] = [self.volume]
            else:
                self.volume.label = self.field
                self.volume.reset(coords, clim, frame, self._title(0))
            self.frame_view = self.volume
            self.frame_area[:] = []
        else:
            self.frame_view = stream_view(dims, coords, clim, label=self.field, height=440 if nd > 1 else 340)
            self.frame_view.update(frame, self._title(0))
            self.frame_area[:] = [self.frame_view]
        self.volume_area.visible = nd == 3

    def _title(self, i: int) -> str:
        t = self._traj["times"][i]
        n = len(self._traj["frames"])
        where = f"coarse frame {i}/{n - 1}" if self.view == "coarse" else \
            f"burst {self.burst}, δt step {i}/{n - 1}"
        return (f"**{self._traj['system']}** · field **{self.field}** · sample {self.sample} · "
                f"t = {t:.4g} ({where})")

    def _on_selection(self, *_events) -> None:
        if self.ds is None:
            return
        try:
            self._load()
        except WorkbenchError as exc:
            self._fail(str(exc))
        except Exception as exc:  # e.g. the store was deleted while open: one line, traceback to the log
            log.exception("reading the dataset failed")
            self._fail(f"could not read the open dataset ({type(exc).__name__}: {exc}); "
                       "reopen or regenerate it")

    def _on_time(self, *_events) -> None:
        if not self._traj:
            return
        i = min(self.time_index, len(self._traj["frames"]) - 1)
        self.frame_view.update(self._traj["frames"][i], self._title(i))
        self.timeline.mark(self._traj["times"][i])
        if self.spacetime is not None:
            self.spacetime.mark(self._traj["times"][i])

    def _on_system(self, *_events) -> None:
        """Preview the selected system in the sidebar; the main area keeps describing the dataset
        shown (or, before any, the selected system)."""
        try:
            system = get_system(self.system, self.preset)
        except WorkbenchError as exc:
            self._fail(str(exc))
            return
        self.preview.object = equation_pane(system.latex).object
        if self.ds is None:
            self.equation.object = equation_pane(system.latex).object
            self.info.object = info_table(system_summary(system))

    def close(self) -> None:
        """Stop a running job and release VTK windows (the browser tab closed)."""
        self.runner.cancel()
        if self.volume is not None:
            self.volume.close()

    # ------------------------------------------------------------------------------------ layout --
    def _build_panes(self) -> None:
        self.equation = equation_pane("u_t = F(u)")
        self.preview = equation_pane("u_t = F(u)", styles={"font-size": "0.8em"})
        self.info = pn.pane.Markdown("", sizing_mode="stretch_width", styles={"font-size": "0.9em"})
        self.player = pn.widgets.Player(start=0, end=0, value=0, interval=150, loop_policy="once",
                                        show_loop_controls=False, width=420, label="time")
        self.player.link(self, value="time_index")
        self.timeline = BurstTimeline()
        self.hint = pn.pane.Alert("Generate a dataset (sidebar) or open a cached one to see its "
                                  "trajectories.", alert_type="info")
        self.frame_area = pn.Column(sizing_mode="stretch_width")
        self.volume_area = pn.Column(sizing_mode="stretch_width", visible=False)
        self.spacetime_area = pn.Column(sizing_mode="stretch_width")
        self.plot_area = pn.Column(self.hint, self.frame_area, self.volume_area, self.spacetime_area,
                                   sizing_mode="stretch_width", css_classes=["explorer-plot"])
        self._sidebar = self._build_sidebar()

    def _build_sidebar(self) -> pn.Column:
        busy = self.runner.param.busy
        gen = pn.widgets.Button(label="Generate", color="primary", disabled=busy)
        gen.on_click(self.generate)
        cancel = pn.widgets.Button(label="Cancel", width=90, visible=busy)
        cancel.on_click(lambda _e: self.runner.cancel())
        opn = pn.widgets.Button(label="Open", disabled=busy)
        opn.on_click(self.open)
        ref = pn.widgets.Button(label="↻", width=40, description="refresh the list of cached datasets")
        ref.on_click(self.refresh_cached)
        return pn.Column(
            "### Generate",
            pn.widgets.Select.from_param(self.param.system), pn.widgets.Select.from_param(self.param.preset),
            self.preview,
            int_input(self, "samples"), int_input(self, "seed"),
            pn.widgets.Select.from_param(self.param.grid), int_input(self, "frames"),
            pn.Row(gen, cancel), self.runner,
            "### Open",
            pn.Row(pn.widgets.Select.from_param(self.param.cached, label="cached dataset"), ref), opn,
            "### Show",
            pn.widgets.Select.from_param(self.param.sample),
            pn.widgets.RadioButtonGroup.from_param(self.param.field, label="field"),
            pn.widgets.RadioButtonGroup.from_param(self.param.view, label="view"),
            pn.widgets.Select.from_param(self.param.burst, visible=self.param.view.rx() == "fine burst"),
            pn.widgets.Select.from_param(self.param.rate),
            sizing_mode="stretch_width",
        )

    def sidebar(self) -> pn.viewable.Viewable:
        return self._sidebar

    def __panel__(self) -> pn.viewable.Viewable:
        side = pn.Column(pn.Card(self.equation, title="Equations", collapsible=False,
                                 css_classes=["wb-equations"]),
                         pn.Card(self.info, title="Dataset", collapsible=False, css_classes=["wb-dataset"]),
                         width=350)
        body = pn.Column(self.player, self.timeline, self.plot_area, sizing_mode="stretch_width")
        return pn.Row(body, side, sizing_mode="stretch_width")


class BurstTimeline(pn.viewable.Viewer):
    """How the data were sampled: a tick per coarse frame (every Δt), a band per fine burst (frames
    every δt), and a line at the time shown -- burst sampling at a glance."""

    shown = param.Boolean(default=False, doc="a dataset is drawn")

    def __init__(self, **params):
        super().__init__(**params)
        self.ticks = ColumnDataSource({"time": [], "y0": [], "y1": []})
        self.bands = ColumnDataSource({"left": [], "right": []})
        self.fig = figure(height=100, toolbar_location=None, sizing_mode="stretch_width", y_range=(0, 1),
                          x_axis_label="time",
                          title="sampling: coarse frames (ticks, every Δt) · fine bursts (bands, every δt)")
        self.fig.title.text_font_size = "9pt"
        self.fig.yaxis.visible = False
        self.fig.grid.visible = False
        self.fig.quad(left="left", right="right", bottom=0, top=1, source=self.bands, color="#f28e2b",
                      alpha=0.45, line_alpha=0)
        self.fig.segment(x0="time", x1="time", y0="y0", y1="y1", source=self.ticks, color="#1f6f8b",
                         alpha=0.6)
        self.marker = Span(location=0.0, dimension="height", line_color="black", line_width=2)
        self.fig.add_layout(self.marker)

    def show(self, times: np.ndarray, bursts: list[tuple[float, float]], t: float) -> None:
        """Draw a dataset's coarse times and burst intervals; mark time `t`."""
        times = np.asarray(times, dtype=np.float64)
        self.ticks.data = {"time": times, "y0": np.zeros(len(times)), "y1": np.ones(len(times))}
        self.bands.data = {"left": [b[0] for b in bursts], "right": [b[1] for b in bursts]}
        span = (float(times[0]), float(times[-1])) if len(times) else (0.0, 1.0)
        pad = 0.01 * (span[1] - span[0] + 1e-12)
        self.fig.x_range.update(start=span[0] - pad, end=span[1] + pad)
        self.mark(t)
        self.shown = True

    @property
    def data(self) -> tuple[np.ndarray, list[tuple[float, float]]]:
        """(coarse times, burst intervals) drawn."""
        return (np.asarray(self.ticks.data["time"]),
                list(zip(self.bands.data["left"], self.bands.data["right"], strict=True)))

    def mark(self, t: float) -> None:
        self.marker.location = float(t)

    def __panel__(self):
        # `visible` on the Column: on a Bokeh pane it would be pushed into the figure's own properties
        return pn.Column(pn.pane.Bokeh(self.fig, sizing_mode="stretch_width", margin=(0, 10)),
                         visible=self.param.shown, sizing_mode="stretch_width")


def _extent(lengths) -> str:
    return " × ".join(f"{float(v):g}" for v in lengths)


def system_summary(system) -> dict[str, Any]:
    """What the info table shows before a dataset is open: the system's grid, solver and parameters."""
    return {"system": system.name, "grid": tuple(system.n), "domain": _extent(system.lengths),
            "solver": f"{system.method}, dt = {system.dt:g}", "parameters": system.params(),
            "initial conditions": ", ".join(system.ic_kinds)}


def dataset_summary(ds) -> dict[str, Any]:
    """The dataset attrs a user needs to read the plots: time steps, grid, bursts, splits, params."""
    a = ds.attrs
    splits = ds["split"].values.tolist()
    return {
        "system / preset": f"{a['system']} / {a['preset']}",
        "grid": tuple(a["n"]), "domain": _extent(a["lengths"]),
        "solver": f"{a['method']}, dt = {a['dt']:g}",
        "δt (fine)": a["dt_fine"], "k": a["k"], "Δt = k·δt (coarse)": a["dt_coarse"],
        "coarse frames": a["n_coarse"],
        "bursts": f"{a['n_bursts']} × {a['burst_len']} δt steps",
        "samples": f"{len(splits)} ({splits.count('train')} train / {splits.count('val')} val / "
                   f"{splits.count('test')} test)",
        "initial condition / seed": f"{a['ic']} / {a['seed']}",
        "parameters": a["params"], "key": a["key"],
    }


def create() -> DataExplorer:
    """A fresh page object for one browser session."""
    return DataExplorer()
