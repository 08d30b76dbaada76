"""View helpers shared by the workbench pages.

- Frame views: `frame_view(dims, coords, clim)` returns a live view of one scalar field -- a curve
  (1D), an image oriented by its coordinates (2D) or a PyVista iso-surface / volume in a VTK pane
  (3D). Each is built once; `update(frame)` changes its data in place (an `hv.streams.Pipe` for
  HoloViews plots, mesh data + `synchronize()` for VTK), so a time scrubber or a live rollout never
  rebuilds the layout. `SpaceTimeView` shows a whole 1D trajectory with a marker at the current time.
- Background work: `TaskRunner` runs one job at a time in a worker thread, feeds a
  `pn.indicators.Progress` from the job's `core.io.Progress` callback on the document's thread,
  turns `WorkbenchError`s into notifications (never a traceback on screen) and can be cancelled
  (e.g. when the browser tab closes).
- Small panes: `equation_pane(latex)`, `info_table(items)`, `notify_error(message)`.

Views must be updated on the document's thread: from a worker use `call_on_doc(doc, fn, ...)`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import holoviews as hv
import numpy as np
import panel as pn
import param
from panel.io.state import set_curdoc

from core.errors import WorkbenchError

hv.extension("bokeh", logo=False)
log = logging.getLogger("workbench.app")

#: 3D rendering modes of `VolumeView`
RENDER_MODES: tuple[str, ...] = ("iso-surface", "volume")


# --------------------------------------------------------------------------------------- ranges --
def value_range(values: Any, symmetric: bool | None = None) -> tuple[float, float]:
    """The (lo, hi) colour range of `values` (all frames of a trajectory, so colours mean the same
    at every time), ignoring non-finite entries.

    `symmetric=None` picks a range symmetric about 0 when the data has both signs with magnitudes
    within a factor 4 of each other (velocities, KdV), which is what a diverging colour map needs.
    A constant field gets a small band around its value so plots still have an axis.
    """
    arr = np.asarray(values, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return (-1.0, 1.0)
    lo, hi = float(finite.min()), float(finite.max())
    if symmetric is None:
        symmetric = lo < 0 < hi and max(-lo, hi) <= 4 * min(-lo, hi)
    if symmetric:
        m = max(abs(lo), abs(hi))
        lo, hi = -m, m
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        pad = 0.5 * max(abs(hi), 1e-6)
        lo, hi = lo - pad, hi + pad
    return (lo, hi)


def default_cmap(clim: tuple[float, float]) -> str:
    """A diverging map for a range centred on 0, a perceptual sequential map otherwise."""
    lo, hi = clim
    return "RdBu_r" if lo < 0 < hi and abs(lo + hi) <= 1e-9 * (hi - lo) else "viridis"


def _uniform_step(c: np.ndarray) -> float:
    return float(c[1] - c[0]) if len(c) > 1 else 1.0


# --------------------------------------------------------------------------------- frame views --
class FrameView(pn.viewable.Viewer):
    """A live view of one scalar field on a grid.

    `update(frame)` replaces the data in place; `reset(coords, clim)` moves the view to another
    grid or colour range (a new dataset, sample or field) without replacing its panes, so the page
    layout around it is never rebuilt.
    """

    title = param.String(default="", doc="caption above the plot")

    def __init__(self, dims: Sequence[str], coords: Mapping[str, np.ndarray], clim: tuple[float, float],
                 *, label: str = "value", cmap: str | None = None, height: int = 420, **params):
        super().__init__(**params)
        self.dims = tuple(dims)
        self.label = label
        self.height = height
        self._fixed_cmap = cmap
        self.frames_shown = 0
        self._set_grid(coords, clim)

    def _set_grid(self, coords: Mapping[str, np.ndarray], clim: tuple[float, float]) -> None:
        missing = [d for d in self.dims if d not in coords]
        if missing:
            raise WorkbenchError(f"coordinates for {missing} are missing; this view needs {list(self.dims)}")
        self.coords = {d: np.asarray(coords[d], dtype=np.float64) for d in self.dims}
        self.shape = tuple(len(self.coords[d]) for d in self.dims)
        self.clim = (float(clim[0]), float(clim[1]))
        self.cmap = self._fixed_cmap or default_cmap(self.clim)

    def reset(self, coords: Mapping[str, np.ndarray], clim: tuple[float, float],
              frame: np.ndarray | None = None, title: str | None = None) -> None:
        """Switch to another grid / colour range (same dims) and show `frame` (or a blank)."""
        self._set_grid(coords, clim)
        self.update(np.full(self.shape, np.nan) if frame is None else frame, title)

    def _check(self, frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.shape != self.shape:
            raise WorkbenchError(f"frame of shape {frame.shape} does not fit this view's grid {self.shape}")
        return frame

    def update(self, frame: np.ndarray, title: str | None = None) -> None:
        """Show `frame` (shape = the grid, in `dims` order); call on the document's thread."""
        frame = self._check(frame)
        if title is not None:
            self.title = title
        self._push(frame)  # each subclass moves the data into its plot in place
        self.frames_shown += 1

    def close(self) -> None:
        """Release resources held outside Python (VTK windows); the view is unusable afterwards."""

    def _caption(self):
        return pn.pane.Markdown(self.param.title, margin=(0, 10), styles={"font-size": "1.05em"})


