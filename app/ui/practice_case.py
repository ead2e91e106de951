"""Practice mode's case page: the images and question of one case, the trainee's answer, and after the reveal
the comparison: their read beside the model's answer, the deck's reference answer below."""

from __future__ import annotations

from PIL.ImageQt import ImageQt
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.imaging import ImageOpenError, open_image
from app.practice import Attempt, Item
from app.ui.practice_model import ModelAnswer
from app.ui.practice_widgets import ScaledImage, card, discard, label, set_tone


class CasePage(QWidget):
    reveal_requested = Signal()
    marked = Signal(bool)  # the trainee's own judgement of their answer against the reference
    previous_requested = Signal()
    next_requested = Signal()
    message = Signal(str)  # for the window's status bar (an image that could not be opened)

    def __init__(self, model_answer: ModelAnswer, parent: QWidget | None = None):
        super().__init__(parent)
        self.model_answer = model_answer
        self.item: Item | None = None
        self.answered = False
        self._pixmaps: list[QPixmap] = []
        self.option_buttons: list[QRadioButton] = []
        case = QSplitter(Qt.Orientation.Horizontal)
        case.addWidget(self._build_images())
        case.addWidget(self._build_question())
        case.setSizes([480, 640])
        case.setChildrenCollapsible(False)

        # After the reveal: the trainee's read beside the model's answer, the reference below.
        self.compare = QStackedWidget()
        self.compare_hint = label("The model's answer and the deck's reference answer appear here once you have "
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
        self.previous_button.clicked.connect(self.previous_requested)
        self.next_button = QPushButton("Next  ▶")
        self.next_button.setShortcut(QKeySequence("Alt+Right"))
        self.next_button.clicked.connect(self.next_requested)
        footer = QHBoxLayout()
        footer.addWidget(self.previous_button)
        footer.addStretch(1)
        footer.addWidget(self.next_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 8, 0, 0)
        layout.addWidget(splitter, 1)
        layout.addLayout(footer)

    def _build_images(self) -> QWidget:
        self.image = ScaledImage()
        self.thumbs = QHBoxLayout()
        self.thumbs.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.thumb_group = QButtonGroup(self)
        self.thumb_group.idClicked.connect(self._show_image)
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.image, 1)
        layout.addLayout(self.thumbs)
        return box

    def _build_question(self) -> QWidget:
        self.source_label = label("", "muted")
        self.question_label = label()
        font = self.question_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.2)
        self.question_label.setFont(font)
        self.options_box = QWidget()
        self.options_layout = QVBoxLayout(self.options_box)
        self.options_layout.setContentsMargins(4, 0, 0, 0)
        self.option_group = QButtonGroup(self)
        self.option_group.idToggled.connect(lambda *_: self.update_reveal())
        self.read_edit = QPlainTextEdit(placeholderText="Write your own read of the image here before you reveal "
                                                        "the model's answer…")
        self.read_edit.textChanged.connect(self.update_reveal)
        self.reveal_hint = label("", "muted")
        self.reveal_button = QPushButton("Reveal the model's answer")
        self.reveal_button.setDefault(True)
        self.reveal_button.clicked.connect(self.reveal_requested)
        reveal_row = QHBoxLayout()
        reveal_row.addWidget(self.reveal_hint, 1)
        reveal_row.addWidget(self.reveal_button)
        frame, layout = card()
        layout.addWidget(self.source_label)
        layout.addWidget(self.question_label)
        layout.addSpacing(6)
        layout.addWidget(self.options_box)
        layout.addWidget(self.read_edit, 1)
        layout.addStretch(0)
        layout.addLayout(reveal_row)
        return frame

    def _build_comparison(self) -> QWidget:
        yours, yours_layout = card()
        yours_layout.addWidget(label("Your read", "heading"))
        self.your_read = label()
        self.your_read.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.your_result = label()
        yours_layout.addWidget(self.your_read, 1)
        yours_layout.addWidget(self.your_result)

        reference, reference_layout = card()
        reference_layout.addWidget(label("Reference answer (from the deck)", "heading"))
        self.reference_label = label()
        self.mark_row = QWidget()
        self.right_button = QPushButton("I was right", checkable=True)
        self.wrong_button = QPushButton("I was wrong", checkable=True)
        self.mark_group = QButtonGroup(self)
        self.mark_group.addButton(self.right_button)
        self.mark_group.addButton(self.wrong_button)
        self.right_button.clicked.connect(lambda: self.marked.emit(True))
        self.wrong_button.clicked.connect(lambda: self.marked.emit(False))
        marks = QHBoxLayout(self.mark_row)
        marks.setContentsMargins(0, 4, 0, 0)
        marks.addWidget(label("Compared with the reference:", "muted", wrap=False))
        marks.addWidget(self.right_button)
        marks.addWidget(self.wrong_button)
        marks.addStretch(1)
        reference_layout.addWidget(self.reference_label)
        reference_layout.addWidget(self.mark_row)

        sides = QSplitter(Qt.Orientation.Horizontal)
        sides.addWidget(yours)
        sides.addWidget(self.model_answer)
        sides.setChildrenCollapsible(False)
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 8, 0, 0)
        layout.addWidget(sides, 1)
        layout.addWidget(reference)
        return box

    # --- one case --------------------------------------------------------------------------------
    def show_case(self, item: Item, attempt: Attempt | None, last: bool) -> None:
        """The case, with the trainee's saved answer and the model's saved answer if it was answered before."""
        self.item = item
        self.source_label.setText(" · ".join(filter(None, [
            item.source, "multiple choice" if item.is_multiple_choice else "free text"])))
        self.question_label.setText(item.question)
        self._show_images(item)
        self.show_answer_inputs(attempt)
        if attempt is None:
            self.compare.setCurrentWidget(self.compare_hint)
            self.model_answer.show_case(item)
        else:
            self.show_comparison(attempt)
            self.model_answer.show_case(item, attempt.model_answer or "", "" if attempt.model_answer else
                                        "No model answer was saved for this case: press Ask again for one.")
        self.previous_button.setEnabled(item.number > 1)
        self.next_button.setText("Summary  ▶" if last else "Next  ▶")

    def _show_images(self, item: Item) -> None:
        self._pixmaps = []
        for path in item.images:
            try:
                self._pixmaps.append(QPixmap.fromImage(ImageQt(open_image(path).convert("RGBA"))))
            except ImageOpenError as exc:
                self._pixmaps.append(QPixmap())
                self.message.emit(str(exc))
        for button in self.thumb_group.buttons():
            discard(self.thumb_group, button)
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

    def show_answer_inputs(self, attempt: Attempt | None) -> None:
        """The options or the text box, holding the saved answer and locked once it is given."""
        item = self.item
        for button in self.option_buttons:
            discard(self.option_group, button)
        self.option_buttons = []
        for index in range(len(item.options)):
            button = QRadioButton(item.option_label(index))
            self.option_group.addButton(button, index)
            self.options_layout.addWidget(button)
            self.option_buttons.append(button)
        self.options_box.setVisible(item.is_multiple_choice)
        self.read_edit.setVisible(not item.is_multiple_choice)
        self.read_edit.setPlainText(attempt.answer if attempt and not item.is_multiple_choice else "")
        if attempt and attempt.choice is not None and attempt.choice < len(self.option_buttons):
            self.option_buttons[attempt.choice].setChecked(True)
        self.read_edit.setReadOnly(attempt is not None)
        for button in self.option_buttons:
            button.setEnabled(attempt is None)
        self.answered = attempt is not None
        self.update_reveal()

    def has_answer(self) -> bool:
        if self.item is None:
            return False
        if self.item.is_multiple_choice:
            return self.option_group.checkedId() >= 0
        return bool(self.read_edit.toPlainText().strip())

    def trainee_answer(self) -> tuple[str, int | None]:
        """The answer as it is saved (an option's label, or the text) and the chosen option."""
        if self.item.is_multiple_choice:
            choice = self.option_group.checkedId()
            return self.item.option_label(choice), choice
        return self.read_edit.toPlainText().strip(), None

    def update_reveal(self) -> None:
        answered = self.answered
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

    def show_comparison(self, attempt: Attempt) -> None:
        item = self.item
        self.your_read.setText(attempt.answer)
        reference = item.reference_text()
        self.reference_label.setText(reference or "This deck gives no reference answer for this case.")
        if item.auto_scored:
            set_tone(self.your_result, "right" if attempt.correct else "wrong")
            self.your_result.setText("Correct." if attempt.correct
                                     else f"Not correct: the deck's answer is {reference}.")
        else:
            set_tone(self.your_result, "muted")
            self.your_result.setText({True: "You marked this right.", False: "You marked this wrong."}.get(
                attempt.correct, "Compare it with the reference below and mark it."))
        self.mark_row.setVisible(not item.auto_scored)
        self.mark_group.setExclusive(False)
        self.right_button.setChecked(attempt.correct is True)
        self.wrong_button.setChecked(attempt.correct is False)
        self.mark_group.setExclusive(True)
        self.compare.setCurrentIndex(1)
