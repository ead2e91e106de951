"""Practice mode's summary page: how the trainee did on a deck, case by case."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.practice import Attempt, Deck, Summary
from app.ui.practice_widgets import card, label


class SummaryPage(QWidget):
    case_chosen = Signal(int)  # the number of the case the trainee wants to see again
    resume_requested = Signal()
    reset_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = label("", "heading")
        self.text = label()
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["#", "Question", "Your answer", "Result"])
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
        buttons = QHBoxLayout()
        buttons.addWidget(reset)
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
        s = summary
        self.title.setText(f"Summary — {deck.title}")
        lines = [f"Answered {s.answered} of {s.total} cases."]
        if s.scored:
            lines.append(f"Multiple choice: {s.scored_correct} of {s.scored} correct ({s.scored_percent:.0f} %).")
        if s.marked_right or s.marked_wrong or s.unmarked:
            lines.append(f"Free text (your own marking): {s.marked_right} right, {s.marked_wrong} wrong, "
                         f"{s.unmarked} not marked yet.")
        self.text.setText("\n".join(lines))
        self.table.setRowCount(len(deck.items))
        for row, item in enumerate(deck.items):
            attempt = attempts.get(item.number)
            result = "—" if attempt is None else {True: "right", False: "wrong"}.get(attempt.correct, "not marked")
            for column, text in enumerate([str(item.number), item.question, attempt.answer if attempt else "",
                                           result]):
                cell = QTableWidgetItem(text)
                cell.setToolTip(text)
                self.table.setItem(row, column, cell)
        self.table.resizeColumnToContents(0)
        self.table.resizeColumnToContents(3)
