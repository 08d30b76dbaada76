"""3D views: PyVista scenes drawn by vtk.js (`pn.pane.VTK`).

- `VolumeView`: one field, as an iso-surface at a PHYSICAL level (chosen inside the truth's range,
  so it is crossed; a level that a frame never crosses is said in the caption, never silently empty)
  or as a volume rendering, with a colour bar that marks the level.
- `SceneView`: truth and predictions side by side in ONE scene (one camera: rotate one, all turn),
  every surface at the same physical level; each prediction's surface is coloured by its local
  |error| on a log scale, with a colour bar.

vtk.js fails on an empty mesh (a single placeholder point is drawn instead), and on a VTK pane taken
out of the page and put back: a new view is built when the data changes, never re-inserted.
"""

from __future__ import annotations

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, Span
from bokeh.plotting import figure

from pages._stream_views import _StreamView, caption, palette, readable_log_axis

#: 3D rendering modes of `VolumeView`
RENDER_MODES: tuple[str, ...] = ("iso-surface", "volume")


def fast_vtk_serializer() -> None:
    """Make Panel's vtk.js scene serializer convert 64-bit index arrays with NumPy.

    Every `pane.synchronize()` re-serializes each mesh; Panel converts the cells of every surface
    (vtkIdType, 64 bit) to 32 bit one value at a time in a Python loop: 1.3 s of a 1.4 s 3D rollout
    update (two 24³ iso-surfaces; measured with cProfile), which held learned 3D rollouts near
    1 update/s. The replacement gives the same bytes (`tests/test_pages_pimrl.py` compares them)
    and leaves every other array to Panel's own code. Applied once, by the first 3D view."""
    from panel.pane.vtk import synchronizable_serializer as ser

    original = ser.SynchronizationContext.getCachedDataArray
    if getattr(original, "_workbench_fast", False):
        return
    from vtkmodules.util.numpy_support import vtk_to_numpy

    def get_cached_data_array(self, pMd5, binary=False, compression=False):  # noqa: N803 (Panel's name)
        array = self.dataArrayCache[pMd5]["array"]
        kind = array.GetDataType()
        if kind not in (12, 16, 17):  # not vtkIdType / (unsigned) long long: Panel sends it as it is
            return original(self, pMd5, binary=binary, compression=compression)
        values = vtk_to_numpy(array).ravel()
        # as Panel's loop: negative -> -1, then to UInt32 (vtkIdType, unsigned long long) or Int32
        data = np.where(values < 0, -1, values).astype(np.uint32 if kind in (12, 17) else np.int32).tobytes()
        if binary:
            return data if not compression else ser.zipCompression(pMd5, data)
        return ser.base64Encode(data if not compression else ser.zipCompression(pMd5, data))

    get_cached_data_array._workbench_fast = True
    get_cached_data_array.original = original
    ser.SynchronizationContext.getCachedDataArray = get_cached_data_array


def _uniform_step(c: np.ndarray) -> float:
    return float(c[1] - c[0]) if len(c) > 1 else 1.0


def colorbar_figure(cmap: str, clim: tuple[float, float], *, log: bool = False, title: str = "",
                    mark: float | None = None) -> tuple[figure, Span | None]:
    """A slim horizontal colour bar for a vtk.js scene (which carries none): the colour map as 256
    bands along an x axis in the field's units (log spaced on a log axis), with an optional marker
    line at the value `mark`. (A Bokeh ColorBar laid out in a figure this thin was drawn wider than
    the figure and showed only its low end.)"""
    fig = figure(height=80, toolbar_location=None, min_border_left=12, min_border_right=24,
                 outline_line_color=None, sizing_mode="stretch_width", title=title,
                 x_axis_type="log" if log else "linear", y_range=(0, 1), tools="")
    fig.title.text_font_size = "9pt"
    fig.title.text_font_style = "normal"
    fig.yaxis.visible = False
    fig.grid.visible = False
    if log:
        readable_log_axis(fig.xaxis[0])
    bands = ColumnDataSource({"left": [], "right": [], "color": []})
    fig.quad(left="left", right="right", bottom=0, top=1, color="color", source=bands)
    # kept on the figure (Bokeh allows private attributes) so `set_colorbar_range` can move it
    fig._wb_bar = (bands, log, palette(cmap))
    set_colorbar_range(fig, clim)
    span = None
    if mark is not None:
        span = Span(location=float(mark), dimension="height", line_color="black", line_width=2)
        fig.add_layout(span)
    return fig, span


