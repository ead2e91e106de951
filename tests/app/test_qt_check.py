"""The check of the system libraries Qt's xcb platform needs, against the installed PySide6 plugin."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import PySide6
import pytest

from app.qt_check import XCB_LIBRARIES, explain, missing, uses_xcb

QT = Path(PySide6.__file__).parent / "Qt"
RUNTIME = ("libc.so", "libm.so", "libstdc++.so", "libgcc_s.so", "ld-linux")


def _needed(path: Path) -> list[str]:
    """The DT_NEEDED entries of a 64-bit little-endian ELF file (what `readelf -d` lists as NEEDED)."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, f"{path}: not a 64-bit little-endian ELF"
    (section_offset,) = struct.unpack_from("<Q", data, 0x28)
    entry_size, count = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, section_offset + i * entry_size) for i in range(count)]
    dynamic = next(s for s in sections if s[1] == 6)  # SHT_DYNAMIC; its sh_link is the string table
    strings = sections[dynamic[6]][4]
    names = []
    for offset in range(dynamic[4], dynamic[4] + dynamic[5], 16):
        tag, value = struct.unpack_from("<qQ", data, offset)
        if tag == 0:
            break
        if tag == 1:  # DT_NEEDED
            start = strings + value
            names.append(data[start:data.index(b"\0", start)].decode())
    return names


@pytest.mark.skipif(not (QT / "plugins/platforms/libqxcb.so").is_file(), reason="a PySide6 without the xcb plugin")
def test_every_system_library_of_the_xcb_plugin_is_known_with_its_package():
    needed = set()
    for binary in (QT / "plugins/platforms/libqxcb.so", QT / "lib/libQt6XcbQpa.so.6"):
        needed |= {name for name in _needed(binary)
                   if not (QT / "lib" / name).is_file() and not name.startswith(RUNTIME)}
    assert {"libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-cursor.so.0"} <= needed  # the parser reads them
    assert needed <= set(XCB_LIBRARIES), f"not in app.qt_check.XCB_LIBRARIES: {sorted(needed - set(XCB_LIBRARIES))}"


def test_ci_and_readme_install_every_package():
    root = Path(__file__).parents[2]
    ci, readme = set(re.findall(r"[\w.+-]+", (root / ".ci/run").read_text())), (root / "README.md").read_text()
    for library, package in XCB_LIBRARIES.items():
        assert library in ci and package in ci, f".ci/run does not check {library} or install {package}"
        assert f"`{package}`" in readme, f"README.md does not name {package}"


def test_missing_libraries_are_found_by_the_loader_and_named_with_their_package():
    assert missing(["libc.so.6", "libhuatuo-absent.so.7"]) == ["libhuatuo-absent.so.7"]
    message = explain(["libxcb-icccm.so.4", "libxcb-keysyms.so.1"])
    assert "libxcb-icccm.so.4  (Debian/Ubuntu package libxcb-icccm4)" in message
    assert "sudo apt-get install libxcb-icccm4 libxcb-keysyms1" in message
    assert "xcb-cursor" not in message  # what Qt itself would have named


def test_when_qt_uses_xcb():
    assert uses_xcb({"QT_QPA_PLATFORM": "xcb"}, "linux")
    assert uses_xcb({"DISPLAY": ":0"}, "linux")  # Linux's default outside Wayland
    assert not uses_xcb({"QT_QPA_PLATFORM": "offscreen"}, "linux")
    assert not uses_xcb({"QT_QPA_PLATFORM": "wayland;xcb", "DISPLAY": ":0"}, "linux")
    assert not uses_xcb({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}, "linux")
    assert not uses_xcb({"QT_QPA_PLATFORM": "xcb"}, "win32")
