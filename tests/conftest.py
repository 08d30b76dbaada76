"""Shared fixtures: a served workbench and Playwright driving Debian's Chromium."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from core.appbench import CHROMIUM_FLAGS, chromium_path, free_port, serve, wait_http


class FakeNotifications:
    """Stands in for `pn.state.notifications` (only present in a served session)."""

    def __init__(self):
        self.errors: list[str] = []

    def error(self, message, duration=0):
        self.errors.append(message)

    def info(self, message, duration=0):
        pass


@pytest.fixture(autouse=True, scope="session")
def _isolated_data(tmp_path_factory):
    """Generated datasets go to a per-session temporary cache, never into the checkout. Session
    scope: module-scoped fixtures (which run before function-scoped ones) must see it too."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        yield


@pytest.fixture(scope="session")
def served_app(tmp_path_factory):
    """`panel serve app` on a free loopback port; yields the page URL (`/app`: Bokeh names a directory
    app after the directory). At teardown, fails if any traceback escaped a session into the server
    log; a browser closing mid-message (StreamClosedError / WebSocketClosedError) is the client
    leaving, not a fault of the app."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("served-log") / "panel.log"
    # a closed tab's session ends within ~2 s (default ~30 s), so tests can watch its work stop
    proc = serve(port, tmp_path_factory.mktemp("served-cache"), log_path,
                 extra=("--num-procs", "1", "--check-unused-sessions", "1000",
                        "--unused-session-lifetime", "1000"))
    url = f"http://127.0.0.1:{port}/app"
    try:
        wait_http(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    tracebacks = re.findall(r"^Traceback \(most recent call last\):\n(?:(?!\d{4}-\d\d-\d\d ).*\n?)*",
                            log_path.read_text(), flags=re.M)
    escaped = [t for t in tracebacks if not re.search(r"(StreamClosedError|WebSocketClosedError)", t)]
    assert escaped == [], escaped[0][-3000:]


@pytest.fixture(scope="session")
def browser():
    """A headless Debian Chromium under Playwright. Skipped locally without Chromium; in CI
    (WORKBENCH_REQUIRE_BROWSER=1) a missing browser is a failure, not a skip."""
    exe = chromium_path()
    if exe is None:
        if os.environ.get("WORKBENCH_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required (apt-get install chromium) but was not found")
        pytest.skip("Chromium not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A fresh browser context per test (separate sessions never share state); collects page errors."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.js_errors = []
    pg.on("pageerror", lambda exc: pg.js_errors.append(str(exc)))
    yield pg
    context.close()
