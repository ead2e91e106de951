"""The Settings row for saved image states: their disk limit, what they use now, and Clear.

The engine saves the cache of each conversation prefix holding images (inference/kv_states.py) so that a reopened
conversation's images are not processed again. Those files are derived from patient images: Clear removes all of
them, overwriting each first, through the engine runner, so that none is being written meanwhile.
"""

from __future__ import annotations

from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QLabel, QPushButton, QWidget

from app.ui.background import run_in_background
from app.ui.engine_runner import EngineRunner, states_dir
from inference.kv_states import states_size

GIB = 1024**3


def size_text(n: int) -> str:
    """Binary units, as the limit is set: 2 GB is 2 × 1024³ bytes."""
    for unit, scale in (("GB", GIB), ("MB", 1024**2), ("KB", 1024)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


class SavedStatesField(QWidget):
    def __init__(self, runner: EngineRunner | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.runner = runner
        self.used: int | None = None  # bytes, once measured
        self.limit = QDoubleSpinBox(minimum=0.0, maximum=1024.0, singleStep=0.5, decimals=2, suffix=" GB",
                                    specialValueText="none saved")
        self.limit.setToolTip("Disk space for saved image states: the least recently used go first. A new limit "
                              "applies from the engine's next start.")
        self.usage = QLabel()
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Delete every saved image state (each file is overwritten first)")
        self.clear_button.setEnabled(runner is not None)
        self.clear_button.clicked.connect(self.clear)
        self.limit.valueChanged.connect(self._show_usage)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.limit)
        layout.addWidget(self.usage, 1)
        layout.addWidget(self.clear_button)
        self.measure()

    def limit_bytes(self) -> int:
        return round(self.limit.value() * GIB)

    def set_limit_bytes(self, n: int) -> None:
        self.limit.setValue(n / GIB)

    def measure(self) -> None:
        """What the saved states use now, read off the GUI thread."""
        folder = states_dir()
        run_in_background(lambda cancel: states_size(folder), on_done=self._measured, parent=self)

    def _measured(self, used: int) -> None:
        self.used = used
        self._show_usage()
        self.clear_button.setEnabled(self.runner is not None)

    def _show_usage(self) -> None:
        if self.used is None:
            self.usage.setText("Saved image states: measuring…")
        elif self.limit_bytes() == 0:
            self.usage.setText(f"Saved image states: {size_text(self.used)} (none saved from the engine's next start)")
        else:
            self.usage.setText(f"Saved image states: {size_text(self.used)} of {size_text(self.limit_bytes())}")

    def clear(self) -> None:
        if self.runner is None:
            return
        self.clear_button.setEnabled(False)
        self.usage.setText("Saved image states: clearing (after the answer being written, if any)…")
        self.runner.clear_saved_states().ended.connect(self._cleared)

    def _cleared(self, removed: int) -> None:
        self.used = None
        self.measure()
