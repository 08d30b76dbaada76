"""Background work for pages: ONE task runner (worker thread, progress, ETA, pause / stop / cancel),
UI updates on the document's thread, notifications and session clean-up (see `pages._widgets`).

Every page runs its long work through `TaskRunner`; nothing else starts threads. A job is
`job(task) -> result` where `task` is the runner itself used as a `core.io.Progress`
(`task(done, total, message)`), so core functions take it as their progress callback. Inside the
job, `task.checkpoint()` (also called by every progress report) blocks while paused and raises
`TaskCancelled` once cancelled; `task.stopping` asks a streaming job to end early but keep what it
made (its result still reaches `on_done`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import panel as pn
import param
from panel.io.state import set_curdoc

from core.errors import WorkbenchError
from pages._stream_views import caption

log = logging.getLogger("workbench.app")

#: live jobs in this server process (name -> start time): what `active_tasks()` reports, so a page can
#: show that a closed session's work really ended
_ACTIVE: dict[int, str] = {}
_ACTIVE_LOCK = threading.Lock()


def active_tasks() -> int:
    """How many background jobs run in this server process right now (all sessions)."""
    with _ACTIVE_LOCK:
        return len(_ACTIVE)


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


def _eta(seconds: float) -> str:
    if seconds < 1:
        return "< 1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


# -------------------------------------------------------------------------------- task runner --
class TaskCancelled(Exception):
    """Raised inside a job (at its next progress report or checkpoint) after `TaskRunner.cancel()`."""


class TaskRunner(param.Parameterized):
    """Runs one long job at a time off the UI thread, with a progress bar, an ETA, pause / resume,
    a graceful stop and a cancel.

    `run(job, on_done)` calls `job(self)` in a worker thread; progress reports update the indicator
    on the document's thread, coalescing bursts of calls into one UI update. When the job returns,
    `on_done(result)` runs on the document's thread. A `WorkbenchError` (from the job or `on_done`)
    becomes `error` and a notification; any other exception is logged with its traceback on the
    server and shown as one line.
    """

    state = param.Selector(default="idle", objects=["idle", "running", "paused", "stopping"])
    busy = param.Boolean(default=False, doc="a job is running (or paused)")
    done = param.Integer(default=0)
    total = param.Integer(default=1)
    message = param.String(default="", doc="last progress message or outcome")
    eta = param.String(default="", doc="estimated time left of the current phase")
    error = param.String(default="", doc="last error shown to the user ('' after a success)")
    reports = param.Integer(default=0, doc="progress reports of the current job (work done, visibly)")

    def __init__(self, **params):
        super().__init__(**params)
        self._lock = threading.Lock()
        self._latest: tuple[int, int, str] | None = None
        self._cancel = threading.Event()
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self._thread: threading.Thread | None = None
        self._doc = None
        self._phase: tuple[str, float, int] = ("", 0.0, 0)  # message head, start time, start count
        self._n_reports = 0
        self.bar = pn.indicators.Progress(value=0, max=1, sizing_mode="stretch_width", height=16,
                                          visible=self.param.busy, bar_color="info")
        # a caption, not Markdown: the message changes with every progress report (each frame shown)
        self.status = caption(self, "message", font_size="0.9em")

    # ------------------------------------------------------------------------- controls (UI) --
    def run(self, job: Callable[[TaskRunner], Any], on_done: Callable[[Any], None],
            label: str = "working") -> bool:
        """Start `job` unless one is running (then tell the user and return False)."""
        if self.busy:
            notify_info("please wait for the running task to finish")
            return False
        self._doc = pn.state.curdoc
        self._cancel.clear()
        self._stop.clear()
        self._resume.set()
        self._n_reports = 0
        self._phase = ("", time.monotonic(), 0)
        self.param.update(busy=True, state="running", done=0, total=1, message=f"{label}…", error="",
                          eta="", reports=0)
        self.bar.value = 0
        self._thread = threading.Thread(target=self._work, args=(job, on_done), daemon=True,
                                        name=f"workbench-{label}")
        with _ACTIVE_LOCK:
            self._thread.start()
            _ACTIVE[self._thread.ident] = label
        return True

    def pause(self) -> None:
        """Hold the job at its next progress report until `resume()`."""
        if self.state == "running":
            self._resume.clear()
            self.state = "paused"

    def resume(self) -> None:
        if self.state == "paused":
            self.state = "running"
            self._resume.set()

    def stop(self) -> None:
        """Ask the job to end early and keep what it made (`stopping` becomes True; a job that does
        not look at it is cancelled instead at its next progress report)."""
        if self.busy:
            self._stop.set()
            self._resume.set()
            self.state = "stopping"

    def cancel(self) -> None:
        """Abort the job at its next progress report or checkpoint (nothing reaches `on_done`)."""
        self._cancel.set()
        self._stop.set()
        self._resume.set()

    @property
    def stopping(self) -> bool:
        """True once `stop()` or `cancel()` was called for the current job (poll it in a loop)."""
        return self._stop.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the running job and its `on_done` finished (tests, notebooks); True if idle."""
        deadline = None if timeout is None else time.monotonic() + timeout
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        # on_done runs on the document's thread after the worker ended
        while self.busy and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.01)
        return not self.busy

    # ------------------------------------------------------------------------- inside the job --
    def checkpoint(self) -> None:
        """Block while paused; raise TaskCancelled once cancelled. Callable from the job only."""
        while not self._resume.wait(0.1):
            if self._cancel.is_set():
                break
        if self._cancel.is_set():
            raise TaskCancelled()

    def __call__(self, done: int, total: int, message: str = "") -> None:
        """The `core.io.Progress` handed to the job (callable from any thread)."""
        self.checkpoint()
        self._n_reports += 1
        with self._lock:
            first = self._latest is None
            self._latest = (int(done), max(int(total), 1), message)
        if first:
            call_on_doc(self._doc, self._flush)

    progress = __call__  # the name older callers use

    def show(self, fn: Callable[..., Any], *args: Any, timeout: float = 5.0) -> None:
        """From the job: run `fn(*args)` on the document's thread and wait until it ran (one update in
        flight at a time: the browser is never flooded with stale frames)."""
        self.checkpoint()
        ran = threading.Event()

        def wrapped() -> None:
            try:
                fn(*args)
            finally:
                ran.set()

        call_on_doc(self._doc, wrapped)
        while not ran.wait(0.1) and timeout > 0:
            timeout -= 0.1
            if self._cancel.is_set():
                raise TaskCancelled()

    def later(self, fn: Callable[..., Any], *args: Any) -> None:
        """From the job: run `fn(*args)` on the document's thread without waiting."""
        call_on_doc(self._doc, fn, *args)

    # ---------------------------------------------------------------------------------- inside --
    def _flush(self) -> None:
        with self._lock:
            latest, self._latest = self._latest, None
        if latest is None:
            return
        done, total, message = latest
        head = message.split(":")[0].rstrip("0123456789/ ")
        now = time.monotonic()
        if head != self._phase[0] or done < self._phase[2]:
            self._phase = (head, now, done)
        _, t0, d0 = self._phase
        rate = (done - d0) / (now - t0) if now > t0 and done > d0 else 0.0
        eta = _eta((total - done) / rate) if rate > 0 and done < total else ""
        # max before value: the indicator validates value against the current max
        self.bar.max = total
        self.bar.value = min(done, total)
        text = message or self.message
        self.param.update(done=done, total=total, eta=eta, reports=self._n_reports,
                          message=f"{text} · about {eta} left" if eta else text)

    def _work(self, job, on_done) -> None:
        try:
            try:
                result = job(self)
            finally:
                with _ACTIVE_LOCK:
                    _ACTIVE.pop(threading.get_ident(), None)
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
            self._end("stopped" if self._stop.is_set() else "done", "")

    def _end(self, outcome: str, error: str) -> None:
        self._flush()
        self.param.update(busy=False, state="idle", error=error, eta="",
                          message=error and f"**{outcome}:** {error}" or outcome)
        if error:
            notify_error(error)

    def __panel__(self):
        return pn.Column(self.bar, self.status, sizing_mode="stretch_width")
