"""The model manager's tables: columns as wide as their contents, free text cut to the width left (whole in its
tooltip), a row's cells, and the height that shows a number of rows."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem


def model_table(headers: list[str], long_columns: tuple[int, ...] = ()) -> QTableWidget:
    """Columns as wide as their contents; `long_columns` (free text such as a broken model's reason) take the
    width left and are cut with "…" (the whole text is in the tooltip), never pushing the others out of view."""
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setWordWrap(False)
    table.setTextElideMode(Qt.TextElideMode.ElideRight)
    table.verticalHeader().setVisible(False)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    for column in long_columns:
        header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
    header.setStretchLastSection(not long_columns)
    return table


def set_row(table: QTableWidget, row: int, values: list[str]) -> None:
    for column, value in enumerate(values):
        item = QTableWidgetItem(value)
        item.setToolTip(value)
        table.setItem(row, column, item)


def update_cell(table: QTableWidget, row: int, column: int, text: str) -> None:
    item = table.item(row, column)
    if item is not None:
        item.setText(text)
        item.setToolTip(text)


def rows_height(table: QTableWidget, rows: int) -> int:
    """The height a table needs to show its header and `rows` rows."""
    return (table.horizontalHeader().sizeHint().height() + rows * table.verticalHeader().defaultSectionSize()
            + 2 * table.frameWidth())
