"""Fast live views for streaming rollouts (1D curves, 2D images, running-error lines).

`pages._widgets.frame_view` re-renders a HoloViews DynamicMap on every update: ~35–90 ms per 64²
image on the 2-core development machine, so a truth | prediction | |error| grid of five images
could not reach 10 frames/s. These views own a plain Bokeh figure and replace only the data of its
ColumnDataSource (float32, binary on the websocket): ~1 ms per update, the plot is never rebuilt.
They share `FrameView`'s interface (`update(frame, title)`, `frames_shown`, `close()`), so pages use
them interchangeably; 3D stays with `_widgets.VolumeView` (PyVista/VTK).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import panel as pn
import param
from bokeh.models import ColorBar, ColumnDataSource, HoverTool, LinearColorMapper
from bokeh.plotting import figure

from core.errors import WorkbenchError
from pages._widgets import default_cmap, frame_view


def palette(name: str, n: int = 256) -> list[str]:
    """A Bokeh palette (hex colours, low to high) sampled from the matplotlib colour map `name`."""
    import matplotlib
    from matplotlib.colors import to_hex

    cmap = matplotlib.colormaps[name]
    return [to_hex(cmap(v)) for v in np.linspace(0.0, 1.0, n)]


class _StreamView(pn.viewable.Viewer):
    title = param.String(default="", doc="caption above the plot")

    def __init__(self, dims: Sequence[str], coords: Mapping[str, np.ndarray], clim: tuple[float, float],
                 *, label: str = "value", cmap: str | None = None, height: int = 330, **params):
        super().__init__(**params)
        self.dims = tuple(dims)
        self.coords = {d: np.asarray(coords[d], dtype=np.float64) for d in self.dims}
        self.shape = tuple(len(self.coords[d]) for d in self.dims)
        self.clim = (float(clim[0]), float(clim[1]))
        self.label, self.height, self.frames_shown = label, height, 0
        self.cmap = cmap or default_cmap(self.clim)

    def update(self, frame: np.ndarray, title: str | None = None) -> None:
        """Show `frame` (the grid's shape); call on the document's thread."""
        frame = np.asarray(frame)
        if frame.shape != self.shape:
            raise WorkbenchError(f"frame of shape {frame.shape} does not fit this view's grid {self.shape}")
        if title is not None:
            self.title = title
        self._push(frame)
        self.frames_shown += 1

    def close(self) -> None:
        """Nothing held outside Python."""

    def __panel__(self):
        return pn.Column(pn.pane.Markdown(self.param.title, margin=(0, 10)),
                         pn.pane.Bokeh(self.fig, sizing_mode="stretch_width"), sizing_mode="stretch_width")


class StreamImage(_StreamView):
    """2D field as an image placed by its coordinates (row i at y[i]), fixed colour range."""

    def __init__(self, dims, coords, clim, **kw):
        super().__init__(dims, coords, clim, **kw)
        ydim, xdim = self.dims
        x, y = self.coords[xdim], self.coords[ydim]
        hx, hy = (x[1] - x[0] if len(x) > 1 else 1.0), (y[1] - y[0] if len(y) > 1 else 1.0)
        x0, y0, w, h = x[0] - hx / 2, y[0] - hy / 2, hx * len(x), hy * len(y)
        self.source = ColumnDataSource({"image": [np.full(self.shape, np.nan, np.float32)]})
        mapper = LinearColorMapper(palette=palette(self.cmap), low=self.clim[0],
                                   high=self.clim[1], nan_color="#dddddd")
        self.fig = figure(height=self.height, x_range=(x0, x0 + w), y_range=(y0, y0 + h),
                          match_aspect=True, sizing_mode="stretch_width", x_axis_label=xdim,
                          y_axis_label=ydim,
                          tools="pan,wheel_zoom,box_zoom,reset,save", toolbar_location="right")
        glyph = self.fig.image(image="image", x=x0, y=y0, dw=w, dh=h, color_mapper=mapper, source=self.source)
        self.fig.add_tools(HoverTool(renderers=[glyph], tooltips=[(self.label, "@image")]))
        self.fig.add_layout(ColorBar(color_mapper=mapper, width=12), "right")
        self.fig.grid.visible = False

    def _push(self, frame: np.ndarray) -> None:
        # (y, x) array: Bokeh draws row 0 at the bottom (y[0]), matching the coordinates
        self.source.data = {"image": [np.ascontiguousarray(frame, dtype=np.float32)]}


class StreamProjection(StreamImage):
    """3D field (z, y, x) shown as its maximum over z, an image over (y, x): an |error| field's
    worst value through the depth, cheap enough to stream every frame and never empty (an
    iso-surface of a small error can be)."""

    def __init__(self, dims, coords, clim, **kw):
        self.full_shape = tuple(len(coords[d]) for d in dims)
        super().__init__(tuple(dims)[1:], coords, clim, **kw)

    def update(self, frame: np.ndarray, title: str | None = None) -> None:
        frame = np.asarray(frame)
        if frame.shape != self.full_shape:
            raise WorkbenchError(f"frame of shape {frame.shape} does not fit the grid {self.full_shape}")
        super().update(np.nanmax(frame, axis=0), title)


class StreamCurve(_StreamView):
    """1D field against its coordinate, y-range fixed to the colour range."""

    def __init__(self, dims, coords, clim, *, color: str = "#1f6f8b", **kw):
        super().__init__(dims, coords, clim, **kw)
        x = self.coords[self.dims[0]]
        pad = 0.05 * (self.clim[1] - self.clim[0])
        self.source = ColumnDataSource({"x": x, "y": np.full(len(x), np.nan)})
        self.fig = figure(height=self.height, y_range=(self.clim[0] - pad, self.clim[1] + pad),
                          x_axis_label=self.dims[0], y_axis_label=self.label, sizing_mode="stretch_width",
                          tools="pan,wheel_zoom,box_zoom,reset,save,hover")
        self.fig.line("x", "y", source=self.source, line_width=2, color=color)

    def _push(self, frame: np.ndarray) -> None:
        self.source.data = {"x": self.source.data["x"], "y": np.asarray(frame, dtype=np.float64)}


class StreamLines(pn.viewable.Viewer):
    """Running curves (e.g. RMSE per model over time), appended with `ColumnDataSource.stream`."""

    def __init__(self, names: Sequence[str], colors: Sequence[str], *, title: str = "", y_label: str = "",
                 logy: bool = True, height: int = 300):
        super().__init__()
        self.fig = figure(height=height, title=title, y_axis_type="log" if logy else "linear",
                          x_axis_label="time", y_axis_label=y_label, sizing_mode="stretch_width",
                          tools="pan,wheel_zoom,box_zoom,reset,save,hover")
        self.sources = {}
        for name, color in zip(names, colors):
            self.sources[name] = ColumnDataSource({"time": [], "value": []})
            self.fig.line("time", "value", source=self.sources[name], color=color, line_width=2,
                          legend_label=name)
        self.fig.legend.location = "top_left"
        self.logy = logy

    def append(self, name: str, times: np.ndarray, values: np.ndarray) -> None:
        """Add points to curve `name` (non-positive values are dropped on a log axis)."""
        times, values = np.asarray(times, float), np.asarray(values, float)
        keep = np.isfinite(values) & ((values > 0) if self.logy else True)
        if keep.any():
            self.sources[name].stream({"time": times[keep], "value": values[keep]})

    def clear(self) -> None:
        for src in self.sources.values():
            src.data = {"time": [], "value": []}

    def __panel__(self):
        return pn.pane.Bokeh(self.fig, sizing_mode="stretch_width")


def stream_view(dims: Sequence[str], coords: Mapping[str, np.ndarray], clim: tuple[float, float],
                projection: bool = False, **kw):
    """The fastest live view for these dims: Bokeh curve (1D) / image (2D), PyVista iso-surface or
    volume (3D; with `projection`, the maximum over z as a Bokeh image)."""
    if len(dims) == 3 and projection:
        return StreamProjection(dims, coords, clim, **kw)
    if len(dims) == 1:
        return StreamCurve(dims, coords, clim, **kw)
    if len(dims) == 2:
        return StreamImage(dims, coords, clim, **kw)
    return frame_view(dims, coords, clim, **kw)
