#!/usr/bin/env bash
# Freezes the desktop app with PyInstaller into one folder, DIST/huatuo (on macOS also
# "DIST/Huatuo Vision.app"), from the current Python environment (the project and its runtime
# dependencies installed, the patched llama-cpp-python wheel among them).
#
#   installer/freeze.sh [DIST_DIR]        (default: build/dist; prints the folder on its last line)
#
# Environment: PYTHON (default: python3), HUATUO_VERSION, HUATUO_CODESIGN_IDENTITY and
# HUATUO_ENTITLEMENTS (macOS only: PyInstaller signs every binary it collects).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
dist=$(mkdir -p "${1:-$root/build/dist}" && cd "${1:-$root/build/dist}" && pwd)
work=$root/build/pyinstaller
icons=$root/build/icons

"$python" -c 'import PyInstaller' 2>/dev/null || {
    echo "PyInstaller is not installed: $python -m pip install pyinstaller" >&2
    exit 1
}
"$python" "$root/installer/make_icons.py" "$icons" >/dev/null
HUATUO_ICON_DIR=$icons "$python" -m PyInstaller --noconfirm --log-level WARN \
    --distpath "$dist" --workpath "$work" "$root/installer/huatuo.spec" >&2
# Linux: the interpreter's own libraries carry their full symbol tables (libpython: 23 MB, 6 MB without).
# Only these: the wheels' libraries were patched by auditwheel and no longer load once stripped.
if [ "$(uname -s)" = Linux ]; then
    strip --strip-unneeded "$dist"/huatuo/_internal/libpython3*.so* "$dist"/huatuo/_internal/python3*/lib-dynload/*.so
fi
echo "$dist/huatuo"
