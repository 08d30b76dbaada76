"""Rollout page: watch surrogates and classic schemes roll out against the truth, live.

Pick a system and models (the shipped checkpoints of PIMRL and its baselines, and the forward-Euler /
RK4 schemes stepping the reference physics), press Start: truth | prediction | |error| appear side by
side with a running RMSE curve per model (persistence, u(t) = u(0), dashed grey for reference) and
the energy spectrum of truth vs predictions. Pause / Stop at any time; the time scrubber replays
every computed frame whenever the rollout is not running.

All work runs in the page's `TaskRunner` (one job: prepare data and models, then roll out). Frames
are computed AHEAD of the display: the display starts once the computation will finish before the
display catches up, then plays at the set rate (3D at most MAX_RATE_3D = 4 updates/s), so slow
models still play smoothly. A model that diverges keeps a "diverged at step N" marker in place of its views.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
import panel as pn
import param

from core.datasets import preset_defaults
from core.errors import WorkbenchError
from core.physics import PRESETS, SYSTEMS
from pages._core import (
    LEARNED,
    REFERENCES,
    SCHEME_SUBSTEPS,
    SCHEMES,
    load_surrogates,
    reference_dataset_config,
)
from pages._scripts import when_loaded
from pages._stream_views import (
    PALETTE,
    REFERENCE_COLOR,
    StreamCurve,
    StreamLines,
    caption,
    error_clim,
    stream_view,
)
from pages._tasks import TaskCancelled
from pages._volume import SceneView
from pages._widgets import (
    TaskRunner,
    active_tasks,
    equation_pane,
    int_input,
    notify_error,
    notify_info,
    on_session_end,
    value_range,
)

log = logging.getLogger("workbench.app.rollout")

TITLE = "Rollout"
EXTENSIONS = ("vtk", "katex")

#: the compared models, PIMRL's ablations (micro, macro, no message passing) and the schemes
CHOICES: tuple[str, ...] = LEARNED + SCHEMES
SIZES: tuple[str, ...] = ("full test split", "quick look")
#: the quick look: 3 fresh trajectories (a seed no checkpoint was trained on) of 40 steps on the same grid
QUICK = {"n_samples": 3, "n_coarse": 41, "splits": (1, 1, 1), "seed": 1000}
RATES: tuple[int, ...] = (2, 5, 12, 25)
#: 3D scenes are contoured and sent as meshes: at most this many updates per second (an update costs
#: ~0.14 s of server time for two 24³ surfaces on a loaded machine, see `_volume.fast_vtk_serializer`)
MAX_RATE_3D = 4
PERSISTENCE = "persistence"


def dataset_config(system: str, preset: str, size: str) -> Any:
    """The dataset the page rolls out on: the checkpoints' own one (its held-out test split), or a
    quick look at 3 fresh, short trajectories on the same grid (so the checkpoints still fit)."""
    if size == SIZES[0]:
        return reference_dataset_config(system, preset)
    return reference_dataset_config(system, preset, **QUICK)


def prepare(system: str, preset: str, size: str, names: list[str], substeps: int, sample: int,
            progress) -> dict[str, Any]:
    """Off the UI thread: generate/open the data, pick the test trajectory, load the models."""
    from core.datasets import generate, trajectories

    ds = generate(dataset_config(system, preset, size), progress=progress)
    traj = trajectories(ds, "test").numpy()  # (S, T, C, *n)
    if not 0 <= sample < traj.shape[0]:
        raise WorkbenchError(f"test trajectory {sample} does not exist; choose 0..{traj.shape[0] - 1}")
    progress(0, 1, "loading models")
    models, problems = load_surrogates(ds, names, scheme_substeps=substeps)
    references = load_surrogates(ds, list(REFERENCES))[0] if REFERENCES else {}
    dims = tuple(d for d in ("z", "y", "x") if d in ds.dims)
    return {"traj": traj[sample], "models": models, "problems": problems, "dims": dims,
            "references": references,
            "coords": {d: ds[d].values for d in dims}, "fields": list(ds.attrs["fields"]),
            "dt": float(ds.attrs["dt_coarse"]), "latex": str(ds.attrs.get("latex", "")),
            "key": ds.attrs["key"], "lengths": [float(v) for v in ds.attrs["lengths"]]}


REFERENCE_DASH = ("dashed", "dotdash")


def reference_rmse(references: dict[str, Any], u0: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """Per-step RMSE of the reference predictors over the shown trajectory (persistence, u(t) = u(0),
    computed directly when core offers no reference models)."""
    from core.rollout import rollout_batch

    axes = tuple(range(1, truth.ndim))
    if not references:
        return {PERSISTENCE: np.sqrt(np.mean((truth - u0[None]) ** 2, axis=axes))}
    out = {}
    for name, model in references.items():
        pred = rollout_batch(model, u0[None], truth.shape[0], check_finite=False)[0]  # (T, C, *n)
        out[name] = np.sqrt(np.mean((pred - truth) ** 2, axis=axes))
    return out


def start_display(n: int, computed: int, shown: int, step_s: float, rate: float) -> bool:
    """Whether the display can start (or go on) without stalling: the frames still to compute take
    no longer than the display needs for the frames it has not shown yet."""
    return computed >= n or (n - computed) * step_s <= (n - shown) / rate


class RolloutPage(pn.viewable.Viewer):
    """Per-session state of the Rollout page (one instance per browser session)."""

    system = param.Selector(default="burgers2d", objects=list(SYSTEMS))
    preset = param.Selector(default="cpu", objects=list(PRESETS))
    size = param.Selector(default=SIZES[0], objects=list(SIZES), label="data")
    models = param.ListSelector(default=["pimrl", "percnn", "rk4"], objects=list(CHOICES))
    # the bounds of `sample` and `n_steps` follow the data chosen (`_on_data`): the checkpoints' test
    # split holds 2 trajectories of 50-200 steps, the quick look 1 of 40; anything else had no effect
    # but a notification
    sample = param.Integer(default=0, bounds=(0, 1), label="test trajectory")
    n_steps = param.Integer(default=100, bounds=(1, 100), label="steps")
    substeps = param.Selector(default=1, objects=list(SCHEME_SUBSTEPS),
                              label="scheme sub-steps per frame (dt = Δt/m)")
    teacher_forcing = param.Boolean(default=False, label="teacher forcing (restart from truth each step)")
    rate = param.Selector(default=12, objects=list(RATES), label="display rate (frames/s)")
    field = param.Selector(default="u", objects=["u"])
    error_scale = param.Selector(default="log", objects=["log", "linear"], label="|error| colours")
    error_top = param.Number(default=0.0, bounds=(0, None),
                             doc="pinned top of the |error| colours (0: the field's range)")
    state = param.Selector(default="idle",
                           objects=["idle", "preparing", "running", "paused", "done", "stopped"])
    step = param.Integer(default=0, bounds=(0, None), label="shown step")
    n_done = param.Integer(default=0, doc="steps computed and available to the scrubber")
    fps = param.Number(default=0.0, doc="frames delivered to the document per second in the last run")
    message = param.String(default="")
    now = param.String(default="", doc="time of the shown frame")
    diverged = param.Dict(default={}, doc="model -> first non-finite step")
    server_tasks = param.Integer(default=0, doc="background jobs running in this server (all sessions)")

    def __init__(self, **params):
        super().__init__(**params)
        self.runner = TaskRunner()
        self._data: dict[str, Any] | None = None
        self._views: dict[str, Any] = {}
        self._rows: dict[str, pn.Row] = {}
        self._lines: StreamLines | None = None
        self._spectrum: StreamLines | None = None
        self._sent: dict[str, int] = {}
        self._shown_step = 0
        self._area = pn.Column(pn.pane.Markdown("Choose a system and models, then press **Start**."),
                               sizing_mode="stretch_width")
        self._equation = pn.Column(sizing_mode="stretch_width")
        self._buttons()
        fps = self.param.fps.rx().rx.pipe(lambda f: f"{f:.1f} frames/s" if f else "")
        self._layout = pn.Column(
            self._equation, caption(self, "now", font_size="1.1em"),
            pn.Row(pn.widgets.RadioButtonGroup.from_param(self.param.field, width=140),
                   pn.widgets.RadioButtonGroup.from_param(self.param.error_scale, width=130),
                   self.pin_button, self.scrubber, pn.pane.Markdown(fps, width=120)),
            self._area, sizing_mode="stretch_width")
        self.runner.param.watch(self._on_runner, ["busy", "state"])
        when_loaded("vtk", lambda: None)  # fetch vtk.js now: a 3D run needs it when it starts
        on_session_end(self.close)
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            pn.state.add_periodic_callback(self._count_tasks, period=1000)
        self.param.watch(self._on_step, "step")
        self.param.watch(self._on_data, ["system", "preset", "size"])
        self._on_data()
        self.param.watch(self._on_field, ["field", "error_scale", "error_top"])

    # ------------------------------------------------------------------------------- controls --
    def _buttons(self) -> None:
        self.start_button = pn.widgets.Button(label="Start", color="primary")
        self.pause_button = pn.widgets.Button(label="Pause", disabled=True)
        self.stop_button = pn.widgets.Button(label="Stop", color="danger", disabled=True)
        # pinned: the |error| colours' top is fixed at the largest error shown now (a reference that
        # later growth visibly saturates)
        self.pin_button = pn.widgets.Toggle(label="pin |error| scale", width=140)
        self.start_button.on_click(lambda _e: self.start())
        self.pause_button.on_click(lambda _e: self.toggle_pause())
        self.stop_button.on_click(lambda _e: self.stop())
        self.pin_button.param.watch(lambda e: self.pin(e.new), "value")
        self.scrubber = pn.widgets.IntSlider(label="shown step", start=1, end=2, value=1, visible=False,
                                             sizing_mode="stretch_width", css_classes=["wb-scrubber"])
        self.scrubber.param.watch(lambda e: setattr(self, "step", e.new), "value")
        # explicit watchers, not `.rx()` expressions: those lag one update behind a batched
        # `param.update(state=..., n_done=...)` (the scrubber stayed hidden after a run)
        self.param.watch(self._sync_controls, ["state", "n_done", "step"])

    def _sync_controls(self, *_events) -> None:
        """Buttons and scrubber follow the state: the scrubber replays whenever nothing is computing
        (paused, done, stopped) and frames exist."""
        busy = self.state in ("preparing", "running", "paused")
        self.start_button.disabled = busy
        self.stop_button.disabled = not busy
        self.pause_button.disabled = self.state not in ("running", "paused")
        self.pause_button.label = "Resume" if self.state == "paused" else "Pause"
        replay = self.state in ("done", "stopped", "paused") and self.n_done > 0
        self.scrubber.param.update(end=max(self.n_done, 2), visible=replay)
        if replay and 1 <= self.step <= self.n_done:
            self.scrubber.value = self.step

    def sidebar(self) -> pn.viewable.Viewable:
        if getattr(self, "_sidebar", None) is None:
            self._sidebar = self._build_sidebar()
        return self._sidebar

    def _build_sidebar(self) -> pn.viewable.Viewable:
        w = pn.widgets
        # how many jobs the server runs for ALL sessions: a closed tab's job must leave this count
        server = pn.pane.Markdown(self.param.server_tasks.rx().rx.pipe(
            lambda n: f"server: {n} background task(s) running"),
            styles={"font-size": "0.8em", "color": "#666"}, css_classes=["wb-server-tasks"])

        return pn.Column(
            "### Rollout",
            w.Select.from_param(self.param.system), w.Select.from_param(self.param.preset),
            w.RadioButtonGroup.from_param(self.param.size),
            "**models** (checkpoints in data/checkpoints; schemes step the reference physics)",
            w.CheckBoxGroup.from_param(self.param.models, inline=False),
            int_input(self, "sample"), int_input(self, "n_steps"), w.Select.from_param(self.param.substeps),
            w.Checkbox.from_param(self.param.teacher_forcing), w.Select.from_param(self.param.rate),
            pn.Row(self.start_button, self.pause_button, self.stop_button),
            self.runner, pn.pane.Markdown(self.param.message, styles={"font-size": "0.9em"},
                                          css_classes=["wb-rollout-status"]),
            server, sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    # -------------------------------------------------------------------------------- actions --
    def start(self) -> None:
        """Prepare data and models, then roll out and stream, all in the page's task."""
        if self.state in ("preparing", "running", "paused"):
            notify_info("a rollout is already running; stop it first")
            return
        if not self.models:
            notify_error("choose at least one model")
            return
        self.param.update(state="preparing", message="preparing data and models…", n_done=0, fps=0.0,
                          diverged={})
        args = (self.system, self.preset, self.size, list(self.models), self.substeps, self.sample)
        if not self.runner.run(lambda task: self._job(task, args), self._finish, label="preparing"):
            self.state = "idle"

    def _on_data(self, *_events) -> None:
        """Bound the trajectory and step controls by the data chosen (values beyond are clamped)."""
        try:
            config = dataset_config(self.system, self.preset, self.size)
            n_test = config.split_counts[2]
            n_frames = config.n_coarse or preset_defaults(self.system, self.preset)["n_coarse"]
        except WorkbenchError as exc:  # shown again, with the same words, when Start is pressed
            log.info("no bounds for %s/%s: %s", self.system, self.preset, exc)
            return
        self.param.sample.bounds = (0, max(n_test - 1, 0))
        self.param.n_steps.bounds = (1, n_frames - 1)
        self.param.update(sample=min(self.sample, n_test - 1), n_steps=min(self.n_steps, n_frames - 1))

    def toggle_pause(self) -> None:
        if self.state == "running":
            self.runner.pause()
        elif self.state == "paused":
            self.runner.resume()

    def stop(self) -> None:
        """Stop: while preparing nothing is kept (the task is cancelled); while rolling out the
        frames computed so far stay for the scrubber."""
        if self.state == "preparing":
            self.runner.cancel()
        else:
            self.runner.stop()

    def close(self) -> None:
        """The browser session ended: cancel the task and release the views."""
        self.runner.cancel()
        self._close_views()

    def wait(self, timeout: float = 120.0) -> bool:
        """Block until the task finished (tests, notebooks); True when idle."""
        self.runner.wait(timeout)
        return self.state not in ("preparing", "running", "paused")

    def _count_tasks(self) -> None:
        self.server_tasks = active_tasks()

    def pin(self, on: bool) -> None:
        """Pin the |error| colours' top at the largest |error| shown now (or unpin: the field range)."""
        if not on:
            self.error_top = 0.0
            return
        d, s = self._data, self._shown_step
        if d is None or s < 1:
            self.error_top = 0.0
            return
        fi = d["fields"].index(self.field)
        errs = [np.nanmax(np.abs(d["pred"][n][s - 1, fi] - d["traj"][s, fi])) for n in d["names"]]
        finite = [e for e in errs if np.isfinite(e) and e > 0]
        self.error_top = float(max(finite)) if finite else 0.0

    def _on_runner(self, *_events) -> None:
        r = self.runner
        if self.state in ("running", "paused") and r.state in ("running", "paused") and r.state != self.state:
            if r.state == "paused":  # the scrubber replays what was computed so far
                n = self._data["computed"] if self._data else 0
                self.param.update(state="paused", n_done=n, step=max(1, min(self._shown_step, n)))
            else:
                self.state = "running"
        if not r.busy and self.state in ("preparing", "running", "paused"):
            # cancelled or failed before `_finish` (which sets done / stopped)
            self.param.update(state="idle" if self._data is None or not self.n_done else "stopped",
                              message=r.message)

    # ------------------------------------------------------------------------------- the task --
    def _job(self, task, args) -> dict[str, Any] | None:
        def prep_progress(done, total, message=""):
            if task.stopping:  # Stop always wins, also while data or models load
                raise TaskCancelled()
            task(done, total, message)

        data = prepare(*args, prep_progress)
        if task.stopping:
            raise TaskCancelled()
        if len(data["dims"]) == 3:  # the scene needs vtk.js in the browser (loaded on demand)
            ready = threading.Event()
            task.show(when_loaded, "vtk", ready.set)
            while not ready.wait(0.1):
                task.checkpoint()
        task.show(self._begin, data)
        if not data["models"]:
            return None
        self._roll(task, data)
        return data

    def _roll(self, task, d: dict[str, Any]) -> None:
        """Compute every model's frames AHEAD of the display (a producer thread owned by this task)
        and show them one by one at the set rate, starting once the computation will finish before
        the display catches up."""
        from core.rollout import rollout

        n = d["n_steps"]
        truth = d["traj"][1:]
        streams = {name: rollout(m, d["traj"][0], n, truth, dt=d["dt"],
                                 teacher_forcing=self.teacher_forcing, should_stop=lambda: task.stopping)
                   for name, m in d["models"].items()}
        timing = {"step_s": 0.0}
        failed: list[BaseException] = []

        def produce() -> None:
            try:
                for step in range(1, n + 1):
                    if task.stopping:
                        return
                    t0 = time.perf_counter()
                    self._compute_step(task, d, streams, step)
                    dt_c = time.perf_counter() - t0
                    timing["step_s"] = dt_c if step == 1 else 0.8 * timing["step_s"] + 0.2 * dt_c
                    d["computed"] = step
            except BaseException as exc:  # shown by the task (the producer has no UI of its own)
                failed.append(exc)

        producer = threading.Thread(target=produce, daemon=True, name="workbench-rollout-compute")
        producer.start()
        rate = min(self.rate, MAX_RATE_3D) if len(d["dims"]) == 3 else self.rate
        shown, first = 0, None
        try:
            while shown < n and not task.stopping and not failed:
                computed = d["computed"]
                ready = computed > shown and (first is not None or
                                              start_display(n, computed, shown, timing["step_s"], rate))
                if not ready:
                    if not producer.is_alive() and d["computed"] <= shown:
                        break
                    wait = (n - computed) * timing["step_s"] - (n - shown) / rate
                    task(computed, n, f"computing ahead: step {computed}/{n}"
                                      + (f" · display starts in about {wait:.0f} s" if first is None else ""))
                    time.sleep(0.05)
                    continue
                t_next = time.perf_counter() if first is None else first[0] + (shown + 1 - first[1]) / rate
                time.sleep(max(0.0, t_next - time.perf_counter()))
                task.checkpoint()  # blocks while paused
                if first is not None and time.perf_counter() - t_next > 0.5:  # resumed after a pause
                    first = (time.perf_counter() - (shown + 1 - first[1]) / rate, first[1])
                shown += 1
                task.show(self._show_live, shown)
                task(shown, n, f"showing step {shown}/{n}")
                if first is None:
                    first = (time.perf_counter(), shown)
                elif shown > first[1]:
                    d["fps"] = (shown - first[1]) / (time.perf_counter() - first[0])
        finally:
            if task.stopping:
                producer.join(5)
        if failed:
            raise failed[0]
        d["shown"] = shown

    def _compute_step(self, task, d, streams, step: int) -> None:
        for name in d["names"]:
            if name in d["diverged_at"]:
                continue
            try:
                frame = next(streams[name], None)
            except WorkbenchError as exc:
                d["diverged_at"][name] = step
                task.later(notify_error, f"{name}: {exc}")
                continue
            if frame is not None:
                d["pred"][name][step - 1] = frame.pred
                d["rmse"][name][step - 1] = float(np.sqrt(np.mean(frame.error ** 2)))

    # ----------------------------------------------------------------- set-up and finish (doc) --
    def _begin(self, data: dict[str, Any]) -> None:
        """On the document's thread: build the views for this run."""
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
        u0, truth = data["traj"][0], data["traj"][1:n_steps + 1]
        data.update(n_steps=n_steps, names=names, computed=0, fps=0.0, diverged_at={},
                    pred={n: np.full((n_steps, *shape), np.nan, np.float32) for n in names},
                    rmse={n: np.full(n_steps, np.nan) for n in names},
                    reference_rmse=reference_rmse(data["references"], u0, truth))
        self._data = data
        self.param.field.objects = data["fields"]
        if self.field not in data["fields"]:
            self.field = data["fields"][0]
        self._equation[:] = [equation_pane(data["latex"])] if data["latex"] else []
        self._build_views()
        self.param.update(state="running", step=0, message=f"running {', '.join(names)}…")
        self.runner.message = "computing…"

    def _finish(self, data: dict[str, Any] | None) -> None:
        if data is None:
            self.state = "idle"
            return
        shown, computed = data.get("shown", 0), data.get("computed", 0)
        stopped = self.runner.stopping and shown < data["n_steps"]
        state = "stopped" if stopped else "done"
        self.param.update(fps=data["fps"])
        # every computed frame is kept for the scrubber (frames are computed ahead of the display)
        self.param.update(state=state, n_done=max(computed, shown), step=max(shown, 1),
                          message=f"{state} after {shown} steps ({computed} computed) · "
                                  f"{self.fps:.1f} frames/s delivered")
        self._show(max(data.get("shown", 0), 1))

    # ------------------------------------------------------------------------------- display --
    def _build_views(self) -> None:
        d = self._data
        fi = d["fields"].index(self.field)
        clim = value_range(d["traj"][:, fi])
        log_err = self.error_scale == "log"
        eclim = error_clim(clim, self.error_top) if log_err else (0.0, self.error_top or (clim[1] - clim[0]))
        self._close_views()
        self._views, self._rows, rows = {}, {}, []
        nd = len(d["dims"])
        deep = " (max over z)" if nd == 3 else ""
        if nd == 1:
            # the truth drawn first and wider: a prediction that matches it (RK4) leaves a black rim
            curves = {"truth": ("#000000", "solid", 5),
                      **{n: (PALETTE[i % len(PALETTE)], "solid") for i, n in enumerate(d["names"])},
                      PERSISTENCE: (REFERENCE_COLOR, "dashed")}
            self._views["fields"] = StreamCurve(d["dims"], d["coords"], clim, curves=curves, label=self.field,
                                                title="**truth, predictions and persistence u(0)**")
        elif nd == 2:
            self._views["truth"] = stream_view(d["dims"], d["coords"], clim, title="**truth**")
        else:
            self._views["scene"] = SceneView(d["dims"], d["coords"], clim, d["names"],
                                             error_clim(clim, self.error_top))
        for name in d["names"]:
            parts = []
            if nd == 2:
                self._views[name] = stream_view(d["dims"], d["coords"], clim, title=f"**{name}**")
                parts.append(self._views[name])
            if nd > 1:
                self._views[f"{name}|err"] = stream_view(d["dims"], d["coords"], eclim, cmap="magma",
                                                         projection=True, log=log_err,
                                                         title=f"**|error| {name}**{deep}")
                parts.append(self._views[f"{name}|err"])
            if parts:
                self._rows[name] = pn.Row(*parts, sizing_mode="stretch_width")
                rows.append(self._rows[name])
        refs = d["reference_rmse"]
        styles = {r: (REFERENCE_COLOR, REFERENCE_DASH[i % 2]) for i, r in enumerate(refs)}
        self._lines = StreamLines([*d["names"], *refs], PALETTE, y_label="RMSE", styles=styles,
                                  title="running RMSE (dashed grey: references)")
        for name, values in refs.items():
            self._lines.set(name, d["dt"] * np.arange(1, d["n_steps"] + 1), values)
        self._spectrum = StreamLines(["truth", *d["names"]], ["#000000", *PALETTE], title="energy spectrum",
                                     x_label="wavenumber k (2π/L)", y_label="E(k)", logx=True, height=300)
        self._sent = dict.fromkeys(d["names"], 0)
        self._markers = {name: pn.pane.Alert("", alert_type="danger", css_classes=["wb-diverged"])
                         for name in d["names"]}
        self._gone: set[str] = set()  # models whose row shows the "diverged" marker
        self._show(0)
        top = [self._views.get("fields") or self._views.get("truth") or self._views["scene"]]
        self._area[:] = [pn.Row(*top, pn.Column(self._lines, self._spectrum, sizing_mode="stretch_width"),
                                sizing_mode="stretch_width"), *rows,
                         *([] if nd > 1 else [pn.Column(*self._markers.values())])]

    def _close_views(self) -> None:
        for view in self._views.values():
            view.close()
        self._views = {}

    def _show_live(self, step: int) -> None:
        if self._data is None:
            return
        self._show(step)
        self._push_rmse(step)

    def _show(self, step: int) -> None:
        """Show the frames at `step` (0: the initial state) for the selected field."""
        from core.metrics import energy_spectrum

        d = self._data
        fi = d["fields"].index(self.field)
        truth = d["traj"][step, fi]
        self.now = f"t = {step * d['dt']:.4g} · step {step} of {d['n_steps']}"
        self._shown_step = step
        preds: dict[str, np.ndarray | None] = {}
        for name in d["names"]:
            div = d["diverged_at"].get(name)
            preds[name] = None if (div is not None and step >= div) else \
                (truth if step == 0 else d["pred"][name][step - 1, fi])
        self._mark_diverged(step)
        try:
            nd = len(d["dims"])
            if nd == 1:
                self._views["fields"].update_all({"truth": truth, **preds, PERSISTENCE: d["traj"][0, fi]})
            elif nd == 2:
                self._views["truth"].update(truth)
            else:
                self._views["scene"].update(truth, preds)
            for name, pred in preds.items():
                if pred is not None and f"{name}|err" in self._views:
                    self._views[f"{name}|err"].update(np.abs(pred - truth))
                if pred is not None and name in self._views:
                    self._views[name].update(pred)
            k, e = energy_spectrum(truth, nd)
            self._spectrum.set("truth", k[1:], e[1:])
            for name, pred in preds.items():  # a diverged model's spectrum goes with its views
                k, e = energy_spectrum(pred, nd) if pred is not None else (np.zeros(1), np.zeros(1))
                self._spectrum.set(name, k[1:], e[1:])
        except Exception:  # one broken view (e.g. a VTK serialisation error) must not freeze the rest
            log.exception("updating the views failed")

    def _mark_diverged(self, step: int) -> None:
        """A model that diverged at or before `step` shows a persistent marker in place of its views."""
        d = self._data
        for name in d["names"]:
            div = d["diverged_at"].get(name)
            gone = div is not None and step >= div
            marker = self._markers[name]
            marker.object = (f"**{name} diverged at step {div}** (t = {div * d['dt']:.4g}): its prediction "
                             "became non-finite; the frames before are kept (scrub back)") if gone else ""
            marker.visible = gone
            row = self._rows.get(name)
            # swap the row only when the model's state changes (a Row holds its views' panels, not the
            # views: comparing those always differed, and every frame rebuilt the row, ~0.1 s in 3D)
            if row is not None and gone != (name in self._gone):
                keys = [k for k in (name, f"{name}|err") if k in self._views]
                row[:] = [marker] if gone else [self._views[k] for k in keys]
                self._gone ^= {name}
        if d["diverged_at"] != self.diverged:
            self.diverged = dict(d["diverged_at"])

    def _push_rmse(self, step: int) -> None:
        d = self._data
        for name, lo in self._sent.items():
            if step > lo:
                self._lines.append(name, d["dt"] * np.arange(lo + 1, step + 1), d["rmse"][name][lo:step])
                self._sent[name] = step

    def _on_step(self, event) -> None:
        replay = self.state in ("done", "stopped", "paused") and self._data is not None
        if replay and 1 <= event.new <= self.n_done and event.new != self._shown_step:
            self._show(event.new)

    def _on_field(self, _event) -> None:
        if self._data is None or not self._views or self.state == "preparing":
            return
        self._build_views()  # colour ranges are per field; also starts a fresh RMSE plot
        shown = self._shown_step
        self._push_rmse(self._data["computed"])
        if shown:
            self._show(shown)


def create() -> RolloutPage:
    return RolloutPage()
