"""`panel serve app`: assembles the workbench shell from the page modules in `pages/`.

This file only assembles; every page owns its state and views (see `pages/__init__.py`). It runs
once per browser session, so sessions never share state.
"""

from __future__ import annotations

import panel as pn
from pages import load_pages

modules = load_pages()
extensions = sorted({ext for m in modules for ext in getattr(m, "EXTENSIONS", ())})
pn.extension(*extensions, notifications=True, sizing_mode="stretch_width")

pages = [m.create() for m in modules]
tabs = pn.Tabs(*[(m.TITLE, p) for m, p in zip(modules, pages, strict=True)], dynamic=False)
sidebar = pn.Column(pages[0].sidebar(), sizing_mode="stretch_width")


def _switch_sidebar(event) -> None:
    sidebar[:] = [pages[event.new].sidebar()]


tabs.param.watch(_switch_sidebar, "active")

pn.template.FastListTemplate(
    title="PIMRL × TinyFormer Workbench",
    sidebar=[sidebar],
    main=[tabs],
    accent="#1f6f8b",
    sidebar_width=340,
).servable()
