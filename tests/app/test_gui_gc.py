"""Reference cycles are collected on the GUI thread only: a worker thread that allocates never destroys the Qt
objects caught in them (Qt objects must be destroyed on their own thread)."""

from __future__ import annotations

import gc
import threading

from PySide6.QtWidgets import QLabel

from app.ui.gui_gc import collect_on_gui_thread
from tests.support.qt_threads import destroyed_on as track_destruction


def test_a_widget_in_a_cycle_is_destroyed_by_the_gui_thread_not_by_a_worker_that_allocates(qtbot, qapp):
    collector = collect_on_gui_thread(qapp)
    assert not gc.isenabled()
    gc.collect()
    widget = QLabel()
    widget.me = widget  # a cycle: only the collector frees it
    destroyed_on = track_destruction(widget)
    del widget
    kept = []
    worker = threading.Thread(target=lambda: kept.append([[i] for i in range(100 * collector.thresholds[0])]),
                              name="allocating-worker")
    worker.start()
    worker.join()
    assert destroyed_on == []  # the worker's allocations set no collection off
    qtbot.waitUntil(lambda: bool(destroyed_on), timeout=10_000)  # the GUI thread's timer collected it
    assert destroyed_on == [threading.current_thread().name]


def test_the_collector_runs_only_when_a_threshold_is_passed(qapp):
    collector = collect_on_gui_thread(qapp)
    gc.collect()
    assert collector.collect_due() == 0 and gc.get_count()[0] <= collector.thresholds[0]  # nothing due: no pass
    junk = []
    for _ in range(3):
        a, b = [], []
        a.append(b)
        b.append(a)  # a cycle: garbage only the collector finds
        junk.append([[i] for i in range(2 * collector.thresholds[0])])
    del a, b
    assert collector.collect_due() >= 2  # generation 0 was due: the last cycle is found
    del junk