class CurveView(FrameView):
    """1D: the field against its coordinate, y-range fixed to `clim` (plus 5 %)."""

    def __init__(self, dims, coords, clim, **kw):
        super().__init__(dims, coords, clim, **kw)
        self.pipe = hv.streams.Pipe(data=np.full(self.shape, np.nan))
        # framewise: the axes follow each frame's declared ranges, which `reset` changes
        self.plot = hv.DynamicMap(self._curve, streams=[self.pipe]).opts(
            hv.opts.Curve(responsive=True, height=self.height, color="#1f6f8b", line_width=2,
                          tools=["hover"], show_grid=True, framewise=True))
        self._pane = pn.pane.HoloViews(self.plot, sizing_mode="stretch_width", height=self.height,
                                       css_classes=["wb-frame"])

    def _curve(self, data: np.ndarray) -> hv.Curve:
        xdim = self.dims[0]
        pad = 0.05 * (self.clim[1] - self.clim[0])
        curve = hv.Curve((self.coords[xdim], data), kdims=[xdim], vdims=[self.label])
        return curve.redim.range(**{self.label: (self.clim[0] - pad, self.clim[1] + pad)})

    def _push(self, frame: np.ndarray) -> None:
        self.pipe.send(np.asarray(frame, dtype=np.float64))

    def __panel__(self):
        return pn.Column(self._caption(), self._pane, sizing_mode="stretch_width")


class ImageView(FrameView):
    """2D: an image placed by its coordinates (row i at y[i], column j at x[j]), colours fixed to
    `clim`, equal aspect, with a colour bar and hover."""

    def __init__(self, dims, coords, clim, **kw):
        super().__init__(dims, coords, clim, **kw)
        ydim, xdim = self.dims
        self.pipe = hv.streams.Pipe(data=np.full(self.shape, np.nan))
        self.plot = hv.DynamicMap(self._image, streams=[self.pipe]).opts(
            hv.opts.Image(colorbar=True, data_aspect=1, frame_height=self.height - 70, tools=["hover"],
                          framewise=True, xlabel=xdim, ylabel=ydim))
        # fixed sizing: a stretched pane would override the equal data aspect
        self._pane = pn.pane.HoloViews(self.plot, sizing_mode="fixed", css_classes=["wb-frame"])

    def _image(self, data: np.ndarray) -> hv.Image:
        ydim, xdim = self.dims
        # (y, x) array with explicit coordinates: HoloViews orients by them, so y grows upwards.
        image = hv.Image((self.coords[xdim], self.coords[ydim], data), kdims=[xdim, ydim], vdims=[self.label])
        return image.redim.range(**{self.label: self.clim}).opts(cmap=self.cmap)

    def _push(self, frame: np.ndarray) -> None:
        self.pipe.send(np.asarray(frame, dtype=np.float64))

    def __panel__(self):
        return pn.Column(self._caption(), self._pane, sizing_mode="stretch_width")


