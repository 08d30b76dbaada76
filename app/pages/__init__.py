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
]


def load_pages() -> list:
    return [importlib.import_module(name) for name in PAGE_MODULES]
