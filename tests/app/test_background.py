"""Work off the GUI thread: each task ends with exactly one done or failed, on the GUI thread, and can be cancelled."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QCoreApplication, QThread, QThreadPool

from app.ui.background import RateLimit, Task, run_in_background
from inference.cancellation import Cancelled
from tests.support.qt_threads import destroyed_on as track_destruction


def test_a_generator_task_streams_progress_then_its_result_on_the_gui_thread(qtbot):
    seen, threads = [], []

    def work(cancel):
        threads.append(QThread.currentThread())
        yield from range(3)
        return "result"

    task = Task(work)
    task.progress.connect(lambda v: seen.append((v, QThread.currentThread())))
    with qtbot.waitSignal(task.done, timeout=10_000) as done:
        task.start()
    assert done.args == ["result"]
    gui = QThread.currentThread()
    assert [v for v, _ in seen] == [0, 1, 2] and all(t is gui for _, t in seen)
    assert threads[0] is not gui and task.finished


def test_an_exception_arrives_as_failed(qtbot):
    failures = []

    def work(cancel):
        raise ValueError("bad input")

    # connected before the task starts: a signal emitted before a slot is connected never reaches that slot
    task = run_in_background(work, on_failed=failures.append)
    qtbot.waitUntil(lambda: task.finished, timeout=10_000)
    [failure] = failures
    assert isinstance(failure, ValueError) and str(failure) == "bad input"


def test_cancel_stops_a_generator_at_its_next_yield(qtbot):
    release, produced = threading.Event(), []

    def work(cancel):
        for i in range(1000):
            produced.append(i)
            yield i
            release.wait(10)  # the test cancels while the task waits here

    task = Task(work)
    task.progress.connect(lambda v: (task.cancel(), release.set()) if v == 0 else None)
    with qtbot.waitSignal(task.failed, timeout=10_000) as failed:
        task.start()
    assert isinstance(failed.args[0], Cancelled)
    assert produced[:1] == [0] and len(produced) <= 2  # stopped at the next yield, not after the loop


@pytest.mark.parametrize("outcome", ["done", "failed"])
def test_exactly_one_ending(qtbot, outcome):
    endings = []

    def work(cancel):
        if outcome == "failed":
            raise RuntimeError("x")
        return 1

    task, pool = Task(work), QThreadPool()
    task.done.connect(lambda _: endings.append("done"))
    task.failed.connect(lambda _: endings.append("failed"))
    with qtbot.waitSignal(getattr(task, outcome), timeout=10_000):
        task.start(pool)
    assert pool.waitForDone(10_000)  # the work's thread has returned: it can emit nothing more
    QCoreApplication.sendPostedEvents()  # deliver whatever it emitted after the first ending
    assert endings == [outcome]


def test_a_plain_function_reports_progress_through_the_task_before_its_result(qtbot):
    seen = []
    task = Task(lambda cancel: [task.report(("stage", i, 3)) for i in range(3)] and "result")
    task.progress.connect(lambda v: seen.append((v, QThread.currentThread())))
    task.done.connect(lambda v: seen.append((v, QThread.currentThread())))
    with qtbot.waitSignal(task.done, timeout=10_000):
        task.start()
    gui = QThread.currentThread()
    assert [v for v, _ in seen] == [("stage", 0, 3), ("stage", 1, 3), ("stage", 2, 3), "result"]
    assert all(t is gui for _, t in seen)


def test_wait_blocks_until_the_function_has_returned(qtbot):
    release, returned = threading.Event(), []

    def work(cancel):
        release.wait(10)
        returned.append(True)

    task = run_in_background(work)
    assert not task.wait(0.05) and not returned  # still running: wait gives up at its timeout
    release.set()
    assert task.wait(10) and returned == [True]
    qtbot.waitUntil(lambda: task.finished, timeout=10_000)


def test_a_task_whose_parent_was_deleted_is_cancelled_tells_no_one_and_ends_on_the_gui_thread(qtbot):
    import gc

    import shiboken6
    from PySide6.QtCore import QObject

    from app.ui import background

    release, heard = threading.Event(), []
    parent = QObject()
    task = run_in_background(lambda cancel: release.wait(10) and cancel.is_set(), parent=parent,
                             on_done=heard.append, on_failed=heard.append)
    destroyed_on = track_destruction(task)
    shiboken6.delete(parent)  # the task lives on while its function runs: its worker still uses it
    assert task.cancelled and shiboken6.isValid(task)
    release.set()
    assert task.wait(10)
    qtbot.waitUntil(lambda task=task: task.finished, timeout=10_000)
    assert task not in background._running and heard == []  # forgotten, not leaked; its listeners were let go
    del task
    gc.collect()
    assert destroyed_on == [threading.current_thread().name]


def test_a_task_no_one_keeps_is_destroyed_on_the_gui_thread_not_its_worker(qtbot):
    import gc

    ended, destroyed_on = [], []
    for _ in range(20):
        task = run_in_background(lambda cancel: "result", on_done=ended.append)
        destroyed_on.append(track_destruction(task))
        del task
    qtbot.waitUntil(lambda: len(ended) == 20, timeout=10_000)
    gc.collect()
    qtbot.waitUntil(lambda: all(destroyed_on), timeout=10_000)
    assert {name for names in destroyed_on for name in names} == {threading.current_thread().name}


def test_a_listener_deleted_before_the_end_is_not_called(qtbot):
    import shiboken6
    from PySide6.QtWidgets import QLabel

    class Listener(QLabel):
        def take(self, value):
            self.setText(str(value))  # would raise on a deleted widget

    release, gone, kept = threading.Event(), Listener(), Listener()
    task = run_in_background(lambda cancel: release.wait(10) and "result", on_done=gone.take)
    task.done.connect(kept.take)
    shiboken6.delete(gone)
    with qtbot.waitSignal(task.done, timeout=10_000):
        release.set()
    assert kept.text() == "result"


@pytest.mark.parametrize("outcome", ["done", "failed"])
def test_every_callback_runs_though_the_caller_keeps_no_reference_to_the_task(qtbot, outcome):
    import gc

    def work(cancel):
        if outcome == "failed":
            raise ValueError("no")
        return "result"

    calls = []
    for _ in range(20):  # each task's own ending must not let it go before its later listeners have run
        run_in_background(work, on_done=lambda value: calls.append(value),
                          on_failed=lambda exc: calls.append(type(exc).__name__))
        gc.collect()
    expected = "result" if outcome == "done" else "ValueError"
    qtbot.waitUntil(lambda: len(calls) == 20, timeout=10_000)
    assert calls == [expected] * 20


def test_a_rate_limit_lets_the_first_update_through_then_only_forced_ones_within_its_interval():
    hourly = RateLimit(3600.0)
    assert hourly.ready()  # the first update always goes
    assert not hourly.ready()  # the next, within the hour, waits
    assert hourly.ready(force=True)  # a forced one (a new stage, the end) never does
    assert not hourly.ready()
    unlimited = RateLimit(0.0)
    assert all(unlimited.ready() for _ in range(3))
