"""Practice mode's summary page: how the trainee did on a deck, case by case, with the model's pick of each
multiple-choice case scored beside theirs; exportable as CSV or PDF (app.practice_export)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QMenu,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.practice import Attempt, Deck, Summary
from app.practice_export import model_cell, result_cell, summary_lines
from app.ui.practice_widgets import card, label

COLUMNS = ["#", "Question", "Your answer", "Result", "Model"]


class SummaryPage(QWidget):
    case_chosen = Signal(int)  # the number of the case the trainee wants to see again
    resume_requested = Signal()
    reset_requested = Signal()
    export_requested = Signal(str)  # "csv" or "pdf"

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = label("", "heading")
        self.text = label()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.cellDoubleClicked.connect(lambda row, _: self.case_chosen.emit(row + 1))
        back = QPushButton("Continue practising")
        back.clicked.connect(self.resume_requested)
        reset = QPushButton("Reset progress…")
        reset.clicked.connect(self.reset_requested)
        self.export_button = QToolButton(text="Export")
        self.export_button.setToolTip("Save this summary, case by case, as a spreadsheet (CSV) or a PDF")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        export_menu = QMenu(self.export_button)
        export_menu.addAction("CSV (spreadsheet)…", lambda: self.export_requested.emit("csv"))
        export_menu.addAction("PDF…", lambda: self.export_requested.emit("pdf"))
        self.export_button.setMenu(export_menu)
        buttons = QHBoxLayout()
        buttons.addWidget(reset)
        buttons.addWidget(self.export_button)
        buttons.addStretch(1)
        buttons.addWidget(back)
        frame, layout = card()
        layout.addWidget(self.title)
        layout.addWidget(self.text)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 8, 0, 0)
        outer.addWidget(frame)

    def show_deck(self, deck: Deck, summary: Summary, attempts: dict[int, Attempt]) -> None:
        self.title.setText(f"Summary — {deck.title}")
        self.text.setText("\n".join(summary_lines(summary)))
        self.table.setRowCount(len(deck.items))
        for row, item in enumerate(deck.items):
            attempt = attempts.get(item.number)
            for column, text in enumerate([str(item.number), item.question, attempt.answer if attempt else "",
                                           result_cell(attempt), model_cell(item, attempt)]):
                cell = QTableWidgetItem(text)
                cell.setToolTip(text)
                self.table.setItem(row, column, cell)
        for column in (0, 3, 4):
            self.table.resizeColumnToContents(column)
