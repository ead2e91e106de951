"""The images attached to the next question, as thumbnails under the question box: each removable (×), a zoomed
region marked as such, and beside them how far the model got reading them ("preparing image… 40 %" -> "ready")."""

from __future__ import annotations

import io
from pathlib import Path
from typing import NamedTuple

from PIL import Image
from PySide6.QtCore import QByteArray, Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QToolButton, QWidget

from app.settings import Settings
from inference.families import family
from inference.store.manifest import Manifest

THUMB_SIZE = 64


class Attachment(NamedTuple):
    """An image for the next question, exactly as the model will see it."""

    label: str
    png: bytes
    zoomed: bool = False  # only the zoomed region of the viewer, not the whole image


def describe(attachment: Attachment, number: int) -> str:
    name = attachment.label or f"image {number}"
    return f"{name} (zoomed region only)" if attachment.zoomed else name


class AttachmentThumb(QFrame):
    """One attached image: its thumbnail, a remove button and, for a zoomed region, a "zoomed" badge."""

    remove_requested = Signal()

    def __init__(self, attachment: Attachment, number: int, model_input: str = "", parent=None):
        super().__init__(parent)
        self.setObjectName("attachmentThumb")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setToolTip(describe(attachment, number) + model_input)
        self.image = QLabel()
        self.image.setFixedSize(THUMB_SIZE, THUMB_SIZE)
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        pixmap = QPixmap()
        pixmap.loadFromData(QByteArray(attachment.png), "PNG")
        self.image.setPixmap(pixmap.scaled(THUMB_SIZE, THUMB_SIZE, Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.SmoothTransformation))
        self.remove_button = QToolButton(text="×")
        self.remove_button.setToolTip(f"Remove {describe(attachment, number)}")
        self.remove_button.setAccessibleName(f"Remove attachment {number}")
        self.remove_button.setCursor(Qt.CursorShape.PointingHandCursor)
        # Over any image, in either theme: the window's colours behind the ×.
        self.remove_button.setStyleSheet("QToolButton { background: palette(window); color: palette(window-text); "
                                         "border: 1px solid palette(mid); border-radius: 8px; padding: 0 4px; "
                                         "font-weight: bold; }")
        self.remove_button.clicked.connect(self.remove_requested.emit)
        layout = QGridLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.image, 0, 0)
        layout.addWidget(self.remove_button, 0, 0, Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignRight)
        self.badge: QLabel | None = None
        if attachment.zoomed:
            self.badge = QLabel("zoomed")
            self.badge.setToolTip("Only the zoomed region of the view is attached")
            self.badge.setStyleSheet("background: palette(highlight); color: palette(highlighted-text); "
                                     "border-radius: 3px; padding: 0 3px; font-size: 10px;")
            layout.addWidget(self.badge, 0, 0, Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignLeft)


class AttachmentsRow(QWidget):
    """The thumbnails of the attachments, or a note that there are none, and the preparation's progress."""

    remove_requested = Signal(int)  # the index of the attachment to remove

    def __init__(self, parent=None):
        super().__init__(parent)
        self.thumbs: list[AttachmentThumb] = []
        self.empty = QLabel("<i>No image attached</i>")
        self.preparation_status = QLabel()  # "preparing image… 40 %" -> "ready": Send is fast from then on
        self.preparation_status.setTextFormat(Qt.TextFormat.PlainText)
        self.preparation_status.setToolTip("The attached images are read by the model while you type the question")
        self._thumbs_layout = QHBoxLayout()
        self._thumbs_layout.setContentsMargins(0, 0, 0, 0)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._thumbs_layout)
        layout.addWidget(self.empty)
        layout.addStretch(1)
        layout.addWidget(self.preparation_status)

    def show_attachments(self, attachments: list[Attachment], model_inputs: list[str] | None = None) -> None:
        """`model_inputs`: per image, " (the model sees W×H, N image tokens)", added to its tooltip."""
        for thumb in self.thumbs:  # the one whose × was clicked included: deleted once its click has returned
            self._thumbs_layout.removeWidget(thumb)
            thumb.hide()
            thumb.deleteLater()
        self.thumbs = []
        for index, attachment in enumerate(attachments):
            thumb = AttachmentThumb(attachment, index + 1, model_inputs[index] if model_inputs else "")
            thumb.remove_requested.connect(lambda index=index: self.remove_requested.emit(index))
            self._thumbs_layout.addWidget(thumb)
            if self.isVisible():
                thumb.show()  # now, not when the layout gets round to it
            self.thumbs.append(thumb)
        self.empty.setVisible(not attachments)


def model_input_text(folder: Path | None, png: bytes, settings: Settings) -> str:
    """" (W×H, N image tokens)": the size the model gets this image at (a Qwen2.5-VL model keeps its aspect ratio
    within the image-token budget; a LLaVA model gets its square); "" without a readable model."""
    try:
        manifest = Manifest.read(folder)
        model_family = family(manifest.family)
        budget = settings.image_max_tokens if model_family.image_budget_setting else None
        width, height, tokens = model_family.input_size(*Image.open(io.BytesIO(png)).size, manifest, budget)
    except (OSError, TypeError, ValueError, KeyError):
        return ""
    return f" (the model sees {width}×{height}, {tokens} image tokens)"
