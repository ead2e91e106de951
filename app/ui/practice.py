"""Practice mode: the trainee commits to a read of the case first, then compares it with the model's answer
(streamed beside it) and with the deck's reference answer. Progress is saved per deck (app.practice).

The window holds the deck and moves between its pages: the start page, one case (app.ui.practice_case, with the
model's answer card, app.ui.practice_model) and the summary (app.ui.practice_summary, exported by
app.practice_export). It fits a 1366×768 screen."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QFont, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app import INTENDED_USE
from app.audit import AuditLog
from app.practice import Attempt, Deck, DeckError, Item, Progress, load_deck, sample_deck_path
from app.practice_export import export_summary, file_stem
from app.ui import file_dialogs
from app.ui.background import Task, run_in_background
from app.ui.chat_export import export_folder
from app.ui.engine_runner import EngineRunner
from app.ui.practice_case import CasePage
from app.ui.practice_model import ModelAnswer
from app.ui.practice_summary import SummaryPage
from app.ui.practice_widgets import STYLE, label
from app.ui.window_size import resize_within_screen
from inference.sampling import SamplingSettings

PREFERRED_SIZE = QSize(1180, 820)  # at most: the window opens no larger than the screen's free area


class PracticeWindow(QMainWindow):
    def __init__(self, runner: EngineRunner, parent: QWidget | None = None, *, progress: Progress | None = None,
                 sampling: SamplingSettings | None = None, audit: AuditLog | None = None):
        super().__init__(parent)
        self.runner = runner
        self.progress = progress or Progress()
        self.deck: Deck | None = None
        self.item: Item | None = None
        self.attempts: dict[int, Attempt] = {}
        self._shown_at = time.monotonic()
        self.model_answer = ModelAnswer(runner, audit, sampling)
        self.model_answer.answered.connect(self._save_model_answer)
        self.model_answer.ask_button.clicked.connect(self.ask_model)
        self.setWindowTitle("Practice — Huatuo Vision")
        self.setStyleSheet(STYLE)
        self._build()
        resize_within_screen(self, PREFERRED_SIZE)
        recent = self.progress.recent_decks(1)
        if not (recent and self.open_deck(recent[0][0])):
            self.pages.setCurrentWidget(self.start_page)

    @property
    def audit(self) -> AuditLog | None:
        """Where each question to the model is recorded (hashes only), as in the chat."""
        return self.model_answer.audit

    @audit.setter
    def audit(self, audit: AuditLog | None) -> None:
        self.model_answer.audit = audit

    # --- layout ----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.open_button = QPushButton("Open deck…")
        self.open_button.clicked.connect(self.choose_deck)
        QShortcut(QKeySequence.StandardKey.Open, self, activated=self.choose_deck)
        QShortcut(QKeySequence("Ctrl+Return"), self, activated=self.reveal)
        self.recent_button = QToolButton(text="Recent")
        self.recent_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.recent_menu = QMenu(self.recent_button)
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self.recent_button.setMenu(self.recent_menu)
        self.deck_label = label("", "heading", wrap=False)
        self.counter = QLabel()
        self.progress_bar = QProgressBar()
        self.progress_bar.setFixedSize(160, 8)
        self.progress_bar.setTextVisible(False)
        self.summary_button = QPushButton("Summary")
        self.summary_button.clicked.connect(self.show_summary)
        top = QHBoxLayout()
        for widget in (self.open_button, self.recent_button):
            top.addWidget(widget)
        top.addSpacing(12)
        top.addWidget(self.deck_label, 1)
        for widget in (self.counter, self.progress_bar, self.summary_button):
            top.addWidget(widget)

        self.start_page = self._build_start_page()
        self.case = CasePage(self.model_answer)
        self.case.reveal_requested.connect(self.reveal)
        self.case.marked.connect(self.mark)
        self.case.previous_requested.connect(self.previous_item)
        self.case.next_requested.connect(self.next_item)
        self.case.message.connect(self.statusBar().showMessage)
        self.summary = SummaryPage()
        self.summary.case_chosen.connect(self.show_item)
        self.summary.resume_requested.connect(self.resume)
        self.summary.reset_requested.connect(self._confirm_reset)
        self.summary.export_requested.connect(self.choose_summary_export)
        self.pages = QStackedWidget()
        for page in (self.start_page, self.case, self.summary):
            self.pages.addWidget(page)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(14, 10, 14, 6)
        layout.addLayout(top)
        layout.addWidget(self.pages, 1)
        self.setCentralWidget(central)
        self.intended_use = QLabel(INTENDED_USE, objectName="muted")
        self.statusBar().addPermanentWidget(self.intended_use)
        self._update_header()

    def _build_start_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addStretch(1)
        title = QLabel("Practise reading images")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.5)
        font.setWeight(QFont.Weight.DemiBold)
        title.setFont(font)
        text = label("Open a deck of cases. For each case, write your own read (or choose an option) first,\n"
                     "then compare it with the model's answer and the deck's reference answer.\n"
                     "Your progress is saved.", "muted", wrap=False)
        text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        sample = QPushButton("Try the sample deck")
        sample.clicked.connect(lambda: self.open_deck(sample_deck_path()))
        choose = QPushButton("Open deck…")
        choose.clicked.connect(self.choose_deck)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(choose)
        buttons.addWidget(sample)
        buttons.addStretch(1)
        for widget in (title, text):
            layout.addWidget(widget, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addSpacing(8)
        layout.addLayout(buttons)
        layout.addStretch(2)
        return page

    # --- decks -----------------------------------------------------------------------------------
    def choose_deck(self) -> None:
        path = file_dialogs.open_file(self, file_dialogs.DECK, "Open a practice deck", "Practice decks (*.json)")
        if path:
            self.open_deck(path)

    def open_deck(self, path: str | Path) -> bool:
        try:
            deck = load_deck(path)
        except DeckError as exc:
            self.statusBar().showMessage(str(exc))
            return False
        self.model_answer.leave()
        self.deck = deck
        self.progress.remember_deck(deck)
        self.attempts = self.progress.attempts(deck)
        self.statusBar().showMessage(f"{deck.title}: {len(deck.items)} cases", 5000)
        self.resume()
        return True

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path, title in self.progress.recent_decks():
            action = self.recent_menu.addAction(title, lambda path=path: self.open_deck(path))
            action.setToolTip(str(path))
        self.recent_menu.addSeparator()
        self.recent_menu.addAction("Sample deck (built in)", lambda: self.open_deck(sample_deck_path()))

    # --- navigation ------------------------------------------------------------------------------
    def resume(self) -> None:
        """Go to the first unanswered case, or to the summary when all are answered."""
        if self.deck is None:
            return
        first = self.progress.first_unanswered(self.deck)
        if first is None:
            self.show_summary()
        else:
            self.show_item(first.number)

    def next_item(self) -> None:
        if self.deck and self.item and self.item.number < len(self.deck.items):
            self.show_item(self.item.number + 1)
        else:
            self.show_summary()

    def previous_item(self) -> None:
        if self.item and self.item.number > 1:
            self.show_item(self.item.number - 1)

    def show_item(self, number: int) -> None:
        """Show a case; a question to the model about the case left is cancelled (its answer is not shown here)."""
        if self.deck is None:
            return
        self.item = self.deck.items[number - 1]
        self.case.show_case(self.item, self.attempts.get(number), last=number == len(self.deck.items))
        self._shown_at = time.monotonic()
        self.pages.setCurrentWidget(self.case)
        self._update_header()

    # --- answering -------------------------------------------------------------------------------
    def reveal(self) -> None:
        """Lock in the trainee's answer, show it beside the reference, and ask the model."""
        item = self.item
        if self.deck is None or item is None or item.number in self.attempts or not self.case.has_answer():
            return
        seconds = round(time.monotonic() - self._shown_at, 1)
        answer, choice = self.case.trainee_answer()
        attempt = self.progress.record(self.deck, item, answer, choice, seconds)
        self.attempts[item.number] = attempt
        self.case.show_answer_inputs(attempt)
        self.case.show_comparison(attempt)
        self._update_header()
        self.ask_model()

    def ask_model(self) -> None:
        if self.deck is not None and self.item is not None:
            self.model_answer.ask(self.deck, self.item)

    def stop(self) -> None:
        self.model_answer.stop()

    def mark(self, correct: bool) -> None:
        """The trainee's own judgement of a free-text answer (or an unkeyed choice) against the reference."""
        if self.deck is None or self.item is None or self.item.number not in self.attempts or self.item.auto_scored:
            return
        self.progress.mark(self.deck, self.item.number, correct)
        self.attempts = self.progress.attempts(self.deck)
        self.case.show_comparison(self.attempts[self.item.number])

    def _save_model_answer(self, deck: Deck, number: int, text: str) -> None:
        self.progress.set_model_answer(deck, number, text)
        if self.deck is not None and deck.sha256 == self.deck.sha256:
            self.attempts = self.progress.attempts(self.deck)

    # --- summary ---------------------------------------------------------------------------------
    def show_summary(self) -> None:
        if self.deck is None:
            return
        self.model_answer.leave()
        self.item = None
        self.summary.show_deck(self.deck, self.progress.summary(self.deck), self.attempts)
        self.pages.setCurrentWidget(self.summary)
        self._update_header()

    def choose_summary_export(self, fmt: str) -> None:
        if self.deck is None:
            return
        suffix = {"csv": "CSV (*.csv)", "pdf": "PDF (*.pdf)"}[fmt]
        suggested = export_folder() / f"{file_stem(self.deck)}.{fmt}"
        path, _ = QFileDialog.getSaveFileName(self, "Export the practice summary", str(suggested), suffix)
        if path:
            self.export_summary(Path(path), fmt)

    def export_summary(self, path: Path, fmt: str) -> Task:
        """The deck's summary as CSV or PDF, written in the background (a PDF takes a moment to lay out)."""
        deck, summary, attempts = self.deck, self.progress.summary(self.deck), dict(self.attempts)
        self.statusBar().showMessage(f"Exporting the summary to {path}…")
        return run_in_background(lambda cancel: export_summary(deck, summary, attempts, path, fmt),
                                 on_done=self._summary_exported, on_failed=self._summary_export_failed)

    def _summary_exported(self, path: Path) -> None:
        self.statusBar().showMessage(f"Summary exported to {path}.")

    def _summary_export_failed(self, error: Exception) -> None:
        self.statusBar().showMessage(f"Export failed: {error}")

    def _confirm_reset(self) -> None:
        if self.deck is None:
            return
        answer = QMessageBox.question(self, "Reset progress", f"Forget your answers to “{self.deck.title}” and "
                                      "start again from the first case?")
        if answer == QMessageBox.StandardButton.Yes:
            self.reset_progress()

    def reset_progress(self) -> None:
        if self.deck is None:
            return
        self.model_answer.leave()
        self.progress.reset(self.deck)
        self.attempts = {}
        self.show_item(1)

    def _update_header(self) -> None:
        deck = self.deck
        self.deck_label.setText(deck.title if deck else "")
        self.summary_button.setEnabled(deck is not None)
        self.progress_bar.setVisible(deck is not None)
        if deck is None:
            self.counter.clear()
            return
        answered = f"{len(self.attempts)} of {len(deck.items)} answered"
        self.counter.setText(f"Case {self.item.number} of {len(deck.items)} · {answered}" if self.item else answered)
        self.progress_bar.setRange(0, len(deck.items))
        self.progress_bar.setValue(len(self.attempts))

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self.model_answer.leave()
        super().closeEvent(event)


def open_practice(runner: EngineRunner, parent: QWidget | None = None, audit: AuditLog | None = None) -> PracticeWindow:
    """Show the practice window (the one already open for this parent, if any)."""
    window = parent.findChild(PracticeWindow) if parent is not None else None
    if window is None:
        window = PracticeWindow(runner, parent, audit=audit)
    window.show()
    window.raise_()
    window.activateWindow()
    return window
