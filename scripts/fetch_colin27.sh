#!/usr/bin/env bash
# Colin27 (a real T1 head with skull, and its FSL-BET brain) from Debian's mricron-data package (BSD licence),
# unpacked into CACHE/mricron-data/ (default: $MRIHARMONY_CACHE or ~/.cache/mriharmony). The real-head
# preprocessing tests (tests/preprocess/test_real_head.py) call this when the files are missing; the
# benchmark `python -m pipeline.performance.preprocessing --real-head` reads them. Nothing at run time downloads.
set -euo pipefail
cache="${1:-${MRIHARMONY_CACHE:-$HOME/.cache/mriharmony}}"
target="$cache/mricron-data"
if [ -f "$target/usr/share/mricron/templates/ch2.nii.gz" ] && [ -f "$target/usr/share/mricron/templates/ch2bet.nii.gz" ]; then
    exit 0
fi
command -v apt-get >/dev/null || { echo "fetch_colin27: apt-get not found (Debian/Ubuntu only)" >&2; exit 3; }
command -v dpkg >/dev/null || { echo "fetch_colin27: dpkg not found" >&2; exit 3; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get download mricron-data >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    apt-get download mricron-data >/dev/null
fi
mkdir -p "$work/x"
dpkg -x mricron-data_*.deb "$work/x"
mkdir -p "$cache"
rm -rf "$target.partial"
mv "$work/x" "$target.partial"
mv -T "$target.partial" "$target"
echo "Colin27 unpacked into $target/usr/share/mricron/templates"
