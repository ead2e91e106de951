"""The two ways a conversation becomes teaching material: **Export teaching case…** (de-identified DICOM files and
the conversation, in a folder to share) and **Make practice case…** (the question, the user's reference answer and
the images, appended to a deck of the user's own). Headers are read and files written off the GUI thread
(`app.ui.background`); the work itself is Qt-free (`app.teaching_case`, `app.practice.append_case`)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.store import StoredConversation
from app.teaching_case import AttachedSources, CasePlan, export_case, make_practice_case, plan_case, practice_case
from app.ui.background import Task, run_in_background
from app.ui.chat_export import export_folder, export_name

WARNING_STYLE = "color: #b35c00;"


def _folder_row(edit: QLineEdit, choose) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    button = QPushButton("Choose…")
    button.clicked.connect(choose)
    layout.addWidget(button)
    return row


class TeachingCaseDialog(QDialog):
    """Says what the teaching case will hold and what must be checked by eye, then writes it."""

    message = Signal(str)  # for the main window's status bar

    def __init__(self, conv: StoredConversation, sources: AttachedSources, series_files: list[Path],
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Export teaching case")
        self.conv, self.sources, self.series_files = conv, sources, list(series_files)
        self.plan: CasePlan | None = None
        self._planning: object | None = None  # the newest plan asked for
        self._warned: set[str] = set()  # the burned-in warnings shown when the user last could confirm them
        self.task: Task | None = None
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        n = len(self.series_files)
        self.whole_series = QCheckBox(f"Include the whole series on screen ({n} file{'' if n == 1 else 's'})")
        self.whole_series.setEnabled(bool(self.series_files))
        if not self.series_files:
            self.whole_series.setToolTip("Open the conversation's series in the viewer to include all of it")
        self.whole_series.toggled.connect(self._plan)
        self.format = QComboBox()
        self.format.addItem("Markdown", "md")
        self.format.addItem("HTML", "html")
        self.destination = QLineEdit(str(export_folder() / f"{export_name(conv)} teaching case"))
        self.warnings = QLabel()
        self.warnings.setWordWrap(True)
        self.warnings.setTextFormat(Qt.TextFormat.PlainText)
        self.warnings.setStyleSheet(WARNING_STYLE)
        self.checked = QCheckBox("I have checked the images for burned-in names, dates and other identifiers")
        self.checked.toggled.connect(self._update)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.export)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("Conversation as", self.format)
        form.addRow("Save as folder", _folder_row(self.destination, self._choose_folder))
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.whole_series)
        layout.addLayout(form)
        layout.addWidget(self.warnings)
        layout.addWidget(self.checked)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        self.resize(640, 360)
        self._plan()

    # --- what will be written ----------------------------------------------------------------------
    def _plan(self) -> None:
        """Work out the files and their burned-in warnings off the GUI thread (a series can be hundreds of files)."""
        conv, sources = self.conv, self.sources
        series = self.series_files if self.whole_series.isChecked() else []
        self.plan = None
        self.status.setText("Reading the DICOM headers…")
        self._update()
        token = self._planning = object()
        run_in_background(lambda cancel: plan_case(conv, sources, series), parent=self,
                          on_done=lambda plan: self._planned(plan, token), on_failed=self._failed)

    def _planned(self, plan: CasePlan, token: object) -> None:
        if token is not self._planning:
            return  # the choice changed meanwhile: a newer plan is coming
        self.plan = plan
        from_dicom = sum(image.source is not None for image in plan.images)
        lines = [f"{len(plan.images)} image(s) in this conversation: {from_dicom} from DICOM files, exported "
                 f"de-identified ({len(plan.dicom_files)} file(s) in all)"]
        for image in plan.png_images:
            lines.append(f"Image {image.number}: exported as the PNG the model saw ({image.note})")
        lines.append("The DICOM files are de-identified with the DICOM PS3.15 Annex E basic profile; the "
                     "conversation is exported without the study's identifying data.")
        self.summary.setText("\n".join(lines))
        warnings = [*plan.warnings, "The questions and answers are exported as written: check them for names, "
                                    "dates and other identifiers"]
        self.warnings.setText("Check before sharing:\n" + "\n".join(f"• {w}." for w in warnings))
        if not set(plan.warnings) <= self._warned:  # more files to check by eye: the confirmation is asked again
            self.checked.setChecked(False)
        self._warned = set(plan.warnings)
        self.checked.setVisible(bool(plan.warnings))
        self.status.setText("")
        self._update()

    def _update(self) -> None:
        ready = self.plan is not None and self.task is None
        confirmed = self.plan is not None and (not self.plan.warnings or self.checked.isChecked())
        self.export_button.setEnabled(ready and confirmed)
        self.whole_series.setEnabled(bool(self.series_files) and self.task is None)

    def _choose_folder(self) -> None:
        parent = QFileDialog.getExistingDirectory(self, "Save the teaching case in", str(Path(self.destination.text())
                                                                                         .parent))
        if parent:
            self.destination.setText(str(Path(parent) / Path(self.destination.text()).name))

    # --- writing -------------------------------------------------------------------------------------
    def export(self) -> Task | None:
        if not self.export_button.isEnabled():
            return None
        destination = Path(self.destination.text().strip()).expanduser()
        if destination.exists():
            self.status.setText(f"{destination} already exists: choose another name.")
            return None
        conv, plan, fmt = self.conv, self.plan, self.format.currentData()
        self.status.setText(f"Exporting to {destination}…")
        self.task = run_in_background(lambda cancel: export_case(conv, plan, destination, fmt, cancel.is_set),
                                      on_done=self._exported, on_failed=self._failed, parent=self)
        self._update()
        return self.task

    def _exported(self, path: Path) -> None:
        self.task = None
        self.message.emit(f"Teaching case saved in {path} (de-identified DICOM and the conversation).")
        self.accept()

    def _failed(self, exc: Exception) -> None:
        self.task = None
        self.status.setText(f"The teaching case was not exported: {exc}")
        self._update()

    def reject(self) -> None:
        if self.task is not None:
            self.task.cancel()  # the export stops at its next file and leaves nothing behind
        super().reject()


class PracticeCaseDialog(QDialog):
    """One question of the conversation, the user's reference answer and its images, added to a deck."""

    message = Signal(str)
    deck_written = Signal(object, bool)  # the deck's path, and whether to open it in practice mode

    def __init__(self, conv: StoredConversation, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Make practice case")
        self.conv = conv
        self.task: Task | None = None
        self.turn = QComboBox()
        for turn in conv.turns:
            short = turn.question if len(turn.question) <= 70 else turn.question[:69] + "…"
            self.turn.addItem(f"{turn.index + 1}. {short}", turn.index)
        self.turn.currentIndexChanged.connect(self._show_turn)
        self.question = QPlainTextEdit()
        self.question.setMaximumHeight(80)
        self.reference = QPlainTextEdit(placeholderText="Your reference answer: what a trainee should see and say")
        self.reference.textChanged.connect(self._update)
        self.images = QLabel()
        self.images.setWordWrap(True)
        self.deck = QLineEdit(str(export_folder() / "My teaching cases.json"))
        self.open_after = QCheckBox("Open the deck in practice mode")
        self.open_after.setChecked(True)
        note = QLabel("The images are added as the model saw them (pixels only, no DICOM header). Check them for "
                      "burned-in names or dates before sharing the deck.")
        note.setWordWrap(True)
        note.setStyleSheet(WARNING_STYLE)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.add_button = self.buttons.addButton("Add to deck", QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.add)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("Question of the conversation", self.turn)
        form.addRow("Question for the trainee", self.question)
        form.addRow("Reference answer", self.reference)
        form.addRow("Images", self.images)
        form.addRow("Deck", _folder_row(self.deck, self._choose_deck))
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(self.open_after)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        self.resize(640, 480)
        self._show_turn()

    def _show_turn(self) -> None:
        question, images = practice_case(self.conv, self.turn.currentData() or 0)
        self.question.setPlainText(question)
        self.images.setText(f"{len(images)} image(s): those the model had been shown by this question")
        self._update()

    def _update(self) -> None:
        self.add_button.setEnabled(self.task is None and bool(self.reference.toPlainText().strip())
                                   and bool(self.question.toPlainText().strip()))

    def _choose_deck(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Add to the deck", self.deck.text(), "Practice decks (*.json)",
                                              options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            self.deck.setText(path)

    def add(self) -> Task | None:
        if not self.add_button.isEnabled():
            return None
        deck = Path(self.deck.text().strip()).expanduser()
        conv, turn = self.conv, self.turn.currentData() or 0
        question, reference = self.question.toPlainText(), self.reference.toPlainText()
        self.status.setText(f"Adding the case to {deck.name}…")
        self.task = run_in_background(lambda cancel: make_practice_case(conv, turn, reference, deck, question),
                                      on_done=self._added, on_failed=self._failed, parent=self)
        self._update()
        return self.task

    def _added(self, deck) -> None:
        self.task = None
        self.message.emit(f"Case {len(deck.items)} added to the deck {deck.title} ({deck.path}).")
        self.deck_written.emit(deck.path, self.open_after.isChecked())
        self.accept()

    def _failed(self, exc: Exception) -> None:
        self.task = None
        self.status.setText(f"The case was not added: {exc}")
        self._update()
