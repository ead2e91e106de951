"""Practice mode: the trainee commits to a read of the case first, then compares it with the model's answer
(streamed beside it) and with the deck's reference answer. Progress is saved per deck (app.practice)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict
from pathlib import Path

from PIL.ImageQt import ImageQt
from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QFont, QIcon, QKeySequence, QPixmap, QShortcut, QTextCursor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app import INTENDED_USE
from app.audit import AuditLog
from app.finish import finish_sentence
from app.imaging import ImageOpenError, open_image
from app.practice import (
    Attempt,
    Deck,
    DeckError,
    Item,
    Progress,
    build_question,
    image_png,
    load_deck,
    model_choice,
    sample_deck_path,
)
from app.settings import Settings
from app.ui.chat import model_of
from app.ui.engine_runner import EngineRunner
from inference.prompt import Turn
from inference.sampling import SamplingSettings

NO_MODEL_TEXT = ("No model is installed, so there is no model answer to compare with. "
                 "Your read and the deck's reference answer are still here.")
STAGE_TEXT = {"loading": "Loading the model…", "image": "Reading the image…", "prompt": "Reading the question…",
              "queued": "Starting…", "generating": "Answering…"}
STYLE = """
QFrame#card { background: palette(base); border: 1px solid rgba(127, 127, 127, 0.35); border-radius: 8px; }
QLabel#heading { font-weight: 600; }
QLabel#muted { color: palette(placeholder-text); }
QLabel#right { color: #2e8b57; font-weight: 600; }
QLabel#wrong { color: #c0392b; font-weight: 600; }
"""


class ScaledImage(QLabel):
    """An image that fills its space, aspect kept, rescaled when the window is resized."""

    def __init__(self):
        super().__init__()
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(260, 260)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.setStyleSheet("background: #15171a; color: #d8d8d8; border-radius: 8px;")
        self.setWordWrap(True)
        self._pixmap = QPixmap()

    def set_image(self, pixmap: QPixmap) -> None:
        self._pixmap = pixmap
        self._rescale()

    def set_message(self, text: str) -> None:
        self._pixmap = QPixmap()
        self.clear()
        self.setText(text)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if not self._pixmap.isNull():
            self.setPixmap(self._pixmap.scaled(self.size() - QSize(12, 12), Qt.AspectRatioMode.KeepAspectRatio,
                                               Qt.TransformationMode.SmoothTransformation))


def _set_tone(label: QLabel, name: str) -> None:
    """Switch a label's style (see STYLE) by its object name; the style sheet is applied again for it."""
    label.setObjectName(name)
    label.style().unpolish(label)
    label.style().polish(label)


def _discard(group: QButtonGroup, button) -> None:
    """Take a button out of its group and off the screen at once (not at the next turn of the event loop)."""
    group.removeButton(button)
    button.hide()
    button.setParent(None)


def _card() -> tuple[QFrame, QVBoxLayout]:
    frame = QFrame(objectName="card")
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(14, 12, 14, 12)
    return frame, layout