def set_colorbar_range(fig: figure, clim: tuple[float, float]) -> None:
    """Move a `colorbar_figure` to the range `clim`."""
    bands, log, colors = fig._wb_bar
    lo, hi = float(clim[0]), float(clim[1])
    edges = np.geomspace(lo, hi, len(colors) + 1) if log else np.linspace(lo, hi, len(colors) + 1)
    bands.data = {"left": edges[:-1], "right": edges[1:], "color": colors}
    fig.x_range.update(start=lo, end=hi)


def _grid(pv, coords, dims, shift: float = 0.0):
    zc, yc, xc = (coords[d] for d in dims)
    spacing = (_uniform_step(xc), _uniform_step(yc), _uniform_step(zc))
    origin = (float(xc[0]) + shift, float(yc[0]), float(zc[0]))
    return pv.ImageData(dimensions=(len(xc), len(yc), len(zc)), spacing=spacing, origin=origin)


def _actor(pv, color):
    mesh = pv.PolyData()
    mapper = pv.DataSetMapper(mesh)
    mapper.scalar_visibility = False
    actor = pv.Actor(mapper=mapper)
    actor.prop.color = color
    actor.prop.specular = 0.3
    return mesh, actor


def _points(frame: np.ndarray) -> np.ndarray:
    # (z, y, x) C-order ravel puts x fastest, which is VTK's point order for image data.
    return np.ascontiguousarray(frame, dtype=np.float32).ravel()


def _rgb(cmap: str, v: float) -> tuple[float, float, float]:
    import matplotlib

    r, g, b, _ = matplotlib.colormaps[cmap](float(np.clip(v, 0, 1)))
    return (float(r), float(g), float(b))


