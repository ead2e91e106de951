"""Work off the GUI thread: one `Task` per piece of work, owning its signals and its cancel.

A task runs a function on a thread pool. The function is called with the task's cancel event; if it is a
generator, each value it yields reaches the GUI thread as `progress`, and cancelling stops it at its next yield.
A plain function that reports through a callback passes `task.report` (any thread) to send progress instead.
Every task ends with exactly one `done` (the return value) or `failed` (the exception), delivered on the GUI
thread; after `cancel()` it still ends with one of them (the function decides what a cancelled run returns).
Listeners are best connected as bound methods of widgets: Qt drops the connection when the widget is deleted.

A task is never deleted while its worker thread may still use it, and never on that thread: Qt objects must be
destroyed on their own (the GUI) thread, so the GUI thread holds the last reference. A `parent` therefore does not
own the task the Qt way; when the parent is destroyed, the task is cancelled and tells no one of its end.
"""

from __future__ import annotations

import inspect
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from inference.cancellation import Cancelled

_running: set[Task] = set()  # a started task stays alive until its last signal is delivered and its worker let go


class Task(QObject):
    progress = Signal(object)  # a value the generator yielded
    done = Signal(object)  # the function's return value
    failed = Signal(object)  # the exception it raised (Cancelled when it stopped at a cancel)
    _ending = Signal(bool, object)  # (succeeded, value) from the worker thread, delivered on the task's own thread

    def __init__(self, function: Callable[[threading.Event], Any], parent: QObject | None = None):
        super().__init__()  # no Qt parent: deleting the parent would delete the task under its worker thread
        self.function = function
        self.cancel_event = threading.Event()
        self.finished = False
        self._returned = threading.Event()  # the function has returned and the worker thread is free
        self._released = threading.Event()  # the worker thread holds no reference to the task any more
        self._ending.connect(self._deliver_end)
        if parent is not None:
            parent.destroyed.connect(self._orphan)

    def start(self, pool: QThreadPool | None = None) -> Task:
        _running.add(self)
        (pool or QThreadPool.globalInstance()).start(_Runnable(self))
        return self

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def report(self, value: object) -> None:
        """Send `value` as progress from inside the running function (callable from any thread)."""
        self.progress.emit(value)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the started function has returned (e.g. before quitting); False if it has not by then."""
        return self._returned.wait(timeout_s)

    def _deliver_end(self, succeeded: bool, value: object) -> None:
        # Every listener runs inside this call, while `_running` still holds the task: were it forgotten first,
        # a task no caller kept would be collected with its other listeners' deliveries still queued.
        self.finished = True
        try:
            (self.done if succeeded else self.failed).emit(value)
        finally:
            # The worker let go of the task right after sending its end (a wait of microseconds): the reference
            # dropped here is then the last one outside the listeners, and the task ends on this thread.
            self._released.wait()
            _running.discard(self)

    def _orphan(self) -> None:
        """The parent is gone: stop the work at its next chance, and deliver nothing more."""
        self.cancel()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a signal nobody connected to
            for signal in (self.progress, self.done, self.failed):
                signal.disconnect()

    def _run(self) -> None:
        try:
            result = self.function(self.cancel_event)
            if inspect.isgenerator(result):
                result = self._drain(result)
        except BaseException as exc:  # noqa: BLE001 - every task must end for its listeners
            self._end(False, exc)
        else:
            self._end(True, result)
        finally:
            self._returned.set()

    def _end(self, succeeded: bool, value: object) -> None:
        self._ending.emit(succeeded, value)

    def _drain(self, generator):
        while True:
            if self.cancel_event.is_set():
                generator.close()
                raise Cancelled("cancelled")
            try:
                value = next(generator)
            except StopIteration as stop:
                return stop.value
            self.progress.emit(value)


def run_in_background(function: Callable[[threading.Event], Any], *, on_done: Callable | None = None,
                      on_failed: Callable | None = None, on_progress: Callable | None = None,
                      parent: QObject | None = None, pool: QThreadPool | None = None) -> Task:
    """Start `function(cancel_event)` on the pool and connect the callbacks (called on the GUI thread)."""
    task = Task(function, parent)
    for signal, slot in ((task.done, on_done), (task.failed, on_failed), (task.progress, on_progress)):
        if slot is not None:
            signal.connect(slot)
    return task.start(pool)


class RateLimit:
    """Lets an update through at most once per `interval_s` (always when forced), so that a busy worker's updates
    (progress, streamed text) never flood the GUI thread's event loop. Not thread-safe: one per producer."""

    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self._last: float | None = None

    def ready(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or self._last is None or now - self._last >= self.interval_s:
            self._last = now
            return True
        return False


class _Runnable(QRunnable):
    def __init__(self, task: Task):
        super().__init__()
        self.task: Task | None = task

    def run(self) -> None:
        task, self.task = self.task, None  # the pool deletes the runnable later, on this thread: it keeps no task
        released = task._released
        try:
            task._run()
        finally:
            del task
            released.set()
