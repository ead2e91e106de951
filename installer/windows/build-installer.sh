#!/usr/bin/env bash
# Builds the Windows installer from a frozen app folder (installer/freeze.sh, run on Windows) with NSIS's
# makensis, which runs on Linux too, and Authenticode-signs the installer and its uninstaller when a
# certificate is given (installer/windows/sign-exe.sh; WINDOWS_PFX and WINDOWS_PFX_PASSWORD).
#
#   installer/windows/build-installer.sh APP_DIR OUT_DIR VERSION     (prints the installer's path)
set -euo pipefail
if [ $# -ne 3 ]; then
    echo "usage: $0 APP_DIR OUT_DIR VERSION" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
app=$(cd "$1" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
version=$3
if [ ! -f "$app/huatuo.exe" ]; then
    echo "$app/huatuo.exe not found: APP_DIR must be the frozen Windows app" >&2
    exit 1
fi
# Windows version resources take four numbers: 1.2.3 (or 1.2.3rc1) becomes 1.2.3.0.
numbers=$(printf '%s' "$version" | grep -oE '^[0-9]+(\.[0-9]+){0,3}' || true)
[ -n "$numbers" ] || { echo "version must start with a number: $version" >&2; exit 2; }
while [ "$(printf '%s' "$numbers" | tr -cd . | wc -c)" -lt 3 ]; do numbers=$numbers.0; done

icons=$(mktemp -d)
trap 'rm -rf "$icons"' EXIT
"${PYTHON:-python3}" "$here/../make_icons.py" "$icons" >/dev/null
installer=$out/HuatuoVision-$version-setup.exe
defines=(-DAPP_DIR="$app" -DVERSION="$version" -DVERSION_QUAD="$numbers" -DOUT_FILE="$installer"
         -DICON="$icons/huatuo-vision.ico")
if [ -n "${WINDOWS_PFX:-}" ]; then
    defines+=(-DSIGN_UNINSTALLER="$here/sign-exe.sh")
fi
makensis -V2 -NOCD "${defines[@]}" "$here/huatuo.nsi" >&2
if [ -n "${WINDOWS_PFX:-}" ]; then
    "$here/sign-exe.sh" "$installer"
else
    echo "WINDOWS_PFX not set: the installer is not signed" >&2
fi
echo "$installer"
