#!/bin/sh
# Instructions per transaction (callgrind: deterministic, unlike CPU time on a shared
# machine) of cmpkit and of OpenSSL's CMP in the side-by-side C benchmark: one callgrind run
# per scenario, counting only the timed loops (run_openssl and run_cmpkit, without warm-up,
# setup and checks), on the same libcrypto.
#
# Usage: bench/c_callgrind.sh [N]            (default 20 transactions per scenario)
# Environment: as for bench/c_compare.sh (OPENSSL_DIR, CMPKIT_LIB or CARGO_TARGET_DIR,
# NO_CARGO_BUILD). Raw callgrind files go to ${CG_OUT:-/tmp/cmpkit_c_cg}.
set -eu
N=${1:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${CG_OUT:-/tmp/cmpkit_c_cg}
mkdir -p "$OUT"
OPENSSL_DIR=${OPENSSL_DIR:-/tmp/openssl-3.5}
export OPENSSL_DIR

# Build only (ROUNDS > N is refused: the binary prints its usage and exits 1). valgrind
# replaces malloc itself, so the benchmark's own malloc counting is compiled out.
EXE=$OUT/cmp_side_by_side
OUT="$EXE" CFLAGS="-DNO_MALLOC_COUNT ${CFLAGS:-}" "$ROOT/bench/c_compare.sh" 1 2 >/dev/null 2>&1 || true
[ -x "$EXE" ] || { echo "build failed: run bench/c_compare.sh to see why" >&2; exit 1; }
[ "$OPENSSL_DIR" = system ] || export LD_LIBRARY_PATH="$OPENSSL_DIR/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

echo "# instructions per transaction (callgrind, N=$N, timed loops only)"
echo "| scenario | OpenSSL Ir | cmpkit Ir | OpenSSL / cmpkit |"
echo "|---|---:|---:|---:|"
for s in ir_mac ir_mac_implicit cr_sig kur_sig rr_sig genm_sig; do
    f=$OUT/callgrind.$s.out
    valgrind --tool=callgrind --callgrind-out-file="$f" --collect-atstart=no \
        --toggle-collect=run_openssl --toggle-collect=run_cmpkit \
        "$EXE" "$N" 1 "$s" >"$OUT/$s.log" 2>&1 || {
        echo "$s: the benchmark failed under valgrind, see $OUT/$s.log" >&2
        exit 1
    }
    callgrind_annotate --inclusive=yes "$f" 2>/dev/null | awk -v s="$s" -v n="$N" '
        / run_openssl / || /:run_openssl / { gsub(",", "", $1); o = $1 }
        / run_cmpkit / || /:run_cmpkit / { gsub(",", "", $1); c = $1 }
        END {
            if (o == "" || c == "") { print s ": run_openssl/run_cmpkit not found" > "/dev/stderr"; exit 1 }
            printf "| `%s` | %.2f M | %.2f M | %.2f |\n", s, o / n / 1e6, c / n / 1e6, o / c
        }'
done