class VolumeView(FrameView):
    """3D: an iso-surface of the field at `level` (a fraction of the fixed colour range) computed by
    PyVista off-screen and drawn by vtk.js through `pn.pane.VTK`, or a volume rendering through
    `pn.pane.VTKVolume`. Only the visible representation is recomputed.

    Both panes stay in the layout (toggling `visible`): vtk.js fails on a VTK pane removed from the
    page, on a synchronized volume whose data changed, and on an orientation widget while hidden.
    `VTKVolume` rescales its colours to each frame's range, so the iso-surface is the view whose
    colours mean the same at every time.
    """

    mode = param.Selector(default="iso-surface", objects=list(RENDER_MODES), doc="3D rendering")
    level = param.Number(default=0.5, bounds=(0.02, 0.98), step=0.02, doc="iso level (fraction of range)")

    def __init__(self, dims, coords, clim, **kw):
        # a diverging map is white in the middle: invisible as a surface on white, so 3D uses viridis
        kw.setdefault("cmap", "viridis")
        super().__init__(dims, coords, clim, **kw)
        import pyvista as pv  # imported here: only 3D pages pay for VTK

        self._frame = np.full(self.shape, 0.5 * (self.clim[0] + self.clim[1]), dtype=np.float32)
        # meshes start empty (add_mesh refuses empty meshes): actors on our own mappers
        self.iso, self.iso_actor = self._actor(pv, self._level_color())
        self.iso_actor.prop.specular = 0.3
        self.outline, outline_actor = self._actor(pv, (0.33, 0.33, 0.33))
        self.plotter = pv.Plotter(off_screen=True, window_size=(640, 520))
        self.plotter.set_background("white")
        self.plotter.add_actor(self.iso_actor)
        self.plotter.add_actor(outline_actor)
        self.panes = {
            "iso-surface": pn.pane.VTK(self.plotter.ren_win, enable_keybindings=False, height=self.height,
                                       sizing_mode="stretch_width", css_classes=["wb-vtk-iso"]),
            # the default colour map: some presets listed by Panel (e.g. Viridis) are missing in vtk.js
            "volume": pn.pane.VTKVolume(self._ramp(), display_slices=False,
                                        controller_expanded=False, render_background="#ffffff",
                                        height=self.height, sizing_mode="stretch_width",
                                        css_classes=["wb-vtk-volume"]),
        }
        self._regrid()
        self.iso.copy_from(self._placeholder())
        self._show_mode()
        self.param.watch(self._on_mode, ["mode"])
        self.param.watch(self._on_level, ["level"])

    @staticmethod
    def _actor(pv, color):
        mesh = pv.PolyData()
        mapper = pv.DataSetMapper(mesh)
        mapper.scalar_visibility = False
        actor = pv.Actor(mapper=mapper)
        actor.prop.color = color
        return mesh, actor

    def _regrid(self) -> None:
        import pyvista as pv

        zc, yc, xc = (self.coords[d] for d in self.dims)
        self.spacing = (_uniform_step(xc), _uniform_step(yc), _uniform_step(zc))
        self.origin = (float(xc[0]), float(yc[0]), float(zc[0]))
        self.grid = pv.ImageData(dimensions=(len(xc), len(yc), len(zc)), spacing=self.spacing,
                                 origin=self.origin)
        self.outline.copy_from(self.grid.outline())
        self.plotter.camera_position = "iso"
        self.plotter.reset_camera(bounds=self.grid.bounds)
        # the same oblique view as the iso-surface scene (vtk.js would look along an axis)
        cam = self.plotter.camera
        self.panes["volume"].param.update(spacing=self.spacing, origin=self.origin, camera={
            "position": list(cam.position), "focalPoint": list(cam.focal_point), "viewUp": list(cam.up)})

    def reset(self, coords, clim, frame=None, title=None) -> None:
        old_shape, old_coords = self.shape, self.coords
        self._set_grid(coords, clim)
        moved = any(not np.array_equal(old_coords[d], self.coords[d]) for d in self.dims)
        if self.shape != old_shape or moved:
            self._regrid()
        self.update(np.full(self.shape, np.nan) if frame is None else frame, title)

    def _placeholder(self):
        """A single point at the grid's origin, drawn when the level is never crossed: vtk.js fails
        on an empty mesh."""
        import pyvista as pv

        return pv.PolyData(np.array([self.origin], dtype=np.float64))

    def _ramp(self) -> np.ndarray:
        """Placeholder volume before any data: the colour range as a ramp along x (vtk.js accepts
        neither an empty volume nor a zero-width colour range)."""
        nz, ny, nx = self.shape
        ramp = np.linspace(self.clim[0], self.clim[1], nx, dtype=np.float32)
        return self._xyz(np.broadcast_to(ramp, (nz, ny, nx)))

    @staticmethod
    def _xyz(frame: np.ndarray) -> np.ndarray:
        # VTKVolume reads an array indexed (x, y, z); our frames are (z, y, x)
        return np.ascontiguousarray(np.asarray(frame, dtype=np.float32).transpose(2, 1, 0))

    def _show_mode(self) -> None:
        for mode, pane in self.panes.items():
            pane.visible = mode == self.mode

    @staticmethod
    def _set_scalars(grid, frame: np.ndarray) -> None:
        # (z, y, x) C-order ravel puts x fastest, which is VTK's point order for image data.
        grid.point_data["field"] = np.ascontiguousarray(frame, dtype=np.float32).ravel()

    def _level_value(self) -> float:
        return self.clim[0] + self.level * (self.clim[1] - self.clim[0])

    def _level_color(self) -> tuple[float, float, float]:
        import matplotlib

        rgba = matplotlib.colormaps[self.cmap](self.level)
        return (float(rgba[0]), float(rgba[1]), float(rgba[2]))

    def _render(self) -> None:
        if self.mode == "volume":
            blank = not np.isfinite(self._frame).any()
            self.panes["volume"].object = self._ramp() if blank else self._xyz(np.nan_to_num(self._frame))
        else:
            self._set_scalars(self.grid, self._frame)
            # point normals from the contour filter give smooth (Gouraud) shading in vtk.js
            surface = self.grid.contour([self._level_value()], scalars="field", compute_normals=True)
            self.iso.copy_from(surface if surface.n_points else self._placeholder())
            self.iso_actor.prop.color = self._level_color()
            self.panes["iso-surface"].synchronize()

    def _push(self, frame: np.ndarray) -> None:
        self._frame = np.asarray(frame, dtype=np.float32)
        self._render()

    def _on_mode(self, *_events) -> None:
        self._render()
        self._show_mode()

    def _on_level(self, *_events) -> None:
        if self.mode == "iso-surface":
            self._render()

    @property
    def pane(self) -> pn.pane.VTK | pn.pane.VTKVolume:
        """The VTK pane currently shown."""
        return self.panes[self.mode]

    def surface_points(self) -> int:
        """Number of vertices of the current iso-surface (0 when the level is never crossed)."""
        return int(self.iso.n_points) if self.iso.n_cells and self.iso.n_points > 1 else 0

    def close(self) -> None:
        self.plotter.close()

    def __panel__(self):
        controls = pn.Row(pn.widgets.RadioButtonGroup.from_param(self.param.mode, width=220),
                          pn.widgets.FloatSlider.from_param(self.param.level, width=220,
                                                            visible=self.param.mode.rx() == "iso-surface"))
        return pn.Column(self._caption(), controls, *self.panes.values(), sizing_mode="stretch_width")


