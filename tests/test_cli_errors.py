"""Bad inputs on the command line: one `error: ...` line (nothing printed before it), exit status 2,
nothing written and nothing deleted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from core.cli import main
from core.errors import WorkbenchError
from core.io import repo_root

NAS = repo_root() / "data" / "nas"


def _refused(capsys, argv: list[str], message: str) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("error: ") and err.count("\n") == 1, err  # no tqdm line, no traceback
    assert message in err, err
    assert captured.out == ""
    return err


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.mark.parametrize("args, message", [
    (["--dt-fine", "inf"], "dt_fine=inf must be a finite positive multiple of the solver dt"),
    (["--dt-fine", "1e300"], "would take at least"),
    (["--n-coarse", "1000000000000"], "of memory at once, but this machine has"),
    (["--samples", "100000000000"], "100000000000 trajectories"),
])
def test_data_generate_refuses_what_cannot_finish(capsys, tmp_path, args, message):
    _refused(capsys, ["data", "generate", "kdv1d", *args, "--cache", str(tmp_path / "c")], message)
    assert _files(tmp_path) == []


@pytest.mark.parametrize("flag, value", [("--flash-kb", "nan"), ("--sram-kb", "inf"), ("--flash-kb", "-1")])
def test_supernas_budgets_must_be_finite_and_positive(capsys, tmp_path, flag, value):
    _refused(capsys, ["nas", "supernas", flag, value, "--out", str(tmp_path / "o")],
             f"{flag}={float(value)!r} must be a finite number > 0")
    assert _files(tmp_path) == []


def test_supernas_never_deletes_a_folder_where_its_result_goes(capsys, tmp_path):
    (tmp_path / "supernas.json").mkdir()
    (tmp_path / "supernas.json" / "notes.txt").write_text("mine")
    _refused(capsys, ["nas", "supernas", "--samples", "6", "--out", str(tmp_path)],
             "is an existing directory")
    assert _files(tmp_path) == ["supernas.json", "supernas.json/notes.txt"]


def test_a_garbled_manifest_is_found_before_anything_is_written(capsys, tmp_path):
    (tmp_path / "manifest.json").write_text("{ garbled")
    _refused(capsys, ["nas", "supernas", "--samples", "6", "--out", str(tmp_path)],
             "manifest.json' is garbled (JSONDecodeError")
    assert _files(tmp_path) == ["manifest.json"] and (tmp_path / "manifest.json").read_text() == "{ garbled"


def test_supernas_samples_are_estimated_first(capsys, tmp_path):
    _refused(capsys, ["nas", "supernas", "--samples", "100000000000", "--out", str(tmp_path / "o")],
             "SuperNAS would take at least")
    assert _files(tmp_path) == []


def test_supernas_writes_its_counts_as_a_result_table(capsys, tmp_path):
    assert main(["nas", "supernas", "--samples", "6", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    doc = json.loads((tmp_path / "nas_supernas.json").read_text())
    chosen = json.loads((tmp_path / "supernas.json").read_text())
    assert doc["best"] == chosen["best"] and doc["spaces"] == chosen["spaces"]
    md = (tmp_path / "nas_supernas.md").read_text()
    row = next(r for r in chosen["spaces"] if r["space"] == chosen["best"])
    assert f"| {row['space']} | {row['fitting']} | 6 |" in md
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["artefacts"]["supernas.json"]["summary"]["best"] == chosen["best"]


def test_nas_show_on_files_that_are_not_tables(capsys, tmp_path):
    _refused(capsys, ["nas", "show", "--id", "0", "--table", str(repo_root() / "README.md")],
             "is not a readable candidates table (ArrowInvalid")
    cut = tmp_path / "candidates.parquet"
    cut.write_bytes((NAS / "candidates.parquet").read_bytes()[:3000])
    _refused(capsys, ["nas", "show", "--id", "0", "--table", str(cut)], "is not a readable candidates table")
    other = tmp_path / "other.parquet"
    import pandas as pd

    pd.DataFrame({"a": [1]}).to_parquet(other)
    _refused(capsys, ["nas", "show", "--id", "0", "--table", str(other)],
             "is not a candidates table (no column")


@pytest.fixture
def nas_dir(tmp_path):
    folder = tmp_path / "nas"
    folder.mkdir()
    shutil.copy(NAS / "candidates.parquet", folder)
    return folder


def test_truncated_or_foreign_finetuned_weights_are_errors_not_random_weights(nas_dir):
    from core.engine.models import candidate
    from core.tinyformer.candidates import NoFinetuned, load_finetuned

    path = nas_dir / "finetuned.pt"
    path.write_bytes((NAS / "finetuned.pt").read_bytes()[:5000])
    with pytest.raises(WorkbenchError, match=r"finetuned.pt' cannot be read \(.*\); re-create it") as info:
        load_finetuned(path, 0)
    assert not isinstance(info.value, NoFinetuned) and "\n" not in str(info.value)
    with pytest.raises(WorkbenchError, match="cannot be read"):  # the engine does not fall back silently
        candidate(0, nas_dir)
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(WorkbenchError, match="is not a fine-tuned weights file"):
        load_finetuned(path, 0)
    foreign = {0: {"arch": {"nope": 1}, "state_dict": {}}}
    torch.save({"format": 1, "dataset": "x", "candidates": foreign}, path)
    with pytest.raises(WorkbenchError, match="do not fit its architecture"):
        load_finetuned(path, 0)
    path.unlink()
    with pytest.raises(NoFinetuned):  # absent: the engine may use seeded random weights
        load_finetuned(path, 0)


def test_a_garbled_supernet_checkpoint_is_one_sentence(tmp_path):
    from core.tinyformer.supernet import load_checkpoint

    path = tmp_path / "supernet.pt"
    path.write_bytes((NAS / "supernet.pt").read_bytes()[:4096])
    with pytest.raises(WorkbenchError, match="could not be read") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)
