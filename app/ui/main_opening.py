"""How the main window opens studies: File › Open, a folder, a drop of files and folders, a recent study; read off
the GUI thread, a folder shown from its first image on while the rest is read."""

from __future__ import annotations

from pathlib import Path

from app import INTENDED_USE
from app.imaging import ImageOpenError
from app.opening import load_path, load_several
from app.studies.scan import Library, ScanProgress
from app.ui import file_dialogs
from app.ui.background import Task, run_in_background
from app.ui.conversation_studies import study_key_of
from app.ui.series_loading import keep_place, series_with_uid


class StudyOpening:
    """Mixed into the main window (a QMainWindow with the viewer, browser, strip, chat and store it names)."""

    def choose_file(self) -> None:
        path = file_dialogs.open_file(self, file_dialogs.STUDY_FILE, "Open image or DICOM",
                                      "Images and DICOM (*.png *.jpg *.jpeg *.tif *.tiff *.dcm *);;All files (*)")
        if path:
            self.open_path(path)

    def choose_folder(self) -> None:
        path = file_dialogs.open_folder(self, file_dialogs.STUDY_FOLDER, "Open a folder of DICOM files")
        if path:
            self.open_path(path)

    def open_path(self, path: str) -> Task:
        self.statusBar().showMessage(f"Opening {Path(path).name}…")
        renderer = self.series_viewer.renderer
        self._opening_sources = [path]
        return self._read(lambda cancel: load_path(path, renderer), path)

    def _read(self, load, path: str) -> Task:
        """Read in the background; only the newest opening reaches the window (an earlier one still being read
        when another was asked for is dropped, whichever ends first)."""
        opening = self._opening = [path, None]  # the path and the series on screen while it is read
        return run_in_background(
            load, on_done=lambda loaded: self._opening is opening and self._on_loaded(loaded),
            on_failed=lambda error: self._opening is opening and self._on_failed(error),
            on_progress=lambda part: self._opening is opening and self._on_read_so_far(part))

    def open_paths(self, paths: list[str]) -> Task:
        """Files or folders dropped together: one opens as File › Open would; several are read together."""
        if len(paths) == 1:
            return self.open_path(paths[0])
        self.statusBar().showMessage(f"Opening {len(paths)} items…")
        renderer = self.series_viewer.renderer
        self._opening_sources = list(paths)
        return self._read(lambda cancel: load_several(paths, renderer), paths[0])

    def _on_read_so_far(self, part: ScanProgress) -> None:
        """The first image of a folder at once, then the series as read so far: scrolling works on that."""
        if self.closed:
            return
        path, uid = self._opening
        shown = series_with_uid(part.library, uid)
        if shown is not None and keep_place(self.series_viewer, [(i.path, f) for i, f in shown.frames]):
            self.current_series = shown
        elif uid is None:
            first = next(s for s in part.library.all_series() if s.is_image)
            self.show_series(first)  # noted in the opening: what it reads next keeps it on screen
        self.strip.show_scan(part.done, part.total)  # the sorted series replace it once all is read
        self.statusBar().showMessage(f"Reading {Path(path).name}: {part.done} of {part.total} files…")

    def _on_loaded(self, loaded) -> None:
        if self.closed:  # a file read in the background arrived after the window was closed
            return
        path, content = loaded
        self.current_path = path
        self.studies.loaded(self._opening_sources, content)
        self.settings.add_recent(str(Path(path).resolve()))
        self._save_settings()
        self.browser.set_recent(self.settings.recent)
        if isinstance(content, Library):
            self.library = content
            series = [s for s in content.all_series() if s.is_image]
            self.browser.set_library(content, self.settings.show_identifiers)
            self.strip.set_series(series)
            shown = series_with_uid(content, self._opening[1]) if self._opening else None  # already on screen
            wanted = self.studies.wanted_series(series, shown)  # a conversation's study, opened again for it
            if wanted is None and shown is not None and \
                    keep_place(self.series_viewer, [(i.path, f) for i, f in shown.frames]):
                self.current_series = shown
            else:
                self.show_series(wanted or series[0])
            self._opening = None
            skipped = f" · {len(content.skipped)} file(s) could not be read" if content.skipped else ""
            self.statusBar().showMessage(f"{Path(path).name} · {len(series)} series{skipped} · {INTENDED_USE}")
            return
        self._opening = None
        self.library, self.current_series = None, None
        self.browser.set_library(None, False)
        self.strip.set_series([])
        self.series_viewer.set_frames([(Path(path), 0)])
        self.views.setCurrentWidget(self.series_viewer)
        key = self.store.study_key(str(Path(path).resolve()))
        self.chat.set_study(key, None, {"file": str(Path(path).resolve())})
        self.statusBar().showMessage(f"{Path(path).name} · {content.Columns}×{content.Rows} · {INTENDED_USE}")

    def _on_failed(self, error: Exception) -> None:
        if self.closed:
            return
        self._opening = None
        if isinstance(error, ImageOpenError):
            self.statusBar().showMessage(str(error))
        else:  # not expected from a reader, but the status line must not stay on "Opening…"
            self.statusBar().showMessage(f"Could not open the file: {str(error) or type(error).__name__}")

    def show_series(self, series) -> None:
        self.current_series = series
        if self._opening is not None:  # chosen while the folder is read: the sorted series keep it on screen
            self._opening[1] = series.uid
        self.series_viewer.set_frames([(i.path, f) for i, f in series.frames])
        self.views.setCurrentWidget(self.series_viewer)
        self.series_viewer.setFocus()
        first = series.instances[0]
        info = {"patient_name": first.patient_name, "patient_id": first.patient_id, "study_uid": first.study_uid,
                "study_description": first.study_description}
        self.chat.set_study(study_key_of(self.store, series), first.modality, info)
        self.statusBar().showMessage(f"{series.modality} · {series.description} · {len(series.frames)} image(s) · "
                                     f"{INTENDED_USE}")

    # --- drag and drop -------------------------------------------------------------------------
    @staticmethod
    def _dropped_paths(event) -> list[str]:
        mime = event.mimeData()
        return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()] if mime.hasUrls() else []

    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if self._dropped_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802 (Qt override)
        paths = self._dropped_paths(event)
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.open_paths(paths)
