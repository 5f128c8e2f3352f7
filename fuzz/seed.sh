#!/usr/bin/env bash
# Seed the fuzz corpora from the DER test vectors: every tests/vectors/**/*.der goes to
# fuzz/corpus/<target>/ for each target (the corpora are not committed; see README.md).
set -euo pipefail
cd "$(dirname "$0")"
targets=(decode client_response ffi_bytes)
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    find ../tests/vectors -name '*.der' -print0 | while IFS= read -r -d '' f; do
        # Flatten the path into a unique file name.
        name=$(echo "${f#../tests/vectors/}" | tr '/' '_')
        cp "$f" "corpus/$t/$name"
    done
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
