#!/bin/sh
# Entrypoint of the mriharmony image.
#   COMMAND ...            -> mriharmony COMMAND ...        (demo, preprocess, harmonize, benchmark, report, ...)
#   bundle ARGS ...        -> python -m monai.bundle ARGS   (run, verify_metadata, ...)
#   torchrun ARGS ...      -> torchrun ARGS                 (multi-GPU training)
#   python|dask|sh|bash .. -> run as given
# `docker run --user "$(id -u):$(id -g)"` makes outputs belong to the host user; such a user has no home in
# the image, so HOME (and matplotlib's cache) then point at a writable folder under /tmp.
set -eu
if [ -z "${HOME:-}" ] || [ ! -d "${HOME}" ] || [ ! -w "${HOME}" ]; then
    HOME="${TMPDIR:-/tmp}/mriharmony-home-$(id -u)"
    export HOME
    mkdir -p "$HOME"
fi
MPLCONFIGDIR="${MPLCONFIGDIR:-$HOME/.config/matplotlib}"
export MPLCONFIGDIR
case "${1:-}" in
    bundle) shift; exec python -m monai.bundle "$@" ;;
    torchrun) shift; exec torchrun "$@" ;;
    python|dask|sh|bash) exec "$@" ;;
    *) exec mriharmony "$@" ;;
esac
