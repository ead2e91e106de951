#!/usr/bin/env bash
# Authenticode-signs a Windows executable in place with osslsigncode (runs on Linux and macOS).
#
#   installer/windows/sign-exe.sh FILE.exe
#
# Environment (never stored in the repository):
#   WINDOWS_PFX             the code-signing certificate and its private key (PKCS#12 file)
#   WINDOWS_PFX_PASSWORD    its password (handed to osslsigncode through a pipe, never on the command line)
#   WINDOWS_TIMESTAMP_URL   an RFC 3161 time-stamping server (e.g. http://timestamp.digicert.com); empty: no
#                           time stamp, and the signature stops being valid when the certificate expires
#   HUATUO_PUBLISHER_URL    optional: the web address shown with the signature
set -euo pipefail
if [ $# -ne 1 ] || [ ! -f "$1" ]; then
    echo "usage: $0 FILE.exe" >&2
    exit 2
fi
: "${WINDOWS_PFX:?set WINDOWS_PFX to the PKCS#12 code-signing certificate}"
: "${WINDOWS_PFX_PASSWORD?set WINDOWS_PFX_PASSWORD (empty for a certificate without a password)}"
file=$1
signed=$(mktemp "$file.XXXXXX")
trap 'rm -f "$signed"' EXIT
options=(-h sha256 -n "Huatuo Vision")
if [ -n "${HUATUO_PUBLISHER_URL:-}" ]; then
    options+=(-i "$HUATUO_PUBLISHER_URL")
fi
if [ -n "${WINDOWS_TIMESTAMP_URL:-}" ]; then
    options+=(-ts "$WINDOWS_TIMESTAMP_URL")
fi
rm -f "$signed"  # osslsigncode writes a new file
osslsigncode sign -pkcs12 "$WINDOWS_PFX" -readpass <(printf '%s' "$WINDOWS_PFX_PASSWORD") "${options[@]}" \
    -in "$file" -out "$signed" >/dev/null
chmod --reference="$file" "$signed" 2>/dev/null || chmod 0755 "$signed"
mv -f "$signed" "$file"
trap - EXIT
echo "signed $file${WINDOWS_TIMESTAMP_URL:+ (time stamp: $WINDOWS_TIMESTAMP_URL)}" >&2
