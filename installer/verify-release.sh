#!/usr/bin/env bash
# Checks downloaded Huatuo Vision packages before you install them:
#   1. the public key (KEYS) has the fingerprint published by the project (installer/README.md);
#   2. SHA256SUMS carries a good signature by that key;
#   3. every package listed there that you downloaded has the listed SHA-256;
#   4. every package with a FILE.asc beside it carries a good signature by that key.
# It uses a temporary keyring: nothing is imported into yours. Needs gpg, gpgv and sha256sum.
#
#   verify-release.sh --fingerprint FPR [--key KEYS] [DIR]
#
# DIR: the folder with the packages, SHA256SUMS and SHA256SUMS.asc (default: the current folder).
# --key: the project's public key file (default: DIR/KEYS).
# Exit status 0: all checks passed; 1: a check failed (nothing should be installed); 2: wrong usage.
set -euo pipefail

usage() {
    echo "usage: $0 --fingerprint FINGERPRINT [--key KEYS] [DIR]" >&2
    echo "The fingerprint is published in installer/README.md (\"Release signing key\")." >&2
    exit 2
}
fail() {
    echo "FAILED: $*" >&2
    exit 1
}

fingerprint=""
key=""
dir="."
while [ $# -gt 0 ]; do
    case "$1" in
        --fingerprint) [ $# -ge 2 ] || usage; fingerprint=$2; shift 2 ;;
        --key) [ $# -ge 2 ] || usage; key=$2; shift 2 ;;
        -h|--help) usage ;;
        -*) usage ;;
        *) dir=$1; shift ;;
    esac
done
[ -n "$fingerprint" ] || usage
fingerprint=$(printf '%s' "$fingerprint" | tr -d ' ' | tr '[:lower:]' '[:upper:]')
[[ "$fingerprint" =~ ^[0-9A-F]{40}([0-9A-F]{24})?$ ]] || fail "not a full key fingerprint: $fingerprint"
[ -d "$dir" ] || fail "no such folder: $dir"
key=${key:-$dir/KEYS}
[ -f "$key" ] || fail "no public key file: $key (download KEYS with the release)"
for needed in SHA256SUMS SHA256SUMS.asc; do
    [ -f "$dir/$needed" ] || fail "$dir/$needed is missing (download it with the release)"
done

home=$(mktemp -d)
trap 'gpgconf --kill all >/dev/null 2>&1 || true; rm -rf "$home"' EXIT
chmod 700 "$home"
export GNUPGHOME=$home

# 1. The key file must hold the published key; only that key is trusted below.
gpg --batch --quiet --import "$key" 2>/dev/null || fail "$key is not an OpenPGP public key"
if ! gpg --batch --with-colons --fingerprint 2>/dev/null | awk -F: '$1 == "fpr" {print $10}' \
        | grep -qx "$fingerprint"; then
    fail "$key does not contain the key $fingerprint"
fi
gpg --batch --export "$fingerprint" > "$home/trusted.gpg"
echo "ok    key $fingerprint"

# verify_signature SIGNATURE FILE: a good signature whose primary key is the trusted one.
verify_signature() {
    local status
    status=$(gpgv --keyring "$home/trusted.gpg" --status-fd 1 "$1" "$2" 2>/dev/null) || return 1
    printf '%s\n' "$status" | awk '$2 == "VALIDSIG" {print $NF}' | grep -qx "$fingerprint"
}

# 2. The checksum list.
verify_signature "$dir/SHA256SUMS.asc" "$dir/SHA256SUMS" || fail "SHA256SUMS: bad or missing signature by $fingerprint"
echo "ok    SHA256SUMS signed by $fingerprint"

# 3. Each downloaded package against the list (names are taken only from the signed list).
checked=0
while read -r sum name; do
    name=${name#\*}
    case "$name" in */*|..*|"") fail "SHA256SUMS lists an unexpected name: $name" ;; esac
    if [ ! -f "$dir/$name" ]; then
        echo "skip  $name (not downloaded)"
        continue
    fi
    actual=$(sha256sum -- "$dir/$name" | cut -d' ' -f1)
    [ "$actual" = "$sum" ] || fail "$name: SHA-256 $actual, but SHA256SUMS says $sum"
    # 4. Its own signature, when it was downloaded too.
    if [ -f "$dir/$name.asc" ]; then
        verify_signature "$dir/$name.asc" "$dir/$name" || fail "$name: bad signature by $fingerprint"
        echo "ok    $name (SHA-256 and signature)"
    else
        echo "ok    $name (SHA-256)"
    fi
    checked=$((checked + 1))
done < "$dir/SHA256SUMS"
[ "$checked" -gt 0 ] || fail "none of the packages listed in SHA256SUMS is in $dir"
echo "all checks passed: $checked package(s)"
