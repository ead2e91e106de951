"""Python's cycle collector on the GUI thread only.

The collector runs in whichever thread happens to allocate when a generation's threshold is reached. Run on a
worker thread (an engine client, a background task reading a model file), it would destroy the Qt objects caught in
cycles there — a closed dialog whose lambdas refer to it — and Qt objects must be destroyed on their own thread
(a widget destroyed elsewhere can crash the whole app). So automatic collection is turned off, and the GUI thread
collects instead: on a timer, by the same thresholds (a full collection at most every FULL_EVERY_S).
"""

from __future__ import annotations

import gc
import time

from PySide6.QtCore import QCoreApplication, QObject, QTimer

INTERVAL_MS = 500
FULL_EVERY_S = 10.0  # a full collection at most this often (the automatic one also spaces them: by the heap's growth)

_installed: GuiThreadCollector | None = None


class GuiThreadCollector(QObject):
    def __init__(self, app: QCoreApplication, interval_ms: int = INTERVAL_MS):
        super().__init__(app)
        self.thresholds = gc.get_threshold()
        self._last_full = time.monotonic()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.collect_due)
        self.timer.start(interval_ms)
        gc.disable()

    def collect_due(self) -> int:
        """Collect the generations whose thresholds are passed, as the automatic collector would (call it on the
        GUI thread); the number of objects found unreachable."""
        counts = gc.get_count()
        if counts[0] <= self.thresholds[0]:
            return 0
        generation = 1 if counts[1] > self.thresholds[1] else 0
        if generation == 1 and counts[2] > self.thresholds[2] and time.monotonic() - self._last_full >= FULL_EVERY_S:
            generation = 2
            self._last_full = time.monotonic()
        return gc.collect(generation)

    def uninstall(self) -> None:
        global _installed
        self.timer.stop()
        gc.enable()
        if _installed is self:
            _installed = None


def installed() -> GuiThreadCollector | None:
    return _installed


def collect_on_gui_thread(app: QCoreApplication) -> GuiThreadCollector:
    """Make the GUI thread the only one that collects cycles, for as long as `app` lives (once per process)."""
    global _installed
    if _installed is None:
        _installed = GuiThreadCollector(app)
        app.aboutToQuit.connect(_installed.uninstall)
    return _installed
