"""HoloViews elements of the NAS explorer, as functions of plain tables (see `_nas_data`).

- `candidate_points` / `front_curve` / `budget_marks` / `selected_ring`: the accuracy-vs-cost scatter;
- `cdf_overlay`: SuperNAS's MACs CDF per search space, the chosen one highlighted;
- `arch_diagram`: the candidate's blocks as a row of coloured boxes;
- `layer_bars`: per-op flash, live SRAM, MACs and sparsity (block size as colour), sharing one x axis;
- `dense_points`: the same paths stored dense (what would not fit without sparsity);
- `speedup_bars`: per-layer cycle ratios of the sparse deployment vs dense and vs CMSIS-NN, side by side;
- `kernel_curve_plot`: the kernel benchmark's speedup vs sparsity, break-even marked.
"""

from __future__ import annotations

from typing import Any

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the Bokeh backend: palettes, opts)
import numpy as np
import pandas as pd

ACCENT = "#1f6f8b"
ALERT = "#d1495b"
GREY = "#c8c8c8"
BLOCK_COLORS = {"input": "#9e9e9e", "ds": "#8d6a9f", "mb": ACCENT, "vit": ALERT, "last": "#66a182",
                "pool": "#edae49", "classifier": "#2e4057"}
STORAGE_COLORS = {"sparse": "#66a182", "dense": "#8a8a8a", "-": "#d9d9d9"}
MODE_COLORS = {"dense": "#8a8a8a", "sparse": "#66a182", "cmsis-nn": "#2e4057"}
BLOCK_SIZE_COLORS = {"-": "#d9d9d9", "b=1": "#edae49", "b=2": "#8d6a9f", "b=3": ALERT, "b=4": ACCENT}
COST_LABELS = {"flash_kb": "flash (KB)", "sram_kb": "peak SRAM (KB)",
               "latency_ms": "latency (ms at 216 MHz, fitted)"}


# ------------------------------------------------------------------------------------- scatter --
def candidate_points(df: pd.DataFrame, x: str, clim: tuple[float, float], color_label: str,
                     title: str) -> hv.Points:
    """All candidates at (cost `x`, accuracy); `df["c"]` is NaN for those over budget (drawn grey)."""
    vdims = ["id", "c", "alpha", "mmacs", "latency_ms", "flash_kb", "sram_kb", "accuracy_int8",
             "dense_flash_kb"]
    pts = hv.Points(df, kdims=[x, "accuracy"], vdims=vdims)
    tips = [("candidate", "#@id"), ("accuracy", "@accuracy{0.0%}"), ("int8 accuracy", "@accuracy_int8{0.0%}"),
            ("flash", "@flash_kb{0.0} KB"), ("SRAM", "@sram_kb{0.0} KB"), ("MACs", "@mmacs{0.00} M"),
            ("latency (fitted)", "@latency_ms{0.0} ms"), ("dense flash", "@dense_flash_kb{0.0} KB")]
    return pts.opts(
        color="c", cmap="viridis", clim=clim, clipping_colors={"NaN": GREY}, colorbar=True,
        clabel=color_label, alpha="alpha", size=11, line_color="#333333", line_width=0.6,
        tools=["hover", "tap"], hover_tooltips=tips, nonselection_alpha=1.0, selection_alpha=1.0,
        selection_line_color=ALERT, responsive=True, height=370, show_grid=True, title=title,
        show_legend=False, xlabel=COST_LABELS[x], ylabel="accuracy (search, float)",
        yformatter="%.2f", active_tools=["tap"])


def front_curve(df: pd.DataFrame, x: str, front: np.ndarray) -> hv.Curve:
    """The Pareto front through the fitting candidates `front` (indices into df, by increasing cost)."""
    pts = df.iloc[front] if len(front) else df.iloc[:0]
    return hv.Curve((pts[x].to_numpy(), pts["accuracy"].to_numpy()), kdims=[x], vdims=["accuracy"],
                    label="Pareto front").opts(color=ALERT, line_width=2.5, line_dash="solid")


def budget_marks(x: str, budget_kb: float, xmax: float) -> hv.Overlay:
    """A shaded over-budget region and a dashed line at the budget."""
    hi = max(xmax, budget_kb) * 1.05
    return (hv.VSpan(budget_kb, hi).opts(color=ALERT, alpha=0.07)
            * hv.VLine(budget_kb).opts(color=ALERT, line_dash="dashed", line_width=1.5))


def selected_ring(df: pd.DataFrame, x: str, cid: int | None) -> hv.Points:
    sel = df[df["id"] == cid] if cid is not None else df.iloc[:0]
    return hv.Points(sel, kdims=[x, "accuracy"]).opts(
        size=24, fill_alpha=0.0, line_color=ALERT, line_width=3, color=ALERT)


