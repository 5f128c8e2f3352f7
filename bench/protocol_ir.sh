#!/bin/sh
# The protocol's own instructions per transaction: callgrind counts bench_cmp's timed loop
# twice, once whole and once with the floor's cryptography switched off. Collection is
# toggled off inside the signature and verification calls, the SHA-2 hashing of
# `Digest::of` (the signatures' prehash, and certHash, which shares it: two hashes of a
# certificate per transaction with certConf), PBM key derivations (PBM, as the benchmark
# uses) and HMACs; everything else, key import and random octets included, counts as
# protocol. Instructions are deterministic, unlike CPU time on a shared machine; CPU per
# instruction differs between the two parts (OpenSSL's assembly runs at a higher IPC), so
# this complements bench_cmp's CPU overhead figure, it does not replace it.
#
# Usage: bench/protocol_ir.sh [N] [BENCH_CMP]   (default 20 transactions per scenario;
#        default binary $CARGO_TARGET_DIR/release/examples/bench_cmp; set LD_LIBRARY_PATH
#        for one built against another OpenSSL, see BENCHMARKS.md)
set -eu
N=${1:-20}
OURS=${2:-${CARGO_TARGET_DIR:-target}/release/examples/bench_cmp}
OUT=${CG_OUT:-/tmp/cmpkit_protocol_ir}
mkdir -p "$OUT"

# Ir of the last dump (the timed loop: counters are zeroed on entry, dumped on exit).
timed_ir() { # callgrind out-file prefix
    last=$(ls "$1".* | awk -F. '{ print $NF, $0 }' | sort -n | tail -1 | cut -d' ' -f2)
    awk '/^summary:/ { print $2 }' "$last"
}

echo "# instructions per transaction (callgrind, N=$N, timed loop only)"
echo "| scenario | all Ir | crypto Ir | protocol Ir | protocol / crypto |"
echo "|---|---:|---:|---:|---:|"
for s in ir_mac ir_mac_implicit cr_sig kur_sig rr_sig genm_sig; do
    rm -f "$OUT/all.$s".* "$OUT/protocol.$s".*
    valgrind --tool=callgrind --zero-before=bench_timed_loop --dump-after=bench_timed_loop \
        --callgrind-out-file="$OUT/all.$s" "$OURS" "$N" der "$s" 1 >/dev/null 2>&1
    valgrind --tool=callgrind --zero-before=bench_timed_loop --dump-after=bench_timed_loop \
        --collect-atstart=no --toggle-collect=bench_timed_loop \
        --toggle-collect=EVP_PKEY_sign --toggle-collect=EVP_PKEY_verify \
        --toggle-collect='cmpkit::crypto::key::Digest::of' \
        --toggle-collect='cmpkit::protection::pbm::Spec::derive_key' \
        --toggle-collect='cmpkit::protection::hmac' \
        --callgrind-out-file="$OUT/protocol.$s" "$OURS" "$N" der "$s" 1 >/dev/null 2>&1
    all=$(timed_ir "$OUT/all.$s")
    protocol=$(timed_ir "$OUT/protocol.$s")
    awk -v s="$s" -v n="$N" -v a="$all" -v p="$protocol" 'BEGIN {
        printf "| `%s` | %.2f M | %.2f M | %.0f k | %.1f%% |\n", s, a / n / 1e6, (a - p) / n / 1e6, p / n / 1e3, 100 * p / (a - p)
    }'
done
