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
Pages import everything from here; the code lives in `_views` (1D/2D, ranges), `_volume` (3D) and
`_tasks` (worker thread, notifications).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import panel as pn

from core.errors import WorkbenchError
from pages._tasks import TaskCancelled, TaskRunner, call_on_doc, notify_error, notify_info, on_session_end
from pages._views import CurveView, FrameView, ImageView, SpaceTimeView, default_cmap, value_range
from pages._volume import RENDER_MODES, VolumeView

__all__ = [
    "RENDER_MODES", "CurveView", "FrameView", "ImageView", "SpaceTimeView", "TaskCancelled", "TaskRunner",
    "VolumeView", "call_on_doc", "default_cmap", "equation_pane", "frame_view", "info_table", "notify_error",
    "notify_info", "on_session_end", "value_range",
]


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
