"""Screenshots of the real windows for the documentation.

    xvfb-run -s "-screen 0 1600x1000x24" python docs/screenshots.py [--model DIR]

Opens the app on a real CT image, asks a question through the real engine and saves the main window with the
streamed answer, the model manager and practice mode as PNG files in docs/. Without --model the answer comes
from a tiny random-weight test model (built here; needs the dev extras), so its text is not meaningful prose.
Also, in the light and the dark theme: the start page (`empty-state-THEME.png`), the viewer with its toolbar, a
ruler and an ellipse region (`viewer-tools-THEME.png`), an angle and a rectangle region (`measurement-THEME.png`),
and practice mode with a case image windowed and zoomed in its viewer (`practice-viewer-THEME.png`). `--only viewer`
makes just those (no model needed). In the theme asked for (`--theme`), the chat with two attachments, one a zoomed
region (`attachments-THEME.png`).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--theme", default="light")
    parser.add_argument("--only", choices=["all", "viewer"], default="all")
    args = parser.parse_args()

    import os

    work = Path(tempfile.mkdtemp())
    os.environ["HUATUO_DATA_DIR"] = str(work / "data")
    from pydicom.data import get_testdata_file
    from PySide6.QtWidgets import QApplication

    from app.settings import Settings
    from app.ui.main import MainWindow
    from app.ui.theme import apply_theme

    app = QApplication([])
    for theme in ("light", "dark"):
        viewer_screenshots(args.out, theme)
        practice_viewer_screenshot(args.out, theme)
    if args.only == "viewer":
        shutil.rmtree(work, ignore_errors=True)
        return 0

    model = args.model
    if model is None:
        from tests.support.checkpoints import tiny_model

        model = tiny_model(work)
    shutil.copytree(model, work / "data" / "models" / "HuatuoGPT-Vision-7B")
    settings = Settings(greedy=True, max_new_tokens=120, acknowledged="screenshots", theme=args.theme)
    settings.save(work / "data")

    apply_theme(app, args.theme)
    window = MainWindow(Settings.load())
    window.resize(1500, 920)
    window.show()

    window.open_path(get_testdata_file("CT_small.dcm"))
    wait(lambda: window.series_viewer.shown is not None)
    window.attach_view(False)
    window.chat.input.setPlainText("Describe this image: the imaging technique, the view and the structures you "
                                   "can see.")
    finished = []
    window.chat.send()
    window.chat.request.finished.connect(finished.append)
    wait(lambda: bool(finished), 120_000)
    wait(lambda: False, 300)
    args.out.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(args.out / "main-window.png"))
    print(f"saved {args.out / 'main-window.png'}")
    attachments_screenshot(window, args.out / f"attachments-{args.theme}.png")

    try:
        from app.ui.model_manager import ModelManagerDialog

        manager = ModelManagerDialog(parent=window)
        manager.resize(1100, 640)
        manager.show()
        # The fit labels are measured in the background (the memory bandwidth first): shown once all are in.
        wait(lambda: manager._fits and None not in manager._fits.values(), 60_000)
        manager.grab().save(str(args.out / "model-manager.png"))
        print(f"saved {args.out / 'model-manager.png'}")
        manager.shutdown()
        manager.close()
    except ImportError as exc:
        print(f"model manager not shown: {exc}")

    try:
        from app.ui.practice import open_practice

        practice = open_practice(window.runner, window)
        practice.resize(1200, 760)
        from app.practice import sample_deck_path

        practice.open_deck(sample_deck_path())
        practice.case.option_buttons[0].click()
        done = []
        practice.reveal()
        practice.model_answer.request.finished.connect(done.append)
        wait(lambda: bool(done), 120_000)
        practice.show()
        wait(lambda: False, 500)
        practice.grab().save(str(args.out / "practice-mode.png"))
        print(f"saved {args.out / 'practice-mode.png'}")
        practice.close()
    except ImportError as exc:
        print(f"practice mode not shown: {exc}")
    window.close()
    shutil.rmtree(work, ignore_errors=True)
    return 0


def attachments_screenshot(window, path: Path) -> None:
    """The chat with the next question typed and two attachments, the second a zoomed region, read by the model."""
    window.attach_view(False)
    window.series_viewer.scale(2.0, 2.0)
    window.attach_view(True)
    wait(lambda: window.chat.preparation_status.text() == "ready", 120_000)
    window.chat.input.setPlainText("Is the bright region in the zoomed view bone or contrast?")
    wait(lambda: False, 300)
    save_small(window.chat, path)
    window.chat.clear_attachments()
    window.chat.input.clear()


def wait(condition, timeout_ms=60_000):
    from PySide6.QtCore import QEventLoop, QTimer

    loop_timer = QTimer()
    loop = QEventLoop()
    loop_timer.timeout.connect(lambda: condition() and loop.quit())
    loop_timer.start(20)
    QTimer.singleShot(timeout_ms, loop.quit)
    loop.exec()


def save_small(widget, path: Path) -> None:
    """A PNG of the widget in 256 colours: UI and grey-scale images lose nothing visible, the file a third."""
    from PIL import Image
    from PySide6.QtCore import QBuffer, QIODevice

    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    widget.grab().toImage().save(buffer, "PNG")
    import io

    image = Image.open(io.BytesIO(bytes(buffer.data()))).convert("RGB")
    image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    print(f"saved {path}")


def viewer_screenshots(out: Path, theme: str) -> None:
    """The start page, then CT_small with the toolbar, a ruler and an ellipse region, in one theme."""
    from pydicom.data import get_testdata_file
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from app.settings import Settings
    from app.ui.main import MainWindow
    from app.ui.theme import apply_theme
    from app.ui.viewer_tools import Tool

    apply_theme(QApplication.instance(), theme)
    settings = Settings.load()
    settings.theme = theme
    window = MainWindow(settings)
    window.resize(1280, 780)
    window.show()
    wait(lambda: False, 300)
    out.mkdir(parents=True, exist_ok=True)
    save_small(window, out / f"empty-state-{theme}.png")

    window.open_path(get_testdata_file("CT_small.dcm"))
    viewer = window.series_viewer
    wait(lambda: viewer.shown is not None)
    wait(lambda: False, 200)

    def drag(start, end):
        a, b = viewer.mapFromScene(QPointF(*start)), viewer.mapFromScene(QPointF(*end))
        QTest.mousePress(viewer.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
        QTest.mouseMove(viewer.viewport(), b)
        QTest.mouseRelease(viewer.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)

    viewer.select_tool(Tool.RULER)
    drag((22, 64), (106, 64))
    viewer.select_tool(Tool.ELLIPSE)
    drag((50, 80), (78, 100))
    QTest.mouseMove(viewer.viewport(), viewer.mapFromScene(QPointF(64, 40)))  # the probe in the overlay
    wait(lambda: False, 300)
    save_small(window, out / f"viewer-tools-{theme}.png")

    viewer.clear_measurements()
    viewer.select_tool(Tool.ANGLE)
    for x, y in ((26, 52), (48, 66), (76, 50)):  # one end, the vertex, the other end
        point = viewer.mapFromScene(QPointF(x, y))
        QTest.mouseClick(viewer.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, point)
    viewer.select_tool(Tool.RECTANGLE)
    drag((70, 80), (90, 96))
    QTest.mouseMove(viewer.viewport(), viewer.mapFromScene(QPointF(64, 40)))
    wait(lambda: False, 300)
    save_small(window, out / f"measurement-{theme}.png")
    window.close()


def practice_viewer_screenshot(out: Path, theme: str) -> None:
    """Practice mode at 1366×768 on the sample deck: an option chosen, the case image windowed and zoomed."""
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from app.practice import sample_deck_path
    from app.ui.engine_runner import EngineRunner
    from app.ui.practice import PracticeWindow
    from app.ui.theme import apply_theme

    apply_theme(QApplication.instance(), theme)
    runner = EngineRunner()  # the case page before the reveal: no model needed
    window = PracticeWindow(runner)
    window.resize(1366 - 16, 768 - 80)  # what a 1366×768 screen leaves for a window
    window.show()
    window.open_deck(sample_deck_path())
    window.show_item(1)
    viewer = window.case.viewer
    wait(lambda: viewer.shown is not None)
    window.case.option_buttons[0].click()
    centre = viewer.viewport().rect().center()
    for button, delta in ((Qt.MouseButton.LeftButton, QPoint(-70, 25)), (Qt.MouseButton.RightButton, QPoint(0, -30))):
        QTest.mousePress(viewer.viewport(), button, Qt.KeyboardModifier.NoModifier, centre)
        QTest.mouseMove(viewer.viewport(), centre + delta)
        QTest.mouseRelease(viewer.viewport(), button, Qt.KeyboardModifier.NoModifier, centre + delta)
    wait(lambda: False, 300)
    save_small(window, out / f"practice-viewer-{theme}.png")
    window.close()
    runner.shutdown()


if __name__ == "__main__":
    sys.exit(main())