def frame_view(dims: Sequence[str], coords: Mapping[str, np.ndarray], clim: tuple[float, float],
               **kw) -> FrameView:
    """The live view for a field with these `dims` (("x",), ("y", "x") or ("z", "y", "x")).

    `coords` maps each dim to its physical coordinates; `clim` is the fixed colour / y range
    (see `value_range`); keyword arguments go to the view (label, cmap, height, title).
    """
    views = {1: CurveView, 2: ImageView, 3: VolumeView}
    if len(dims) not in views:
        raise WorkbenchError(f"cannot show a field with dims {tuple(dims)}; "
                             "1, 2 or 3 spatial dims are allowed")
    return views[len(dims)](dims, coords, clim, **kw)


class SpaceTimeView(pn.viewable.Viewer):
    """A 1D trajectory as an image over (x, time) with a dashed line marking the shown time."""

    def __init__(self, x: np.ndarray, times: np.ndarray, values: np.ndarray, clim: tuple[float, float], *,
                 xdim: str = "x", label: str = "value", cmap: str | None = None, height: int = 300):
        super().__init__()
        self.xdim, self.label, self._fixed_cmap = xdim, label, cmap
        self.pipe = hv.streams.Pipe(data=None)
        self.time = hv.streams.Stream.define("Time", t=0.0)()
        image = hv.DynamicMap(self._image, streams=[self.pipe]).opts(
            hv.opts.Image(colorbar=True, responsive=True, height=height, tools=["hover"], framewise=True))
        marker = hv.DynamicMap(lambda t: hv.HLine(t), streams=[self.time]).opts(
            hv.opts.HLine(color="black", line_width=1.5, line_dash="dashed"))
        self._pane = pn.pane.HoloViews(image * marker, sizing_mode="stretch_width", height=height,
                                       css_classes=["wb-spacetime"])
        self.reset(x, times, values, clim)

    def reset(self, x: np.ndarray, times: np.ndarray, values: np.ndarray, clim: tuple[float, float]) -> None:
        """Show another trajectory: `values` is (time, x)."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (len(times), len(x)):
            raise WorkbenchError(f"space-time values of shape {values.shape} do not match "
                                 f"(time, {self.xdim}) = ({len(times)}, {len(x)})")
        self.pipe.send((np.asarray(x, dtype=np.float64), np.asarray(times, dtype=np.float64), values,
                        (float(clim[0]), float(clim[1]))))
        self.mark(float(times[0]))

    def _image(self, data) -> hv.Image:
        x, times, values, clim = data
        image = hv.Image((x, times, values), kdims=[self.xdim, "time"], vdims=[self.label])
        return image.redim.range(**{self.label: clim}).opts(cmap=self._fixed_cmap or default_cmap(clim))

    def mark(self, t: float) -> None:
        """Move the time marker to `t`; call on the document's thread."""
        self.time.event(t=float(t))

    def __panel__(self):
        return self._pane


