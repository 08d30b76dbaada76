"""`panel serve app`: assembles the workbench shell from the page modules in `pages/`.

This file only assembles; every page owns its state and views (see `pages/__init__.py`). It runs
once per browser session, so sessions never share state. Each page is built the first time its
tab is opened. A page that fails to build is replaced by a one-line error in its tab (the
traceback goes to the server log), so one broken page never takes the whole workbench down.
"""

from __future__ import annotations

import logging
import time

import panel as pn
from pages import busy, load_pages, warm_up
from pages._scripts import ON_DEMAND, session_scripts, when_loaded

log = logging.getLogger("workbench.app")
#: one INFO line per page built (what it cost the server), shown at `panel serve`'s default log level
build_log = logging.getLogger("workbench.app.build")
build_log.setLevel(logging.INFO)

busy()  # a session starts: background imports wait
modules = load_pages()
# libraries only a 3D view needs (vtk.js) come later, when a page asks for them (pages/_scripts.py)
extensions = sorted({ext for m in modules for ext in getattr(m, "EXTENSIONS", ())} - set(ON_DEMAND))
pn.extension(*extensions, notifications=True, sizing_mode="stretch_width")


def _no_mathjax() -> None:
    """Panel adds bokeh-mathjax (1.8 MB of JavaScript) to every page that holds a Markdown pane, in
    case it contains TeX; the workbench typesets its equations with KaTeX and has no TeX in
    Markdown, so the page is served without it (`tests/test_app_ui.py` checks the page's scripts)."""
    import panel.io.resources as resources

    if hasattr(resources, "_panel_use_mathjax"):
        resources._panel_use_mathjax = lambda roots: False


_no_mathjax()


class Fast(pn.theme.Fast):
    """The Fast design without its web font (Open Sans from fonts.googleapis.com): a classroom
    machine may have no internet, and the page must not wait for it. (Named like its parent: Panel
    finds a design's bundled files by the class name. The FAST components stay unminified: Panel's
    fast_design.js imports that very file, and a second, minified copy left the page in FAST's
    default dark palette.)"""

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
    busy()
    if i not in pages:
        pages[i] = build(modules[i])
        holders[i][:] = [pages[i]]
        busy()  # background imports wait until the page has been drawn, not only until it started
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


def _after(extensions: list[str], fn) -> None:
    """`fn()` once the browser has every library in `extensions` (pages/_scripts.py)."""
    if not extensions:
        fn()
    else:
        when_loaded(extensions[0], _after, extensions[1:], fn)


def _switch_sidebar(event) -> None:
    """A tab opened: its page is built (the first time, once the browser has the libraries the page
    loads on demand: vtk.js, Tabulator) and its controls fill the sidebar. A first build is logged
    with its server time (`python -m core bench app` reads the line)."""
    i = event.new
    opened = time.perf_counter()
    new = i not in pages
    if new:
        sidebar[:] = [pn.indicators.LoadingSpinner(value=True, size=30, label="loading…")]

    def show() -> None:
        start = time.perf_counter()
        if tabs.active == i:
            sidebar[:] = [page(i).sidebar()]
        else:
            page(i)
        if new:
            end = time.perf_counter()
            build_log.info("page built: %r in %.3f s of server time, %.3f s after its tab was opened",
                     modules[i].TITLE, end - start, end - opened)

    _after([e for e in modules[i].EXTENSIONS if e in ON_DEMAND], show)


tabs.param.watch(_switch_sidebar, "active")


# once the first page is drawn, the other pages' modules (torch, PyVista) are imported in the
# background while no page is being served (pages.warm_up), so opening their tabs is quick
pn.state.onload(lambda: warm_up(modules))
scripts = session_scripts()

pn.template.FastListTemplate(
    title="PIMRL × TinyFormer Workbench",
    # the script loader draws nothing; in `main` the template would frame it in an empty card
    sidebar=[sidebar, *([scripts.loader] if scripts is not None else [])],
    main=[tabs],
    accent="#1f6f8b",
    sidebar_width=340,
    design=Fast,
    font="system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif",
).servable()
