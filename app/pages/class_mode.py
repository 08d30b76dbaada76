"""Class mode: a prepared story about error accumulation, three chapters, nothing to set up.

1. Euler vs RK4: the same physics, two time steppers at one large step -- error accumulation is
   not special to neural networks.
2. A learned model vs persistence: the shipped checkpoints against "nothing changes" and the
   training mean (dashed grey): a model is only worth something below them.
3. Noise on the initial state: the same models from a perturbed start; the clean curves stay as
   grey ghosts, so the effect of the noise is seen.

Every chapter is an Error-accumulation result (`pages.error_accumulation.compute`), cached on disk
under the data cache by its inputs: the first visit of a server computes (in the page's task, all
chapters one after the other), every later visit and every other browser reads. Open it with the
"Class mode" tab or the URL argument `?class=1`.
"""

from __future__ import annotations

from typing import Any

import panel as pn
import param

from pages import error_accumulation as ea
from pages._widgets import TaskRunner, notify_error, on_session_end

TITLE = "Class mode"
EXTENSIONS: tuple[str, ...] = ()

_BASE = {"system": "burgers2d", "preset": "cpu", "quick": True, "n_train": 0, "k_multiple": 1, "substeps": 1,
         "iterations": 60, "seed": 0, "noise": 0.0}
LEARNED = ["pimrl", "fno", "convlstm"]

#: (title, what to say, settings, settings of the ghost curves or None)
STORY: list[tuple[str, str, dict[str, Any], dict[str, Any] | None]] = [
    ("1 · Euler vs RK4",
     "Burgers' equation stepped with forward Euler and with RK4 at the same step Δt. Both use the "
     "exact physics; only the time stepper differs. Euler's error is about 10,000 times RK4's from the "
     "first step on and grows tenfold over the horizon: error accumulation is a property of the update "
     "rule, not of neural networks. (On the Error page, halving the step halves Euler's error and "
     "divides RK4's by about 12: first and fourth order.)",
     {**_BASE, "models": ["euler", "rk4"]}, None),
    ("2 · A learned model vs persistence",
     "The shipped learned models on fresh test trajectories, against two references (dashed grey): "
     "persistence (nothing changes) and the training mean field. A learned model has learned the "
     "dynamics only where its curve runs below both.",
     {**_BASE, "models": LEARNED}, None),
    ("3 · Noise on the initial state",
     "The same models started from the initial state plus noise of 20 % of the field's spread. The "
     "light grey curves are chapter 2 (clean start): the gap is the sensitivity to the initial "
     "condition, which no model can remove.",
     {**_BASE, "models": LEARNED, "noise": 0.2}, {**_BASE, "models": LEARNED}),
]


def settings_key(s: dict[str, Any]) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in s.items()))


class ClassMode(pn.viewable.Viewer):
    """Per-session state: the chapter shown; the results come from the shared disk cache."""

    chapter = param.Selector(default=STORY[0][0], objects=[c[0] for c in STORY], label="chapter")
    results = param.Dict(default={}, precedence=-1, doc="settings key -> result, this session")

    def __init__(self, **params):
        super().__init__(**params)
        self.runner = TaskRunner()
        self._cache = ea.ModelCache()
        self._text = pn.pane.Markdown("", styles={"font-size": "1.15em"}, sizing_mode="stretch_width")
        self._plot = pn.pane.Bokeh(None, sizing_mode="stretch_width", height=480,
                                   css_classes=["wb-class-plot"])
        self._table = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.param.watch(self._redraw, ["chapter", "results"])
        on_session_end(self.runner.cancel)
        self._redraw()
        self.prepare()

    def prepare(self) -> bool:
        """Compute (or read from the disk cache) every chapter's result, the shown one first."""
        order = sorted(range(len(STORY)), key=lambda i: STORY[i][0] != self.chapter)
        wanted = []
        for i in order:
            for s in (STORY[i][2], STORY[i][3]):
                if s is not None and settings_key(s) not in [settings_key(w) for w in wanted]:
                    wanted.append(s)

        def job(task):
            out = {}
            for s in wanted:
                result = ea.compute(s, task, self._cache)
                out[settings_key(s)] = result
                task.later(self._add, settings_key(s), result)
            return out

        return self.runner.run(job, lambda _out: None, label="preparing the story (once per server)")

    def _add(self, key, result) -> None:
        for name, reason in result["problems"].items():
            notify_error(f"{name}: {reason}")
        self.results = {**self.results, key: result}

    def _redraw(self, *_events) -> None:
        title, text, s, ghost_s = next(c for c in STORY if c[0] == self.chapter)
        self._text.object = f"### {title}\n\n{text}"
        result = self.results.get(settings_key(s))
        if result is None:
            self._plot.object = None
            self._table.object = "_computing this chapter (the first time only; later visits read it)…_"
            return
        ghost = self.results.get(settings_key(ghost_s)) if ghost_s else None
        self._plot.object = ea.error_plot(result["metrics"], "rmse", True, 0.8,
                                          ghost=ghost and ghost["metrics"],
                                          ghost_label=ghost and ghost["label"])
        self._table.object = ea.summary_markdown(result, 0.8)

    def sidebar(self) -> pn.viewable.Viewable:
        if getattr(self, "_sidebar", None) is None:
            self._sidebar = pn.Column(
                "### Class mode", "A prepared story; press a chapter.",
                pn.widgets.RadioBoxGroup.from_param(self.param.chapter, inline=False),
                self.runner, sizing_mode="stretch_width")
        return self._sidebar

    def __panel__(self) -> pn.viewable.Viewable:
        nav = pn.widgets.RadioButtonGroup.from_param(self.param.chapter, button_type="primary")
        return pn.Column(nav, self._text, self._plot, self._table, sizing_mode="stretch_width")


def create() -> ClassMode:
    return ClassMode()
