"""The 3D frame view: PyVista iso-surface (vtk.js via `pn.pane.VTK`) or `pn.pane.VTKVolume`."""

from __future__ import annotations

import numpy as np
import panel as pn
import param

from pages._views import FrameView, _uniform_step

#: 3D rendering modes of `VolumeView`
RENDER_MODES: tuple[str, ...] = ("iso-surface", "volume")


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
