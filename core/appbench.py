"""`python -m core bench app`: classroom speed of the Panel app, measured in a real browser.

Launches `panel serve app` as a subprocess (this module imports no UI library) and drives Debian's
Chromium through Playwright (imported lazily) like a teacher would:

- launch -> first page drawn (the Data explorer's Generate button visible), then fresh page loads;
- Error accumulation with the shipped checkpoints: the first compute, then a new session (the
  disk cache keyed by checkpoint hashes, dataset key and settings);
- Rollout frames/s as the page reports them: a learned model in 2D and in 3D;
- Data explorer playback: frames shown per second against the rate that was set;
- every request the page makes that leaves the machine (web fonts, CDNs).

Writes data/results/bench_app.{md,json}. Timings on a shared machine are indicative.
"""

from __future__ import annotations

import argparse
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
from core.io import markdown_table, repo_root, write_result

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]
#: (what, target, comparison): what the issue asks of a classroom
TARGETS = {"first page": (10.0, "<="), "page load": (2.0, "<="), "error page (cached)": (5.0, "<="),
           "rollout 2D": (10.0, ">="), "rollout 3D": (2.0, ">=")}


def register(bench_subparsers: Any) -> None:
    """Add `app` to `python -m core bench`."""
    p = bench_subparsers.add_parser("app", help="the Panel app's speed in headless Chromium")
    p.add_argument("--learned", default="fno",
                   help="learned model for the rollout rates (a shipped checkpoint)")
    p.add_argument("--error-data", default="quick", choices=["quick", "full"],
                   help="Error page data: the quick look (4 fresh test trajectories) or the full test split")
    p.add_argument("--loads", type=int, default=3, help="fresh page loads timed after the first")
    p.set_defaults(func=func)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise WorkbenchError("Chromium was not found; install it with `apt-get install chromium`")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(port: int, cache: Path, log: Path) -> subprocess.Popen:
    env = dict(os.environ, WORKBENCH_CACHE=str(cache))
    cmd = [sys.executable, "-m", "panel", "serve", "app", "--address", "127.0.0.1", "--port", str(port),
           "--allow-websocket-origin", f"127.0.0.1:{port}"]
    return subprocess.Popen(cmd, cwd=repo_root(), env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
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

    def tab(self, title: str, ready: str) -> None:
        self.page.locator(".bk-tab", has_text=title).first.click()
        self.page.get_by_role("button", name=ready).wait_for(timeout=120_000)

    def type(self, label: str, value: Any) -> None:
        box = self.page.get_by_role("textbox", name=label, exact=True)
        box.fill(str(value))
        box.press("Enter")
        box.press("Tab")  # commit also where Enter alone is not sent before the next click

    def close(self) -> None:
        self.context.close()


def _error_page(s: _Session, quick: bool, models: list[str]) -> float:
    """Seconds from Compute to the table of the shipped checkpoints' metrics."""
    s.tab("Error accumulation", "Compute")
    if quick:
        s.page.locator("input[type=checkbox]:visible").first.check()
    for name in ("pimrl", "percnn", "convlstm", "fno", "euler", "rk4"):
        box = s.page.get_by_role("checkbox", name=name, exact=True)
        if box.is_checked() != (name in models):
            box.click()
    t0 = time.perf_counter()
    s.page.get_by_role("button", name="Compute").click()
    # the result's caption ("Δt = 0.01 (k = 5), ..."), not the Data explorer's "Δt = k·δt" row
    s.page.get_by_text(re.compile(r"^Δt = \d")).first.wait_for(timeout=1_800_000)
    return time.perf_counter() - t0


def _rollout(s: _Session, system: str, model: str, steps: int) -> tuple[float, str]:
    """The frames/s the Rollout page reports for one quick-look run."""
    s.tab("Rollout", "Start")
    s.page.get_by_role("combobox").first.select_option(system)
    s.page.get_by_text("quick look", exact=True).click()
    for name in ("pimrl", "percnn", "convlstm", "fno", "euler", "rk4"):
        box = s.page.get_by_role("checkbox", name=name, exact=True)
        if box.is_checked() != (name == model):
            box.click()
    s.type("steps", steps)
    s.page.get_by_role("button", name="Start").click()
    done = s.page.get_by_text(re.compile(r"(done|stopped) after \d+ steps"))
    done.wait_for(timeout=900_000)
    text = done.inner_text()
    return float(re.search(r"([\d.]+) frames/s", text).group(1)), text


def _playback(s: _Session, frames: int, rate: int) -> float:
    """Frames per second the Data explorer's player shows at its set `rate`."""
    s.page.locator('select:has(option:text-is("grayscott2d"))').select_option("grayscott2d")
    s.page.locator('select:has(option:text-is("preset"))').select_option("32")
    s.type("Samples", 2)
    s.type("Frames", frames)
    s.page.get_by_role("button", name="Generate").click()
    s.page.get_by_text(re.compile(r"grayscott2d.*coarse frame 0/")).first.wait_for(timeout=300_000)
    s.page.locator(f'select:has(option:text-is("{rate}"))').last.select_option(str(rate))
    last = frames - 1
    t0 = time.perf_counter()
    s.page.locator("button.play").first.click()
    s.page.get_by_text(f"coarse frame {last}/{last}").first.wait_for(timeout=120_000)
    return last / (time.perf_counter() - t0)


def measure(learned: str, error_data: str, loads: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright  # lazily: only this benchmark needs it

    rows: list[dict[str, Any]] = []
    external: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="bench-app-"))
    port = _free_port()
    url = f"http://127.0.0.1:{port}/app"
    t_launch = time.perf_counter()
    proc = _serve(port, work / "cache", work / "panel.log")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=_chromium(), headless=True, args=FLAGS)
            first = _Session(browser, url, external)
            _wait_http(url, proc)
            t_http = time.perf_counter() - t_launch
            first.load()
            rows.append({"what": "first page", "value": time.perf_counter() - t_launch, "unit": "s",
                         "note": f"`panel serve` launch to first page drawn (server answered after "
                                 f"{t_http:.1f} s)"})
            times = []
            for _ in range(loads):
                s = _Session(browser, url, external)
                times.append(s.load())
                s.close()
            rows.append({"what": "page load", "value": sorted(times)[len(times) // 2], "unit": "s",
                         "note": f"median of {loads} fresh tabs ({', '.join(f'{t:.2f}' for t in times)} s)"})
            rate = 10
            fps = _playback(first, 41, rate)
            rows.append({"what": "playback 2D", "value": fps, "unit": "frames/s",
                         "note": f"Data explorer, grayscott2d 32², set to {rate} frames/s"})
            quick = error_data == "quick"
            models = ["pimrl", "percnn", "convlstm", "fno"]
            cold = _error_page(first, quick, models)
            warm_session = _Session(browser, url, external)
            warm_session.load()
            warm = _error_page(warm_session, quick, models)
            data = "quick look, 4 fresh test trajectories" if quick else "full test split"
            rows.append({"what": "error page (first)", "value": cold, "unit": "s",
                         "note": f"shipped checkpoints ({', '.join(models)}), {data}, incl. data generation"})
            rows.append({"what": "error page (cached)", "value": warm, "unit": "s",
                         "note": "a new session, same settings: read from the disk cache"})
            for system, what, steps in (("burgers2d", "rollout 2D", 40), ("grayscott3d", "rollout 3D", 20)):
                fps, text = _rollout(warm_session, system, learned, steps)
                rows.append({"what": what, "value": fps, "unit": "frames/s",
                             "note": f"{system} quick look, {learned}, {steps} steps (page: {text})"})
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    rows.append({"what": "external requests", "value": len(external), "unit": "count",
                 "note": ", ".join(sorted(set(external))[:5]) or "none: no web fonts, no CDN"})
    for row in rows:
        target = TARGETS.get(row["what"])
        row["target"] = f"{target[1]} {target[0]:g}" if target else ""
        row["met"] = "" if not target else (row["value"] <= target[0] if target[1] == "<=" else
                                           row["value"] >= target[0])
    return {"rows": rows}


def func(args: argparse.Namespace) -> int:
    result = measure(args.learned, args.error_data, args.loads)
    headers = ["what", "value", "unit", "target", "met", "how"]
    table = markdown_table(headers, [[r["what"], round(float(r["value"]), 2), r["unit"], r["target"],
                                      r["met"], r["note"]] for r in result["rows"]])
    print(table)
    write_result("bench_app", "# App speed in headless Chromium\n\n" + table, result,
                 config={"learned": args.learned, "error_data": args.error_data, "loads": args.loads,
                         "cpus": os.cpu_count()})
    return 0
