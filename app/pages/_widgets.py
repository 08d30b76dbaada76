"""View helpers shared by the workbench pages (one toolkit: Bokeh stream views + one task runner).

- Frame views (`pages._stream_views`): `stream_view(dims, coords, clim)` returns the view of one
  scalar field -- curves (1D), an image oriented by its coordinates (2D), a PyVista iso-surface /
  volume (3D, `pages._volume`). A view is built for one grid; `update(frame)` swaps its data in
  place. When the data changes shape or dimensionality, the page builds a new view and REPLACES the
  old one in its container (never stacks them).
- Background work (`pages._tasks`): `TaskRunner` runs one job at a time in a worker thread, with a
  progress bar, an ETA, pause / resume, stop (keep what was made) and cancel; it turns
  `WorkbenchError`s into notifications and is cancelled when the session ends.
- Small panes: `equation_pane(latex)`, `info_table(items)`, `notify_error(message)`.

Views must be updated on the document's thread: from a job use `task.show(fn, ...)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import panel as pn

from pages._stream_views import (
    PALETTE,
    SpaceTime,
    StreamCurve,
    StreamImage,
    StreamLines,
    default_cmap,
    error_clim,
    stream_view,
    value_range,
)
from pages._tasks import (
    TaskCancelled,
    TaskRunner,
    active_tasks,
    call_on_doc,
    notify_error,
    notify_info,
    on_session_end,
)
from pages._volume import RENDER_MODES, SceneView, VolumeView

__all__ = [
    "PALETTE", "RENDER_MODES", "SceneView", "SpaceTime", "StreamCurve", "StreamImage", "StreamLines",
    "TaskCancelled", "TaskRunner", "VolumeView", "active_tasks", "call_on_doc", "default_cmap",
    "equation_pane", "error_clim", "info_table", "notify_error", "notify_info", "on_session_end",
    "stream_view", "value_range",
]


# -------------------------------------------------------------------------------- small panes --
def equation_pane(latex: str, **kw) -> pn.pane.LaTeX:
    """The equations of a system, typeset by KaTeX; `latex` may or may not carry $$ delimiters."""
    body = latex.strip()
    if not body.startswith("$"):
        body = f"$${body}$$"
    kw.setdefault("styles", {"font-size": "1.05em"})
    return pn.pane.LaTeX(body, renderer="katex", **kw)


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


def int_input(obj, name: str, **kw) -> pn.widgets.TextInput:
    """A text box for the integer param `name` of `obj` that never ignores what was typed.

    A value that is not a whole number or lies outside the param's bounds gives a notification naming
    the allowed range, and the box shows the value actually used (the param's, unchanged). The box
    follows the param when code changes it.
    """
    p = obj.param[name]
    label = kw.pop("label", p.label)
    box = pn.widgets.TextInput(label=label, value=str(getattr(obj, name)), **kw)

    def allowed() -> str:
        lo, hi = obj.param[name].bounds or (None, None)  # read now: a page may move the bounds
        if lo is not None and hi is not None:
            return f"{lo}..{hi}"
        return f">= {lo}" if lo is not None else f"<= {hi}"

    def typed(event) -> None:
        text = str(event.new).strip()
        current = getattr(obj, name)
        if text == str(current):
            return
        try:
            number = float(text)
            ok = np.isfinite(number) and number == int(number)
        except ValueError:
            ok = False
        lo, hi = obj.param[name].bounds or (None, None)
        if ok and (lo is None or number >= lo) and (hi is None or number <= hi):
            setattr(obj, name, int(number))
            return
        why = "is outside the allowed range" if ok else "is not a whole number; allowed range"
        notify_error(f"{label} = {text!r} {why} {allowed()}; using {current}")
        box.value = str(current)

    box.param.watch(typed, "value")
    obj.param.watch(lambda e: setattr(box, "value", str(e.new)), name)
    return box
