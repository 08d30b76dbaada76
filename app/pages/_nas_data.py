"""Data side of the NAS explorer: what the page reads from `data/nas/`. No widgets here.

What the page computes lives in `core.tinyformer.explore` (budgets, Pareto front, per-layer table with
the fitted latency, engine runs in three deployments and their per-layer speedups, the kernel
speedup-vs-sparsity curve and its break-even, where the time goes); this module re-exports it and adds
the page's file lookups:

- `load_candidates(nas_dir)`: the SparseNAS candidates table written by `python -m core nas sparsenas`;
  `load_supernas(nas_dir)`: the SuperNAS result with its CDF data; `latency_model()`: the fitted model.
- `export_firmware(cid, board)`: the candidate's firmware project (`core.engine.export`) as a zip.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from core.errors import WorkbenchError
from core.io import Progress, cache_dir, data_dir, ensure_writable_dir, no_progress
from core.tinyformer.explore import (  # noqa: F401 -- re-exported for the page, notebook and tests
    CLOCK_HZ,
    MODE_LABELS,
    MODES,
    block_shapes,
    break_even,
    breakdown_sentence,
    compare_sentence,
    effective_macs,
    engine_layers,
    engine_runs,
    fitting,
    kernel_curve,
    layer_speedups,
    layer_table,
    pareto_front,
    read_candidates,
    run_engine,
)

#: how each dataset is named in titles
DATASET_LABELS = {"shapes10": "shapes10 (procedural, offline)", "cifar10": "CIFAR-10"}


def dataset_label(name: str) -> str:
    return DATASET_LABELS.get(name, name)


def nas_folder() -> Path:
    return data_dir() / "nas"


def load_candidates(nas_dir: Path | None = None) -> pd.DataFrame:
    """The candidates table (sorted by id) with `arch`, `sparsity`, `block`, `storage` still JSON text."""
    return read_candidates(Path(nas_dir or nas_folder()) / "candidates.parquet")


def load_supernas(nas_dir: Path | None = None) -> dict[str, Any] | None:
    """The SuperNAS result (`best`, `spaces`, `cdf`, budgets) or None when it was not run."""
    from core.tinyformer.supernas import read_result

    path = Path(nas_dir or nas_folder()) / "supernas.json"
    return read_result(path) if path.is_file() else None


def made_by(nas_dir: Path | None = None, artefact: str = "candidates.parquet") -> str | None:
    """The command that wrote `artefact`, from the folder's manifest (None when not recorded)."""
    path = Path(nas_dir or nas_folder()) / "manifest.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("artefacts", {}).get(artefact, {}).get("command")


def candidate(table: pd.DataFrame, cid: int) -> dict[str, Any]:
    """Row `cid` as a dict with the JSON columns parsed."""
    hit = table[table["id"] == cid]
    if hit.empty:
        raise WorkbenchError(f"candidate id {cid} is not in the table; ids are "
                             f"{int(table['id'].min())}..{int(table['id'].max())}")
    row = hit.iloc[0].to_dict()
    for key in ("arch", "sparsity", "sparsity_target", "block", "storage"):
        if isinstance(row.get(key), str):
            row[key] = json.loads(row[key])
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


def latency_model():  # noqa: ANN201 -- core.tinyformer.latency.LatencyModel or None
    """The fitted latency model shipped in data/nas/ (None when absent: per-layer latency is blank)."""
    from core.tinyformer import latency

    try:
        return latency.load()
    except WorkbenchError:
        return None


# ---------------------------------------------------------------------------------- firmware --
def export_firmware(cid: int, board: str, nas_dir: Path | None = None,
                    progress: Progress = no_progress) -> dict[str, Any]:
    """Export candidate `cid` as a firmware project for `board` with `core.engine.export` (built with
    arm-none-eabi-gcc, checked on Unicorn and, for mps2-an500, QEMU) in a private temporary folder, and
    zip it. Returns {"zip": bytes, "filename", "report", "uart"}; the folder is removed afterwards."""
    import io
    import shutil
    import zipfile

    from core.engine.export import export_firmware as export

    name = f"candidate{int(cid)}_{board}"
    folder = ensure_writable_dir(cache_dir() / "firmware-ui")
    with tempfile.TemporaryDirectory(prefix=f"{name}-", dir=folder) as work:
        res = export(int(cid), Path(work) / name, board, nas_dir=Path(nas_dir) if nas_dir else None,
                     progress=progress)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(res.path.rglob("*")):
                if path.is_file():
                    zf.write(path, Path(name) / path.relative_to(res.path))
        shutil.rmtree(res.path)
    return {"zip": buf.getvalue(), "filename": f"{name}.zip", "report": res.report, "uart": res.uart}
