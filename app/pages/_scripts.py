"""Browser libraries loaded when a page first needs them, not with every page load.

vtk.js is 2.5 MB of JavaScript and Tabulator (with luxon) 0.5 MB: fetching and parsing them on
every page load cost about a second (measured in headless Chromium, `python -m core bench app`),
although only 3D views use vtk.js (and no page uses Tabulator at present: the NAS explorer's
table is HTML). So `main.py` leaves them out of `pn.extension` and puts one `ScriptLoader` in each
session's document. A tab opened later is built
once the browser has its page's libraries (`main.py`); a page that shows a 3D view in a page built
before (the Data explorer is the first page) calls `when_loaded("vtk", fn, ...)`, which asks the
browser to add the library's `<script>` tags and runs `fn` once the browser reports them executed.
Panel's VTK and Tabulator models look up their library (`window.vtk`, `Tabulator`) when they are
constructed or drawn, so a pane sent after that works as if the library had been there from the start.

Outside a served session (tests, notebooks) `when_loaded` calls `fn` at once.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

import panel as pn
import param
from panel.custom import JSComponent

log = logging.getLogger("workbench.app.scripts")

#: Panel extensions loaded on demand (the others are loaded with the page by `pn.extension`)
ON_DEMAND: tuple[str, ...] = ("vtk", "tabulator")


def script_files(extension: str) -> list[str]:
    """The JavaScript files (server-relative URLs) of a Panel extension, in load order."""
    module = importlib.import_module(pn.extension._imports[extension])
    files: list[str] = []
    for cls in vars(module).values():
        sources = getattr(cls, "__javascript__", None) if isinstance(cls, type) else None
        for src in sources if isinstance(sources, list) else []:
            if isinstance(src, str) and src not in files:
                files.append(src)
    return files


class ScriptLoader(JSComponent):
    """Adds `<script>` tags for `requested` to the page, one after the other, and reports the ones
    that ran in `loaded` (a script that fails to load is reported in `failed`)."""

    requested = param.List(default=[], doc="script URLs the page should load")
    loaded = param.List(default=[], doc="script URLs the browser has executed (set by the browser)")
    failed = param.List(default=[], doc="script URLs the browser could not load (set by the browser)")

    _esm = """
    export function render({ model }) {
      const cache = window.__workbenchScripts = window.__workbenchScripts || {}
      const add = (src) => cache[src] = cache[src] || new Promise((resolve, reject) => {
        const s = document.createElement("script")
        s.src = src
        s.onload = resolve
        s.onerror = () => reject(new Error(src))
        document.head.appendChild(s)
      })
      const load = async () => {
        const done = [], failed = []
        for (const src of model.requested) {
          try { await add(src); done.push(src) } catch (e) { failed.push(src) }
        }
        if (failed.length) { model.failed = failed }
        model.loaded = done
      }
      model.on("requested", load)
      load()
      return document.createElement("span")
    }
    """


class Scripts:
    """One session's on-demand libraries: the loader in its document and the calls waiting for it."""

    def __init__(self):
        self.loader = ScriptLoader(width=0, height=0, margin=0, sizing_mode="fixed")
        self._waiting: list[tuple[list[str], Callable[..., Any], tuple]] = []
        self._extensions: dict[str, list[str]] = {}  # extension -> its script files, as requested
        self.loader.param.watch(self._on_loaded, "loaded")
        self.loader.param.watch(self._on_failed, "failed")

    def when_loaded(self, extension: str, fn: Callable[..., Any], *args: Any) -> None:
        files = script_files(extension)
        self._extensions[extension] = files
        if all(f in self.loader.loaded for f in files):
            fn(*args)
            return
        self._waiting.append((files, fn, args))
        missing = [f for f in files if f not in self.loader.requested]
        if missing:
            self.loader.requested = [*self.loader.requested, *missing]

    def _on_loaded(self, _event) -> None:
        # tell Panel the document has these extensions now, or it warns at every pane it builds that
        # the extension "was not loaded" (its list of a document's extensions is internal)
        registered = getattr(pn.state, "_extensions", None)
        for ext, files in self._extensions.items():
            done = all(f in self.loader.loaded for f in files)
            if registered is not None and ext not in registered and done:
                registered.append(ext)
        ready = [w for w in self._waiting if all(f in self.loader.loaded for f in w[0])]
        self._waiting = [w for w in self._waiting if w not in ready]
        for _files, fn, args in ready:
            fn(*args)

    def _on_failed(self, event) -> None:
        from pages._tasks import notify_error

        notify_error(f"the browser could not load {', '.join(event.new)}; reload the page to show 3D views")


_SESSIONS: WeakKeyDictionary = WeakKeyDictionary()


def _served() -> bool:
    return pn.state.curdoc is not None and pn.state.curdoc.session_context is not None


def session_scripts() -> Scripts | None:
    """This session's `Scripts` (created on first use; None outside a served session). `main.py`
    puts its loader into the document."""
    if not _served():
        return None
    doc = pn.state.curdoc
    if doc not in _SESSIONS:
        _SESSIONS[doc] = Scripts()
    return _SESSIONS[doc]


def when_loaded(extension: str, fn: Callable[..., Any], *args: Any) -> None:
    """Call `fn(*args)` on the document's thread once the browser has the library of `extension`
    (at once when it has it already, or outside a served session)."""
    scripts = session_scripts()
    if scripts is None or extension not in ON_DEMAND:
        fn(*args)
        return
    scripts.when_loaded(extension, fn, *args)