# ------------------------------------------------------------------------------ notifications --
def notify_error(message: str) -> None:
    """Show `message` as an error toast in a served session; log it everywhere."""
    log.warning("%s", message)
    if pn.state.notifications is not None:
        pn.state.notifications.error(message, duration=10000)


def notify_info(message: str) -> None:
    if pn.state.notifications is not None:
        pn.state.notifications.info(message, duration=4000)


def call_on_doc(doc, fn: Callable[..., Any], *args: Any) -> None:
    """Run `fn(*args)` on `doc`'s thread (with the document lock) in a served session, or right
    away when there is no session (tests, notebooks). Safe to call from any thread."""
    if doc is None or doc.session_context is None:
        fn(*args)
        return

    def run() -> None:
        with set_curdoc(doc):
            fn(*args)

    try:
        doc.add_next_tick_callback(run)
    except Exception:  # the session closed while a worker was still reporting: nobody to show it to
        log.debug("dropped a UI update for a closed session", exc_info=True)


def on_session_end(fn: Callable[[], None]) -> None:
    """Call `fn()` when this browser session closes (no-op outside a served session)."""
    if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
        pn.state.on_session_destroyed(lambda _ctx: fn())


# -------------------------------------------------------------------------------- task runner --
class TaskCancelled(Exception):
    """Raised inside a job's progress callback after `TaskRunner.cancel()`."""


