"""Both themes, in the app's real windows: every text stands out from what is behind it by WCAG 2.1's 4.5:1, every
check box and radio indicator by 3:1. Text colours are read from the palettes the widgets end up with (style sheets
included); indicators are measured on the rendered window.

Each theme is checked as the app starts in it and after switching to it in the settings (style sheets that name
palette colours must follow the switch)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPalette
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractScrollArea,
    QAbstractSpinBox,
    QApplication,
    QCheckBox,
    QComboBox,
    QGroupBox,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenuBar,
    QProgressBar,
    QRadioButton,
    QStatusBar,
    QStyle,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.ui.theme import apply_theme
from app.ui.viewer import OutlinedText

Role = QPalette.ColorRole
TEXT_RATIO, INDICATOR_RATIO = 4.5, 3.0


def _luminance(colour: QColor) -> float:
    def channel(value: float) -> float:
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in colour.getRgbF()[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: QColor, b: QColor) -> float:
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _over(colour: QColor, background: QColor) -> QColor:
    """A translucent colour as it shows on the background."""
    alpha = colour.alphaF()
    return QColor.fromRgbF(*(alpha * c + (1 - alpha) * b
                             for c, b in zip(colour.getRgbF()[:3], background.getRgbF()[:3], strict=True)))


def _behind(widget: QWidget) -> QColor:
    """The colour the widget's text is drawn on: its own or the nearest ancestor's painted background."""
    w = widget
    while w is not None:
        if w.isWindow() or w.autoFillBackground() or w.testAttribute(Qt.WidgetAttribute.WA_StyledBackground):
            return w.palette().color(w.backgroundRole())
        w = w.parentWidget()
    return QApplication.palette().color(Role.Window)


def _text_pairs(widget: QWidget) -> list[tuple[str, QColor, QColor]]:
    """(what, text colour, background) for each kind of text the widget shows."""
    p = widget.palette()
    if isinstance(widget, QAbstractScrollArea) and not isinstance(widget, QTextEdit | QAbstractItemView):
        return []
    if isinstance(widget, QHeaderView):
        return [("header", p.color(Role.ButtonText), p.color(Role.Button))]
    if isinstance(widget, QLineEdit | QAbstractSpinBox | QTextEdit | QAbstractItemView):
        return [("text", p.color(Role.Text), p.color(Role.Base)),
                ("selected text", p.color(Role.HighlightedText), p.color(Role.Highlight)),
                ("placeholder", p.color(Role.PlaceholderText), p.color(Role.Base))]
    if isinstance(widget, QComboBox):
        return ([("text", p.color(Role.Text), p.color(Role.Base))] if widget.isEditable()
                else [("text", p.color(Role.ButtonText), p.color(Role.Button))])
    if isinstance(widget, QProgressBar):
        return [("text", p.color(Role.Text), p.color(Role.Base)),
                ("text on the bar", p.color(Role.HighlightedText), p.color(Role.Highlight))]
    if isinstance(widget, QMenuBar):
        return [("menu", p.color(Role.ButtonText), p.color(Role.Window))]
    if isinstance(widget, QCheckBox | QRadioButton | QGroupBox | QStatusBar):
        return [("label", p.color(Role.WindowText), _behind(widget))]
    if isinstance(widget, QAbstractButton):
        return [("button", p.color(Role.ButtonText), p.color(Role.Button))] if widget.text() else []
    if isinstance(widget, QLabel) and not isinstance(widget, OutlinedText):  # the viewer's own: tests/app/test_viewer
        return [("label", p.color(Role.WindowText), _behind(widget))] if widget.text() else []
    return []


def _describe(widget: QWidget) -> str:
    text = widget.text() if hasattr(widget, "text") and callable(widget.text) else ""
    return f"{type(widget).__name__} {widget.objectName() or ''} {str(text)[:40]!r}".strip()


def _window_image(window: QWidget) -> np.ndarray:
    image = window.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    array = np.frombuffer(image.constBits(), np.uint8, image.bytesPerLine() * image.height())
    return array.reshape(image.height(), image.bytesPerLine())[:, : image.width() * 3].reshape(
        image.height(), image.width(), 3)


def _indicator_contrast(window: QWidget, image: np.ndarray, box: QAbstractButton) -> float:
    """The strongest contrast between the rendered indicator and the colour behind the button."""
    style = box.style()
    metric = (QStyle.PixelMetric.PM_ExclusiveIndicatorWidth if isinstance(box, QRadioButton)
              else QStyle.PixelMetric.PM_IndicatorWidth)
    width = style.pixelMetric(metric, None, box) + 2
    origin = box.mapTo(window, box.rect().topLeft())
    region = image[origin.y(): origin.y() + box.height(), origin.x(): origin.x() + width].reshape(-1, 3)
    behind = _behind(box)
    return max(contrast(QColor(*map(int, pixel)), behind) for pixel in np.unique(region, axis=0))


def _check(window: QWidget, theme: str) -> list[str]:
    failures = []
    window.show()
    QApplication.processEvents()
    image = _window_image(window)
    for widget in [window, *window.findChildren(QWidget)]:
        if not widget.isVisibleTo(window) and widget is not window or not widget.isEnabled():
            continue  # WCAG leaves disabled controls out
        for what, text, behind in _text_pairs(widget):
            ratio = contrast(_over(text, behind), behind)
            if ratio < TEXT_RATIO:
                failures.append(f"{theme}: {_describe(widget)} {what} {text.name()} on {behind.name()}: {ratio:.2f}")
        if isinstance(widget, QCheckBox | QRadioButton):
            ratio = _indicator_contrast(window, image, widget)
            if ratio < INDICATOR_RATIO:
                failures.append(f"{theme}: {_describe(widget)} indicator: {ratio:.2f}")
    return failures


@pytest.fixture
def qapp_theme(qapp):
    style, palette = qapp.style().name(), QPalette(qapp.palette())
    yield qapp
    qapp.setStyle(style)  # as the other tests expect it
    qapp.setPalette(palette)


def _windows(qtbot, tmp_path, monkeypatch):
    from app.practice import sample_deck_path
    from app.settings import Settings
    from app.ui.main import MainWindow
    from app.ui.model_manager import ModelManagerDialog
    from app.ui.practice import PracticeWindow
    from app.ui.settings_dialog import FirstRunDialog, SettingsDialog

    monkeypatch.setenv("HUATUO_DATA_DIR", str(tmp_path / "data"))
    main = MainWindow()
    manager = ModelManagerDialog(tmp_path / "models", catalogue=[], bandwidth_gb_s=20.0)
    manager.error_label.setText("model tiny: tiny.gguf is truncated")  # as a failed job leaves it
    boxes = QWidget()  # every indicator widget the app uses, unchecked (the state that went missing)
    layout = QVBoxLayout(boxes)
    for widget in (QCheckBox("a check box"), QRadioButton("a radio button"), QRadioButton("another")):
        layout.addWidget(widget)
    practice = PracticeWindow(main.runner)
    practice.open_deck(sample_deck_path())  # a multiple-choice case: its options are radio buttons
    windows = [main, manager, SettingsDialog(Settings()), FirstRunDialog(), practice, boxes]
    for window in windows:
        qtbot.addWidget(window)
    return windows


@pytest.mark.parametrize("start, theme", [("light", "light"), ("dark", "dark"), ("light", "dark"), ("dark", "light")])
def test_every_text_and_indicator_has_enough_contrast(qapp_theme, qtbot, tmp_path, monkeypatch, start, theme):
    apply_theme(qapp_theme, start)
    windows = _windows(qtbot, tmp_path, monkeypatch)
    if theme != start:
        apply_theme(qapp_theme, theme)  # switched in the settings while the windows are open
    failures = [failure for window in windows for failure in _check(window, theme)]
    assert not failures, "\n".join(failures)
    kinds = {type(w) for window in windows for w in window.findChildren(QWidget)}
    assert {QCheckBox, QRadioButton, QLabel, QLineEdit} <= kinds  # the walk saw them
    assert len(practice_radios := windows[4].findChildren(QRadioButton)) >= 2 and practice_radios[0].isVisible()
    windows[1].shutdown(10000)


def test_the_contrast_measure_is_wcags():
    assert contrast(QColor("#000000"), QColor("#ffffff")) == pytest.approx(21.0)
    assert contrast(QColor("#777777"), QColor("#ffffff")) == pytest.approx(4.48, abs=0.01)
    assert contrast(_over(QColor(0, 0, 0, 128), QColor("#202124")), QColor("#202124")) < 1.5


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_answer_footer_and_practice_results_are_readable(qapp, qtbot, theme):
    from app import INTENDED_USE
    from app.store import StoredConversation, StoredTurn
    from app.ui.practice_widgets import STYLE
    from app.ui.transcript import Transcript

    apply_theme(qapp, theme)
    transcript = Transcript()
    qtbot.addWidget(transcript)
    turn = StoredTurn(1, 0, "Q", [], "An answer.", "stop", None, {}, "")
    transcript.show_conversation(StoredConversation(1, "t", None, None, {}, {}, "", "", [turn]))
    footer = transcript.document().find(INTENDED_USE)
    assert not footer.isNull()
    base = transcript.palette().color(Role.Base)
    assert contrast(footer.charFormat().foreground().color(), base) >= TEXT_RATIO

    for name in ("right", "wrong"):
        label = QLabel("Correct")
        label.setObjectName(name)
        label.setStyleSheet(STYLE)
        qtbot.addWidget(label)
        label.ensurePolished()
        p = label.palette()
        label.setAutoFillBackground(True)
        image = label.grab().toImage()
        background = image.pixelColor(1, image.height() // 2)  # the label's own fill, left of the text
        assert contrast(p.color(Role.WindowText), background) >= TEXT_RATIO, (theme, name)


@pytest.mark.parametrize("start, theme", [("light", "light"), ("dark", "dark"), ("dark", "light")])
def test_the_conversation_list_headings_are_readable(qapp_theme, qtbot, tmp_path, start, theme):
    """"This study", "Other studies" and "No conversation about it yet" are headings, not disabled entries: drawn as
    readable text in both themes, and after a switch."""
    from app.store import Store
    from app.ui.conversation_list import ConversationList

    apply_theme(qapp_theme, start)
    with Store(tmp_path / "conversations.sqlite3") as store:
        store.create_conversation("About another study", store.study_key("other"))
        listed = ConversationList(store)
        qtbot.addWidget(listed)
        listed.resize(320, 300)
        listed.show_study(store.study_key("ct"))
        listed.show()
        if theme != start:
            apply_theme(qapp_theme, theme)
        QApplication.processEvents()
        assert listed.headings()[:3] == ["# This study", "# No conversation about it yet", "# Other studies"]
        image = _window_image(listed.list.viewport())
        base = listed.list.palette().color(Role.Base)
        for row in range(3):
            rect = listed.list.visualItemRect(listed.list.item(row))
            pixels = image[rect.top(): rect.bottom() + 1, rect.left(): rect.right() + 1].reshape(-1, 3)
            strongest = max(contrast(QColor(*map(int, pixel)), base) for pixel in np.unique(pixels, axis=0))
            assert strongest >= TEXT_RATIO, (theme, listed.list.item(row).text(), strongest)


@pytest.mark.parametrize("start, theme", [("light", "dark"), ("dark", "light")])
def test_the_transcript_links_and_footer_follow_a_theme_switch(qapp_theme, qtbot, start, theme):
    """Edit, Copy and the intended-use footer take their colours when written: a switch writes them again, so they
    stay readable on the new background (and the reader keeps their place)."""
    from app import INTENDED_USE
    from app.store import StoredConversation, StoredTurn
    from app.ui.transcript import Transcript

    apply_theme(qapp_theme, start)
    transcript = Transcript()
    qtbot.addWidget(transcript)
    turns = [StoredTurn(i, 0, f"Question {i}", [], "An answer.\n\n" * 20, "stop", None, {}, "") for i in (1, 2, 3)]
    transcript.resize(400, 300)
    transcript.show()
    transcript.show_conversation(StoredConversation(1, "t", None, None, {}, {}, "", "", turns))
    transcript.verticalScrollBar().setValue(transcript.verticalScrollBar().maximum() // 2)
    position = transcript.verticalScrollBar().value()
    apply_theme(qapp_theme, theme)  # switched in the settings with the conversation on screen
    qtbot.waitUntil(lambda: transcript.palette().color(Role.Base) == qapp_theme.palette().color(Role.Base))
    base = transcript.palette().color(Role.Base)
    for text in ("Edit", "Copy", INTENDED_USE):
        found = transcript.document().find(text)
        assert not found.isNull(), text
        colour = found.charFormat().foreground().color()
        assert contrast(colour, base) >= TEXT_RATIO, (theme, text, colour.name(), base.name())
    assert transcript.verticalScrollBar().value() == position
