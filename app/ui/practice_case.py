"""Practice mode's case page: the images and question of one case, the trainee's answer, and after the reveal
the comparison: their read beside the model's answer, the deck's reference answer below.

Case images are shown in the main window's viewer (window/level, zoom, pan, invert, its keys); they are read off
the GUI thread, with a small thumbnail of each when a case has several."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
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

from app.imaging import ImageOpenError, load_first_frame
from app.practice import Attempt, Item
from app.studies.view import FrameRenderer
from app.ui.background import run_in_background
from app.ui.practice_model import ModelAnswer
from app.ui.practice_widgets import card, discard, label, set_tone
from app.ui.viewer import Viewer, to_qimage

THUMB = 64
VIEWER_HINT = "Drag: window/level · right-drag: zoom · middle-drag: pan · F fit · I invert · Esc reset"


def read_case_images(paths: tuple[Path, ...], renderer: FrameRenderer) -> list[tuple[np.ndarray | None, str]]:
    """Off the GUI thread: each image's header and first frame into the viewer's cache (so it shows at once) and a
    small thumbnail of it; (None, why) for one that cannot be read."""
    read = []
    for path in paths:
        try:
            load_first_frame(path, renderer)
            thumb = Image.fromarray(renderer.pixels(path, 0))
            thumb.thumbnail((THUMB, THUMB))
            read.append((np.asarray(thumb), ""))
        except (ImageOpenError, IndexError) as exc:
            read.append((None, str(exc)))
    return read


class PageSizedStack(QStackedWidget):
    """A stack as large as the page it shows (Qt's is as large as its largest page): the one-line hint before the
    reveal leaves the height to the image."""

    def __init__(self):
        super().__init__()
        self.currentChanged.connect(lambda _: self.updateGeometry())

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        page = self.currentWidget()
        return page.sizeHint() if page is not None else super().sizeHint()

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        page = self.currentWidget()
        return page.minimumSizeHint() if page is not None else super().minimumSizeHint()


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
        self.option_buttons: list[QRadioButton] = []
        case = QSplitter(Qt.Orientation.Horizontal)
        case.addWidget(self._build_images())
        case.addWidget(self._build_question())
        case.setSizes([480, 640])
        case.setChildrenCollapsible(False)

        # After the reveal: the trainee's read beside the model's answer, the reference below.
        self.compare = PageSizedStack()
        self.compare_hint = label("The model's answer and the deck's reference answer appear here once you have "
                                  "answered and pressed Reveal.", "muted")
        self.compare_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.compare.addWidget(self.compare_hint)
        self.compare.addWidget(self._build_comparison())

        self.splitter = splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(case)
        splitter.addWidget(self.compare)
        splitter.setSizes([430, 330])
        splitter.setChildrenCollapsible(False)
        self.compare.currentChanged.connect(self._share_height)

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

    def _share_height(self) -> None:
        """Before the reveal the image gets the height (the comparison is one line of hint); after it, the
        comparison gets two fifths."""
        total = sum(self.splitter.sizes())
        below = self.compare_hint.sizeHint().height() + 16 if self.compare.currentIndex() == 0 else total * 2 // 5
        self.splitter.setSizes([total - below, below])

    def _build_images(self) -> QWidget:
        self.viewer = Viewer(cache_bytes=64 * 1024 * 1024)  # a case's few images
        self.viewer.setMinimumSize(260, 220)
        self.viewer.setToolTip(VIEWER_HINT)
        self.viewer.message.connect(self.message)
        tools = QHBoxLayout()
        tools.setSpacing(4)
        for text, tip, action in (("Auto W/L", "Window from the pixels (A)", self.viewer.auto_window),
                                  ("Invert", "Invert grey levels (I)", self.viewer.toggle_invert),
                                  ("Fit", "Fit the image to the view (F)", self.viewer.fit),
                                  ("Reset", "Reset window, zoom and orientation (Esc)", self.viewer.reset)):
            button = QToolButton(text=text, toolTip=tip)
            button.clicked.connect(action)
            tools.addWidget(button)
        tools.addWidget(label(VIEWER_HINT.split(" · F ")[0], "muted", wrap=False), 1)
        self.thumbs = QHBoxLayout()
        self.thumbs.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.thumb_group = QButtonGroup(self)
        self.thumb_group.idClicked.connect(self._show_image)
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.viewer, 1)
        layout.addLayout(tools)
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
        self._share_height()
        self.previous_button.setEnabled(item.number > 1)
        self.next_button.setText("Summary  ▶" if last else "Next  ▶")

    def _show_images(self, item: Item) -> None:
        """The case's images are read in the background; the first is shown when they arrive."""
        self.viewer.set_frames([])
        for button in self.thumb_group.buttons():
            discard(self.thumb_group, button)
        n = len(item.images)
        if n > 1:
            for index in range(n):
                thumb = QToolButton(checkable=True, text=str(index + 1), toolTip=f"Image {index + 1} of {n}")
                thumb.setIconSize(QSize(THUMB, THUMB))
                thumb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
                self.thumb_group.addButton(thumb, index)
                self.thumbs.addWidget(thumb)
            self.thumb_group.button(0).setChecked(True)
        renderer = self.viewer.renderer
        # Bound methods, not lambdas: their calls are queued to this page, whose life they share.
        run_in_background(lambda cancel: (item, read_case_images(item.images, renderer)),
                          on_done=self._on_images_read, on_failed=self._on_images_failed)

    def _on_images_failed(self, error: Exception) -> None:
        if self.item is not None:
            self.message.emit(str(error) or type(error).__name__)
            self._show_image(0)  # the viewer says in place what is wrong with it

    def _on_images_read(self, read: tuple[Item, list[tuple[np.ndarray | None, str]]]) -> None:
        item, read = read
        if item is not self.item:  # the trainee has moved on to another case
            return
        for index, (thumb, why) in enumerate(read):
            if why:
                self.message.emit(why)
            button = self.thumb_group.button(index)
            if button is not None and thumb is not None:
                button.setIcon(QIcon(QPixmap.fromImage(to_qimage(thumb))))
        self._show_image(self.thumb_group.checkedId() if self.thumb_group.checkedId() >= 0 else 0)

    def _show_image(self, index: int) -> None:
        """One of the case's images in the viewer, fitted, with its own window (the viewer explains one it cannot
        show)."""
        self.viewer.set_frames([(self.item.images[index], 0)])

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
