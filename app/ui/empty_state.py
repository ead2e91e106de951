"""What the viewer shows before anything is open: what to do, with the buttons to do it."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

PROMPT = "Open a file or folder — or drop it here"
DETAILS = ("DICOM files and folders (with or without DICOMDIR), PNG, JPEG and TIFF images.\n"
           "Recently opened studies are listed on the left: one click opens one. "
           "Help › Keyboard shortcuts lists the viewer's keys.")


class EmptyState(QWidget):
    open_file = Signal()
    open_folder = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("empty-state")
        title = QLabel(PROMPT)
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.5)
        title.setFont(font)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        details = QLabel(DETAILS)
        details.setAlignment(Qt.AlignmentFlag.AlignCenter)
        details.setWordWrap(True)
        details.setStyleSheet("color: palette(placeholder-text);")
        self.file_button = QPushButton("Open file…")
        self.file_button.setToolTip("An image or a DICOM file (Ctrl+O)")
        self.file_button.clicked.connect(self.open_file)
        self.folder_button = QPushButton("Open folder…")
        self.folder_button.setToolTip("A folder of DICOM files: every series in it")
        self.folder_button.clicked.connect(self.open_folder)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.file_button)
        buttons.addWidget(self.folder_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addStretch(2)
        layout.addWidget(title)
        layout.addSpacing(8)
        layout.addWidget(details)
        layout.addSpacing(16)
        layout.addLayout(buttons)
        layout.addStretch(3)
        self.title = title
