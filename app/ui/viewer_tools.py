"""The viewer's tools and keys, defined once: the viewer dispatches its keys from `COMMANDS`, the toolbar is built
from it, and Help › Keyboard shortcuts lists it, so the three cannot disagree.

Left-drag does what the selected tool does (window/level unless another is chosen; the angle takes three clicks);
middle-drag always pans,
right-drag always zooms, as in RadiAnt and OHIF. A tool's key selects it; pressing it again goes back to
window/level.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from PySide6.QtCore import QKeyCombination, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QToolBar

from app.studies.presets import CT_PRESETS


class Tool(Enum):
    WINDOW = "Window/level"
    ZOOM = "Zoom"
    PAN = "Pan"
    RULER = "Ruler"
    ANGLE = "Angle"
    ELLIPSE = "Ellipse"
    RECTANGLE = "Rectangle"
    PROBE = "Probe"


@dataclass(frozen=True)
class Command:
    keys: tuple[str, ...]  # QKeySequence text, e.g. "Shift+R"
    description: str
    method: str  # the Viewer method it calls
    args: tuple = ()
    label: str = ""  # its toolbar text; "" when it is not on the toolbar
    tool: Tool | None = None  # selecting a left-drag tool: a checkable toolbar button

    @property
    def tooltip(self) -> str:
        return f"{self.description} ({' / '.join(self.keys)})"


def _tool(key: str, tool: Tool, label: str, description: str) -> Command:
    return Command((key,), description, "select_tool", (tool,), label, tool)


# HU presets on number keys, as OHIF has them (1 stays "actual size"); applied only to CT in Hounsfield units.
PRESET_KEYS = dict(zip("23456789", ("soft tissue", "lung", "bone", "brain", "subdural", "stroke", "liver",
                                    "mediastinum"), strict=True))
assert set(PRESET_KEYS.values()) == set(CT_PRESETS)

COMMANDS: list[Command] = [
    _tool("W", Tool.WINDOW, "W/L", "Left-drag sets window and level"),
    _tool("Z", Tool.ZOOM, "Zoom", "Left-drag zooms"),
    _tool("P", Tool.PAN, "Pan", "Left-drag pans"),
    _tool("M", Tool.RULER, "Ruler", "Left-drag measures a length on this slice"),
    _tool("G", Tool.ANGLE, "Angle", "Three clicks measure an angle on this slice: one end, the vertex, the other end"),
    _tool("E", Tool.ELLIPSE, "Ellipse", "Left-drag draws an ellipse: mean, SD, min, max and area on this slice"),
    _tool("B", Tool.RECTANGLE, "Rectangle",
          "Left-drag draws a rectangle: mean, SD, min, max and area on this slice"),
    _tool("D", Tool.PROBE, "Probe", "Left-click marks the value under the cursor on this slice"),
    Command(("R",), "Rotate 90° clockwise", "rotate_view", (90,), "Rotate"),
    Command(("Shift+R",), "Rotate 90° counter-clockwise", "rotate_view", (-90,)),
    Command(("H",), "Flip left-right", "flip", (True,), "Flip H"),
    Command(("V",), "Flip up-down", "flip", (False,), "Flip V"),
    Command(("I",), "Invert grey levels", "toggle_invert", (), "Invert"),
    Command(("Space",), "Play or stop the series as a loop (cine)", "toggle_cine", (), "Cine"),
    Command(("F",), "Fit the image to the view", "fit", (), "Fit"),
    Command(("1",), "Actual size (one image pixel per screen pixel)", "actual_size"),
    Command(("Esc",), "Reset window, zoom, rotation and flips", "reset", (), "Reset"),
    Command(("Up",), "Previous slice", "step", (-1,)),
    Command(("Down",), "Next slice", "step", (1,)),
    Command(("PgUp",), "Ten slices back", "step", (-10,)),
    Command(("PgDown",), "Ten slices on", "step", (10,)),
    Command(("Home",), "First slice", "go_to", (0,)),
    Command(("End",), "Last slice", "go_to_last"),
    Command(("0",), "Window from the file", "set_window", (None,)),
    Command(("A",), "Automatic window from the pixels", "auto_window"),
    *(Command((key,), f"CT preset: {name} (CT in HU only)", "apply_preset_key", (name,))
      for key, name in PRESET_KEYS.items()),
    Command(("Del", "Backspace"), "Delete the last measurement on this slice", "delete_last_measurement"),
]

# Mouse conventions, listed in Help › Keyboard shortcuts next to the keys.
MOUSE: list[tuple[str, str]] = [
    ("Left drag", "the selected tool (window/level unless another is chosen)"),
    ("Three left clicks", "with the Angle tool: one end, the vertex, the other end"),
    ("Middle drag", "pan"),
    ("Right drag", "zoom"),
    ("Wheel", "previous / next slice"),
    ("Ctrl+Wheel", "zoom"),
    ("Hover", "the value under the cursor, in the overlay"),
]


def _combination(keys: str) -> int:
    return QKeySequence(keys)[0].toCombined()


KEYMAP: dict[int, Command] = {_combination(k): c for c in COMMANDS for k in c.keys}


def command_for(event) -> Command | None:
    """The command a key press means (keypad digits are digits)."""
    modifiers = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
    return KEYMAP.get(QKeyCombination(modifiers, Qt.Key(event.key())).toCombined())


def run(viewer, command: Command) -> None:
    getattr(viewer, command.method)(*command.args)


def build_toolbar(viewer, parent=None) -> QToolBar:
    """The viewer's toolbar: the left-drag tools (one checked, following the viewer) and one-click actions,
    each with its shortcut in the tooltip."""
    bar = QToolBar("Viewer tools", parent)
    bar.setObjectName("viewer-tools")
    bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    group = QActionGroup(bar)
    group.setExclusive(True)
    tool_actions: dict[Tool, QAction] = {}
    for command in COMMANDS:
        if not command.label:
            continue
        if command.tool is None and command.method == "rotate_view":
            bar.addSeparator()
        action = QAction(command.label, bar)
        action.setToolTip(command.tooltip)
        action.setObjectName(f"tool-{command.label}")
        if command.tool is not None:
            action.setCheckable(True)
            group.addAction(action)
            tool_actions[command.tool] = action
            action.triggered.connect(lambda _=False, t=command.tool: viewer.select_tool(t, toggle=False))
        else:
            action.triggered.connect(lambda _=False, c=command: run(viewer, c))
            if command.method == "toggle_cine":
                action.setCheckable(True)
                viewer.cine_changed.connect(action.setChecked)
        bar.addAction(action)
    tool_actions[viewer.tool].setChecked(True)
    viewer.tool_changed.connect(lambda tool: tool_actions[tool].setChecked(True))
    bar.tool_actions = tool_actions
    return bar
