#!/usr/bin/env bash
# Builds the release packages of Huatuo Vision, one step per platform (installer/ci/release.yml runs them).
# Signing identities come only from the environment, never from the repository.
#
#   installer/release.sh freeze   OUT_DIR            freeze the app here (any OS) and run its self-test
#   installer/release.sh linux    OUT_DIR            freeze, self-test, .deb and AppImage (or .tar.gz)
#   installer/release.sh windows  OUT_DIR APP_DIR    NSIS installer from a frozen Windows app, Authenticode-signed
#   installer/release.sh macos    OUT_DIR            freeze signed, notarize, staple, DMG (on macOS)
#   installer/release.sh sign     OUT_DIR            OpenPGP signatures and SHA256SUMS for every package, checked
#
# Environment:
#   HUATUO_VERSION                             default: the version in pyproject.toml
#   PYTHON                                     the environment with the app installed (default: python3)
#   GPG_KEY_ID, GPG_PASSPHRASE                 sign (installer/sign-release.sh)
#   WINDOWS_PFX, WINDOWS_PFX_PASSWORD          windows (installer/windows/sign-exe.sh)
#   WINDOWS_TIMESTAMP_URL                      windows; default http://timestamp.digicert.com, empty for none
#   WINDOWS_CA_FILE                            windows: trust anchors for checking the signature
#                                              (default: the system's, /etc/ssl/certs/ca-certificates.crt)
#   APPLE_IDENTITY, APPLE_TEAM_ID, APPLE_NOTARY_PROFILE   macos (installer/macos/release-macos.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
export PYTHON=$python

usage() {
    sed -n '4,9p' "$0" >&2
    exit 2
}
[ $# -ge 2 ] || usage
step=$1
mkdir -p "$2"
out=$(cd "$2" && pwd)

set_version() {  # HUATUO_VERSION: as given, or the project's version in pyproject.toml
    if [ -z "${HUATUO_VERSION:-}" ]; then
        HUATUO_VERSION=$("$python" -c 'import sys, tomllib
print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$root/pyproject.toml")
    fi
    export HUATUO_VERSION
}

freeze() {  # freeze DIST_DIR: the one-folder app, checked by its own self-test
    local app
    app=$("$root/installer/freeze.sh" "$1" | tail -n 1)
    QT_QPA_PLATFORM=offscreen "$app/huatuo" --selftest >&2
    echo "$app"
}

case "$step" in
    freeze)
        set_version
        freeze "$out"
        ;;
    linux)
        set_version
        app=$(freeze "$root/build/dist")
        "$root/installer/linux/build-packages.sh" "$app" "$out" "$HUATUO_VERSION"
        ;;
    windows)
        [ $# -eq 3 ] || usage
        : "${WINDOWS_PFX:?set WINDOWS_PFX (and WINDOWS_PFX_PASSWORD) to sign the Windows installer}"
        set_version
        export WINDOWS_TIMESTAMP_URL=${WINDOWS_TIMESTAMP_URL-http://timestamp.digicert.com}
        installer=$("$root/installer/windows/build-installer.sh" "$3" "$out" "$HUATUO_VERSION" | tail -n 1)
        ca=${WINDOWS_CA_FILE:-/etc/ssl/certs/ca-certificates.crt}
        osslsigncode verify -CAfile "$ca" ${WINDOWS_TIMESTAMP_URL:+-TSA-CAfile "$ca"} -in "$installer" >&2
        echo "$installer"
        ;;
    macos)
        : "${APPLE_IDENTITY:?set APPLE_IDENTITY, APPLE_TEAM_ID and APPLE_NOTARY_PROFILE}"
        set_version
        # PyInstaller signs every binary it collects with the identity, under the hardened runtime.
        HUATUO_CODESIGN_IDENTITY=$APPLE_IDENTITY HUATUO_ENTITLEMENTS=$root/installer/macos/entitlements.plist \
            "$root/installer/freeze.sh" "$root/build/dist" >/dev/null
        "$root/installer/macos/release-macos.sh" "$root/build/dist/Huatuo Vision.app" "$out" "$HUATUO_VERSION"
        ;;
    sign)
        : "${GPG_KEY_ID:?set GPG_KEY_ID to the release signing key}"
        gpg --batch --armor --export "$GPG_KEY_ID" > "$out/KEYS"
        "$root/installer/sign-release.sh" "$out"
        fingerprint=$(gpg --batch --with-colons --fingerprint "$GPG_KEY_ID" | awk -F: '$1 == "fpr" {print $10; exit}')
        "$root/installer/verify-release.sh" --fingerprint "$fingerprint" "$out" >&2
        ;;
    *)
        usage
        ;;
esac
