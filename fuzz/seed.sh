#!/usr/bin/env bash
# Seed the fuzz corpora: the DER test vectors (tests/vectors/**/*.der), our own messages and
# the regression inputs go to fuzz/corpus/<target>/ for each target (the corpora are not
# committed; see README.md).
set -euo pipefail
cd "$(dirname "$0")"
targets=(decode client_response ffi_bytes server_process)
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    find ../tests/vectors -name '*.der' -print0 | while IFS= read -r -d '' f; do
        # Flatten the path into a unique file name.
        name=$(echo "${f#../tests/vectors/}" | tr '/' '_')
        cp "$f" "corpus/$t/$name"
    done
done
# Our own messages: complete client/server exchanges (ir, cr, kur, rr, genm) written by
# tests/fuzz_replay.rs (own_messages_seeds; a build of the tests, reused after `cargo test`).
own=$(mktemp -d)
trap 'rm -rf "$own"' EXIT
(cd .. && CMPKIT_FUZZ_SEED_DIR="$own" cargo test -q --test fuzz_replay own_messages_seeds \
    >/dev/null)
for t in "${targets[@]}"; do
    cp "$own"/*.der "corpus/$t/"
done
# Regression inputs (crashes found earlier) are seeds too.
if [ -d ../tests/regressions ]; then
    for t in "${targets[@]}"; do
        find ../tests/regressions -type f -name '*.bin' -exec cp {} "corpus/$t/" \;
    done
fi
# ffi_bytes also parses keys and certificates: add the test PKI's PEM certificates.
find ../tests/vectors -name '*.crt' -exec cp {} corpus/ffi_bytes/ \; 2>/dev/null || true
for t in "${targets[@]}"; do
    echo "corpus/$t: $(ls "corpus/$t" | wc -l) files"
done
