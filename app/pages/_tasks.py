"""Background work for pages: a worker-thread task runner with a progress indicator, UI updates
on the document's thread, notifications and session clean-up (see `pages._widgets`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import panel as pn
import param
from panel.io.state import set_curdoc

from core.errors import WorkbenchError

log = logging.getLogger("workbench.app")


# ------------------------------------------------------------------------------ notifications --
def notify_error(message: str) -> None:
    """Show `message` as an error toast in a served session; log it everywhere."""
    log.warning("%s", message)
    if pn.state.notifications is not None:
        pn.state.notifications.error(message, duration=10000)


def notify_info(message: str) -> None:
    if pn.state.notifications is not None:
        pn.state.notifications.info(message, duration=4000)


def call_on_doc(doc, fn: Callable[..., Any], *args: Any) -> None:
    """Run `fn(*args)` on `doc`'s thread (with the document lock) in a served session, or right
    away when there is no session (tests, notebooks). Safe to call from any thread."""
    if doc is None or doc.session_context is None:
        fn(*args)
        return

    def run() -> None:
        with set_curdoc(doc):
            fn(*args)

    try:
        doc.add_next_tick_callback(run)
    except Exception:  # the session closed while a worker was still reporting: nobody to show it to
        log.debug("dropped a UI update for a closed session", exc_info=True)


def on_session_end(fn: Callable[[], None]) -> None:
    """Call `fn()` when this browser session closes (no-op outside a served session)."""
    if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
        pn.state.on_session_destroyed(lambda _ctx: fn())


# -------------------------------------------------------------------------------- task runner --
class TaskCancelled(Exception):
    """Raised inside a job's progress callback after `TaskRunner.cancel()`."""


class TaskRunner(param.Parameterized):
    """Runs one long job at a time off the UI thread with a progress indicator.

    `run(job, on_done)` calls `job(progress)` in a worker thread; `progress(done, total, message)`
    updates the indicator on the document's thread, coalescing bursts of calls into one UI update.
    When the job returns, `on_done(result)` runs on the document's thread. A `WorkbenchError` (from
    the job or from `on_done`) becomes `error` and a notification; any other exception is logged
    with its traceback on the server and shown as one line.
    """

    busy = param.Boolean(default=False, doc="a job is running")
    done = param.Integer(default=0)
    total = param.Integer(default=1)
    message = param.String(default="", doc="last progress message or outcome")
    error = param.String(default="", doc="last error shown to the user ('' after a success)")

    def __init__(self, **params):
        super().__init__(**params)
        self._lock = threading.Lock()
        self._latest: tuple[int, int, str] | None = None
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._doc = None
        self.bar = pn.indicators.Progress(value=0, max=1, sizing_mode="stretch_width", height=16,
                                          visible=self.param.busy, bar_color="info")
        self.status = pn.pane.Markdown(self.param.message, margin=(0, 10), styles={"font-size": "0.9em"})

    def run(self, job: Callable[[Callable[[int, int, str], None]], Any], on_done: Callable[[Any], None],
            label: str = "working") -> bool:
        """Start `job` unless one is running (then tell the user and return False)."""
        if self.busy:
            notify_info("please wait for the running task to finish")
            return False
        self._doc = pn.state.curdoc
        self._cancel.clear()
        self.param.update(busy=True, done=0, total=1, message=f"{label}…", error="")
        self.bar.value = 0
        self._thread = threading.Thread(target=self._work, args=(job, on_done), daemon=True,
                                        name=f"workbench-{label}")
        self._thread.start()
        return True

    def cancel(self) -> None:
        """Ask the running job to stop at its next progress report."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the running job and its `on_done` finished (tests, notebooks); True if idle."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.busy

    def progress(self, done: int, total: int, message: str = "") -> None:
        """The `core.io.Progress` handed to the job (callable from any thread)."""
        if self._cancel.is_set():
            raise TaskCancelled()
        with self._lock:
            first = self._latest is None
            self._latest = (int(done), max(int(total), 1), message)
        if first:
            call_on_doc(self._doc, self._flush)

    def _flush(self) -> None:
        with self._lock:
            latest, self._latest = self._latest, None
        if latest is None:
            return
        done, total, message = latest
        # max before value: the indicator validates value against the current max
        self.bar.max = total
        self.bar.value = min(done, total)
        self.param.update(done=done, total=total, message=message or self.message)

    def _work(self, job, on_done) -> None:
        try:
            result = job(self.progress)
        except TaskCancelled:
            call_on_doc(self._doc, self._end, "cancelled", "")
        except WorkbenchError as exc:
            call_on_doc(self._doc, self._end, "failed", str(exc))
        except Exception as exc:  # a bug: full traceback to the server log, one line to the user
            log.exception("background task failed")
            call_on_doc(self._doc, self._end, "failed", f"unexpected error ({type(exc).__name__}: {exc})")
        else:
            call_on_doc(self._doc, self._finish, on_done, result)

    def _finish(self, on_done, result) -> None:
        try:
            on_done(result)
        except WorkbenchError as exc:
            self._end("failed", str(exc))
        except Exception as exc:
            log.exception("showing a task's result failed")
            self._end("failed", f"unexpected error ({type(exc).__name__}: {exc})")
        else:
            self._end("done", "")

    def _end(self, outcome: str, error: str) -> None:
        self._flush()
        self.param.update(busy=False, error=error, message=error and f"**{outcome}:** {error}" or outcome)
        if error:
            notify_error(error)

    def __panel__(self):
        return pn.Column(self.bar, self.status, sizing_mode="stretch_width")