def _label(text: str = "", name: str | None = None, wrap: bool = True) -> QLabel:
    label = QLabel(text)
    if name:
        label.setObjectName(name)
    label.setWordWrap(wrap)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class PracticeWindow(QMainWindow):
    def __init__(self, runner: EngineRunner, parent: QWidget | None = None, *, progress: Progress | None = None,
                 sampling: SamplingSettings | None = None, audit: AuditLog | None = None):
        super().__init__(parent)
        self.runner = runner
        self.audit = audit  # each question to the model is recorded (hashes only), as in the chat
        self.progress = progress or Progress()
        self.sampling = sampling  # None: the user's settings at the time of each question
        self.deck: Deck | None = None
        self.item: Item | None = None
        self.attempts: dict[int, Attempt] = {}
        self._pixmaps: list[QPixmap] = []
        self._shown_at = time.monotonic()
        self._asking: tuple[Deck, int] | None = None  # the request in flight: deck and item number
        self._abandoned = False  # the trainee left the case of the request in flight: its answer is not shown
        # A question waits while the runner still answers (a request stopped on leaving a case, or a question
        # from elsewhere in the app): the runner takes one at a time and its thread ends just after its last signal.
        self._wait_timer = QTimer(self, interval=20)
        self._wait_timer.timeout.connect(self._ask_when_free)
        self._model_text = ""
        self._asked: tuple[str, list[str], dict] = ("", [], {})  # question, image hashes, sampling in flight
        self.setWindowTitle("Practice — Huatuo Vision")
        self.resize(1180, 820)
        self.setStyleSheet(STYLE)
        self._build()
        runner.stage.connect(self._on_stage)
        runner.text.connect(self._on_text)
        runner.finished.connect(self._on_finished)
        runner.failed.connect(self._on_failed)
        recent = self.progress.recent_decks(1)
        if not (recent and self.open_deck(recent[0][0])):
            self.pages.setCurrentWidget(self.start_page)

    # --- layout ----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.open_button = QPushButton("Open deck…")
        self.open_button.clicked.connect(self.choose_deck)
        QShortcut(QKeySequence.StandardKey.Open, self, activated=self.choose_deck)
        self.recent_button = QToolButton(text="Recent")
        self.recent_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.recent_menu = QMenu(self.recent_button)
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self.recent_button.setMenu(self.recent_menu)
        self.deck_label = _label("", "heading", wrap=False)
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

        self.pages = QStackedWidget()
        self.start_page = self._build_start_page()
        self.item_page = self._build_item_page()
        self.summary_page = self._build_summary_page()
        for page in (self.start_page, self.item_page, self.summary_page):
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
        text = _label("Open a deck of cases. For each case, write your own read (or choose an option) first,\n"
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

    def _build_item_page(self) -> QWidget:
        # The case: image(s) on the left, question and the trainee's answer on the right.
        self.image = ScaledImage()
        self.thumbs = QHBoxLayout()
        self.thumbs.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.thumb_group = QButtonGroup(self)
        self.thumb_group.idClicked.connect(self._show_image)
        image_box = QWidget()
        image_layout = QVBoxLayout(image_box)
        image_layout.setContentsMargins(0, 0, 0, 0)
        image_layout.addWidget(self.image, 1)
        image_layout.addLayout(self.thumbs)

        self.source_label = _label("", "muted")
        self.question_label = _label()
        font = self.question_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.2)
        self.question_label.setFont(font)
        self.options_box = QWidget()
        self.options_layout = QVBoxLayout(self.options_box)
        self.options_layout.setContentsMargins(4, 0, 0, 0)
        self.option_group = QButtonGroup(self)
        self.option_group.idToggled.connect(lambda *_: self._update_reveal())
        self.option_buttons: list[QRadioButton] = []
        self.read_edit = QPlainTextEdit(placeholderText="Write your own read of the image here before you reveal "
                                                        "the model's answer…")
        self.read_edit.textChanged.connect(self._update_reveal)
        self.reveal_hint = _label("", "muted")
        self.reveal_button = QPushButton("Reveal the model's answer")
        self.reveal_button.setDefault(True)
        self.reveal_button.clicked.connect(self.reveal)
        QShortcut(QKeySequence("Ctrl+Return"), self, activated=self.reveal)
        reveal_row = QHBoxLayout()
        reveal_row.addWidget(self.reveal_hint, 1)
        reveal_row.addWidget(self.reveal_button)
        case_card, case_layout = _card()
        case_layout.addWidget(self.source_label)
        case_layout.addWidget(self.question_label)
        case_layout.addSpacing(6)
        case_layout.addWidget(self.options_box)
        case_layout.addWidget(self.read_edit, 1)
        case_layout.addStretch(0)
        case_layout.addLayout(reveal_row)

        case = QSplitter(Qt.Orientation.Horizontal)
        case.addWidget(image_box)
        case.addWidget(case_card)
        case.setSizes([480, 640])
        case.setChildrenCollapsible(False)

        # After the reveal: the trainee's read beside the model's answer, the reference below.
        self.compare = QStackedWidget()
        self.compare_hint = _label("The model's answer and the deck's reference answer appear here once you have "
                                   "answered and pressed Reveal.", "muted")
        self.compare_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.compare.addWidget(self.compare_hint)
        self.compare.addWidget(self._build_comparison())

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(case)
        splitter.addWidget(self.compare)
        splitter.setSizes([430, 330])
        splitter.setChildrenCollapsible(False)

        self.previous_button = QPushButton("◀  Previous")
        self.previous_button.setShortcut(QKeySequence("Alt+Left"))
        self.previous_button.clicked.connect(self.previous_item)
        self.next_button = QPushButton("Next  ▶")
        self.next_button.setShortcut(QKeySequence("Alt+Right"))
        self.next_button.clicked.connect(self.next_item)
        footer = QHBoxLayout()
        footer.addWidget(self.previous_button)
        footer.addStretch(1)
        footer.addWidget(self.next_button)

        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 8, 0, 0)
        layout.addWidget(splitter, 1)
        layout.addLayout(footer)
        return page

    def _build_comparison(self) -> QWidget:
        yours, yours_layout = _card()
        yours_layout.addWidget(_label("Your read", "heading"))
        self.your_read = _label()
        self.your_read.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.your_result = _label()
        yours_layout.addWidget(self.your_read, 1)
        yours_layout.addWidget(self.your_result)

        model, model_layout = _card()
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        self.ask_button = QPushButton("Ask again")
        self.ask_button.clicked.connect(self.ask_model)
        head = QHBoxLayout()
        head.addWidget(_label("Model's answer", "heading"), 1)
        head.addWidget(self.ask_button)
        head.addWidget(self.stop_button)
        self.model_status = _label("", "muted")
        self.model_view = QTextBrowser()
        self.model_view.setFrameShape(QFrame.Shape.NoFrame)
        self.model_choice_label = _label()
        model_layout.addLayout(head)
        model_layout.addWidget(self.model_status)
        model_layout.addWidget(self.model_view, 1)
        model_layout.addWidget(self.model_choice_label)

        reference, reference_layout = _card()
        reference_layout.addWidget(_label("Reference answer (from the deck)", "heading"))
        self.reference_label = _label()
        self.mark_row = QWidget()
        self.right_button = QPushButton("I was right", checkable=True)
        self.wrong_button = QPushButton("I was wrong", checkable=True)
        self.mark_group = QButtonGroup(self)
        self.mark_group.addButton(self.right_button)
        self.mark_group.addButton(self.wrong_button)
        self.right_button.clicked.connect(lambda: self.mark(True))
        self.wrong_button.clicked.connect(lambda: self.mark(False))
        marks = QHBoxLayout(self.mark_row)
        marks.setContentsMargins(0, 4, 0, 0)
        marks.addWidget(_label("Compared with the reference:", "muted", wrap=False))
        marks.addWidget(self.right_button)
        marks.addWidget(self.wrong_button)
        marks.addStretch(1)
        reference_layout.addWidget(self.reference_label)
        reference_layout.addWidget(self.mark_row)

        sides = QSplitter(Qt.Orientation.Horizontal)
        sides.addWidget(yours)
        sides.addWidget(model)
        sides.setChildrenCollapsible(False)
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 8, 0, 0)
        layout.addWidget(sides, 1)
        layout.addWidget(reference)
        return box

    def _build_summary_page(self) -> QWidget:
        self.summary_title = _label("", "heading")
        self.summary_text = _label()
        self.summary_table = QTableWidget(0, 4)
        self.summary_table.setHorizontalHeaderLabels(["#", "Question", "Your answer", "Result"])
        self.summary_table.verticalHeader().hide()
        self.summary_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.summary_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        header = self.summary_table.horizontalHeader()
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.summary_table.cellDoubleClicked.connect(lambda row, _: self.show_item(row + 1))
        back = QPushButton("Continue practising")
        back.clicked.connect(self.resume)
        reset = QPushButton("Reset progress…")
        reset.clicked.connect(self._confirm_reset)
        buttons = QHBoxLayout()
        buttons.addWidget(reset)
        buttons.addStretch(1)
        buttons.addWidget(back)
        card, layout = _card()
        layout.addWidget(self.summary_title)
        layout.addWidget(self.summary_text)
        layout.addWidget(self.summary_table, 1)
        layout.addLayout(buttons)
        page = QWidget()
        outer = QVBoxLayout(page)
        outer.setContentsMargins(0, 8, 0, 0)
        outer.addWidget(card)
        return page

    # --- decks -----------------------------------------------------------------------------------
    def choose_deck(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a practice deck", "", "Practice decks (*.json)")
        if path:
            self.open_deck(path)

    def open_deck(self, path: str | Path) -> bool:
        try:
            deck = load_deck(path)
        except DeckError as exc:
            self.statusBar().showMessage(str(exc))
            return False
        self._leave_item()
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
        if self.deck is None:
            return
        self._leave_item()
        self.item = item = self.deck.items[number - 1]
        self.source_label.setText(" · ".join(filter(None, [
            item.source, "multiple choice" if item.is_multiple_choice else "free text"])))
        self.question_label.setText(item.question)
        self._show_images(item)
        self._show_answer_inputs(item)
        attempt = self.attempts.get(number)
        if attempt is None:
            self.compare.setCurrentWidget(self.compare_hint)
            self._show_model_text("", "")
            self._shown_at = time.monotonic()
        else:
            self._show_comparison(attempt)
            self._show_model_text(attempt.model_answer or "", "" if attempt.model_answer else
                                  "No model answer was saved for this case: press Ask again for one.")
        self.pages.setCurrentWidget(self.item_page)
        self.previous_button.setEnabled(number > 1)
        self.next_button.setText("Next  ▶" if number < len(self.deck.items) else "Summary  ▶")
        self._update_reveal()
        self._update_header()

    def _leave_item(self) -> None:
        """A request still answering for the case being left is stopped; its answer is not shown elsewhere."""
        self._wait_timer.stop()
        if self._asking is not None:
            self._abandoned = True
            self.runner.stop()

    def _show_images(self, item: Item) -> None:
        self._pixmaps = []
        for path in item.images:
            try:
                self._pixmaps.append(QPixmap.fromImage(ImageQt(open_image(path).convert("RGBA"))))
            except ImageOpenError as exc:
                self._pixmaps.append(QPixmap())
                self.statusBar().showMessage(str(exc))
        for button in self.thumb_group.buttons():
            _discard(self.thumb_group, button)
        if len(self._pixmaps) > 1:
            for index, pixmap in enumerate(self._pixmaps):
                thumb = QToolButton(checkable=True, toolTip=f"Image {index + 1} of {len(self._pixmaps)}")
                thumb.setIcon(QIcon(pixmap))
                thumb.setIconSize(QSize(64, 64))
                self.thumb_group.addButton(thumb, index)
                self.thumbs.addWidget(thumb)
            self.thumb_group.button(0).setChecked(True)
        self._show_image(0)

    def _show_image(self, index: int) -> None:
        pixmap = self._pixmaps[index]
        if pixmap.isNull():
            self.image.set_message(f"{self.item.images[index].name} could not be shown")
        else:
            self.image.set_image(pixmap)

    def _show_answer_inputs(self, item: Item) -> None:
        for button in self.option_buttons:
            _discard(self.option_group, button)
        self.option_buttons = []
        for index in range(len(item.options)):
            button = QRadioButton(item.option_label(index))
            self.option_group.addButton(button, index)
            self.options_layout.addWidget(button)
            self.option_buttons.append(button)
        self.options_box.setVisible(item.is_multiple_choice)
        self.read_edit.setVisible(not item.is_multiple_choice)
        attempt = self.attempts.get(item.number)
        self.read_edit.setPlainText(attempt.answer if attempt and not item.is_multiple_choice else "")
        if attempt and attempt.choice is not None and attempt.choice < len(self.option_buttons):
            self.option_buttons[attempt.choice].setChecked(True)
        self.read_edit.setReadOnly(attempt is not None)
        for button in self.option_buttons:
            button.setEnabled(attempt is None)

    # --- answering -------------------------------------------------------------------------------
    def has_answer(self) -> bool:
        if self.item is None:
            return False
        if self.item.is_multiple_choice:
            return self.option_group.checkedId() >= 0
        return bool(self.read_edit.toPlainText().strip())

    def _update_reveal(self) -> None:
        answered = self.item is not None and self.item.number in self.attempts
        self.reveal_button.setEnabled(not answered and self.has_answer())
        self.reveal_button.setVisible(not answered)
        if answered:
            self.reveal_hint.setText("Answered. Your answer is kept; Reset progress in the summary starts over.")
        elif self.has_answer():
            self.reveal_hint.setText("Your answer is locked in when you reveal.")
        elif self.item is not None and self.item.is_multiple_choice:
            self.reveal_hint.setText("Choose an option to reveal the model's answer.")
        else:
            self.reveal_hint.setText("Write your read to reveal the model's answer.")

    def reveal(self) -> None:
        """Lock in the trainee's answer, show it beside the reference, and ask the model."""
        item = self.item
        if self.deck is None or item is None or item.number in self.attempts or not self.has_answer():
            return
        seconds = round(time.monotonic() - self._shown_at, 1)
        if item.is_multiple_choice:
            choice = self.option_group.checkedId()
            attempt = self.progress.record(self.deck, item, item.option_label(choice), choice, seconds)
        else:
            attempt = self.progress.record(self.deck, item, self.read_edit.toPlainText().strip(), None, seconds)
        self.attempts[item.number] = attempt
        self._show_answer_inputs(item)
        self._show_comparison(attempt)
        self._update_reveal()
        self._update_header()
        self.ask_model()

    def _show_comparison(self, attempt: Attempt) -> None:
        item = self.item
        self.your_read.setText(attempt.answer)
        reference = item.reference_text()
        self.reference_label.setText(reference or "This deck gives no reference answer for this case.")
        if item.auto_scored:
            _set_tone(self.your_result, "right" if attempt.correct else "wrong")
            self.your_result.setText("Correct." if attempt.correct
                                     else f"Not correct: the deck's answer is {reference}.")
        else:
            _set_tone(self.your_result, "muted")
            self.your_result.setText({True: "You marked this right.", False: "You marked this wrong."}.get(
                attempt.correct, "Compare it with the reference below and mark it."))
        self.mark_row.setVisible(not item.auto_scored)
        self.mark_group.setExclusive(False)
        self.right_button.setChecked(attempt.correct is True)
        self.wrong_button.setChecked(attempt.correct is False)
        self.mark_group.setExclusive(True)
        self.compare.setCurrentIndex(1)

    def mark(self, correct: bool) -> None:
        """The trainee's own judgement of a free-text answer (or an unkeyed choice) against the reference."""
        if self.deck is None or self.item is None or self.item.number not in self.attempts or self.item.auto_scored:
            return
        self.progress.mark(self.deck, self.item.number, correct)
        self.attempts = self.progress.attempts(self.deck)
        self._show_comparison(self.attempts[self.item.number])

    # --- the model -------------------------------------------------------------------------------
    def ask_model(self) -> None:
        item = self.item
        if self.deck is None or item is None:
            return
        if self._asking is not None or self.runner.busy:
            if self._asking is not None:  # stopped on leaving its case, and not ended yet
                self._abandoned = True
                self.runner.stop()
            self._show_model_text("", "Waiting for the model to finish its previous answer…", busy=True)
            self._wait_timer.start()
            return
        try:
            images = [image_png(path) for path in item.images]
        except ImageOpenError as exc:
            self._show_model_text("", f"The image could not be read for the model: {exc}")
            return
        self._asking, self._abandoned = (self.deck, item.number), False
        self._show_model_text("", "Starting…", busy=True)
        sampling = self.sampling or Settings.load().sampling()
        question = build_question(item)
        self._asked = (question, [hashlib.sha256(png).hexdigest() for png in images], asdict(sampling))
        self.runner.ask([Turn(question, n_images=len(images))], images, sampling)

    def stop(self) -> None:
        if self._wait_timer.isActive():  # still waiting to ask: give up waiting
            self._wait_timer.stop()
            self._show_model_text("", "Not asked. Press Ask again for the model's answer.")
        elif self._asking is not None:
            self.model_status.setText("Stopping…")
            self.runner.stop()

    def _ask_when_free(self) -> None:
        if self._asking is None and not self.runner.busy:
            self._wait_timer.stop()
            self.ask_model()

    def _is_current(self, request: tuple[Deck, int] | None) -> bool:
        return (request is not None and not self._abandoned and self.deck is not None and self.item is not None
                and request[0].sha256 == self.deck.sha256 and request[1] == self.item.number)

    def _on_stage(self, stage: str, done: int, total: int) -> None:
        if self._is_current(self._asking) and not self._model_text:
            self.model_status.setText(STAGE_TEXT.get(stage, "Working…"))

    def _on_text(self, piece: str) -> None:
        if not self._is_current(self._asking):
            return
        if not self._model_text:
            self.model_status.setText("Answering…")
        self._model_text += piece
        cursor = self.model_view.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(piece)
        self.model_view.ensureCursorVisible()

    def _record_audit(self, deck: Deck, answer: str, finish: str) -> None:
        if self.audit is not None:
            question, image_shas, sampling = self._asked
            self.audit.record_question(study_key=deck.sha256, image_sha256=image_shas,
                                       model=model_of(self.runner.folder), settings=sampling, question=question,
                                       answer=answer, finish=finish)

    def _on_finished(self, answer) -> None:
        if self._asking is None:
            return
        request, self._asking = self._asking, None
        self._record_audit(request[0], answer.text, answer.finish)
        if answer.finish != "cancelled" and answer.text.strip():
            self.progress.set_model_answer(request[0], request[1], answer.text)
            if self.deck is not None and request[0].sha256 == self.deck.sha256:
                self.attempts = self.progress.attempts(self.deck)
        if self._is_current(request):
            note = finish_sentence(answer.finish)
            self._show_model_text(answer.text, note)

    def _on_failed(self, kind: str, message: str) -> None:
        if self._asking is None:
            return
        request, self._asking = self._asking, None
        if kind != "no_model":
            self._record_audit(request[0], self._model_text, "error")
        if self._is_current(request):
            if kind == "no_model":
                self._show_model_text("", NO_MODEL_TEXT)
            else:
                self._show_model_text(self._model_text, f"No answer: {message}")

    def _show_model_text(self, text: str, status: str, busy: bool = False) -> None:
        self._model_text = text
        self.model_view.setPlainText(text)
        self.model_status.setText(status)
        self.model_status.setVisible(bool(status))
        self.stop_button.setVisible(busy)
        self.ask_button.setVisible(not busy)
        choice = model_choice(self.item, text) if self.item and self.item.is_multiple_choice and text else None
        if choice is None:
            self.model_choice_label.clear()
        else:
            verdict = "" if self.item.correct is None else (
                " — the deck's answer" if choice == self.item.correct else " — not the deck's answer")
            self.model_choice_label.setText(f"The model chose {self.item.option_label(choice)}{verdict}")

    # --- summary ---------------------------------------------------------------------------------
    def show_summary(self) -> None:
        if self.deck is None:
            return
        self._leave_item()
        self.item = None
        s = self.progress.summary(self.deck)
        self.summary_title.setText(f"Summary — {self.deck.title}")
        lines = [f"Answered {s.answered} of {s.total} cases."]
        if s.scored:
            lines.append(f"Multiple choice: {s.scored_correct} of {s.scored} correct ({s.scored_percent:.0f} %).")
        if s.marked_right or s.marked_wrong or s.unmarked:
            lines.append(f"Free text (your own marking): {s.marked_right} right, {s.marked_wrong} wrong, "
                         f"{s.unmarked} not marked yet.")
        self.summary_text.setText("\n".join(lines))
        self.summary_table.setRowCount(len(self.deck.items))
        for row, item in enumerate(self.deck.items):
            attempt = self.attempts.get(item.number)
            result = "—" if attempt is None else {True: "right", False: "wrong"}.get(attempt.correct, "not marked")
            for column, text in enumerate([str(item.number), item.question, attempt.answer if attempt else "",
                                           result]):
                cell = QTableWidgetItem(text)
                cell.setToolTip(text)
                self.summary_table.setItem(row, column, cell)
        self.summary_table.resizeColumnToContents(0)
        self.summary_table.resizeColumnToContents(3)
        self.pages.setCurrentWidget(self.summary_page)
        self._update_header()

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
        self._leave_item()
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
        self._leave_item()
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
