#!/usr/bin/env bash
# Signs a folder of release packages with the project's release key (OpenPGP):
#   - FILE.asc, a detached ASCII-armoured signature, for each package;
#   - SHA256SUMS, the SHA-256 of each package, and SHA256SUMS.asc, its signature.
# Users check them with installer/verify-release.sh.
#
#   installer/sign-release.sh DIR
#
# Environment (never stored in the repository):
#   GPG_KEY_ID        the signing key (fingerprint preferred), in the keyring of GNUPGHOME (or ~/.gnupg)
#   GPG_PASSPHRASE    its passphrase, when it has one (given to gpg on a pipe, never on the command line)
set -euo pipefail
if [ $# -ne 1 ] || [ ! -d "$1" ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
: "${GPG_KEY_ID:?set GPG_KEY_ID to the release signing key}"
cd "$1"
shopt -s nullglob
packages=(*.deb *.AppImage *.tar.gz *.exe *.dmg *.zip)
if [ ${#packages[@]} -eq 0 ]; then
    echo "no packages (*.deb, *.AppImage, *.tar.gz, *.exe, *.dmg, *.zip) in $PWD" >&2
    exit 1
fi

sign() {  # sign FILE: FILE.asc
    local args=(--batch --yes --local-user "$GPG_KEY_ID" --armor --detach-sign --output "$1.asc")
    if [ -n "${GPG_PASSPHRASE:-}" ]; then
        printf '%s' "$GPG_PASSPHRASE" | gpg "${args[@]}" --pinentry-mode loopback --passphrase-fd 0 "$1"
    else
        gpg "${args[@]}" "$1"
    fi
}

sha256sum -- "${packages[@]}" > SHA256SUMS
for file in "${packages[@]}" SHA256SUMS; do
    sign "$file"
    echo "$PWD/$file.asc"
done