class VolumeView(_StreamView):
    """3D: an iso-surface of the field at a physical `level` (PyVista off-screen, drawn by vtk.js),
    or a volume rendering (`pn.pane.VTKVolume`, which rescales colours per frame)."""

    mode = param.Selector(default="iso-surface", objects=list(RENDER_MODES), doc="3D rendering")
    level = param.Number(default=0.0, doc="iso level (physical value, inside the truth's range)")
    crossed = param.Boolean(default=True, doc="the level is crossed in the frame shown")

    def __init__(self, dims, coords, clim, **kw):
        # a diverging map is white in the middle: invisible as a surface on white, so 3D uses viridis
        kw.setdefault("cmap", "viridis")
        kw.setdefault("height", 440)
        super().__init__(dims, coords, clim, **kw)
        import pyvista as pv  # imported here: only 3D pages pay for VTK

        fast_vtk_serializer()
        self._set_level_range()
        self.grid = _grid(pv, self.coords, self.dims)
        self.iso, self.iso_actor = _actor(pv, self._level_color())
        self.outline, outline_actor = _actor(pv, (0.33, 0.33, 0.33))
        self.outline.copy_from(self.grid.outline())
        self.plotter = pv.Plotter(off_screen=True, window_size=(640, 520))
        self.plotter.set_background("white")
        self.plotter.add_actor(self.iso_actor)
        self.plotter.add_actor(outline_actor)
        self.plotter.camera_position = "iso"
        self.plotter.reset_camera(bounds=self.grid.bounds)
        self.iso.copy_from(self._placeholder())
        cam = self.plotter.camera
        self.panes = {
            "iso-surface": pn.pane.VTK(self.plotter.ren_win, enable_keybindings=False, height=self.height,
                                       sizing_mode="stretch_width", css_classes=["wb-vtk-iso"]),
            "volume": pn.pane.VTKVolume(self._ramp(), display_slices=False, controller_expanded=False,
                                        render_background="#ffffff", height=self.height,
                                        sizing_mode="stretch_width", css_classes=["wb-vtk-volume"],
                                        spacing=self.grid.spacing, origin=self.grid.origin, camera={
                                            "position": list(cam.position),
                                            "focalPoint": list(cam.focal_point), "viewUp": list(cam.up)}),
        }
        self.colorbar, self._mark = colorbar_figure(self.cmap, self.clim, title=self.label, mark=self.level)
        self._show_mode()
        self.param.watch(self._on_mode, ["mode"])
        self.param.watch(self._on_level, ["level"])

    def _set_level_range(self) -> None:
        lo, hi = self.clim
        self.param.level.bounds = (lo, hi)
        self.param.level.step = (hi - lo) / 50
        with param.parameterized.discard_events(self):
            self.level = lo + 0.5 * (hi - lo)
        self._frame = np.full(self.shape, 0.5 * (lo + hi), dtype=np.float32)

    def reset(self, coords, clim, frame=None, title=None) -> None:
        """Move this view to another 3D grid / colour range (a new dataset) and show `frame`.

        The VTK pane itself stays on the page (vtk.js cannot take a scene out and back in): the
        page hides this view's container while it shows a 1D or 2D field."""
        import pyvista as pv

        self.coords = {d: np.asarray(coords[d], dtype=np.float64) for d in self.dims}
        self.shape = tuple(len(self.coords[d]) for d in self.dims)
        self.clim = (float(clim[0]), float(clim[1]))
        self._set_level_range()
        self.grid = _grid(pv, self.coords, self.dims)
        self.outline.copy_from(self.grid.outline())
        self.plotter.reset_camera(bounds=self.grid.bounds)
        self.panes["volume"].param.update(spacing=self.grid.spacing, origin=self.grid.origin)
        set_colorbar_range(self.colorbar, self.clim)
        self._on_level()
        self.update(np.full(self.shape, np.nan) if frame is None else frame, title)

    def _placeholder(self):
        """A single point at the grid's origin, drawn when the level is never crossed: vtk.js fails
        on an empty mesh."""
        import pyvista as pv

        return pv.PolyData(np.array([self.grid.origin], dtype=np.float64))

    def _ramp(self) -> np.ndarray:
        """Placeholder volume before any data: the colour range as a ramp along x."""
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

    def _level_color(self) -> tuple[float, float, float]:
        lo, hi = self.clim
        return _rgb(self.cmap, (self.level - lo) / (hi - lo))

    def _render(self) -> None:
        if self.mode == "volume":
            blank = not np.isfinite(self._frame).any()
            self.panes["volume"].object = self._ramp() if blank else self._xyz(np.nan_to_num(self._frame))
            return
        self.grid.point_data["field"] = _points(self._frame)
        # point normals from the contour filter give smooth (Gouraud) shading in vtk.js
        surface = self.grid.contour([self.level], scalars="field", compute_normals=True)
        self.crossed = bool(surface.n_points)
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
        if self._mark is not None:
            self._mark.location = self.level
        if self.mode == "iso-surface":
            self._render()

    @property
    def pane(self) -> pn.pane.VTK | pn.pane.VTKVolume:
        """The VTK pane currently shown."""
        return self.panes[self.mode]

    def surface_points(self) -> int:
        """Number of vertices of the current iso-surface (0 when the level is never crossed)."""
        return int(self.iso.n_points) if self.crossed else 0

    def close(self) -> None:
        self.plotter.close()

    def __panel__(self):
        def note(crossed, level):
            return "" if crossed else (f"⚠ the level {level:.4g} is not crossed in this frame: move the "
                                       "level slider inside the field's values")
        controls = pn.Row(pn.widgets.RadioButtonGroup.from_param(self.param.mode, width=220),
                          pn.widgets.FloatSlider.from_param(self.param.level, width=260, name="iso level",
                                                            visible=self.param.mode.rx() == "iso-surface"))
        return pn.Column(caption(self), controls,
                         pn.pane.Markdown(pn.bind(note, self.param.crossed, self.param.level),
                                          margin=(0, 10)),
                         *self.panes.values(), pn.pane.Bokeh(self.colorbar, sizing_mode="stretch_width"),
                         sizing_mode="stretch_width")


