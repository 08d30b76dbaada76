"""HoloViews elements of the NAS explorer's detail tabs, as functions of plain tables (see `_nas_data`).
Imported when one of those tabs is first opened (the scatters and the architecture diagram the tab
opens with are Bokeh figures, `_nas_plots`).

- `cdf_overlay`: SuperNAS's MACs CDF per search space, the chosen one highlighted;
- `layer_bars`: per-op flash, live SRAM, MACs and sparsity (block size as colour), sharing one x axis;
- `speedup_bars`: per-layer cycle ratios of the sparse deployment vs dense and vs CMSIS-NN, side by side;
- `kernel_curve_plot`: the kernel benchmark's speedup vs sparsity, break-even marked.
"""

from __future__ import annotations

from typing import Any

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the Bokeh backend: palettes, opts)
import numpy as np
import pandas as pd

from pages._nas_plots import ACCENT, ALERT, GREY

STORAGE_COLORS = {"sparse": "#66a182", "dense": "#8a8a8a", "-": "#d9d9d9"}
BLOCK_SIZE_COLORS = {"-": "#d9d9d9", "b=1": "#edae49", "b=2": "#8d6a9f", "b=3": ALERT, "b=4": ACCENT}


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
