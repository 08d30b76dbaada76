"""NAS explorer: the SparseNAS candidates under flash / SRAM budgets, SuperNAS's choice of search
space, one candidate's structure and per-layer costs, and its speed on the emulated Cortex-M7.

One `NasExplorer` per browser session owns the state (budgets, colour, selected candidate, engine
results of this session). It reads the shipped `data/nas/candidates.parquet` and `supernas.json`
(`python -m core nas supernas|sparsenas`) and `data/engine/<id>/manifest.json` (`python -m core engine
compare <id>`). "Export firmware" builds the selected candidate as a firmware project for the chosen board
(`core.engine.export`) and offers it as a zip with its flash / SRAM table. Moving a budget slider only
re-colours the scatter (over-budget points turn grey) and redraws the Pareto front of the fitting
ones; a click on a point (or the dropdown) selects a
candidate. Engine runs and SuperNAS re-runs go through `TaskRunner` (worker thread + progress).

The tab opens with the scatters and the selected candidate's structure, drawn with Bokeh directly
(`pages._nas_plots`); the detail tabs' views (per-layer costs, engine runs and the kernel curve,
SuperNAS) are HoloViews elements (`pages._nas_views`, imported when one is first opened) made when their
tab is first opened and kept up to date from then on (`python -m core bench app` times the tab).
"""

from __future__ import annotations

import importlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param

from core.errors import WorkbenchError
from pages import _nas_data as nd
from pages import _nas_plots as bp
from pages._widgets import TaskRunner, info_table, on_session_end

TITLE = "NAS explorer"
EXTENSIONS: tuple[str, ...] = ()

COLOR_BY = {"MACs (M)": "mmacs", "latency (ms, fitted)": "latency_ms"}
AXES = ("flash_kb", "sram_kb", "latency_ms")
SUPERNAS_SAMPLES = 100  # per space when re-run from the page (≈ seconds on 2 cores)
#: the candidate detail's tabs, in order
DETAIL_TABS = ("Structure", "Per-layer costs", "Engine & firmware", "SuperNAS: which search space")
#: modules `pages.warm_up` imports in the background once the page modules are imported: what the
#: page's first build needs (the per-layer table's) and what its detail tabs need (HoloViews)
WARM_UP = ("core.tinyformer.cost", "core.tinyformer.latency", "core.tinyformer.schedule", "pages._nas_views")


def _views():
    """`pages._nas_views` (HoloViews), imported on first use: the tab opens without it."""
    return importlib.import_module("pages._nas_views")


