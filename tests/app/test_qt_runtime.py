"""The Qt binding itself: PySide6 6.12.0 lost a reference to None on every processEvents() call, which
aborts the interpreter after a few thousand calls (pyproject excludes it)."""

import sys

from PySide6.QtWidgets import QApplication


def test_process_events_keeps_reference_counts(qapp):
    before = sys.getrefcount(None)
    for _ in range(200):
        QApplication.processEvents()
    assert sys.getrefcount(None) - before >= -5
