"""The Bokeh figures the NAS explorer draws when its tab opens, built with Bokeh directly.

Through HoloViews the three scatters and the architecture diagram cost about 1.5 s of server time per
session on the 2-core machine, and importing HoloViews another 2-4 s the first time
(`python -m core bench app`, NAS rows); built directly they cost a tenth of that. HoloViews stays for the
views of the detail tabs (`pages._nas_views`), imported when one of them is first opened.

- `CandidateScatters`: accuracy vs flash / SRAM / fitted latency, three figures over one data source
  (a tap on a point in any of them selects that candidate): over-budget points grey, the Pareto front of
  the fitting ones, the budget line with the over-budget side shaded, the same paths stored dense as
  grey crosses, a ring round the selected candidate, the colour scale right of the row;
- `arch_diagram`: the candidate's blocks as a row of coloured boxes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from bokeh.models import (
    BoxAnnotation,
    ColorBar,
    ColumnDataSource,
    HoverTool,
    LinearColorMapper,
    PrintfTickFormatter,
    Span,
    TapTool,
)
from bokeh.palettes import Viridis256
from bokeh.plotting import figure

ACCENT = "#1f6f8b"
ALERT = "#d1495b"
GREY = "#c8c8c8"
BLOCK_COLORS = {"input": "#9e9e9e", "ds": "#8d6a9f", "mb": ACCENT, "vit": ALERT, "last": "#66a182",
                "pool": "#edae49", "classifier": "#2e4057"}
COST_LABELS = {"flash_kb": "flash (KB)", "sram_kb": "peak SRAM (KB)",
               "latency_ms": "latency (ms at 216 MHz, fitted)"}
#: each cost axis and the column of the same path stored dense
DENSE_COLUMNS = {"flash_kb": "dense_flash_kb", "sram_kb": "dense_sram_kb", "latency_ms": "dense_latency_ms"}
#: the candidates' columns sent to the browser (axes, colour values, tooltips)
POINT_COLUMNS = ("id", "accuracy", "accuracy_int8", "flash_kb", "sram_kb", "latency_ms", "mmacs",
                 "dense_flash_kb")
TOOLTIPS = [("candidate", "#@id"), ("accuracy", "@accuracy{0.0%}"), ("int8 accuracy", "@accuracy_int8{0.0%}"),
            ("flash", "@flash_kb{0.0} KB"), ("SRAM", "@sram_kb{0.0} KB"), ("MACs", "@mmacs{0.00} M"),
            ("latency (fitted)", "@latency_ms{0.0} ms"), ("dense flash", "@dense_flash_kb{0.0} KB")]


def _columns(df: pd.DataFrame, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {c: df[c].to_numpy() for c in names}


class CandidateScatters:
    """Three scatter figures (one per cost in `COST_LABELS`) of the candidates table `table`.

    `update(c, alpha, fronts, budgets, title_of, clim, color_label)` re-colours the points (NaN in `c`:
    over budget, grey) and redraws fronts and budget marks; `select(cid)` moves the ring. `on_tap(index)`
    is called with the table row tapped (a position in `table`)."""

    def __init__(self, table: pd.DataFrame, on_tap: Callable[[int], None]):
        self.table = table
        data = _columns(table, POINT_COLUMNS)
        n = len(table)
        self.points = ColumnDataSource({**data, "c": np.full(n, np.nan), "alpha": np.ones(n)})
        dense = table[~table["fits_dense"]]
        self.dense = ColumnDataSource({"id": dense["id"].to_numpy(), "accuracy": dense["accuracy"].to_numpy(),
                                       **{x: dense[col].to_numpy() for x, col in DENSE_COLUMNS.items()}})
        self.ring = ColumnDataSource({c: [] for c in ("accuracy", *COST_LABELS)})
        self.fronts = {x: ColumnDataSource({"x": [], "y": []}) for x in COST_LABELS}
        self.mapper = LinearColorMapper(palette=Viridis256, low=0.0, high=1.0, nan_color=GREY)
        self.marks: dict[str, tuple[Span, BoxAnnotation]] = {}
        self.figures = {x: self._figure(x) for x in COST_LABELS}
        self.points.selected.on_change("indices",
                                       lambda _attr, _old, new: on_tap(int(new[0])) if new else None)

    def _figure(self, x: str):
        p = figure(height=370, sizing_mode="stretch_width", tools="pan,wheel_zoom,box_zoom,reset,save",
                   toolbar_location="above", x_axis_label=COST_LABELS[x],
                   y_axis_label="accuracy (search, float)", min_border_left=60)
        p.xaxis.ticker.desired_num_ticks = 5
        p.yaxis.formatter = PrintfTickFormatter(format="%.2f")
        if x in DENSE_COLUMNS and x != "latency_ms":
            span = Span(location=0, dimension="height", line_color=ALERT, line_dash="dashed", line_width=1.5)
            box = BoxAnnotation(left=0, fill_color=ALERT, fill_alpha=0.07, line_alpha=0)
            p.add_layout(box)
            p.add_layout(span)
            self.marks[x] = (span, box)
        p.line("x", "y", source=self.fronts[x], color=ALERT, line_width=2.5)
        dense = p.scatter(x, "accuracy", source=self.dense, marker="x", size=7, color="#7a7a7a", alpha=0.55)
        pts = p.scatter(x, "accuracy", source=self.points, size=11,
                        fill_color={"field": "c", "transform": self.mapper}, fill_alpha="alpha",
                        line_color="#333333", line_width=0.6, line_alpha="alpha")
        pts.selection_glyph = pts.glyph.clone(line_color=ALERT, line_width=2.0, line_alpha=1.0)
        pts.nonselection_glyph = pts.glyph.clone()  # a tap selects a candidate; the others stay as they are
        p.scatter(x, "accuracy", source=self.ring, size=24, fill_alpha=0.0, line_color=ALERT, line_width=3)
        p.x_range.renderers = p.y_range.renderers = [pts, dense]  # not the budget marks
        p.add_tools(HoverTool(renderers=[pts], tooltips=TOOLTIPS), tap := TapTool(renderers=[pts]))
        p.toolbar.active_tap = tap
        if x == "latency_ms":  # one colour bar, right of the row: the three share the colour scale
            self.colorbar = ColorBar(color_mapper=self.mapper, title="")
            p.add_layout(self.colorbar, "right")
        return p

    def update(self, c: np.ndarray, alpha: np.ndarray, fronts: dict[str, np.ndarray],
               budgets: dict[str, float], titles: dict[str, str], clim: tuple[float, float],
               color_label: str) -> None:
        """New colours (`c`, NaN = grey) and alpha per candidate; `fronts[x]`: the Pareto front's rows
        (positions in the table, by increasing cost); `budgets[x]`: the budget line of cost `x`."""
        self.points.patch({"c": [(slice(None), c)], "alpha": [(slice(None), alpha)]})
        self.mapper.update(low=clim[0], high=clim[1])
        self.colorbar.title = color_label
        acc = self.table["accuracy"].to_numpy()
        for x, front in fronts.items():
            self.fronts[x].data = {"x": self.table[x].to_numpy()[front], "y": acc[front]}
        for x, (span, box) in self.marks.items():
            span.location = box.left = float(budgets[x])
        for x, p in self.figures.items():
            p.title.text = titles[x]

    def select(self, cid: int | None) -> None:
        sel = self.table[self.table["id"] == cid] if cid is not None else self.table.iloc[:0]
        self.ring.data = _columns(sel, ("accuracy", *COST_LABELS))


# --------------------------------------------------------------------------------- arch diagram --
def _block_text(key: str, arch: dict[str, Any]) -> str:
    kind = key.rstrip("0123456789")
    i = int(key[len(kind):]) if key[len(kind):] else 0
    if key == "input":
        return "input"
    if kind == "ds":
        d = arch["downsample"][i]
        return (f"conv3×3\n+ maxpool\n→ {d['out']} ch" if d["kind"] == "conv_pool"
                else f"MBv2 s2\nexpand {d['expand']}\n→ {d['out']} ch")
    if kind == "mb":
        return f"MBv2\nexpand {arch['mbv2']['expand'][i]}\n→ {arch['mbv2']['out']} ch"
    if kind == "vit":
        v = arch["vit"][i]
        return f"MobileViT ×{v['layers']}\nD {v['dim']}, {v['heads']} heads\nMLP {v['mlp']}"
    if kind == "last":
        return f"conv1×1\n→ {arch['last']} ch"
    if kind == "pool":
        return f"{'attention' if arch['pool'] == 'attn' else 'average'}\npooling"
    return f"linear\n→ {arch['classes']} classes"


def arch_diagram(arch: dict[str, Any], layers: pd.DataFrame, shapes: dict[str, tuple[int, ...]]):
    """Blocks left to right: coloured box with the block's structure, its output shape and MACs under
    it, and the weight-weighted sparsity of its layers above it (a Bokeh figure).

    `shapes` maps each block key (and "input") to its output tensor shape.
    """
    keys = ["input", *dict.fromkeys(layers["block"])]
    n = len(keys)
    boxes: dict[str, list] = {k: [] for k in ("left", "right", "color", "block")}
    inside: dict[str, list] = {"x": [], "t": []}
    below: dict[str, list] = {"x": [], "t": []}
    above: dict[str, list] = {"x": [], "t": []}
    for i, key in enumerate(keys):
        kind = key.rstrip("0123456789")
        boxes["left"].append(i - 0.42)
        boxes["right"].append(i + 0.42)
        boxes["color"].append(BLOCK_COLORS.get(kind, GREY))
        boxes["block"].append(key)
        inside["x"].append(i)
        inside["t"].append("RGB image" if key == "input" else _block_text(key, arch))
        ops = layers[layers["block"] == key]
        macs = f"\n{ops['macs'].sum() / 1e6:.2f} M MACs" if len(ops) else ""
        below["x"].append(i)
        below["t"].append("×".join(str(s) for s in shapes[key]) + macs)
        w = ops[ops["storage"] != "-"]
        zeros = float((w["sparsity"] * w["weights"]).sum() / max(w["weights"].sum(), 1))
        above["x"].append(i)
        above["t"].append(f"{key}\n{zeros:.0%} zeros" if zeros > 0 else key)
    p = figure(height=250, sizing_mode="stretch_width", x_range=(-0.6, n - 0.4), y_range=(-0.45, 1.35),
               toolbar_location=None, tools="",
               title="Architecture (blocks left to right; under each: output shape and MACs)")
    p.axis.visible = False
    p.grid.visible = False
    p.outline_line_color = None
    p.segment(x0=-0.4, y0=0.5, x1=n - 1 + 0.4, y1=0.5, color="#555555", line_width=2)
    src = ColumnDataSource(boxes)
    quads = p.quad(left="left", right="right", bottom=0.0, top=1.0, color="color", line_color="white",
                   line_width=2, source=src)
    p.add_tools(HoverTool(renderers=[quads], tooltips=[("block", "@block")]))
    small = dict(text_color="#333333", text_font_size="8.5pt", text_align="center")
    p.text("x", 0.5, text="t", source=ColumnDataSource(inside), text_color="white", text_font_size="8.5pt",
           text_align="center", text_baseline="middle")
    p.text("x", -0.08, text="t", source=ColumnDataSource(below), text_baseline="top", **small)
    p.text("x", 1.04, text="t", source=ColumnDataSource(above), text_baseline="bottom", **small)
    return p
