"""Rollout page: watch surrogates and classic schemes roll out against the truth, live.

Pick a system and models (the shipped checkpoints of PIMRL and its baselines, and the forward-Euler /
RK4 schemes stepping the reference physics), press Start: truth | prediction | |error| appear side by
side and update as the rollout runs in a worker thread, with a running RMSE curve per model. Pause /
Stop at any time; once stopped or done a time scrubber replays every computed frame.

Threading: one worker thread per browser session runs `core.rollout.rollout` for every model in
lock-step. After each step it hands the frame to the document's thread (`call_on_doc`, i.e.
`doc.add_next_tick_callback`) and waits until that update ran before computing the next one
(back-pressure), so every step is shown, the UI never queues stale frames and the delivered frame
rate is measured honestly (`fps`). Views are built once per run and updated in place (Bokeh data
sources in 1D/2D via `_stream_views`, VTK synchronize in 3D). Closing the tab stops the worker.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
import panel as pn
import param

from core.baselines.numerical import SCHEMES
from core.errors import WorkbenchError
from core.physics import PRESETS, SYSTEMS
from core.pimrl import MODELS
from pages._stream_views import StreamLines, stream_view
from pages._widgets import (
    TaskRunner,
    call_on_doc,
    equation_pane,
    notify_error,
    notify_info,
    on_session_end,
    value_range,
)

log = logging.getLogger("workbench.app.rollout")

TITLE = "Rollout"
EXTENSIONS = ("vtk", "katex")

CHOICES: tuple[str, ...] = MODELS + SCHEMES
SIZES: tuple[str, ...] = ("full test split", "quick look")
#: the quick look: 3 fresh trajectories (a seed no checkpoint was trained on) of 40 steps on the same grid
QUICK = {"n_samples": 3, "n_coarse": 41, "splits": (1, 1, 1), "seed": 1000}
PALETTE = ("#1f6f8b", "#d1495b", "#edae49", "#66a182", "#8d6a9f", "#2e4057")


def dataset_config(system: str, preset: str, size: str) -> Any:
    """The dataset the page rolls out on: the checkpoints' own one (its held-out test split), or a
    quick look at 3 fresh, short trajectories on the same grid (so the checkpoints still fit)."""
    from core.rollout import reference_dataset_config

    if size == SIZES[0]:
        return reference_dataset_config(system, preset)
    return reference_dataset_config(system, preset, **QUICK)


def prepare(system: str, preset: str, size: str, names: list[str], substeps: int, sample: int,
            progress) -> dict[str, Any]:
    """Off the UI thread: generate/open the data, pick the test trajectory, load the models."""
    from core.datasets import generate, trajectories
    from core.rollout import load_surrogates

    ds = generate(dataset_config(system, preset, size), progress=progress)
    traj = trajectories(ds, "test").numpy()  # (S, T, C, *n)
    if not 0 <= sample < traj.shape[0]:
        raise WorkbenchError(f"test trajectory {sample} does not exist; choose 0..{traj.shape[0] - 1}")
    progress(0, 1, "loading models")
    models, problems = load_surrogates(ds, names, scheme_substeps=substeps)
    dims = tuple(d for d in ("z", "y", "x") if d in ds.dims)
    return {"traj": traj[sample], "models": models, "problems": problems, "dims": dims,
            "coords": {d: ds[d].values for d in dims}, "fields": list(ds.attrs["fields"]),
            "dt": float(ds.attrs["dt_coarse"]), "latex": str(ds.attrs.get("latex", "")),
            "key": ds.attrs["key"]}


class RolloutPage(pn.viewable.Viewer):
    """Per-session state of the Rollout page (one instance per browser session)."""

    system = param.Selector(default="burgers2d", objects=list(SYSTEMS))
    preset = param.Selector(default="cpu", objects=list(PRESETS))
    size = param.Selector(default=SIZES[0], objects=list(SIZES), label="data")
    models = param.ListSelector(default=["pimrl", "percnn", "rk4"], objects=list(CHOICES))
    sample = param.Integer(default=0, bounds=(0, None), label="test trajectory")
    n_steps = param.Integer(default=100, bounds=(1, 5000), label="steps")
    substeps = param.Integer(default=1, bounds=(1, 200), label="scheme sub-steps per frame (dt = Δt/m)")
    teacher_forcing = param.Boolean(default=False, label="teacher forcing (restart from truth each step)")
    field = param.Selector(default="u", objects=["u"])
    error_range = param.Selector(default=0.1, objects=[0.01, 0.1, 0.5],
                                 label="|error| colour range (fraction of the field's range)")
    state = param.Selector(default="idle",
                           objects=["idle", "preparing", "running", "paused", "done", "stopped"])
    step = param.Integer(default=0, bounds=(0, None), label="shown step")
    n_done = param.Integer(default=0)
    fps = param.Number(default=0.0, doc="frames delivered to the document per second in the last run")
    message = param.String(default="")
    now = param.String(default="", doc="time of the shown frame")

    def __init__(self, **params):
        super().__init__(**params)
        self.runner = TaskRunner()
        self.progress = pn.indicators.Progress(value=0, max=1, sizing_mode="stretch_width", height=16,
                                               bar_color="success")
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._shown = threading.Event()
        self._thread: threading.Thread | None = None
        self._latest = 0  # last step computed and shown
        self._shown_step = 0
        self._t0: float | None = None
        self._first = 0
        self._doc = None
        self._data: dict[str, Any] | None = None
        self._views: dict[str, Any] = {}
        self._lines: StreamLines | None = None
        self._sent: dict[str, int] = {}
        self._area = pn.Column(pn.pane.Markdown("Choose a system and models, then press **Start**."),
                               sizing_mode="stretch_width")
        self._equation = pn.Column(sizing_mode="stretch_width")
        self._buttons()
        self._layout = pn.Column(
            self._equation, pn.pane.Markdown(self.param.now, styles={"font-size": "1.1em"}),
            pn.Row(pn.widgets.RadioButtonGroup.from_param(self.param.field, width=160),
                   pn.widgets.Select.from_param(self.param.error_range, width=150, name="|error| range"),
                   self.scrubber,
                   pn.pane.Markdown(self.param.fps.rx().rx.pipe(lambda f: f"{f:.1f} frames/s" if f else ""),
                                    width=140)),
            self._area, sizing_mode="stretch_width")
        self.runner.param.watch(self._on_runner, "busy")
        on_session_end(self.stop)
        self.param.watch(self._on_step, "step")
        self.param.watch(self._on_field, ["field", "error_range"])

    # ------------------------------------------------------------------------------- controls --
    def _buttons(self) -> None:
        busy = self.param.state.rx().rx.in_(["preparing", "running", "paused"])
        self.start_button = pn.widgets.Button(label="Start", color="primary", disabled=busy)
        self.pause_button = pn.widgets.Button(label=self.param.state.rx().rx.pipe(
            lambda s: "Resume" if s == "paused" else "Pause"), disabled=busy.rx.not_())
        self.stop_button = pn.widgets.Button(label="Stop", color="danger", disabled=busy.rx.not_())
        self.start_button.on_click(lambda _e: self.start())
        self.pause_button.on_click(lambda _e: self.toggle_pause())
        self.stop_button.on_click(lambda _e: self.stop())
        self.scrubber = pn.widgets.IntSlider.from_param(
            self.param.step, start=1, end=self.param.n_done.rx().rx.pipe(lambda n: max(n, 2)),
            visible=(self.param.state.rx().rx.in_(["done", "stopped", "paused"])
                     & (self.param.n_done.rx() > 0)),
            sizing_mode="stretch_width")

    def sidebar(self) -> pn.viewable.Viewable:
        w = pn.widgets
        return pn.Column(
            "### Rollout",
            w.Select.from_param(self.param.system), w.Select.from_param(self.param.preset),
            w.RadioButtonGroup.from_param(self.param.size),
            "**models** (checkpoints in data/checkpoints; schemes step the reference physics)",
            w.CheckBoxGroup.from_param(self.param.models, inline=False),
            w.IntInput.from_param(self.param.sample), w.IntInput.from_param(self.param.n_steps),
            w.IntInput.from_param(self.param.substeps), w.Checkbox.from_param(self.param.teacher_forcing),
            pn.Row(self.start_button, self.pause_button, self.stop_button),
            self.runner, self.progress,
            pn.pane.Markdown(self.param.message, styles={"font-size": "0.9em"}),
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    # -------------------------------------------------------------------------------- actions --
    def start(self) -> None:
        """Prepare data and models off the UI thread, then stream the rollout."""
        if self.state in ("preparing", "running", "paused"):
            notify_info("a rollout is already running; stop it first")
            return
        if not self.models:
            notify_error("choose at least one model")
            return
        self._doc = pn.state.curdoc
        self._latest = 0
        self.param.update(state="preparing", message="preparing data and models…", n_done=0, fps=0.0)
        args = (self.system, self.preset, self.size, list(self.models), self.substeps, self.sample)
        if not self.runner.run(lambda progress: prepare(*args, progress), self._begin, label="preparing"):
            self.state = "idle"

    def _on_runner(self, event) -> None:
        # preparation failed or was cancelled: the runner has shown the error; become startable again
        if not event.new and self.state == "preparing":
            self.param.update(state="idle", message=self.runner.message)

    def toggle_pause(self) -> None:
        if self.state == "running":
            self._resume.clear()
            self.param.update(state="paused", n_done=self._latest, step=self._latest)
        elif self.state == "paused":
            self.state = "running"
            self._resume.set()

    def stop(self) -> None:
        """Stop the worker (also called when the browser session closes)."""
        self._stop.set()
        self._resume.set()
        self._shown.set()
        self.runner.cancel()

    def wait(self, timeout: float = 120.0) -> bool:
        """Block until preparation and streaming finished (tests, notebooks); True when idle."""
        deadline = time.monotonic() + timeout
        self.runner.wait(timeout)
        while self._thread is None and self.state == "preparing" and time.monotonic() < deadline:
            time.sleep(0.02)
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        return self.state not in ("preparing", "running", "paused")

    # ---------------------------------------------------------------------------- run: set-up --
    def _begin(self, data: dict[str, Any]) -> None:
        """On the document's thread: build the views for this run, then start the worker."""
        for name, reason in data["problems"].items():
            notify_error(f"{name}: {reason}")
        if not data["models"]:
            self.param.update(state="idle", message="no model could be loaded")
            raise WorkbenchError("none of the chosen models could be loaded (see the notifications); "
                                 "the numerical schemes euler and rk4 always work")
        n_avail = data["traj"].shape[0] - 1
        n_steps = min(self.n_steps, n_avail)
        if n_steps < self.n_steps:
            notify_info(f"the test trajectory holds {n_avail} steps; rolling out {n_avail}")
        names = list(data["models"])
        shape = data["traj"].shape[1:]
        data.update(n_steps=n_steps, names=names,
                    pred={n: np.full((n_steps, *shape), np.nan, np.float32) for n in names},
                    rmse={n: np.full(n_steps, np.nan) for n in names}, alive=set(names))
        self._data = data
        self._close_views()
        self.param.field.objects = data["fields"]
        if self.field not in data["fields"]:
            self.field = data["fields"][0]
        self._equation[:] = [equation_pane(data["latex"])] if data["latex"] else []
        self._build_views()
        self.progress.param.update(value=0, max=n_steps)
        self._stop.clear()
        self._resume.set()
        self.param.update(state="running", step=0, message=f"running {', '.join(names)}…")
        self._thread = threading.Thread(target=self._work, daemon=True, name="workbench-rollout")
        self._thread.start()

    def _build_views(self) -> None:
        d = self._data
        fi = d["fields"].index(self.field)
        clim = value_range(d["traj"][:, fi])
        emax = self.error_range * (clim[1] - clim[0])
        self._views = {"truth": stream_view(d["dims"], d["coords"], clim, title="**truth**")}
        rows = []
        for name in d["names"]:
            self._views[name] = stream_view(d["dims"], d["coords"], clim, title=f"**{name}**")
            deep = " (max over z)" if len(d["dims"]) == 3 else ""
            self._views[f"{name}|err"] = stream_view(d["dims"], d["coords"], (0.0, emax), cmap="magma",
                                                     projection=True, title=f"**|error| {name}**{deep}")
            rows.append(pn.Row(self._views[name], self._views[f"{name}|err"], sizing_mode="stretch_width"))
        self._lines = StreamLines(d["names"], PALETTE, title="running RMSE (all fields)", y_label="RMSE")
        self._sent = dict.fromkeys(d["names"], 0)
        # every view gets data BEFORE it reaches the page: vtk.js cannot show a scene that arrived empty
        u0 = d["traj"][0, fi]
        for key, view in self._views.items():
            view.update(np.zeros_like(u0) if key.endswith("|err") else u0)
        self.now = f"t = 0 · step 0 of {d['n_steps']}"
        self._area[:] = [pn.Row(self._views["truth"], self._lines, sizing_mode="stretch_width"), *rows]

    def _close_views(self) -> None:
        for view in self._views.values():
            view.close()
        self._views = {}

    # ---------------------------------------------------------------------------- run: worker --
    def _work(self) -> None:
        from core.rollout import rollout

        d = self._data
        truth = d["traj"][1:]  # frames after u0
        streams = {n: rollout(m, d["traj"][0], d["n_steps"], truth, dt=d["dt"],
                              teacher_forcing=self.teacher_forcing, should_stop=self._stop.is_set)
                   for n, m in d["models"].items()}
        self._t0 = None
        for step in range(1, d["n_steps"] + 1):
            self._resume.wait()
            if self._stop.is_set():
                break
            for name in list(d["alive"]):
                try:
                    frame = next(streams[name], None)
                except WorkbenchError as exc:
                    d["alive"].discard(name)
                    call_on_doc(self._doc, notify_error, f"{name}: {exc}")
                    continue
                if frame is not None:
                    d["pred"][name][step - 1] = frame.pred
                    d["rmse"][name][step - 1] = float(np.sqrt(np.mean(frame.error**2)))
            if not d["alive"]:
                break
            self._shown.clear()
            call_on_doc(self._doc, self._show_live, step)
            self._shown.wait(timeout=2.0)  # back-pressure: one frame in flight at a time
        call_on_doc(self._doc, self._finish)

    def _show_live(self, step: int) -> None:
        try:
            if self._data is not None and self.state in ("running", "paused"):
                self._latest = step
                self._show(step)
                self.progress.value = step
                self._push_rmse(step)
                # delivered rate from the first shown frame on (excludes model start-up)
                now = time.perf_counter()
                if self._t0 is None:
                    self._t0, self._first = now, step
                elif step % 10 == 0 or step == self._data["n_steps"]:
                    self.fps = (step - self._first) / (now - self._t0)
        finally:
            self._shown.set()

    def _finish(self) -> None:
        stopped = self._stop.is_set() and self._latest < self._data["n_steps"]
        state = "stopped" if stopped else "done"
        self.param.update(state=state, n_done=self._latest, step=self._latest,
                          message=f"{state} after {self._latest} steps · {self.fps:.1f} frames/s delivered")

    # ------------------------------------------------------------------------------- display --
    def _show(self, step: int) -> None:
        """Show the frames at `step` (1-based) for the selected field."""
        d = self._data
        fi = d["fields"].index(self.field)
        truth = d["traj"][step, fi]
        self.now = f"t = {step * d['dt']:.4g} · step {step} of {d['n_steps']}"
        self._shown_step = step
        frames = {"truth": truth}
        for name in d["names"]:
            frames[name] = d["pred"][name][step - 1, fi]
            frames[f"{name}|err"] = np.abs(frames[name] - truth)
        for key, frame in frames.items():
            try:
                self._views[key].update(frame)
            except Exception:  # one broken view (e.g. a VTK serialisation error) must not freeze the rest
                log.exception("updating the %s view failed", key)

    def _push_rmse(self, step: int) -> None:
        d = self._data
        for name, lo in self._sent.items():
            self._lines.append(name, d["dt"] * np.arange(lo + 1, step + 1), d["rmse"][name][lo:step])
            self._sent[name] = step

    def _on_step(self, event) -> None:
        replay = self.state in ("done", "stopped", "paused") and self._data is not None
        if replay and 1 <= event.new <= self.n_done and event.new != self._shown_step:
            self._show(event.new)

    def _on_field(self, _event) -> None:
        if self._data is None or not self._views or self.state in ("preparing",):
            return
        self._close_views()
        self._build_views()  # colour ranges are per field; also starts a fresh RMSE plot
        if self._latest:
            self._show(self._latest)
            self._push_rmse(self._latest)


def create() -> RolloutPage:
    return RolloutPage()
