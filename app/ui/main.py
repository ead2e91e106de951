"""The desktop window: open an image or a DICOM file and see it; models and chat come in beside it.

How studies are opened is in app/ui/main_opening.py, the menu bar in app/ui/main_menus.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app import INTENDED_USE
from app.audit import AuditLog
from app.paths import data_dir, models_dir
from app.settings import Settings
from app.store import Store, StoreError
from app.studies.plain_image import PlainImageHeader
from app.studies.scan import Library
from app.teaching_case import AttachedSources
from app.ui.burned_in import BurnedInConfirmation
from app.ui.chat import ChatPanel
from app.ui.chat_model_picker import ModelPicker
from app.ui.conversation_studies import ConversationStudies
from app.ui.empty_state import EmptyState
from app.ui.engine_runner import EngineRunner
from app.ui.gui_gc import collect_on_gui_thread
from app.ui.help_dialogs import AboutDialog, ShortcutsDialog
from app.ui.main_menus import build_menus, fill_window_menu
from app.ui.main_opening import StudyOpening
from app.ui.measurements_panel import MeasurementsPanel
from app.ui.practice import open_practice
from app.ui.series_strip import SeriesStrip
from app.ui.settings_dialog import FirstRunDialog, SettingsDialog
from app.ui.status_line import StatusLine
from app.ui.study_browser import StudyBrowser
from app.ui.tag_browser import TagBrowser
from app.ui.teaching_case_dialog import PracticeCaseDialog, TeachingCaseDialog
from app.ui.theme import apply_theme
from app.ui.viewer import Viewer
from app.ui.viewer_tools import build_toolbar
from app.ui.window_size import resize_within_screen
from inference.store.models import active_model, installed_models

PREFERRED_SIZE = QSize(1440, 900)  # at most: the window opens no larger than the screen's free area


class MainWindow(StudyOpening, QMainWindow):
    def __init__(self, settings: Settings | None = None, store: Store | None = None, audit: AuditLog | None = None):
        super().__init__()
        self.setWindowTitle("Huatuo Vision")
        resize_within_screen(self, PREFERRED_SIZE)
        self.settings = settings or Settings.load()
        self.store = store or Store.open_default()
        self.audit = audit or AuditLog(data_dir() / "audit.jsonl")
        self.runner = EngineRunner(self, self.settings.state_limit_bytes)
        self.series_viewer = Viewer()  # every kind of image: DICOM series and frames, PNG, JPEG, TIFF
        self.series_viewer.show_identifiers = self.settings.show_identifiers
        self.setStatusBar(StatusLine())  # standing messages until replaced; hints and outcomes time out
        self.series_viewer.message.connect(self.statusBar().flash)
        self.views = QStackedWidget()
        self.views.addWidget(self.series_viewer)
        self.model_picker = ModelPicker(models_dir())
        self.model_picker.chosen.connect(self._model_chosen)
        self.model_picker.failed.connect(self._model_chosen)
        self.chat = ChatPanel(self.runner, self.store, self.audit, self.settings)
        self.chat.attach_requested.connect(self.attach_view)
        self.chat.teaching_case_requested.connect(self.export_teaching_case)
        self.chat.practice_case_requested.connect(self.make_practice_case)
        self.attached_sources = AttachedSources()  # this session only: no file path goes into the store
        side = QWidget()
        layout = QVBoxLayout(side)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.model_picker)
        layout.addWidget(self.chat, 1)
        self.browser = StudyBrowser()
        self.browser.series_chosen.connect(self.show_series)
        self.browser.open_requested.connect(self.open_path)
        self.browser.set_recent(self.settings.recent)
        splitter = QSplitter()
        self.strip = SeriesStrip()
        self.strip.series_chosen.connect(self.show_series)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.views, 1)
        left_layout.addWidget(self._build_viewer_extras())
        splitter.addWidget(self.browser)
        splitter.addWidget(left)
        splitter.addWidget(side)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([240, 760, 440])
        self.setCentralWidget(splitter)
        build_menus(self)
        self.statusBar().showMessage(INTENDED_USE)
        self.current_path: str | None = None
        self.current_series = None
        self.library: Library | None = None
        self._opening: list | None = None  # a folder being read: [its path, the series on screen] (one per opening)
        self.installed: list = []
        self.model_manager = None  # created when first opened
        self.closed = False
        self.burned_in = BurnedInConfirmation(self)
        self.studies = ConversationStudies(self)  # reopening a conversation's study; attaching across studies
        self._opening_sources: list[str] = []
        self.setAcceptDrops(True)
        self.refresh_models()

    def refresh_models(self) -> None:
        models, problems = installed_models(models_dir())
        self.installed = models
        chosen, why_none = active_model(models_dir(), models)  # the default model: changed only by the user
        self.model_picker.show_models(models, chosen, why_none or "", problems)
        self.chat.set_model(chosen.folder if chosen is not None else None)

    def _model_chosen(self, problem: str = "") -> None:
        """The picker made another model the one in use, or could not (why): the window and the manager follow."""
        if problem:
            self.statusBar().showMessage(problem)
        self.refresh_models()
        if self.model_manager is not None:
            self.model_manager.refresh()

    def show_model_manager(self) -> None:
        from app.ui.model_manager import ModelManagerDialog  # imported on use: the Hub client is not needed to start

        if self.model_manager is None:
            self.model_manager = ModelManagerDialog(models_dir(), parent=self)
            self.model_manager.models_changed.connect(self.refresh_models)
        self.model_manager.show()
        self.model_manager.raise_()
        self.model_manager.activateWindow()

    def edit_settings(self) -> None:
        chosen, _ = active_model(models_dir(), self.installed)
        dialog = SettingsDialog(self.settings, self, model=chosen.manifest if chosen is not None else None,
                                runner=self.runner)
        if dialog.exec():
            new = dialog.result_settings()
            for name, value in vars(new).items():
                setattr(self.settings, name, value)
            self.settings.save()
            self.runner.state_limit_bytes = self.settings.state_limit_bytes  # from the engine's next start
            apply_theme(QApplication.instance(), self.settings.theme)
            self.identifiers_action.setChecked(self.settings.show_identifiers)
            self.chat.apply_settings()
            self.refresh_models()

    def attach_view(self, zoomed_region: bool) -> None:
        """Give the chat the image exactly as shown, whatever its kind (optionally only the zoomed region)."""
        viewer = self.series_viewer
        if viewer.shown is None or not viewer.frames:
            self.statusBar().flash("Open an image first: the model is asked about what the viewer shows.")
            return
        if not self.confirm_burned_in("attach") or not self.studies.confirm_attach():
            return
        png = viewer.model_view_png(zoomed_region)
        path, frame = viewer.frames[viewer.position]
        if isinstance(viewer.header, PlainImageHeader):
            label = Path(path).name
        else:
            label = f"{self.current_series.modality} {self.current_series.description} " \
                    f"{viewer.position + 1}/{len(viewer.frames)}".strip()
        if self.chat.add_attachment(png, label, zoomed=zoomed_region):
            self.attached_sources.record(png, path, frame)

    def _conversation_on_screen(self):
        return self.store.load(self.chat.conversation.id) if self.chat.conversation is not None else None

    def export_teaching_case(self) -> TeachingCaseDialog | None:
        """De-identified DICOM files of the attached views (or the whole series on screen) and the conversation."""
        conversation = self._conversation_on_screen()
        if conversation is None:
            return None
        series = self.current_series if self.chat.study_key == conversation.study_key else None
        files = [i.path for i in series.instances if i.has_pixels] if series is not None else []
        dialog = TeachingCaseDialog(conversation, self.attached_sources, files, self)
        dialog.message.connect(self.statusBar().flash)
        dialog.open()
        return dialog

    def make_practice_case(self) -> PracticeCaseDialog | None:
        conversation = self._conversation_on_screen()
        if conversation is None or not conversation.turns:
            return None
        dialog = PracticeCaseDialog(conversation, self)
        dialog.message.connect(self.statusBar().flash)
        dialog.deck_written.connect(self._open_deck)
        dialog.open()
        return dialog

    def _open_deck(self, path: Path, open_it: bool) -> None:
        if open_it:
            open_practice(self.runner, self, self.audit).open_deck(path)

    # --- start page, viewer tools and measurements ----------------------------------------------
    def _build_viewer_extras(self) -> QWidget:
        """The start page (until something is open), the viewer's toolbar, and the row under the viewer: the
        series strip and the measurements list."""
        self.empty_state = EmptyState()
        self.empty_state.open_file.connect(self.choose_file)
        self.empty_state.open_folder.connect(self.choose_folder)
        self.views.addWidget(self.empty_state)
        self.views.setCurrentWidget(self.empty_state)
        self.viewer_toolbar = build_toolbar(self.series_viewer, self)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.viewer_toolbar)
        self.measurements = MeasurementsPanel(self.series_viewer)
        self.measurements.setFixedWidth(260)
        self.views.currentChanged.connect(lambda _: self._viewer_tools_follow_view())
        self._viewer_tools_follow_view()
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.strip, 1)
        layout.addWidget(self.measurements)
        row.setFixedHeight(self.strip.maximumHeight())
        return row

    def _viewer_tools_follow_view(self) -> None:
        """The tools apply to the DICOM viewer only: disabled over the start page and plain images."""
        on = self.views.currentWidget() is self.series_viewer
        self.viewer_toolbar.setEnabled(on)
        self.measurements.setEnabled(on)

    # --- help ----------------------------------------------------------------------------------
    def show_shortcuts(self) -> ShortcutsDialog:
        dialog = ShortcutsDialog(self)
        dialog.show()
        return dialog

    def show_about(self) -> AboutDialog:
        chosen, _ = active_model(models_dir(), self.installed)
        dialog = AboutDialog(self, chosen.folder if chosen else None, chosen.manifest if chosen else None)
        dialog.show()
        return dialog

    # --- burned-in text ------------------------------------------------------------------------
    def confirm_burned_in(self, verb: str = "attach") -> bool:
        """Before the shown image leaves the viewer: the user confirms when it may carry burned-in text."""
        confirmed, message = self.burned_in.confirm(self.series_viewer, verb)
        if message:
            self.statusBar().flash(message)
        return confirmed

    def _fill_window_menu(self) -> None:
        fill_window_menu(self.window_menu, self.series_viewer)

    def show_tags(self) -> None:
        header = self.series_viewer.header
        if header is not None and not isinstance(header, PlainImageHeader):  # a PNG/JPEG has no tags
            TagBrowser(self.series_viewer.header, self.identifiers_action.isChecked(), self).show()

    def _set_identifiers(self, on: bool) -> None:
        self.settings.show_identifiers = on
        self._save_settings()
        self.series_viewer.show_identifiers = on
        self.series_viewer._update_overlay()
        self.browser.set_show_identifiers(on)

    def _save_settings(self) -> None:
        try:
            self.settings.save()
        except OSError as exc:
            self.statusBar().showMessage(f"Settings could not be saved: {exc}")

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self.closed = True
        if self.model_manager is not None:
            self.model_manager.shutdown()
        self.runner.shutdown()
        self.store.close()
        super().closeEvent(event)


def run_gui(paths: list[str]) -> int:
    from app import privacy
    from app.qt_check import xcb_problem

    if QApplication.instance() is None and (problem := xcb_problem()):  # Qt would abort naming the wrong library
        print(f"error: {problem}", file=sys.stderr)
        return 1
    private = privacy.start()  # before anything is opened: the data folder and every file in it are the user's only
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Huatuo Vision")
    collect_on_gui_thread(app)  # worker threads never destroy Qt objects caught in reference cycles
    settings = Settings.load()
    apply_theme(app, settings.theme)
    if settings.acknowledged is None:
        if not FirstRunDialog().exec():
            return 0
        settings.acknowledge()
        settings.save()
    try:
        store, note = Store.open_or_set_aside(data_dir() / "conversations.sqlite3")
    except StoreError as exc:
        QMessageBox.critical(None, "Conversations cannot be opened", str(exc))
        return 1
    window = MainWindow(settings, store=store)
    window.show()
    if note:
        QMessageBox.warning(window, "Conversation database could not be read", note)
    if private_note := private.notice():  # said once: the next start finds nothing to narrow
        QMessageBox.information(window, "Your data folder is now private", private_note)
    from app.cpu_check import unsupported_cpu_message

    if problem := unsupported_cpu_message():  # the engine could not run here; say so instead of crashing later
        QMessageBox.warning(window, "Processor not supported", problem)
    for path in paths[:1]:
        window.open_path(path)
    return app.exec()