class SceneView(pn.viewable.Viewer):
    """Truth and predictions of a 3D rollout side by side in one vtk.js scene (one camera).

    All surfaces are at the same physical `level` (the middle of the truth's range unless set);
    the truth is grey, each prediction is coloured by |prediction − truth| at its surface points on
    a log scale `err_clim`, shown in the colour bar under the scene.
    """

    title = param.String(default="")

    def __init__(self, dims, coords, clim, names, err_clim, *, height: int = 420, level: float | None = None):
        super().__init__()
        import pyvista as pv

        fast_vtk_serializer()
        self.dims, self.names, self.clim = tuple(dims), list(names), (float(clim[0]), float(clim[1]))
        self.coords = {d: np.asarray(coords[d], float) for d in self.dims}
        self.shape = tuple(len(self.coords[d]) for d in self.dims)
        self.level = float(level) if level is not None else 0.5 * (self.clim[0] + self.clim[1])
        self.err_clim = err_clim
        width = float(np.ptp(self.coords[self.dims[2]])) * 1.25 + _uniform_step(self.coords[self.dims[2]])
        self.plotter = pv.Plotter(off_screen=True, window_size=(900, 420))
        self.plotter.set_background("white")
        self.grids, self.meshes, self.actors = {}, {}, {}
        # the surfaces carry log10 |error| on a LINEAR table: Panel hands vtk.js the table as
        # linearly spaced colours, so a log table showed one colour (the scene looked uncoloured)
        self.log_range = (float(np.log10(err_clim[0])), float(np.log10(err_clim[1])))
        self.lut = pv.LookupTable(cmap="magma", scalar_range=self.log_range)
        for i, name in enumerate(["truth", *self.names]):
            # in the "iso" camera view +x runs to the left: predictions at -x put the truth leftmost
            self.grids[name] = _grid(pv, self.coords, self.dims, shift=-i * width)
            mesh, actor = _actor(pv, (0.55, 0.6, 0.65) if name == "truth" else (0.8, 0.4, 0.3))
            if name != "truth":
                actor.mapper.lookup_table = self.lut
                actor.mapper.scalar_range = self.log_range
                actor.mapper.scalar_visibility = True
                actor.mapper.scalar_map_mode = "point"
            outline, outline_actor = _actor(pv, (0.33, 0.33, 0.33))
            outline.copy_from(self.grids[name].outline())
            mesh.copy_from(self._placeholder(name))
            self.plotter.add_actor(actor)
            self.plotter.add_actor(outline_actor)
            self.meshes[name], self.actors[name] = mesh, actor
        self.plotter.camera_position = "iso"
        self.plotter.reset_camera()
        self.pane = pn.pane.VTK(self.plotter.ren_win, enable_keybindings=False, height=height,
                                sizing_mode="stretch_width", css_classes=["wb-vtk-scene"])
        self.colorbar, _ = colorbar_figure("magma", err_clim, log=True,
                                           title="|error| on each prediction's surface (log)")
        self.frames_shown = 0
        self.empty: list[str] = []

    def _placeholder(self, name):
        import pyvista as pv

        pts = np.array([self.grids[name].origin], dtype=np.float64)
        mesh = pv.PolyData(pts)
        mesh.point_data["log_err"] = np.full(1, self.log_range[0], np.float32)
        mesh.set_active_scalars("log_err")
        return mesh

    def update(self, truth: np.ndarray, preds: dict[str, np.ndarray | None],
               title: str | None = None) -> None:
        """Show the truth and each prediction (None: the model diverged; its surface goes)."""
        self.empty = []
        for name in ["truth", *self.names]:
            frame = truth if name == "truth" else preds.get(name)
            grid = self.grids[name]
            if frame is None:
                self.meshes[name].copy_from(self._placeholder(name))
                continue
            grid.point_data["field"] = _points(frame)
            grid.point_data["log_err"] = _points(np.log10(np.clip(np.abs(frame - truth), *self.err_clim)))
            surface = grid.contour([self.level], scalars="field", compute_normals=True)
            if not surface.n_points:
                self.empty.append(name)
            else:  # colour by the error, not by the (constant) contoured field
                surface.set_active_scalars("log_err")
            self.meshes[name].copy_from(surface if surface.n_points else self._placeholder(name))
        if title is not None:
            self.title = title
        self.pane.synchronize()
        self.frames_shown += 1

    def close(self) -> None:
        self.plotter.close()

    def __panel__(self):
        intro = (f"**one 3D scene, one camera** · left to right: truth, {', '.join(self.names)} · "
                 f"iso-surface at u = {self.level:.4g} (middle of the truth's range)")
        return pn.Column(pn.pane.Markdown(intro, margin=(0, 10)),
                         caption(self), self.pane,
                         pn.pane.Bokeh(self.colorbar, sizing_mode="stretch_width"),
                         sizing_mode="stretch_width")