class NasExplorer(pn.viewable.Viewer):
    """State and views of the NAS explorer page (one instance per browser session)."""

    flash_kb = param.Integer(default=1024, bounds=(16, 2048), step=16, doc="flash budget (KB)")
    sram_kb = param.Integer(default=320, bounds=(16, 640), step=8, doc="SRAM budget (KB)")
    color_by = param.Selector(default="MACs (M)", objects=list(COLOR_BY), doc="colour of fitting points")
    candidate = param.Selector(default=None, objects=[], allow_None=True, doc="candidate shown in detail")
    n_fit = param.Integer(default=0, doc="candidates within both budgets")
    board = param.Selector(default="stm32f746g-disco", objects=["stm32f746g-disco", "mps2-an500"],
                           doc="board of the firmware export")
    error = param.String(default="", doc="last error shown to the user")

    def __init__(self, nas_dir: Path | None = None, engine_dir: Path | None = None, **params):
        super().__init__(**params)
        self.nas_dir, self.engine_dir = nas_dir, engine_dir
        self.runner = TaskRunner()
        self.runner.param.watch(lambda e: setattr(self, "error", e.new), "error")
        self.engine_results: dict[int, dict[str, dict[str, Any]]] = {}
        self.firmware: dict[tuple[int, str], dict[str, Any]] = {}  # (candidate, board) -> export
        self.opened = {0}  # detail tabs filled so far (the first is shown with the page)
        self.table: pd.DataFrame | None = None
        self.supernas: dict[str, Any] | None = None
        self._load()
        self._build_panes()
        if self.table is not None:
            self._on_budget()
            self._on_candidate()
            self.param.watch(self._on_budget, ["flash_kb", "sram_kb"])
            self.param.watch(self._redraw, ["color_by"])
            self.param.watch(self._on_candidate, ["candidate"])
            self.param.watch(lambda *_: self._show_firmware(), ["board"])
        on_session_end(self.runner.cancel)

    # ------------------------------------------------------------------------------------ data --
    def _load(self) -> None:
        try:
            table = nd.load_candidates(self.nas_dir)
        except WorkbenchError as exc:
            self.error = str(exc)
            return
        self.table = table
        self.rows = _Rows(table)
        self.layers: dict[int, pd.DataFrame] = {}  # per-layer table of each candidate shown
        self.latency_model = nd.latency_model()
        self.dataset = nd.dataset_label(str(table["dataset"].iloc[0]))
        self.supernas = nd.load_supernas(self.nas_dir)
        self.param.candidate.objects = {self._label(r): int(r.id) for r in table.itertuples()}
        self.candidate = int(table["id"].iloc[0])

    @staticmethod
    def _label(r) -> str:
        return f"#{r.id} · {r.accuracy:.1%} · {r.flash_kb:.0f} KB flash · {r.sram_kb:.0f} KB SRAM"

    def fits(self) -> np.ndarray:
        """Mask of candidates within the current budgets (table order)."""
        return nd.fitting(self.table, self.flash_kb, self.sram_kb)

    @property
    def fitting_ids(self) -> list[int]:
        return [int(i) for i in self.table["id"][self.fits()]]

    def frame(self) -> pd.DataFrame:
        """The table the scatter draws: colour value `c` (NaN = over budget, grey) and alpha."""
        df = self.table.copy()
        fit = self.fits()
        df["c"] = np.where(fit, df[COLOR_BY[self.color_by]], np.nan)
        df["alpha"] = np.where(fit, 1.0, 0.45)
        return df

    def front(self, x: str) -> np.ndarray:
        """Pareto front (accuracy vs `x`) among the fitting candidates, as indices into the table."""
        fit = np.flatnonzero(self.fits())
        sub = nd.pareto_front(self.table[x].to_numpy()[fit], self.table["accuracy"].to_numpy()[fit])
        return fit[sub] if len(sub) else sub

    # --------------------------------------------------------------------------------- scatter --
    def _redraw(self, *_events) -> None:
        """Colours, Pareto fronts, budget marks and titles of the three scatters."""
        frame = self.frame()
        col = COLOR_BY[self.color_by]
        lo, hi = float(self.table[col].min()), float(self.table[col].max())
        titles = {"flash_kb": f"flash ≤ {self.flash_kb} KB", "sram_kb": f"SRAM ≤ {self.sram_kb} KB",
                  "latency_ms": "accuracy vs fitted latency"}
        self.scatters.update(frame["c"].to_numpy(), frame["alpha"].to_numpy(),
                             {x: self.front(x) for x in AXES},
                             {"flash_kb": self.flash_kb, "sram_kb": self.sram_kb}, titles,
                             (lo, hi if hi > lo else lo + 1), self.color_by)

    def _on_tap(self, index: int) -> None:
        self.candidate = int(self.table["id"].iloc[index])

    def _on_budget(self, *_events) -> None:
        fit = self.fits()
        self.n_fit = int(fit.sum())
        best = self.table[fit].sort_values("accuracy", ascending=False).iloc[0] if self.n_fit else None
        tail = (f" · most accurate: **#{int(best['id'])}** ({best['accuracy']:.1%}, "
                f"{best['flash_kb']:.0f} KB, {best['sram_kb']:.0f} KB)" if best is not None
                else " · nothing fits: raise a budget")
        self.count.object = (f"**{self.n_fit} of {len(self.table)}** candidates fit "
                             f"{self.flash_kb} KB flash and {self.sram_kb} KB SRAM{tail}")
        self._redraw()

    # ------------------------------------------------------------------------------ candidate --
    def _on_candidate(self, *_events) -> None:
        if self.candidate is None:
            return
        row = self.rows[self.candidate]
        self.scatters.select(self.candidate)
        self.detail_card.title = f"Candidate #{row['id']}"
        for tab in sorted(self.opened):
            self._fill(tab)
        if 2 not in self.opened:  # the run button's label (the Engine tab's fill sets it too)
            self._show_engine()
        self._show_firmware()

    def _layers(self, cid: int) -> pd.DataFrame:
        if cid not in self.layers:
            self.layers[cid] = nd.layer_table(self.rows[cid], self.latency_model)
        return self.layers[cid]

    def _fill(self, tab: int) -> None:
        """Draw detail tab `tab` for the selected candidate."""
        if self.candidate is None:
            return
        row, layers = self.rows[self.candidate], self._layers(self.candidate)
        self._hv_panes(tab)
        if tab == 0:
            self.diagram.object = bp.arch_diagram(row["arch"], layers, nd.block_shapes(row["arch"]))
            self.summary.object = info_table(self._summary(row, layers))
            self.arch_json.object = row["arch"]
        elif tab == 1:
            for pane, element in zip(self.bars, _views().layer_bars(layers), strict=True):
                pane.object = element
        elif tab == 2:
            self._show_engine()
            if self.kernel_plot.object is None:
                self._show_kernel_curve()
        elif tab == 3 and (self.cdf.object is None or self.supernas is None):
            self._show_supernas()

    def _on_detail_tab(self, event) -> None:
        """A detail tab opened: drawn the first time, kept up to date from then on."""
        if event.new not in self.opened:
            self.opened.add(event.new)
            self._fill(event.new)

    def _show_kernel_curve(self) -> None:
        curve = nd.kernel_curve()
        even = nd.break_even(curve) if not curve.empty else {}
        self.kernel_text.object = _break_even_text(even)
        self.kernel_plot.object = _views().kernel_curve_plot(curve, even)

    def _summary(self, row: dict[str, Any], layers: pd.DataFrame) -> dict[str, Any]:
        def pct(v: float) -> str:
            return "—" if v != v else f"{v:.1%}"

        lo, hi = (row[f"latency_cycles_{b}"] / nd.CLOCK_HZ * 1e3 for b in ("optimistic", "conservative"))
        return {
            "dataset": self.dataset,
            "accuracy (search: held-out train slice, supernet weights)": pct(row["accuracy"]),
            "accuracy (test, fine-tuned / int8)":
                f"{pct(row['accuracy_test'])} / {pct(row['accuracy_int8'])}",
            "MACs": f"{row['mmacs']:.2f} M ({nd.effective_macs(row) / 1e6:.2f} M with sparse layers' "
                    "zeros skipped)",
            "params": f"{row['params']:,}",
            "flash (exact encoded, NAS)": f"{row['flash_kb']:.1f} KB (per-layer bars: analytic "
                                          f"{layers['flash_bytes'].sum() / 1024:.1f} KB)",
            "peak SRAM (memory plan)": f"{row['sram_kb']:.1f} KB at "
                                       f"{layers.loc[layers['sram_bytes'].idxmax(), 'op']}",
            "sparse layers": f"{row['n_sparse_layers']} of {int((layers['storage'] != '-').sum())}",
            "latency (fitted per-layer model)": f"{row['latency_ms']:.1f} ms at 216 MHz ({lo:.1f}–{hi:.1f}); "
                                                 f"dense: {row['dense_latency_ms']:.1f} ms",
            "stored dense": f"{row['dense_flash_kb']:.0f} KB flash: "
                            + ("fits" if row["fits_dense"] else "does **not** fit without sparsity"),
            "generation / fine-tuned": f"{row['generation']} / {'yes' if row['finetuned'] else 'no'}",
        }

    # --------------------------------------------------------------------------------- engine --
    def runs(self, cid: int) -> dict[str, dict[str, Any]]:
        """Engine results of `cid`: this session's run, else the shipped measurement."""
        return self.engine_results.get(cid) or nd.engine_runs(cid, self.engine_dir)

    def run_engine(self, *_events) -> bool:
        """Deploy the selected candidate dense and sparse on the emulated M7 in the background."""
        if self.candidate is None:
            return False
        cid = self.candidate

        def done(result: dict[str, dict[str, Any]]) -> None:
            self.engine_results[cid] = result
            if self.candidate == cid:
                self._show_engine()

        return self.runner.run(lambda progress: nd.run_engine(cid, self.nas_dir, progress), done,
                               label=f"emulating candidate #{cid}")

    def _show_engine(self) -> None:
        cid, runs = self.candidate, self.runs(self.candidate)
        self.run_button.label = ("Re-run" if runs else "Run") + f" #{cid} on emulated Cortex-M7"
        if 2 not in self.opened:  # the Engine tab is drawn when it is first opened
            return
        if not runs:
            self.engine_text.object = (
                f"Candidate #{cid} has not been run on the engine yet. **Run it on the emulated Cortex-M7** "
                "(sidebar; about a minute): the page generates C, cross-compiles it, emulates it dense and "
                "sparse and checks every layer against the integer reference.")
            self.engine_box.visible = False
            return
        self.engine_text.object = self._engine_summary(cid, runs)
        for pane, element in zip(self.engine_plots, _views().speedup_bars(nd.layer_speedups(runs)),
                                 strict=True):
            pane.object = element
        self.engine_box.visible = True

    def _engine_summary(self, cid: int, runs: dict[str, dict[str, Any]]) -> str:
        row = self.rows[cid]
        full, runs = runs, {m: r for m, r in runs.items() if "cycles" in r}
        lines = ["| | " + " | ".join(nd.MODE_LABELS.get(m, m) for m in runs) + " |",
                 "|---|" + "---|" * len(runs)]

        def line(name: str, fn) -> None:
            lines.append(f"| {name} | " + " | ".join(fn(r) for r in runs.values()) + " |")

        line("est. cycles (M)", lambda r: f"{r['cycles'] / 1e6:.2f} ({r['cycles_optimistic'] / 1e6:.2f}–"
                                          f"{r['cycles_conservative'] / 1e6:.2f})")
        line("latency @216 MHz", lambda r: f"{r['milliseconds_at_216MHz']:.1f} ms")
        line("cycles / MAC", lambda r: f"{r['cycles_per_mac']:.2f}")
        line("instructions (M)", lambda r: f"{r['instructions'] / 1e6:.2f}")
        line(f"flash, ELF (NAS: {row['flash_kb']:.1f} KB)", lambda r: f"{r['flash_bytes'] / 1024:.1f} KB")
        line(f"SRAM, ELF (NAS: {row['sram_kb']:.1f} KB)", lambda r: f"{r['sram_bytes'] / 1024:.1f} KB")
        line("bit-exact vs integer reference",
             lambda r: {True: "yes", False: "**NO**"}.get(r.get("bit_exact"), "—"))
        head = f"**{nd.compare_sentence(full)}** "
        src = next(iter(runs.values()))
        tail = nd.breakdown_sentence(runs["sparse"], row["arch"]) if "sparse" in runs else ""
        return (f"{head}Weights: {src.get('weights') or 'see manifest'}; source: {src.get('source')}. "
                "ELF flash includes the kernels' code; ELF SRAM includes the stack. "
                f"{tail}\n\n" + "\n".join(lines))

    # ------------------------------------------------------------------------------- firmware --
    def export_firmware(self, *_events) -> bool:
        """Export the selected candidate as a firmware project for `board` in the background."""
        if self.candidate is None:
            return False
        cid, board = self.candidate, self.board

        def done(result: dict[str, Any]) -> None:
            self.firmware[(cid, board)] = result
            self._show_firmware()

        return self.runner.run(lambda progress: nd.export_firmware(cid, board, self.nas_dir, progress), done,
                               label=f"exporting firmware for #{cid}")

    def _show_firmware(self) -> None:
        result = self.firmware.get((self.candidate, self.board))
        if result is None:
            self.firmware_text.object = (
                f"**Export firmware** writes candidate #{self.candidate} as a project for the {self.board}: "
                "Makefile and CMakeLists.txt for arm-none-eabi-gcc, startup code, linker script, the model "
                "and kernels, and a main.c that prints per-layer checksums, DWT cycles and the class over "
                "the UART. The export builds it, checks it on the emulators and offers it as a zip (about a "
                "minute).")
            self.firmware_download.visible = False
            return
        self.firmware_text.object = _views().firmware_summary(result["report"])
        self.firmware_download.param.update(file=io.BytesIO(result["zip"]), filename=result["filename"],
                                            label=f"Download {result['filename']}", visible=True)

    # --------------------------------------------------------------------------------- SuperNAS --
    def rerun_supernas(self, *_events) -> bool:
        """Re-score the search spaces at the current budgets (background, progress)."""
        from core.tinyformer.supernas import run_supernas

        fl, sr = self.flash_kb * 1024, self.sram_kb * 1024

        def done(result: dict[str, Any]) -> None:
            self.supernas = result
            if 3 in self.opened:
                self._show_supernas()

        return self.runner.run(lambda progress: run_supernas(fl, sr, m=SUPERNAS_SAMPLES, progress=progress),
                               done, label="SuperNAS")

    def _show_supernas(self) -> None:
        if self.supernas is None:
            self.cdf_text.object = ("No SuperNAS result: run `python -m core nas supernas` or press "
                                    "*Re-run SuperNAS* in the sidebar.")
            return
        views = _views()
        self.cdf.object = views.cdf_overlay(self.supernas)
        self.cdf_text.object = views.supernas_sentence(self.supernas)
        self.cdf_table.object = views.supernas_table(self.supernas)

    # ---------------------------------------------------------------------------------- layout --
    def _build_panes(self) -> None:
        md = dict(sizing_mode="stretch_width")
        self.count = pn.pane.Markdown("", css_classes=["nas-fit-count"], styles={"font-size": "1.1em"}, **md)
        # HoloViews panes (a pane imports HoloViews when made) are made with their tab (`_hv_panes`)
        self.cdf: pn.pane.HoloViews | None = None
        self.cdf_box = pn.Column(**md)
        self.cdf_text = pn.pane.Markdown("", **md)
        self.cdf_table = pn.pane.DataFrame(pd.DataFrame(), index=False, **md)
        self.diagram = pn.pane.Bokeh(None, height=260, **md)
        self.bars: list[pn.pane.HoloViews] = []
        self.bars_box = pn.Column(**md)
        self.summary = pn.pane.Markdown("", **md)
        self.arch_json = pn.pane.JSON({}, depth=-1, **md)
        self.engine_text = pn.pane.Markdown("", **md)
        self.engine_plots: list[pn.pane.HoloViews] = []
        # visibility on a wrapper: toggling it on a HoloViews pane whose plot was replaced fails in Panel 1.9
        self.engine_box = pn.Row(visible=False, **md)
        self.kernel_plot: pn.pane.HoloViews | None = None
        self.kernel_box = pn.Column(**md)
        self.kernel_text = pn.pane.Markdown("", **md)
        self.run_button = pn.widgets.Button(label="Run on emulated Cortex-M7", color="primary",
                                            disabled=self.runner.param.busy)
        self.run_button.on_click(self.run_engine)
        self.export_button = pn.widgets.Button(label="Export firmware", color="primary", width=170,
                                               disabled=self.runner.param.busy, css_classes=["nas-export"])
        self.export_button.on_click(self.export_firmware)
        self.firmware_text = pn.pane.Markdown("", css_classes=["nas-firmware"], **md)
        self.firmware_download = pn.widgets.FileDownload(file=None, filename="firmware.zip", visible=False,
                                                         color="success", width=360)
        self.detail_card = pn.Card(title="Candidate", collapsible=False, **md)
        self._sidebar = self._build_sidebar()
        if self.table is None:
            return
        self.scatters = bp.CandidateScatters(self.table, self._on_tap)
        self.scatter = pn.Row(*(pn.pane.Bokeh(self.scatters.figures[x], height=400, **md) for x in AXES),
                              css_classes=["nas-scatter"], **md)
        # the detail's sections are tabs drawn when first opened (`_fill`): the NAS tab builds with the
        # three scatters and the candidate's structure only
        self.detail_tabs = pn.Tabs(
            (DETAIL_TABS[0], pn.Column(
                self.diagram,
                pn.Row(pn.Column(self.summary, width=560),
                       pn.Column("**Arch JSON**", self.arch_json, height=330, scroll=True), **md), **md)),
            (DETAIL_TABS[1], self.bars_box),
            (DETAIL_TABS[2], pn.Column(
                pn.pane.Markdown("### Engine: emulated Cortex-M7 (216 MHz)"), self.engine_text,
                self.engine_box, self.kernel_box, self.kernel_text,
                pn.pane.Markdown("### Firmware"),
                pn.Row(pn.widgets.Select.from_param(self.param.board, name="board", width=220),
                       self.export_button, self.firmware_download, align="end"),
                self.firmware_text, **md)),
            (DETAIL_TABS[3], pn.Column(self.cdf_box, pn.Row(
                self.cdf_text, pn.Column(self.cdf_table, height=260, scroll=True, **md), **md), **md)),
            dynamic=True, css_classes=["nas-detail-tabs"], **md)
        self.detail_card[:] = [self.detail_tabs]
        self.detail_tabs.param.watch(self._on_detail_tab, "active")

    def _hv_panes(self, tab: int) -> None:
        """The HoloViews panes of detail tab `tab`, made the first time it is drawn."""
        md = dict(sizing_mode="stretch_width")
        if tab == 1 and not self.bars:
            # one pane per plot: an hv.Layout of responsive plots collapses in a lazily filled tab
            self.bars = [pn.pane.HoloViews(None, height=h, **md) for h in (175, 175, 175, 300)]
            self.bars_box[:] = self.bars
        elif tab == 2 and self.kernel_plot is None:
            self.engine_plots = [pn.pane.HoloViews(None, height=320, **md) for _ in range(2)]
            self.engine_box[:] = self.engine_plots
            self.kernel_plot = pn.pane.HoloViews(None, height=330, **md)
            self.kernel_box[:] = [self.kernel_plot]
        elif tab == 3 and self.cdf is None:
            self.cdf = pn.pane.HoloViews(None, height=430, linked_axes=False, **md)
            self.cdf_box[:] = [self.cdf]

    def _budget_slider(self, name: str, label: str) -> pn.widgets.IntSlider:
        """A slider that sets budget `name` when released (dragging would redraw at every pixel)."""
        p = self.param[name]
        w = pn.widgets.IntSlider(label=label, start=p.bounds[0], end=p.bounds[1], step=p.step,
                                 value=getattr(self, name), css_classes=[f"nas-{name.split('_')[0]}-slider"])
        w.param.watch(lambda e: setattr(self, name, e.new), "value_throttled")
        self.param.watch(lambda e: setattr(w, "value", e.new), name)
        return w

    def _build_sidebar(self) -> pn.viewable.Viewable:
        if self.table is None:
            return pn.pane.Alert(self.error, alert_type="warning")
        sn = pn.widgets.Button(label="Re-run SuperNAS at these budgets", disabled=self.runner.param.busy)
        sn.on_click(self.rerun_supernas)
        return pn.Column(
            "### Budgets",
            self._budget_slider("flash_kb", "flash budget (KB)"),
            self._budget_slider("sram_kb", "SRAM budget (KB)"),
            "colour of fitting candidates",
            pn.widgets.RadioButtonGroup.from_param(self.param.color_by),
            "### Candidate",
            pn.widgets.Select.from_param(self.param.candidate, name="candidate (or click a point)"),
            self.run_button, self.runner,
            "### SuperNAS", sn,
            pn.pane.Markdown(self._source(), styles={"font-size": "0.85em"}),
            sizing_mode="stretch_width")

    def _source(self) -> str:
        path = Path(self.nas_dir or nd.nas_folder()) / "candidates.parquet"
        cmd = nd.made_by(self.nas_dir)
        return (f"Table: `{path}` ({len(self.table)} candidates, {self.dataset})"
                + (f", made by `{cmd}`" if cmd else ""))

    def sidebar(self) -> pn.viewable.Viewable:
        return self._sidebar

    def __panel__(self) -> pn.viewable.Viewable:
        if self.table is None:
            return pn.pane.Alert(f"**NAS explorer:** {self.error}", alert_type="warning")
        md = dict(sizing_mode="stretch_width")
        intro = pn.pane.Markdown(
            "Each point is a SparseNAS candidate (a single path of the supernet with per-layer sparsity and "
            "block size). Points over either budget turn grey; the red line is the Pareto front of the "
            "fitting ones (no fitting candidate is both smaller, or faster, and more accurate). Grey crosses "
            "are the same paths stored dense where that does not fit the budgets: beyond the flash line "
            "they need sparsity to fit. Latency is the per-layer cost model fitted to emulator "
            "measurements (`data/nas/latency_model.json`). Click a point for its details.", **md)
        return pn.Column(
            pn.Card(self.count, intro, self.scatter, title="Candidates", collapsible=False, **md),
            self.detail_card, **md)


class _Rows(dict):
    """Candidate rows parsed on first use (the table has hundreds; the page shows one at a time)."""

    def __init__(self, table: pd.DataFrame) -> None:
        super().__init__()
        self.table = table

    def __missing__(self, cid: int) -> dict[str, Any]:
        row = nd.candidate(self.table, int(cid))
        self[cid] = row
        return row


def _break_even_text(even: dict[str, float | str | None]) -> str:
    if not even:
        return "No kernel benchmark: run `python -m core bench engine` for the speedup-vs-sparsity curve."
    def fmt(v: float | str | None) -> str:
        if v is None:
            return "not reached in the measured range"
        return f"already faster at {float(v[1:]):.0%}" if isinstance(v, str) else f"{v:.0%}"

    parts = [f"{k}: {fmt(v)}" for k, v in even.items()]
    return ("Break-even sparsity (the sparse kernel starts to beat the engine's dense one, interpolated "
            "from `data/results/bench_engine.json`): " + "; ".join(parts) + ".")


def create() -> NasExplorer:
    """A fresh page object for one browser session."""
    return NasExplorer()
