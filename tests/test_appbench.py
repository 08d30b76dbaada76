"""`python -m core bench app` without a browser: the server's page-build log line is read back, `--only`
names sections, and a partial run keeps the rows it did not measure with the date of their own run.
(The benchmark itself drives Chromium: `python -m core bench app`; the browser tests share its helpers.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from core import appbench
from core.errors import WorkbenchError


def test_build_lines_are_read_back_per_page(tmp_path):
    log = tmp_path / "panel.log"
    log.write_text("2026-12-02 15:23:57,477 ServerConnection created\n"
                   "2026-12-02 15:24:01,233 page built: 'NAS explorer' in 3.050 s of server time, "
                   "3.081 s after its tab was opened\n"
                   "2026-12-02 15:24:02,000 page built: 'Rollout' in 0.500 s of server time, "
                   "0.600 s after its tab was opened\n"
                   "2026-12-02 15:24:09,000 page built: 'NAS explorer' in 0.750 s of server time, "
                   "0.790 s after its tab was opened\n")
    assert appbench.server_builds(log, "NAS explorer") == [(3.05, 3.081), (0.75, 0.79)]
    assert appbench.server_builds(log, "Rollout") == [(0.5, 0.6)]
    assert appbench.server_builds(tmp_path / "none.log", "Rollout") == []


def test_the_app_logs_the_line_the_benchmark_reads():
    """`app/main.py` formats its build line with this very format string; what it logs must parse."""
    source = (Path(__file__).resolve().parent.parent / "app" / "main.py").read_text()
    fmt = re.search(r'build_log\.info\("([^"]+)",\s*\n?\s*', source).group(1)
    line = "2026-12-02 15:24:01,233 " + fmt % ("NAS explorer", 1.234, 1.5)
    assert appbench.BUILT_RE.search(line).groups() == ("NAS explorer", "1.234", "1.500")
    assert "build_log.setLevel(logging.INFO)" in source  # shown at `panel serve`'s default level


def test_only_names_sections():
    assert appbench._sections(None) == tuple(appbench.SECTIONS)
    assert appbench._sections("nas, load") == ("nas", "load")
    with pytest.raises(WorkbenchError, match="--only 'nas,pages'.*pages.*sections: load, nas"):
        appbench._sections("nas,pages")
    every = [w for names in appbench.SECTIONS.values() for w in names]
    assert set(appbench.TARGETS) <= set(every) and len(every) == len(set(every))


def test_a_partial_run_keeps_the_other_rows_with_their_run(tmp_path):
    previous = tmp_path / "bench_app.json"
    old = [{"what": w, "value": 1.0, "unit": "s", "note": "old", "target": "", "met": ""}
           for w in ("first page", "page load", "NAS tab", "rollout 3D")]
    previous.write_text(json.dumps({"created": "2026-12-01T10:00:00+0000", "rows": old}))
    new = [{"what": "NAS tab (first)", "value": 4.0}, {"what": "NAS tab", "value": 2.0},
           {"what": "NAS tab build (server)", "value": 0.8}]
    rows = appbench._merge(new, "2026-12-02T16:00:00+0000", previous)
    assert [r["what"] for r in rows] == ["first page", "page load", "NAS tab (first)", "NAS tab",
                                         "NAS tab build (server)", "rollout 3D"]
    runs = {r["what"]: (r["run"], r["value"]) for r in rows}
    assert runs["page load"] == ("2026-12-01T10:00:00+0000", 1.0)  # kept, with its own run's date
    assert runs["NAS tab"] == ("2026-12-02T16:00:00+0000", 2.0)  # replaced by this run
    # a row that already names its run keeps that name through a further partial run
    again = appbench._merge([], "2026-12-03T00:00:00+0000", _written(tmp_path, rows))
    assert {r["what"]: r["run"] for r in again} == {w: r for w, (r, _v) in runs.items()}
    assert appbench._merge(new, "x", tmp_path / "none.json") == [{**r, "run": "x"} for r in new]


def _written(folder: Path, rows: list[dict]) -> Path:
    path = folder / "again.json"
    path.write_text(json.dumps({"created": "2026-12-02T16:00:00+0000", "rows": rows}))
    return path
