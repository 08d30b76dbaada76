"""Workbench pages. Each page module exposes:

- `TITLE: str`                 the tab label
- `EXTENSIONS: tuple[str, ...]`  Panel extensions it needs (e.g. ("vtk",)), loaded once by main.py
- `create() -> Page`           a fresh page object per browser session, where `Page` is a
                               `pn.viewable.Viewer` with `sidebar() -> pn.viewable.Viewable` (its
                               controls) and `__panel__()` (its main area).

Pages call `core`'s public API only; state lives in params of the page object (one per session).
"""

from __future__ import annotations

import importlib

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
    "pages.nas_explorer": ("NAS explorer", ("tabulator",)),
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
