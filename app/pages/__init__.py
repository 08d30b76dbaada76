"""Workbench pages. Each page module exposes:

- `TITLE: str`                 the tab label
- `EXTENSIONS: tuple[str, ...]`  Panel extensions it needs (e.g. ("vtk",)), loaded once by main.py
- `WARM_UP: tuple[str, ...]`    (optional) modules the page imports later (when a view needs them),
                               imported in the background by `warm_up`
- `create() -> Page`           a fresh page object per browser session, where `Page` is a
                               `pn.viewable.Viewer` with `sidebar() -> pn.viewable.Viewable` (its
                               controls) and `__panel__()` (its main area).

Pages call `core`'s public API only; state lives in params of the page object (one per session).
"""

from __future__ import annotations

import importlib
import logging
import threading
import time

log = logging.getLogger("workbench.app")

#: page modules, in tab order
PAGE_MODULES: list[str] = [
    "pages.data_explorer",
    "pages.rollout",
    "pages.error_accumulation",
    "pages.nas_explorer",
    "pages.class_mode",
]

#: (TITLE, EXTENSIONS) of the page modules, so the shell can draw its tabs without importing a page
#: (torch, HoloViews) before that page's tab is opened; `tests/test_app.py` checks they match
PAGE_INFO: dict[str, tuple[str, tuple[str, ...]]] = {
    "pages.data_explorer": ("Data explorer", ("vtk", "katex")),
    "pages.rollout": ("Rollout", ("vtk", "katex")),
    "pages.error_accumulation": ("Error accumulation", ()),
    "pages.nas_explorer": ("NAS explorer", ()),
    "pages.class_mode": ("Class mode", ()),
}


class PageModule:
    """A page module imported on first use; `TITLE` and `EXTENSIONS` come from PAGE_INFO when known."""

    def __init__(self, name: str):
        self.__name__ = name
        self._module = None
        if name in PAGE_INFO:
            self.TITLE, self.EXTENSIONS = PAGE_INFO[name]
        else:
            self.TITLE, self.EXTENSIONS = self.module.TITLE, getattr(self.module, "EXTENSIONS", ())

    @property
    def module(self):
        if self._module is None:
            self._module = importlib.import_module(self.__name__)
        return self._module

    def create(self):
        return self.module.create()


def load_pages() -> list[PageModule]:
    return [PageModule(name) for name in PAGE_MODULES]


#: seconds without a session starting or drawing before the background imports go on
IDLE_S = 2.0
_last_busy = [0.0]
_warm_started = threading.Event()


def busy() -> None:
    """A session is starting or drawing a page: background imports wait (see `warm_up`)."""
    _last_busy[0] = time.monotonic()


def warm_up(modules: list[PageModule]) -> None:
    """Import the pages' modules (torch, PyVista) in one background thread per server process, so
    opening a tab later costs only building its page. Each import waits until no session has
    started or drawn a page for IDLE_S seconds: an import holds the interpreter lock for seconds
    (torch), and a page being served must not wait for it."""
    busy()
    if _warm_started.is_set():
        return
    _warm_started.set()

    def idle() -> None:
        while time.monotonic() - _last_busy[0] < IDLE_S:
            time.sleep(0.25)

    def run() -> None:
        for m in modules:
            try:
                idle()
                for name in getattr(m.module, "WARM_UP", ()):
                    idle()
                    importlib.import_module(name)
            except Exception:  # a broken page shows its error when its tab opens
                log.debug("warming up %s failed", m.__name__, exc_info=True)

    threading.Thread(target=run, daemon=True, name="workbench-warm-up").start()
