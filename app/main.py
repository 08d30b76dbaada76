"""`panel serve app`: assembles the workbench shell from the page modules in `pages/`.

This file only assembles; every page owns its state and views (see `pages/__init__.py`). It runs
once per browser session, so sessions never share state. Each page is built the first time its
tab is opened. A page that fails to build is replaced by a one-line error in its tab (the
traceback goes to the server log), so one broken page never takes the whole workbench down.
"""

from __future__ import annotations

import logging

import panel as pn
from pages import load_pages

log = logging.getLogger("workbench.app")

modules = load_pages()
extensions = sorted({ext for m in modules for ext in getattr(m, "EXTENSIONS", ())})
pn.extension(*extensions, notifications=True, sizing_mode="stretch_width")


class Fast(pn.theme.Fast):
    """The Fast design without its web font (Open Sans from fonts.googleapis.com): a classroom
    machine may have no internet, and the page must not wait for it. (Named like its parent: Panel
    finds a design's bundled files by the class name.)"""

    _resources = {k: v for k, v in pn.theme.Fast._resources.items() if k != "font"}


class BrokenPage(pn.viewable.Viewer):
    """Stands in for a page whose `create()` raised."""

    def __init__(self, title: str, exc: Exception):
        super().__init__()
        self._alert = pn.pane.Alert(f"The **{title}** page could not be built: {type(exc).__name__}: {exc}",
                                    alert_type="danger")

    def sidebar(self) -> pn.viewable.Viewable:
        return pn.pane.Markdown("")

    def __panel__(self) -> pn.viewable.Viewable:
        return self._alert


def build(module) -> pn.viewable.Viewer:
    try:
        return module.create()
    except Exception as exc:  # a bug in one page: show it there, keep the others usable
        log.exception("page %s failed to build", module.__name__)
        return BrokenPage(module.TITLE, exc)


# Pages are built when their tab is first opened (one page's cost at page load, not all of them);
# a tab's placeholder is then replaced by the page, which stays: vtk.js breaks on VTK panes
# taken out of the document, so tabs are never emptied again (and `dynamic=False`).
holders = [pn.Column(pn.indicators.LoadingSpinner(value=True, size=40, label="building the page…"),
                     sizing_mode="stretch_width") for _ in modules]
pages: dict[int, pn.viewable.Viewer] = {}


def page(i: int) -> pn.viewable.Viewer:
    if i not in pages:
        pages[i] = build(modules[i])
        holders[i][:] = [pages[i]]
    return pages[i]


tabs = pn.Tabs(*[(m.TITLE, h) for m, h in zip(modules, holders, strict=True)], dynamic=False)


def _first_tab() -> int:
    """`?class=1` opens on Class mode (a prepared story for a lesson); otherwise the first page."""
    args = pn.state.session_args if pn.state.curdoc is not None else {}
    wanted = (args.get("class") or [b""])[0].decode() not in ("", "0")
    titles = [m.TITLE for m in modules]
    return titles.index("Class mode") if wanted and "Class mode" in titles else 0


first = _first_tab()
tabs.active = first
sidebar = pn.Column(page(first).sidebar(), sizing_mode="stretch_width")


def _switch_sidebar(event) -> None:
    sidebar[:] = [page(event.new).sidebar()]


tabs.param.watch(_switch_sidebar, "active")


def _warm_up() -> None:
    """Once the first page is drawn, import the other pages' modules (torch, HoloViews) in the
    background, so opening their tabs later costs only building them. Imports happen once per server
    process; later sessions find them done."""
    import threading

    def run() -> None:
        for m in modules:
            try:
                m.module  # noqa: B018 (the import is the point)
            except Exception:  # a broken page shows its error when its tab opens
                log.debug("warming up %s failed", m.__name__, exc_info=True)

    threading.Thread(target=run, daemon=True, name="workbench-warm-up").start()


pn.state.onload(_warm_up)

pn.template.FastListTemplate(
    title="PIMRL × TinyFormer Workbench",
    sidebar=[sidebar],
    main=[tabs],
    accent="#1f6f8b",
    sidebar_width=340,
    design=Fast,
    font="system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif",
).servable()
