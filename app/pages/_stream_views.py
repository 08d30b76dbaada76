"""The app's frame views: plain Bokeh figures whose ColumnDataSources are replaced in place.

Each view is built once for a grid; `update(frame, title)` swaps only the data (float32, binary on
the websocket, ~1 ms per 64² image), so scrubbing, playback and live rollouts never rebuild a plot.
Views of another grid or dimensionality are NEW views that replace the old one in the page (never
stacked). 3D fields use `pages._volume` (PyVista / vtk.js).

- `StreamImage` (2D; linear, or log colours for |error| fields), `StreamProjection` (3D -> max over z)
- `StreamCurve` (1D; several named curves overlaid, y-range that grows to show overshoot)
- `StreamLines` (curves over time: running error, spectra; solid, dashed references, grey ghosts)
- `SpaceTime` (a 1D trajectory as an image over (x, time) with a marker at the time shown)
- `value_range`, `default_cmap`, `palette`, `error_clim`: colour ranges shared by every page
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import panel as pn
import param
from bokeh.models import (
    ColorBar,
    ColumnDataSource,
    CustomJSTickFormatter,
    HoverTool,
    Legend,
    LinearColorMapper,
    LogColorMapper,
    LogTicker,
    Span,
)
from bokeh.plotting import figure

from core.errors import WorkbenchError

#: one colour per model a page can show at once (the four compared models, three ablations, two schemes)
PALETTE = ("#1f6f8b", "#d1495b", "#edae49", "#66a182", "#8d6a9f", "#2e4057", "#e07a2f", "#17a2b8", "#8c564b")
REFERENCE_COLOR = "#7f7f7f"
GHOST_COLOR = "#c8c8c8"
TOOLS = "pan,wheel_zoom,box_zoom,reset,save"


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


#: decades an |error| log colour scale spans below its top
ERROR_DECADES = 4


def error_clim(field_clim: tuple[float, float], top: float | None = None) -> tuple[float, float]:
    """The |error| colour range: `top` (a pinned reference) or the field's range, and
    ERROR_DECADES decades below it, so a log scale shows the error grow from 1e-4 of the field's
    range up to its full range without saturating."""
    hi = float(top) if top else float(field_clim[1] - field_clim[0])
    hi = hi if hi > 0 else 1.0
    return (hi * 10.0 ** -ERROR_DECADES, hi)


def palette(name: str, n: int = 256) -> list[str]:
    """A Bokeh palette (hex colours, low to high) sampled from the matplotlib colour map `name`."""
    import matplotlib
    from matplotlib.colors import to_hex

    cmap = matplotlib.colormaps[name]
    return [to_hex(cmap(v)) for v in np.linspace(0.0, 1.0, n)]


def readable_log_axis(axis) -> None:
    """Log-axis ticks at 1, 2, 5 × 10^k with plain labels (0.01, 0.002, 1e-05), also below 0.1."""
    axis.ticker = LogTicker(mantissas=[1, 2, 5], desired_num_ticks=5)  # fewer: no overlap within a decade
    # JavaScript's own shortest form: 0.5, 0.002, 0.000001, 1e-7, 1e+21
    axis.formatter = CustomJSTickFormatter(code="return Number(tick.toPrecision(3)).toString()")


def caption(obj: param.Parameterized, name: str = "title", *, font_size: str | None = None,
            css_classes: tuple[str, ...] = ()) -> pn.widgets.StaticText:
    """A one-line caption that follows the string param `name` of `obj` (`**bold**` allowed).

    A StaticText (a Bokeh Div, updated through Panel so the document lock is respected) whose HTML
    is swapped: a frame title changes with every frame played, and a Markdown pane re-renders
    (Markdown parse, theme) for ~15 ms per change on a loaded machine, which alone held playback
    below 10 frames/s (measured with the Data explorer's player: 30 ms of server time per frame with
    a Markdown title, 4 ms with a caption)."""
    def to_html(text: str) -> str:
        return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(str(text)))

    text = pn.widgets.StaticText(value=to_html(getattr(obj, name)), sizing_mode="stretch_width",
                                 margin=(0, 10), styles={"font-size": font_size} if font_size else {},
                                 css_classes=["wb-caption", *css_classes])
    obj.param.watch(lambda e: setattr(text, "value", to_html(e.new)), name)
    return text


# --------------------------------------------------------------------------------- frame views --
class _StreamView(pn.viewable.Viewer):
    title = param.String(default="", doc="caption above the plot")

    def __init__(self, dims: Sequence[str], coords: Mapping[str, np.ndarray], clim: tuple[float, float],
                 *, label: str = "value", cmap: str | None = None, height: int = 330, **params):
        super().__init__(**params)
        self.dims = tuple(dims)
        missing = [d for d in self.dims if d not in coords]
        if missing:
            raise WorkbenchError(f"coordinates for {missing} are missing; this view needs {list(self.dims)}")
        self.coords = {d: np.asarray(coords[d], dtype=np.float64) for d in self.dims}
        self.shape = tuple(len(self.coords[d]) for d in self.dims)
        self.clim = (float(clim[0]), float(clim[1]))
        self.label, self.height, self.frames_shown = label, height, 0
        self.cmap = cmap or default_cmap(self.clim)

    def _check(self, frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.shape != self.shape:
            raise WorkbenchError(f"frame of shape {frame.shape} does not fit this view's grid {self.shape}")
        return frame

    def update(self, frame: np.ndarray, title: str | None = None) -> None:
        """Show `frame` (the grid's shape); call on the document's thread."""
        frame = self._check(frame)
        if title is not None:
            self.title = title
        self._push(frame)
        self.frames_shown += 1

    def close(self) -> None:
        """Nothing held outside Python."""

    def __panel__(self):
        return pn.Column(caption(self), pn.pane.Bokeh(self.fig, sizing_mode="stretch_width"),
                         sizing_mode="stretch_width",
                         css_classes=["wb-frame"])


class StreamImage(_StreamView):
    """2D field as an image placed by its coordinates (row i at y[i]), fixed colour range; with
    `log=True` a logarithmic colour scale (|error| fields: values below the range show as its low end)."""

    def __init__(self, dims, coords, clim, *, log: bool = False, **kw):
        super().__init__(dims, coords, clim, **kw)
        ydim, xdim = self.dims
        x, y = self.coords[xdim], self.coords[ydim]
        hx, hy = (x[1] - x[0] if len(x) > 1 else 1.0), (y[1] - y[0] if len(y) > 1 else 1.0)
        x0, y0, w, h = x[0] - hx / 2, y[0] - hy / 2, hx * len(x), hy * len(y)
        self.source = ColumnDataSource({"image": [np.full(self.shape, np.nan, np.float32)]})
        self.log = log
        kind = LogColorMapper if log else LinearColorMapper
        self.mapper = kind(palette=palette(self.cmap), low=self.clim[0], high=self.clim[1],
                           nan_color="#dddddd")
        self.fig = figure(height=self.height, x_range=(x0, x0 + w), y_range=(y0, y0 + h),
                          match_aspect=True, sizing_mode="stretch_width", x_axis_label=xdim,
                          y_axis_label=ydim, tools=TOOLS, toolbar_location="right")
        glyph = self.fig.image(image="image", x=x0, y=y0, dw=w, dh=h, color_mapper=self.mapper,
                               source=self.source)
        self.fig.add_tools(HoverTool(renderers=[glyph], tooltips=[(self.label, "@image")]))
        bar = ColorBar(color_mapper=self.mapper, width=12)
        if log:
            readable_log_axis(bar)
        self.fig.add_layout(bar, "right")
        self.fig.grid.visible = False

    def set_clim(self, clim: tuple[float, float]) -> None:
        """Move the colour range (e.g. a pinned |error| reference) without touching the data."""
        self.clim = (float(clim[0]), float(clim[1]))
        self.mapper.update(low=self.clim[0], high=self.clim[1])

    def _push(self, frame: np.ndarray) -> None:
        # (y, x) array: Bokeh draws row 0 at the bottom (y[0]), matching the coordinates
        if self.log:  # exact zeros (the initial state) have no logarithm: the scale's bottom colour
            frame = np.maximum(frame, self.clim[0])
        self.source.data = {"image": [np.ascontiguousarray(frame, dtype=np.float32)]}


class StreamProjection(StreamImage):
    """3D field (z, y, x) shown as its maximum over z, an image over (y, x): an |error| field's
    worst value through the depth, cheap enough to stream every frame and never empty."""

    def __init__(self, dims, coords, clim, **kw):
        self.full_shape = tuple(len(coords[d]) for d in dims)
        super().__init__(tuple(dims)[1:], coords, clim, **kw)

    def update(self, frame: np.ndarray, title: str | None = None) -> None:
        frame = np.asarray(frame)
        if frame.shape != self.full_shape:
            raise WorkbenchError(f"frame of shape {frame.shape} does not fit the grid {self.full_shape}")
        super().update(np.nanmax(frame, axis=0), title)


class StreamCurve(_StreamView):
    """1D fields against their coordinate: one curve per name in `curves` (name -> (colour, dash) or
    (colour, dash, width)), overlaid with a legend outside the data. The y-range starts at the colour
    range plus 15 % and grows (never shrinks) to take in any overshoot, up to 5 times the range."""

    def __init__(self, dims, coords, clim, *, curves: Mapping[str, tuple[str, str]] | None = None, **kw):
        super().__init__(dims, coords, clim, **kw)
        x = self.coords[self.dims[0]]
        self.curves = dict(curves or {self.label: (PALETTE[0], "solid")})
        span = self.clim[1] - self.clim[0]
        self._limit = (self.clim[0] - 2 * span, self.clim[1] + 2 * span)
        y_range = (self.clim[0] - 0.15 * span, self.clim[1] + 0.15 * span)
        self.fig = figure(height=self.height, y_range=y_range,
                          x_axis_label=self.dims[0], y_axis_label=self.label, sizing_mode="stretch_width",
                          tools=TOOLS + ",hover")
        self.sources = {}
        items = []
        for name, (color, dash, *width) in self.curves.items():  # (colour, dash[, width])
            self.sources[name] = ColumnDataSource({"x": x, "y": np.full(len(x), np.nan)})
            r = self.fig.line("x", "y", source=self.sources[name], line_width=(width or [2])[0], color=color,
                              line_dash=dash)
            items.append((name, [r]))
        if len(items) > 1:
            self.fig.add_layout(Legend(items=items, location="top", orientation="horizontal",
                                       click_policy="hide"), "above")
        self.source = self.sources[next(iter(self.curves))]

    def _grow(self, frame: np.ndarray) -> None:
        finite = frame[np.isfinite(frame)]
        if finite.size == 0:
            return
        lo = max(float(finite.min()), self._limit[0])
        hi = min(float(finite.max()), self._limit[1])
        yr = self.fig.y_range
        pad = 0.05 * (hi - lo + 1e-12)
        if lo < yr.start:
            yr.start = lo - pad
        if hi > yr.end:
            yr.end = hi + pad

    def _push(self, frame: np.ndarray) -> None:
        self.set(next(iter(self.curves)), frame)

    def set(self, name: str, frame: np.ndarray | None) -> None:
        """Show `frame` as curve `name` (None hides it)."""
        src = self.sources[name]
        y = np.full(len(src.data["x"]), np.nan) if frame is None else np.asarray(frame, dtype=np.float64)
        if frame is not None:
            self._grow(y)
        src.data = {"x": src.data["x"], "y": y}

    def update_all(self, frames: Mapping[str, np.ndarray | None], title: str | None = None) -> None:
        """Show several curves at once (name -> frame)."""
        for name, frame in frames.items():
            if frame is not None:
                self._check(frame)
            self.set(name, frame)
        if title is not None:
            self.title = title
        self.frames_shown += 1


class StreamLines(pn.viewable.Viewer):
    """Curves over time (e.g. running RMSE per model), appended with `ColumnDataSource.stream`.

    `styles` maps a name to (colour, dash): references are dashed grey, ghosts (the curves of the
    previous setting) light grey. The legend sits outside the data (right of the plot); log axes
    get plain tick labels at 1, 2, 5 × 10^k.
    """

    def __init__(self, names: Sequence[str], colors: Sequence[str] = PALETTE, *, title: str = "",
                 y_label: str = "", x_label: str = "time", logy: bool = True, logx: bool = False,
                 height: int = 300, styles: Mapping[str, tuple[str, str]] | None = None):
        super().__init__()
        self.fig = figure(height=height, title=title, y_axis_type="log" if logy else "linear",
                          x_axis_type="log" if logx else "linear", x_axis_label=x_label, y_axis_label=y_label,
                          sizing_mode="stretch_width", tools=TOOLS + ",hover")
        if logy:
            readable_log_axis(self.fig.yaxis[0])
        if logx:
            readable_log_axis(self.fig.xaxis[0])
        self.legend = Legend(items=[], location="top_left", click_policy="hide", label_text_font_size="9pt")
        self.fig.add_layout(self.legend, "right")
        self.sources: dict[str, ColumnDataSource] = {}
        self.logy, self.logx = logy, logx
        styles = dict(styles or {})
        for i, name in enumerate(names):
            self.add(name, *styles.get(name, (colors[i % len(colors)], "solid")))

    def add(self, name: str, color: str, dash: str = "solid", width: float = 2.0) -> None:
        """Add an (empty) curve `name`."""
        self.sources[name] = ColumnDataSource({"time": [], "value": []})
        r = self.fig.line("time", "value", source=self.sources[name], color=color, line_width=width,
                          line_dash=dash)
        self.legend.items = [*self.legend.items, _legend_item(name, r)]

    def _keep(self, times: np.ndarray, values: np.ndarray) -> np.ndarray:
        keep = np.isfinite(values) & np.isfinite(times)
        if self.logy:
            keep &= values > 0
        if self.logx:
            keep &= times > 0
        return keep

    def append(self, name: str, times: np.ndarray, values: np.ndarray) -> None:
        """Add points to curve `name` (non-positive values are dropped on a log axis)."""
        times, values = np.asarray(times, float), np.asarray(values, float)
        keep = self._keep(times, values)
        if keep.any():
            self.sources[name].stream({"time": times[keep], "value": values[keep]})

    def set(self, name: str, times: np.ndarray, values: np.ndarray) -> None:
        """Replace curve `name`."""
        times, values = np.asarray(times, float), np.asarray(values, float)
        keep = self._keep(times, values)
        self.sources[name].data = {"time": times[keep], "value": values[keep]}

    def clear(self) -> None:
        for src in self.sources.values():
            src.data = {"time": [], "value": []}

    def __panel__(self):
        return pn.pane.Bokeh(self.fig, sizing_mode="stretch_width")


def _legend_item(name: str, renderer):
    from bokeh.models import LegendItem

    return LegendItem(label=name, renderers=[renderer])


class SpaceTime(pn.viewable.Viewer):
    """A 1D trajectory as an image over (x, time) with a dashed line marking the time shown."""

    def __init__(self, x: np.ndarray, times: np.ndarray, values: np.ndarray, clim: tuple[float, float], *,
                 xdim: str = "x", label: str = "value", cmap: str | None = None, height: int = 280):
        super().__init__()
        values = np.asarray(values, dtype=np.float32)
        x, times = np.asarray(x, float), np.asarray(times, float)
        if values.shape != (len(times), len(x)):
            raise WorkbenchError(f"space-time values of shape {values.shape} do not match "
                                 f"(time, {xdim}) = ({len(times)}, {len(x)})")
        hx = x[1] - x[0] if len(x) > 1 else 1.0
        ht = times[1] - times[0] if len(times) > 1 else 1.0
        x0, t0, w, h = x[0] - hx / 2, times[0] - ht / 2, hx * len(x), ht * len(times)
        mapper = LinearColorMapper(palette=palette(cmap or default_cmap(clim)), low=clim[0], high=clim[1],
                                   nan_color="#dddddd")
        self.source = ColumnDataSource({"image": [values]})
        self.fig = figure(height=height, x_range=(x0, x0 + w), y_range=(t0, t0 + h), x_axis_label=xdim,
                          y_axis_label="time", sizing_mode="stretch_width", tools=TOOLS,
                          title="space–time (dashed: time shown)")
        glyph = self.fig.image(image="image", x=x0, y=t0, dw=w, dh=h, color_mapper=mapper, source=self.source)
        self.fig.add_tools(HoverTool(renderers=[glyph], tooltips=[(label, "@image")]))
        self.fig.add_layout(ColorBar(color_mapper=mapper, width=12), "right")
        self.marker = Span(location=float(times[0]), dimension="width", line_color="black",
                           line_dash="dashed", line_width=1.5)
        self.fig.add_layout(self.marker)
        self.fig.grid.visible = False

    def mark(self, t: float) -> None:
        """Move the time marker to `t`; call on the document's thread."""
        self.marker.location = float(t)

    def __panel__(self):
        return pn.pane.Bokeh(self.fig, sizing_mode="stretch_width", css_classes=["wb-spacetime"])


def stream_view(dims: Sequence[str], coords: Mapping[str, np.ndarray], clim: tuple[float, float],
                projection: bool = False, **kw):
    """The view for a field with these dims: Bokeh curve (1D) / image (2D), PyVista iso-surface or
    volume (3D; with `projection`, the maximum over z as a Bokeh image)."""
    if len(dims) == 3 and projection:
        return StreamProjection(dims, coords, clim, **kw)
    if len(dims) == 1:
        kw.pop("log", None)
        return StreamCurve(dims, coords, clim, **kw)
    if len(dims) == 2:
        return StreamImage(dims, coords, clim, **kw)
    if len(dims) == 3:
        from pages._volume import VolumeView

        kw.pop("log", None)
        return VolumeView(dims, coords, clim, **kw)
    raise WorkbenchError(f"cannot show a field with dims {tuple(dims)}; 1, 2 or 3 spatial dims are allowed")