# --------------------------------------------------------------------------------------- SuperNAS --
def cdf_overlay(result: dict[str, Any]) -> hv.Overlay:
    """Empirical CDF of MACs among fitting subnets, one curve per space; the chosen one bold."""
    palette = hv.Cycle("Category20").values
    curves = []
    for i, (name, cdf) in enumerate(sorted(result["cdf"].items())):
        macs = np.asarray(cdf["macs"], dtype=np.float64) / 1e6
        if macs.size == 0:
            continue
        best = name == result["best"]
        # a step CDF: P(MACs ≤ m) jumps at each sampled subnet
        curve = hv.Curve((np.r_[macs[0], macs], np.r_[0.0, cdf["p"]]), kdims=["MMACs"], vdims=["P(MACs ≤ m)"],
                         label=f"{name} (chosen)" if best else name)
        color = ALERT if best else palette[i % len(palette)]
        curves.append(curve.opts(interpolation="steps-post", color=color, line_width=4 if best else 1.3,
                                 alpha=1.0 if best else 0.75))
    fl, sr = result["flash_budget"] / 1024, result["sram_budget"] / 1024
    return hv.Overlay(curves).opts(
        responsive=True, height=420, legend_position="right", show_grid=True, logx=True,
        legend_opts={"label_text_font_size": "8pt", "glyph_height": 10, "spacing": 0, "padding": 4,
                     "label_height": 10},
        title=f"MACs of the subnets that fit {fl:g} KB / {sr:g} KB ({result['samples']} samples per space)",
        xlabel="MACs (M, log)", ylabel="fraction of fitting subnets")


def supernas_sentence(result: dict[str, Any]) -> str:
    """Why the chosen space was chosen, in one paragraph of markdown."""
    rows = {r["space"]: r for r in result["spaces"]}
    b = rows[result["best"]]
    ranked = sorted((r for r in result["spaces"] if r["eligible"]), key=lambda r: -r["mean_mmacs"])
    runner = ranked[1] if len(ranked) > 1 else None
    other = f" The runner-up, **{runner['space']}**, averages {runner['mean_mmacs']:.1f} M." if runner else ""
    return (f"SuperNAS picked **{b['space']}**: {b['fitting']} of its {b['samples']} random subnets fit "
            f"{result['flash_budget'] / 1024:g} KB flash and {result['sram_budget'] / 1024:g} KB SRAM, and "
            f"those use on average **{b['mean_mmacs']:.1f} M MACs** "
            f"(80th percentile {b['p80_mmacs']:.1f} M), "
            f"the most of the {len(ranked)} eligible spaces.{other} Within a memory budget accuracy grows "
            f"with computation (MCUNet's observation), so the space whose fitting subnets can afford the "
            f"most MACs (the curve furthest right) is searched. Spaces where fewer than a handful of "
            f"samples fit are not eligible.")


def supernas_table(result: dict[str, Any]) -> pd.DataFrame:
    df = pd.DataFrame(result["spaces"]).sort_values("mean_mmacs", ascending=False)
    df["fit"] = [f"{r.fitting}/{r.samples}" for r in df.itertuples()]
    cols = {"space": "space", "fit": "fit", "mean_mmacs": "mean MMACs", "p80_mmacs": "p80 MMACs",
            "min_flash_kb": "min flash KB", "min_sram_kb": "min SRAM KB", "eligible": "eligible"}
    return df[list(cols)].round(2).rename(columns=cols).reset_index(drop=True)


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


def _shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(s) for s in shape)


def arch_diagram(arch: dict[str, Any], layers: pd.DataFrame,
                 shapes: dict[str, tuple[int, ...]]) -> hv.Overlay:
    """Blocks left to right: coloured box with the block's structure, its output shape and MACs under
    it, and the weight-weighted sparsity of its layers above it.

    `shapes` maps each block key (and "input") to its output tensor shape.
    """
    keys = ["input", *dict.fromkeys(layers["block"])]
    rects, texts, below, above = [], [], [], []
    for i, key in enumerate(keys):
        kind = key.rstrip("0123456789")
        rects.append((i - 0.42, 0.0, i + 0.42, 1.0, BLOCK_COLORS.get(kind, GREY), key))
        texts.append((i, 0.5, "RGB image" if key == "input" else _block_text(key, arch)))
        ops = layers[layers["block"] == key]
        macs = f"\n{ops['macs'].sum() / 1e6:.2f} M MACs" if len(ops) else ""
        below.append((i, -0.08, f"{_shape_text(shapes[key])}{macs}"))
        w = ops[ops["storage"] != "-"]
        zeros = float((w["sparsity"] * w["weights"]).sum() / max(w["weights"].sum(), 1))
        above.append((i, 1.04, f"{key}\n{zeros:.0%} zeros" if zeros > 0 else key))
    n = len(keys)
    boxes = hv.Rectangles(rects, vdims=["color", "block"]).opts(
        color="color", line_color="white", line_width=2, tools=["hover"],
        hover_tooltips=[("block", "@block")])
    arrow = hv.Segments([(-0.4, 0.5, n - 1 + 0.4, 0.5)]).opts(color="#555555", line_width=2)
    small = dict(text_color="#333333", text_font_size="8.5pt")
    return (arrow * boxes
            * hv.Labels(texts, kdims=["x", "y"], vdims=["t"]).opts(text_color="white", text_font_size="8.5pt")
            * hv.Labels(below, kdims=["x", "y"], vdims=["t"]).opts(text_baseline="top", **small)
            * hv.Labels(above, kdims=["x", "y"], vdims=["t"]).opts(text_baseline="bottom", **small)
            ).opts(xlim=(-0.6, n - 0.4), ylim=(-0.45, 1.35), xaxis=None, yaxis=None, height=250,
                   responsive=True, toolbar=None, show_frame=False,
                   title="Architecture (blocks left to right; under each: output shape and MACs)")


