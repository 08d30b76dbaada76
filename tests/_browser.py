"""Helpers of the browser tests (Playwright + Debian Chromium), in one place.

Driving the pages (open a tab, set up and run a rollout) lives in `core.appbench`, which the
benchmark uses too; this module holds what only the tests need.
"""

from __future__ import annotations

import time


def wait_for(measure, ok, timeout_s: float = 20.0):
    """Re-measure until `ok(result)` or the timeout (a condition, not a fixed sleep); the last result."""
    deadline = time.monotonic() + timeout_s
    result = measure()
    while not ok(result) and time.monotonic() < deadline:
        time.sleep(0.2)
        result = measure()
    return result
