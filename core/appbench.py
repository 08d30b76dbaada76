"""`python -m core bench app`: classroom speed of the Panel app, measured in a real browser.

Launches `panel serve app` as a subprocess (this module imports no UI library) and drives Debian's
Chromium through Playwright (imported lazily) like a teacher would:

- launch -> first page drawn (the Data explorer's Generate button visible), then page loads in new
  browser contexts (empty cache: a student's first visit) and reloads of a tab (scripts cached);
- Error accumulation with the shipped checkpoints: the first compute, then a new session (the
  disk cache keyed by checkpoint hashes, dataset key and settings);
- Rollout frames/s as the page reports them: a learned model in 2D and in 3D;
- Data explorer playback: frames shown per second against the rate that was set;
- the NAS explorer tab: from the click on its tab to its three scatters drawn, the first time in the
  server and in new sessions, with the server's own time to build it (the line `app/main.py` logs);
- every request the page makes that leaves the machine (web fonts, CDNs).

The page-driving helpers (`open_tab`, `setup_rollout`, `run_rollout`, ...) are also what the
browser tests use, so the benchmark measures exactly what the tests check. Writes
data/results/bench_app.{md,json} with the load average at the start and the end (timings on a
shared machine are indicative; `--app DIR` serves another copy of the app, to compare). `--only`
measures some sections; written to the default folder, the rows it did not measure are kept from the
previous file, and every row names the run it comes from.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from core.errors import WorkbenchError
from core.io import data_dir, markdown_table, repo_root, write_result

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]
#: (what, target, comparison): what the issue asks of a classroom
TARGETS = {"first page": (10.0, "<="), "page load": (2.0, "<="), "error page (cached)": (5.0, "<="),
           "rollout 2D": (10.0, ">="), "rollout 3D": (2.0, ">="), "NAS tab": (3.0, "<="),
           "NAS tab build (server)": (3.0, "<=")}
#: what `--only` can pick; each section writes the rows named here
SECTIONS = {"load": ("first page", "page load", "page load (cached)"),
            "nas": ("NAS tab (first)", "NAS tab", "NAS tab build (server)"),
            "playback": ("playback 2D",), "error": ("error page (first)", "error page (cached)"),
            "rollout": ("rollout 2D", "rollout 3D"), "external": ("external requests",)}
#: the model check boxes of the Rollout and Error pages
CHOICES = ("pimrl", "percnn", "convlstm", "fno", "micro", "macro", "pimrl_nomp", "euler", "rk4")


def register(bench_subparsers: Any) -> None:
    """Add `app` to `python -m core bench`."""
    p = bench_subparsers.add_parser("app", help="the Panel app's speed in headless Chromium")
    p.add_argument("--learned", default="fno",
                   help="learned model for the rollout rates (a shipped checkpoint)")
    p.add_argument("--error-data", default="quick", choices=["quick", "full"],
                   help="Error page data: the quick look (4 fresh test trajectories) or the full test split")
    p.add_argument("--loads", type=int, default=3, help="fresh page loads timed after the first")
    p.add_argument("--app", default="app", help="the app folder to serve (e.g. an older copy, to compare)")
    p.add_argument("--out", default=None, help="folder for bench_app.md/json (default data/results)")
    p.add_argument("--only", default=None,
                   help=f"comma-separated sections to measure ({', '.join(SECTIONS)}; default all); the "
                        "other rows are kept from the previous result file in the output folder")
    p.set_defaults(func=func)


# ------------------------------------------------------------------- serving and the browser --
def chromium_path() -> str | None:
    """Debian's Chromium, or None when it is not installed."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _chromium() -> str:
    path = chromium_path()
    if path is None:
        raise WorkbenchError("Chromium was not found; install it with `apt-get install chromium`")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port: int, cache: Path, log: Path, app: str = "app",
          extra: tuple[str, ...] = ()) -> subprocess.Popen:
    """`panel serve <app>` on 127.0.0.1:`port` with its own data cache, output to `log`."""
    env = dict(os.environ, WORKBENCH_CACHE=str(cache))
    cmd = [sys.executable, "-m", "panel", "serve", str(app), "--address", "127.0.0.1", "--port", str(port),
           "--allow-websocket-origin", f"127.0.0.1:{port}", *extra]
    return subprocess.Popen(cmd, cwd=repo_root(), env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Block until `url` answers (the server started), or raise if the server died or timed out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise WorkbenchError(f"panel serve exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.1)
    raise WorkbenchError(f"{url} did not answer within {timeout:.0f} s")


# ------------------------------------------------ driving the pages (shared with the UI tests) --
def open_tab(page, url: str, title: str, ready: str) -> None:
    """Load the app in `page` (a Playwright page) and open tab `title`; wait for button `ready`."""
    page.goto(url)
    tab = page.locator(".bk-tab", has_text=title)  # Bokeh tab headers carry no ARIA role
    tab.first.wait_for(timeout=120_000)
    tab.first.click()
    page.get_by_role("button", name=ready).wait_for(timeout=120_000)


def type_into(page, label: str, value: Any) -> None:
    """Type `value` into the text box `label` and commit it (Enter, then Tab)."""
    box = page.get_by_role("textbox", name=label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    box.press("Tab")  # commit also where Enter alone is not sent before the next click


def choose_models(page, wanted: list[str], choices: tuple[str, ...] = CHOICES) -> None:
    """Tick exactly the model check boxes `wanted`."""
    for name in choices:
        box = page.get_by_role("checkbox", name=name, exact=True)
        if box.is_checked() != (name in wanted):
            box.click()


def setup_rollout(page, url: str, system: str, models: list[str], steps: int, substeps: int = 1,
                  rate: int | None = None) -> None:
    """A fresh Rollout page set to the quick look of `system`, `models`, `steps`, `substeps`, `rate`."""
    open_tab(page, url, "Rollout", "Start")
    page.get_by_role("combobox").first.select_option(system)
    page.get_by_text("quick look", exact=True).click()
    choose_models(page, models)
    type_into(page, "steps", steps)
    if substeps != 1:  # the scheme sub-steps (the select that offers 512)
        page.locator('select:has(option:text-is("512"))').select_option(str(substeps))
    if rate is not None:
        page.locator('select:has(option:text-is("12"))').select_option(str(rate))
    from playwright.sync_api import expect

    expect(page.get_by_role("textbox", name="steps", exact=True)).to_have_value(str(steps))


def run_rollout(page, url: str, system: str, models: list[str], steps: int, substeps: int = 1,
                rate: int | None = None, timeout_s: float = 900) -> dict[str, Any]:
    """Roll out on a fresh Rollout page; the frames/s the page reports, the wall time from Start to
    done (data, models and display), and the status line."""
    setup_rollout(page, url, system, models, steps, substeps, rate)
    t0 = time.perf_counter()
    page.get_by_role("button", name="Start").click()
    done = page.get_by_text(re.compile(r"(done|stopped) after \d+ steps"))
    done.wait_for(timeout=timeout_s * 1000)
    wall = time.perf_counter() - t0
    text = done.inner_text()
    return {"status": text, "fps": float(re.search(r"([\d.]+) frames/s", text).group(1)), "wall_s": wall}


class _Session:
    """One browser tab on the served app, recording requests that leave the machine."""

    def __init__(self, browser, url: str, external: list[str]):
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.url = url
        local = url.split("/app")[0]
        self.page.on("request", lambda r: external.append(r.url) if not r.url.startswith(
            (local, "data:", "blob:", "ws://127.0.0.1")) else None)

    def load(self) -> float:
        t0 = time.perf_counter()
        self.page.goto(self.url)
        self.page.get_by_role("button", name="Generate").wait_for(timeout=120_000)
        return time.perf_counter() - t0

    def close(self) -> None:
        self.context.close()


def _error_page(s: _Session, quick: bool, models: list[str]) -> float:
    """Seconds from Compute to the table of the shipped checkpoints' metrics."""
    open_tab(s.page, s.url, "Error accumulation", "Compute")
    if quick:
        s.page.locator("input[type=checkbox]:visible").first.check()
    choose_models(s.page, models)
    t0 = time.perf_counter()
    s.page.get_by_role("button", name="Compute").click()
    # the result's caption ("Δt = 0.01 (k = 5), ..."), not the Data explorer's "Δt = k·δt" row
    s.page.get_by_text(re.compile(r"^Δt = \d")).first.wait_for(timeout=1_800_000)
    return time.perf_counter() - t0


def _playback(s: _Session, frames: int, rate: int, skip: int = 5) -> tuple[float, float]:
    """(frames per second the Data explorer's player shows at its set `rate`, seconds from Play to
    the first new frame on screen). The rate is timed from frame `skip` to the last frame as they
    appear, so the start-up lag is reported apart from the rate."""
    s.page.locator('select:has(option:text-is("grayscott2d"))').select_option("grayscott2d")
    s.page.locator('select:has(option:text-is("preset"))').select_option("32")
    type_into(s.page, "Samples", 2)
    type_into(s.page, "Frames", frames)
    s.page.get_by_role("button", name="Generate").click()
    s.page.get_by_text(re.compile(r"grayscott2d.*coarse frame 0/")).first.wait_for(timeout=300_000)
    s.page.locator(f'select:has(option:text-is("{rate}"))').last.select_option(str(rate))
    last = frames - 1
    t0 = time.perf_counter()
    s.page.locator("button.play").first.click()
    # frames pass faster than Playwright polls: wait for "at least frame k", then read which it is
    s.page.get_by_text(re.compile(rf"coarse frame [1-9]\d*/{last}")).first.wait_for(timeout=120_000)
    lag = time.perf_counter() - t0
    at_skip = s.page.get_by_text(re.compile(rf"coarse frame ([{skip}-9]|[1-9]\d+)/{last}")).first
    at_skip.wait_for(timeout=120_000)
    t_skip = time.perf_counter()
    k = int(re.search(r"coarse frame (\d+)/", at_skip.inner_text()).group(1))
    s.page.get_by_text(f"coarse frame {last}/{last}").first.wait_for(timeout=120_000)
    return (last - k) / (time.perf_counter() - t_skip), lag


def nas_tab(page, url: str, timeout_s: float = 120) -> float:
    """Load the app in `page`, click the NAS explorer's tab and wait until its count of fitting
    candidates, its three scatters and the selected candidate's architecture are drawn; seconds from
    the click."""
    page.goto(url)
    page.get_by_role("button", name="Generate").wait_for(timeout=120_000)
    tab = page.locator(".bk-tab", has_text="NAS explorer").first
    t0 = time.perf_counter()
    tab.click()
    page.locator(".nas-fit-count").get_by_text(re.compile(r"candidates fit")).first.wait_for(
        timeout=timeout_s * 1000)
    page.wait_for_function(NAS_DRAWN_JS, timeout=timeout_s * 1000, polling=50)
    return time.perf_counter() - t0


#: true once the NAS explorer's first screen is laid out in the browser: its three scatter plots
#: (flash, SRAM, latency) with their points and the selected candidate's architecture diagram
NAS_DRAWN_JS = """
() => {
  if (typeof Bokeh === "undefined") return false;
  let scatters = 0, diagram = false;
  const walk = (v) => {
    const title = v.frame && v.renderer_views && v.model.title ? v.model.title.text || "" : "";
    if (title && v.frame.bbox.width > 0) {
      if (title.startsWith("Architecture")) diagram = true;
      else if (/flash|SRAM|latency/.test(title)) {
        for (const rv of v.renderer_views.values()) {
          const d = rv.model.data_source && rv.model.data_source.data;
          if (d && d.id && d.alpha && d.id.length > 0) { scatters += 1; break; }
        }
      }
    }
    if (v.child_views) for (const c of v.child_views) walk(c);
  };
  for (const root of Object.values(Bokeh.index)) walk(root);
  return scatters >= 3 && diagram;
}
"""

#: the line `app/main.py` logs when it has built a page
BUILT_RE = re.compile(r"page built: '([^']+)' in ([\d.]+) s of server time, ([\d.]+) s after its tab")


def server_builds(log: Path, title: str) -> list[tuple[float, float]]:
    """(server time of the build, seconds from the tab's opening to built) of every build of page
    `title` in a `panel serve` log, in order."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    return [(float(b), float(a)) for t, b, a in BUILT_RE.findall(text) if t == title]


def _wait_builds(log: Path, title: str, n: int, timeout: float = 10.0) -> list[tuple[float, float]]:
    deadline = time.monotonic() + timeout
    while True:  # the server's log is flushed a moment after the browser has drawn the page
        builds = server_builds(log, title)
        if len(builds) >= n or time.monotonic() > deadline:
            return builds
        time.sleep(0.1)


def _load() -> str:
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def measure(learned: str, error_data: str, loads: int, app: str = "app",
            only: tuple[str, ...] = tuple(SECTIONS)) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright  # lazily: only this benchmark needs it

    rows: list[dict[str, Any]] = []
    external: list[str] = []
    loadavg = {"start": _load()}
    work = Path(tempfile.mkdtemp(prefix="bench-app-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/app"
    t_launch = time.perf_counter()
    log = work / "panel.log"
    proc = serve(port, work / "cache", log, app=app)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_FLAGS)
            first = _Session(browser, url, external)
            wait_http(url, proc)
            t_http = time.perf_counter() - t_launch
            first.load()
            if "load" in only:
                rows.append({"what": "first page", "value": time.perf_counter() - t_launch, "unit": "s",
                             "note": f"`panel serve` launch to first page drawn (server answered after "
                                     f"{t_http:.1f} s)"})
                times, cached = [], []
                for _ in range(loads):
                    s = _Session(browser, url, external)
                    times.append(s.load())
                    cached.append(s.load())  # the same tab again: the browser has the scripts cached
                    s.close()
                rows.append({"what": "page load", "value": _median(times), "unit": "s",
                             "note": f"median of {loads} new browser contexts, empty cache "
                                     f"({', '.join(f'{t:.2f}' for t in times)} s)"})
                rows.append({"what": "page load (cached)", "value": _median(cached),
                             "unit": "s", "note": f"median of {loads} reloads of a tab, scripts cached "
                                                  f"({', '.join(f'{t:.2f}' for t in cached)} s)"})
            if "nas" in only:
                rows += _nas_rows(browser, url, external, log, loads)
            if "playback" in only:
                rate = 10
                fps, lag = _playback(first, 41, rate)
                rows.append({"what": "playback 2D", "value": fps, "unit": "frames/s", "target_value": rate,
                             "note": f"Data explorer, grayscott2d 32², set to {rate} frames/s: from frame 5 "
                                     f"to 40 as they appear; {lag:.2f} s from Play to the first new frame"})
            if "error" in only:
                quick = error_data == "quick"
                models = ["pimrl", "percnn", "convlstm", "fno"]
                cold = _error_page(first, quick, models)
                warm_session = _Session(browser, url, external)
                warm = _error_page(warm_session, quick, models)
                warm_session.close()
                data = "quick look, 4 fresh test trajectories" if quick else "full test split"
                rows.append({"what": "error page (first)", "value": cold, "unit": "s",
                             "note": f"shipped checkpoints ({', '.join(models)}), {data}, incl. data "
                                     "generation"})
                rows.append({"what": "error page (cached)", "value": warm, "unit": "s",
                             "note": "a new session, same settings: read from the disk cache"})
            if "rollout" in only:
                for system, what, steps in (("burgers2d", "rollout 2D", 40),
                                            ("grayscott3d", "rollout 3D", 20)):
                    s = _Session(browser, url, external)  # a fresh page per run: no stale status line
                    r = run_rollout(s.page, url, system, [learned], steps)
                    s.close()
                    rows.append({"what": what, "value": r["fps"], "unit": "frames/s",
                                 "note": f"{system} quick look, {learned}, {steps} steps "
                                         f"(page: {r['status']})"})
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    loadavg["end"] = _load()
    if "external" in only:
        rows.append({"what": "external requests", "value": len(external), "unit": "count",
                     "note": ", ".join(sorted(set(external))[:5]) or "none: no web fonts, no CDN"})
    for row in rows:
        target = TARGETS.get(row["what"])
        if row["what"] == "playback 2D":  # its own set rate (5 % slack for the timer's granularity)
            target = (0.95 * row.pop("target_value"), ">=")
        row["target"] = f"{target[1]} {target[0]:g}" if target else ""
        row["met"] = "" if not target else (row["value"] <= target[0] if target[1] == "<=" else
                                           row["value"] >= target[0])
    return {"rows": rows, "load_average": loadavg}


def _nas_rows(browser, url: str, external: list[str], log: Path, sessions: int) -> list[dict[str, Any]]:
    """The NAS explorer tab: its first opening in this server, then `sessions` new sessions (each
    builds its own page object); browser time from the click to the scatters drawn, and the
    server's build time from its log."""
    title = "NAS explorer"
    before = len(server_builds(log, title))
    waits, loads = [], []
    for k in range(1 + sessions):
        s = _Session(browser, url, external)
        waits.append(_load())
        loads.append(nas_tab(s.page, url))
        s.close()
        _wait_builds(log, title, before + k + 1)
    builds = server_builds(log, title)[before:]
    if len(builds) != 1 + sessions:
        raise WorkbenchError(f"the server logged {len(builds)} builds of the {title} page for "
                             f"{1 + sessions} sessions: is `app/main.py`'s 'page built' log line missing?")
    server = [b for b, _ in builds]
    after = [a for _, a in builds]
    new = loads[1:]
    fmt = ", ".join
    return [
        {"what": "NAS tab (first)", "value": loads[0], "unit": "s",
         "note": f"click on the tab to its three scatters and the candidate's architecture drawn, the first "
                 f"time in this server (server: "
                 f"{server[0]:.2f} s to build, {after[0]:.2f} s from the click's arrival; load "
                 f"{waits[0]})"},
        {"what": "NAS tab", "value": _median(new), "unit": "s",
         "note": f"median of {sessions} new sessions, click to the same drawn "
                 f"({fmt(f'{t:.2f}' for t in new)} s; load at each start {fmt(waits[1:])})"},
        {"what": "NAS tab build (server)", "value": _median(server[1:]), "unit": "s",
         "note": f"median server time to build the page in those sessions "
                 f"({fmt(f'{t:.2f}' for t in server[1:])} s; from the click's arrival "
                 f"{fmt(f'{t:.2f}' for t in after[1:])} s)"},
    ]


def _sections(only: str | None) -> tuple[str, ...]:
    if not only:
        return tuple(SECTIONS)
    picked = tuple(x.strip() for x in only.split(",") if x.strip())
    bad = [x for x in picked if x not in SECTIONS]
    if bad or not picked:
        raise WorkbenchError(f"--only {only!r} names no section or an unknown one ({', '.join(bad)}); "
                             f"sections: {', '.join(SECTIONS)}")
    return picked


def _merge(rows: list[dict[str, Any]], created: str, previous: Path) -> list[dict[str, Any]]:
    """This run's rows (tagged with `created`) in section order, the rows it did not measure taken from
    the previous result file `previous` (with their own run's date)."""
    old: dict[str, dict[str, Any]] = {}
    if previous.is_file():
        doc = json.loads(previous.read_text())
        for r in doc.get("rows", []):
            old[r["what"]] = {**r, "run": r.get("run") or doc.get("created", "")}
    new = {r["what"]: {**r, "run": created} for r in rows}
    order = [w for names in SECTIONS.values() for w in names]
    return [new.get(w) or old[w] for w in order if w in new or w in old]


def func(args: argparse.Namespace) -> int:
    only = _sections(args.only)
    result = measure(args.learned, args.error_data, args.loads, args.app, only)
    folder = Path(args.out) if args.out else data_dir() / "results"
    created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    rows = _merge(result["rows"], created, folder / "bench_app.json")
    runs = sorted({r["run"] for r in rows})
    headers = ["what", "value", "unit", "target", "met", "how"] + (["run"] if len(runs) > 1 else [])
    table = markdown_table(headers, [[r["what"], round(float(r["value"]), 2), r["unit"], r["target"],
                                      r["met"], r["note"]] + ([r["run"]] if len(runs) > 1 else [])
                                     for r in rows])
    la = result["load_average"]
    head = (f"# App speed in headless Chromium\n\nLoad average (1 / 5 / 15 min) on {os.cpu_count()} cores: "
            f"{la['start']} at the start, {la['end']} at the end")
    if len(runs) > 1:
        prev = [r for r in runs if r != created]
        head += (f" of the run of {created} ({', '.join(only)} rows); the rows whose `run` is "
                 f"{', '.join(prev)} come from the earlier run(s) of this file (their load is in "
                 "`load_averages` of the JSON)")
    head += ".\n\n"
    loads = {created: la}
    if (folder / "bench_app.json").is_file() and len(runs) > 1:
        doc = json.loads((folder / "bench_app.json").read_text())
        loads = {**doc.get("load_averages", {doc.get("created", ""): doc.get("load_average")}), **loads}
    print(head + table)
    write_result("bench_app", head + table, {"rows": rows, "load_average": la,
                                              "load_averages": {r: loads[r] for r in runs if r in loads}},
                 config={"learned": args.learned, "error_data": args.error_data, "loads": args.loads,
                         "app": args.app, "cpus": os.cpu_count(), "only": list(only)},
                 folder=folder)
    return 0