# ------------------------------------------------------------------------------ per-layer bars --
def _align(plot, _element) -> None:
    """Same left border on every stacked plot, so their bars line up across panes."""
    plot.state.min_border_left = 80


def layer_bars(layers: pd.DataFrame, sram_kb: float = 320.0) -> list[hv.Element]:
    """Four bar charts over the ops in execution order (one pane each, x axes linked by the page):
    flash, live SRAM (dashed: the STM32F746's `sram_kb`), MACs, sparsity. Value dimensions are named
    apart from the scatter's (`flash_kb`...) so Panel does not link them to its axes."""
    df = layers.copy()
    df["layer flash (KB)"] = df["flash_bytes"] / 1024
    df["live SRAM (KB)"] = df["sram_bytes"] / 1024
    df["MACs (M)"] = df["macs"] / 1e6
    df["b"] = ["-" if s == "-" else f"b={b}" for s, b in zip(df["storage"], df["block_size"], strict=True)]
    peak = int(df["sram_bytes"].idxmax())
    df["at_peak"] = ["peak" if i == peak else "live" for i in range(len(df))]
    common = dict(responsive=True, xrotation=90, show_grid=True, tools=["hover"], fontsize={"xticks": 7},
                  hooks=[_align], show_legend=False)
    upper = dict(common, xaxis=None, height=170)
    flash = hv.Bars(df, kdims=["op"], vdims=["layer flash (KB)", "storage", "kind"]).opts(
        color="storage", cmap=STORAGE_COLORS,
        title="Per layer: flash (green = sparse run-length, grey = dense int8)", **upper)
    sram = (hv.Bars(df, kdims=["op"], vdims=["live SRAM (KB)", "at_peak", "kind"]).opts(
        color="at_peak", cmap={"peak": ALERT, "live": ACCENT},
        title=f"live activations + scratch while each op runs (peak {df['live SRAM (KB)'].max():.1f} KB in "
              f"red; dashed: the {sram_kb:g} KB of the STM32F746)", **upper)
        * hv.HLine(sram_kb).opts(color=ALERT, line_dash="dashed"))
    macs = hv.Bars(df, kdims=["op"], vdims=["MACs (M)", "kind"]).opts(
        color=ACCENT, title="MACs (dense count)", **upper)
    spars = hv.Bars(df, kdims=["op"], vdims=["sparsity", "b", "storage"]).opts(
        color="b", cmap=BLOCK_SIZE_COLORS, ylim=(0, 1),
        title="achieved weight sparsity; block size b: orange 1, purple 2, red 3 (depthwise), blue 4",
        height=290, **common)
    return [flash, sram, macs, spars]


