"""The DICOM header as a tree (sequences expandable), identifiers masked unless the user shows them."""

from __future__ import annotations

from pydicom.dataset import Dataset
from PySide6.QtWidgets import QDialog, QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout

from app.studies.deid import DUMMY, EMPTY, REMOVE

MASK = "•••"


def identifying(element) -> bool:
    """What the basic profile removes, empties or replaces with a dummy value, a person's name, or a private
    attribute (whose meaning only its maker knows: it may hold a name or an ID; the name of the maker's dictionary,
    its private creator, is shown)."""
    keyword, tag = element.keyword, element.tag
    return (keyword in REMOVE or keyword in EMPTY or keyword in DUMMY or element.VR == "PN"
            or (tag.is_private and not tag.is_private_creator))


class TagBrowser(QDialog):
    def __init__(self, ds: Dataset, show_identifiers: bool = False, parent=None):
        super().__init__(parent)
        self.setWindowTitle("DICOM tags")
        self.resize(760, 600)
        self.filter = QLineEdit(placeholderText="Filter by name or tag…")
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Tag", "Name", "VR", "Value"])
        layout = QVBoxLayout(self)
        layout.addWidget(self.filter)
        layout.addWidget(self.tree)
        self._fill(self.tree.invisibleRootItem(), ds, show_identifiers)
        self.tree.resizeColumnToContents(0)
        self.tree.resizeColumnToContents(1)
        self.filter.textChanged.connect(self._apply_filter)

    def _fill(self, parent: QTreeWidgetItem, ds: Dataset, show_identifiers: bool) -> None:
        for element in ds:
            if element.tag == 0x7FE00010:
                value = "(pixel data)"
            elif element.VR == "SQ":
                value = f"{len(element.value)} item(s)"
            elif identifying(element) and not show_identifiers and str(element.value):
                value = MASK
            else:
                value = str(element.value if element.VM <= 16 else f"{element.VM} values")[:200]
            item = QTreeWidgetItem(parent, [str(element.tag), element.name, element.VR, value])
            if element.VR == "SQ":
                for index, sub in enumerate(element.value):
                    child = QTreeWidgetItem(item, ["", f"Item {index + 1}", "", ""])
                    self._fill(child, sub, show_identifiers)

    def _apply_filter(self, text: str) -> None:
        text = text.lower()
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            item.setHidden(bool(text) and text not in (item.text(0) + item.text(1)).lower())