class TaskRunner(param.Parameterized):
    """Runs one long job at a time off the UI thread with a progress indicator.

    `run(job, on_done)` calls `job(progress)` in a worker thread; `progress(done, total, message)`
    updates the indicator on the document's thread, coalescing bursts of calls into one UI update.
    When the job returns, `on_done(result)` runs on the document's thread. A `WorkbenchError` (from
    the job or from `on_done`) becomes `error` and a notification; any other exception is logged
    with its traceback on the server and shown as one line.
    """

    busy = param.Boolean(default=False, doc="a job is running")
    done = param.Integer(default=0)
    total = param.Integer(default=1)
    message = param.String(default="", doc="last progress message or outcome")
    error = param.String(default="", doc="last error shown to the user ('' after a success)")

    def __init__(self, **params):
        super().__init__(**params)
        self._lock = threading.Lock()
        self._latest: tuple[int, int, str] | None = None
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._doc = None
        self.bar = pn.indicators.Progress(value=0, max=1, sizing_mode="stretch_width", height=16,
                                          visible=self.param.busy, bar_color="info")
        self.status = pn.pane.Markdown(self.param.message, margin=(0, 10), styles={"font-size": "0.9em"})

    def run(self, job: Callable[[Callable[[int, int, str], None]], Any], on_done: Callable[[Any], None],
            label: str = "working") -> bool:
        """Start `job` unless one is running (then tell the user and return False)."""
        if self.busy:
            notify_info("please wait for the running task to finish")
            return False
        self._doc = pn.state.curdoc
        self._cancel.clear()
        self.param.update(busy=True, done=0, total=1, message=f"{label}…", error="")
        self.bar.value = 0
        self._thread = threading.Thread(target=self._work, args=(job, on_done), daemon=True,
                                        name=f"workbench-{label}")
        self._thread.start()
        return True

    def cancel(self) -> None:
        """Ask the running job to stop at its next progress report."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the running job and its `on_done` finished (tests, notebooks); True if idle."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.busy

    def progress(self, done: int, total: int, message: str = "") -> None:
        """The `core.io.Progress` handed to the job (callable from any thread)."""
        if self._cancel.is_set():
            raise TaskCancelled()
        with self._lock:
            first = self._latest is None
            self._latest = (int(done), max(int(total), 1), message)
        if first:
            call_on_doc(self._doc, self._flush)

    def _flush(self) -> None:
        with self._lock:
            latest, self._latest = self._latest, None
        if latest is None:
            return
        done, total, message = latest
        # max before value: the indicator validates value against the current max
        self.bar.max = total
        self.bar.value = min(done, total)
        self.param.update(done=done, total=total, message=message or self.message)

    def _work(self, job, on_done) -> None:
        try:
            result = job(self.progress)
        except TaskCancelled:
            call_on_doc(self._doc, self._end, "cancelled", "")
        except WorkbenchError as exc:
            call_on_doc(self._doc, self._end, "failed", str(exc))
        except Exception as exc:  # a bug: full traceback to the server log, one line to the user
            log.exception("background task failed")
            call_on_doc(self._doc, self._end, "failed", f"unexpected error ({type(exc).__name__}: {exc})")
        else:
            call_on_doc(self._doc, self._finish, on_done, result)

    def _finish(self, on_done, result) -> None:
        try:
            on_done(result)
        except WorkbenchError as exc:
            self._end("failed", str(exc))
        except Exception as exc:
            log.exception("showing a task's result failed")
            self._end("failed", f"unexpected error ({type(exc).__name__}: {exc})")
        else:
            self._end("done", "")

    def _end(self, outcome: str, error: str) -> None:
        self._flush()
        self.param.update(busy=False, error=error, message=error and f"**{outcome}:** {error}" or outcome)
        if error:
            notify_error(error)

    def __panel__(self):
        return pn.Column(self.bar, self.status, sizing_mode="stretch_width")


# -------------------------------------------------------------------------------- small panes --
def equation_pane(latex: str, **kw) -> pn.pane.LaTeX:
    """The equations of a system, typeset by KaTeX; `latex` may or may not carry $$ delimiters."""
    body = latex.strip()
    if not body.startswith("$"):
        body = f"$${body}$$"
    return pn.pane.LaTeX(body, renderer="katex", styles={"font-size": "1.05em"}, **kw)


def _fmt(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return f"{float(value):.6g}"
    if isinstance(value, list | tuple):
        return " × ".join(_fmt(v) for v in value) if all(isinstance(v, int | np.integer) for v in value) \
            else ", ".join(_fmt(v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k} = {_fmt(v)}" for k, v in value.items())
    return str(value)


def info_table(items: Mapping[str, Any]) -> str:
    """A two-column markdown table (quantity | value) for a `pn.pane.Markdown`."""
    rows = "\n".join(f"| {k} | {_fmt(v).replace('|', '/')} |" for k, v in items.items())
    return "| quantity | value |\n|---|---|\n" + rows