# ------------------------------------------------------------------------------------ engine --
def engine_bars(eng: pd.DataFrame) -> list[hv.Overlay]:
    """Per layer (execution order): estimated cycles and executed instructions, dense as wide grey
    bars with sparse as narrow green bars over them (layers that run code only: views are skipped).
    One element per pane; the page links their x axes."""
    df = eng[eng["instructions"] > 16]
    wide = df.pivot_table(index=["order", "layer"], columns="mode", values=["cycles", "instructions"])
    wide = wide.sort_index(level="order").droplevel("order")
    wide.columns = [f"{v}_{m}" for v, m in wide.columns]
    wide = wide.reset_index()
    modes = [m for m in ("dense", "sparse") if f"cycles_{m}" in wide]
    if len(modes) == 2:
        wide["speedup"] = wide["cycles_dense"] / wide["cycles_sparse"]
    common = dict(responsive=True, xrotation=90, show_grid=True, fontsize={"xticks": 7}, tools=["hover"],
                  hooks=[_align])
    plots = []
    for value, label, height in (("cycles", "est. cycles (M)", 230),
                                 ("instructions", "instructions (M)", 330)):
        layers = []
        for mode, width in zip(modes, (0.8, 0.45), strict=False):
            d = wide.assign(**{label: wide[f"{value}_{mode}"] / 1e6})
            vd = [label] + (["speedup"] if "speedup" in d else [])
            layers.append(hv.Bars(d, kdims=["layer"], vdims=vd, label=mode).opts(
                color=MODE_COLORS[mode], bar_width=width, **common))
        what = " vs ".join(f"{m} ({'grey' if m == 'dense' else 'green'})" for m in modes)
        name = "estimated cycles" if value == "cycles" else "executed instructions"
        plots.append(hv.Overlay(layers).opts(
            height=height, show_legend=False, xaxis=None if value == "cycles" else "bottom",
            title=f"{name} per layer: {what}"))
    return plots


def firmware_summary(report: dict[str, Any]) -> str:
    """Markdown for an exported firmware project: the size table (NAS estimate, zig ELF, gcc ELF), the
    checks the export made and, when QEMU ran it, the firmware's last UART lines."""
    from core.engine.firmware_report import checks_markdown, size_table

    text = (f"**Firmware for {report['board_title']}** (candidate #{report['candidate']}, input: "
            f"{report['input']}, predicted class {report['reference']['class']}).\n\n"
            f"{size_table(report)}\n\n{checks_markdown(report)}")
    if report.get("uart"):
        tail = "\n".join(report["uart"].strip().splitlines()[-4:])
        text += f"\n\nQEMU's UART (last lines):\n\n```\n{tail}\n```"
    return text


# ------------------------------------------------------------------------------ dense vs sparse --
def dense_points(df: pd.DataFrame, x: str) -> hv.Points:
    """The candidates' paths stored dense, at their dense flash / SRAM / latency (hollow grey): the
    ones beyond the budget line fit only because they are sparse."""
    col = {"flash_kb": "dense_flash_kb", "sram_kb": "dense_sram_kb", "latency_ms": "dense_latency_ms"}[x]
    d = df.assign(**{x: df[col]})
    return hv.Points(d, kdims=[x, "accuracy"], vdims=["id"], label="same path, dense").opts(
        marker="x", size=7, color="#7a7a7a", alpha=0.55, tools=[], show_legend=False)


def speedup_bars(sp: pd.DataFrame) -> list[hv.Bars]:
    """Per layer (execution order): cycles of the dense / CMSIS-NN deployment divided by the sparse
    one's, as two separate bar charts side by side (1 = no gain; green bars: layers stored sparse)."""
    out = []
    for col, title in (("vs_dense", "sparse vs engine dense"), ("vs_cmsis_nn", "sparse vs CMSIS-NN")):
        d = sp.dropna(subset=[col]) if col in sp else sp.iloc[:0]
        d = d.assign(color=[STORAGE_COLORS.get(s, GREY) for s in d.get("storage", [])])
        out.append(hv.Bars(d, kdims=["layer"], vdims=[col, "color", "kind"]).opts(
            color="color", responsive=True, height=300, xrotation=90, fontsize={"xticks": 6},
            tools=["hover"], show_grid=True, ylabel="cycle ratio (× faster)", xlabel="",
            title=f"per-layer speedup, {title}", logy=False)
            * hv.HLine(1.0).opts(color=ALERT, line_dash="dashed"))
    return out


def kernel_curve_plot(curve: pd.DataFrame, even: dict[str, float | str | None]) -> hv.Overlay:
    """Speedup of the sparse kernels vs the engine's dense ones over sparsity, one line per kernel and
    block size; the dashed line is 1× and each kernel's break-even sparsity is a marker on it."""
    if curve.empty:
        return hv.Overlay([hv.Text(0.5, 0.5, "run python -m core bench engine")])
    lines = [hv.Curve(sub.sort_values("sparsity"), "sparsity", "vs_dense", label=name).opts(
             line_width=2, tools=["hover"]) for name, sub in curve.groupby("kernel")]
    marks = hv.Points([(v, 1.0) for v in even.values() if isinstance(v, float)],
                      kdims=["sparsity", "vs_dense"]).opts(
        color=ALERT, size=9, marker="diamond")
    return hv.Overlay([*lines, hv.HLine(1.0).opts(color=ALERT, line_dash="dashed"), marks]).opts(
        responsive=True, height=320, show_grid=True, legend_position="top_left", logy=True,
        xlabel="sparsity", ylabel="sparse kernel speedup vs dense (×)",
        title="kernel speedup vs sparsity (bench engine); ◆ break-even")
