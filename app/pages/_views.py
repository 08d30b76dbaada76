"""Frame views for 1D and 2D fields and the colour-range helpers (see `pages._widgets`).

Each view is built once; `update(frame)` pushes data through an `hv.streams.Pipe` into a
DynamicMap, so the plot is re-rendered in place and the page layout never rebuilt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import holoviews as hv
import numpy as np
import panel as pn
import param

from core.errors import WorkbenchError

hv.extension("bokeh", logo=False)


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
