"""Asking before an image that may show text in its pixels leaves the viewer (attached to a question, exported)."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget

from app.studies.deid import burned_in_warning
from app.studies.plain_image import PlainImageHeader


class BurnedInConfirmation:
    """When the shown file says, or its modality suggests, that text is burned into the pixels, the user confirms;
    the answer is remembered per series for this session."""

    def __init__(self, parent: QWidget):
        self.parent = parent
        self.accepted: set[str] = set()  # series whose burned-in text the user accepted

    def confirm(self, viewer, verb: str = "attach") -> tuple[bool, str]:
        """(go ahead?, what to tell the user, "" for nothing)."""
        header = viewer.header
        if header is None or isinstance(header, PlainImageHeader):  # a PNG/JPEG has no header to say so
            return True, ""
        warning = burned_in_warning(header)
        if not warning:
            return True, ""
        key = str(header.get("SeriesInstanceUID") or viewer.frames[viewer.position][0])
        if key in self.accepted:
            return True, ""
        box = QMessageBox(QMessageBox.Icon.Warning, "Text in the image?",
                          f"This image may show names, dates or IDs in its pixels: {warning}.", parent=self.parent)
        box.setInformativeText("Attached images are kept with the conversation and appear in its exports. "
                               "Header identifiers are never sent; text in the pixels is.")
        proceed = box.addButton(f"{verb.capitalize()} anyway", QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(box.addButton(QMessageBox.StandardButton.Cancel))
        box.exec()
        if box.clickedButton() is not proceed:
            return False, "Nothing attached: the image may carry burned-in text."
        self.accepted.add(key)
        return True, "Attached as shown, burned-in text included: confirmed for this series."
