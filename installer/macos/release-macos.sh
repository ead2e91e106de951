#!/usr/bin/env bash
# Signs, notarizes and staples "Huatuo Vision.app" (installer/freeze.sh on macOS) and packs it in a
# signed, notarized, stapled DMG. Runs on macOS with Xcode's command-line tools.
#
#   installer/macos/release-macos.sh APP_BUNDLE OUT_DIR VERSION      (prints the DMG's path)
#
# Environment (never stored in the repository):
#   APPLE_IDENTITY        the signing identity in the keychain: "Developer ID Application: NAME (TEAMID)"
#   APPLE_TEAM_ID         its team (checked against the signature)
#   APPLE_NOTARY_PROFILE  a notarytool keychain profile (xcrun notarytool store-credentials PROFILE ...)
#
# The app is notarized and stapled on its own first, so that Gatekeeper accepts it without a network
# connection once it is copied out of the DMG; then the DMG is built, signed, notarized and stapled.
set -euo pipefail
if [ $# -ne 3 ]; then
    echo "usage: $0 APP_BUNDLE OUT_DIR VERSION" >&2
    exit 2
fi
: "${APPLE_IDENTITY:?set APPLE_IDENTITY to the Developer ID Application identity}"
: "${APPLE_TEAM_ID:?set APPLE_TEAM_ID}"
: "${APPLE_NOTARY_PROFILE:?set APPLE_NOTARY_PROFILE to a notarytool keychain profile}"
here=$(cd "$(dirname "$0")" && pwd)
app=$(cd "$1" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
version=$3
entitlements=$here/entitlements.plist
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

sign() {  # sign PATH [extra codesign options]: hardened runtime, secure time stamp
    codesign --force --options runtime --timestamp --sign "$APPLE_IDENTITY" "${@:2}" "$1"
}

notarize() {  # notarize FILE: submit, wait for Apple's verdict, fail with its log when not accepted
    local result=$work/notary.json status id
    xcrun notarytool submit "$1" --keychain-profile "$APPLE_NOTARY_PROFILE" --wait --output-format json \
        > "$result"
    status=$(/usr/bin/plutil -extract status raw -o - "$result")
    if [ "$status" != Accepted ]; then
        id=$(/usr/bin/plutil -extract id raw -o - "$result")
        xcrun notarytool log "$id" --keychain-profile "$APPLE_NOTARY_PROFILE" >&2 || true
        echo "notarization of $(basename "$1") ended as: $status" >&2
        exit 1
    fi
}

# 1. Code signatures from the inside out: every Mach-O file in the bundle (PyInstaller signs them during a
#    build with HUATUO_CODESIGN_IDENTITY; signing again makes this step independent of how it was built),
#    then the bundle with its entitlements.
while IFS= read -r -d '' file; do
    if file -b "$file" | grep -q 'Mach-O'; then
        sign "$file"
    fi
done < <(find "$app/Contents" -type f \( -path '*/Frameworks/*' -o -path '*/Resources/*' \) -print0)
sign "$app" --entitlements "$entitlements"
codesign --verify --deep --strict --verbose=2 "$app"
codesign --display --verbose=2 "$app" 2>&1 | grep -q "^TeamIdentifier=$APPLE_TEAM_ID\$" \
    || { echo "the signature is not from team $APPLE_TEAM_ID" >&2; exit 1; }

# 2. The signed app must still work under the hardened runtime (llama.cpp, decoders, Qt).
QT_QPA_PLATFORM=offscreen "$app/Contents/MacOS/huatuo" --selftest

# 3. The app alone: notarized, and the ticket stapled to it.
ditto -c -k --keepParent "$app" "$work/app.zip"
notarize "$work/app.zip"
xcrun stapler staple "$app"

# 4. The DMG: the app and a link to /Applications; signed, notarized, stapled.
mkdir "$work/dmg"
ditto "$app" "$work/dmg/$(basename "$app")"
ln -s /Applications "$work/dmg/Applications"
dmg=$out/HuatuoVision-$version-macos-$(uname -m).dmg
hdiutil create -volname "Huatuo Vision $version" -srcfolder "$work/dmg" -ov -format UDZO "$dmg" >&2
codesign --force --timestamp --sign "$APPLE_IDENTITY" "$dmg"
notarize "$dmg"
xcrun stapler staple "$dmg"
xcrun stapler validate "$dmg"
spctl --assess --type open --context context:primary-signature --verbose=2 "$dmg"
echo "$dmg"
