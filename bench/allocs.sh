#!/bin/sh
# Heap allocations per transaction, everything counted (Rust and OpenSSL's CRYPTO_malloc
# alike), for cmpkit's bench_cmp and OpenSSL's ossl_cmp_bench (der mode), with valgrind's
# DHAT ("Total: B bytes in K blocks"). Neither program can switch the count on and off,
# so it is taken from differences: a run with N2 transactions minus one with N1 gives
# N2 - N1 transactions plus N2 - N1 enrollment key generations; the "floor" runs (which
# generate the keys but run no transaction) give the key generations alone.
# Usage: bench/allocs.sh [OURS] [THEIRS]   (see bench/callgrind.sh for the defaults)
set -eu
OURS=${1:-${CARGO_TARGET_DIR:-target}/release/examples/bench_cmp}
THEIRS=${2-/tmp/ossl_cmp_bench_35}
N1=20
N2=120
OUT=${DHAT_OUT:-/tmp/cmpkit_dhat}
mkdir -p "$OUT"

# blocks and bytes of one run: label bin scenario n
total() {
    f="$OUT/$1.$3.$4"
    valgrind --tool=dhat --dhat-out-file="$f.json" "$2" "$4" der "$3" 1 >/dev/null 2>"$f.log"
    sed -n 's/.*Total: *\([0-9,]*\) bytes in \([0-9,]*\) blocks.*/\2 \1/p' "$f.log" | tr -d ,
}

for who in cmpkit openssl; do
    if [ "$who" = cmpkit ]; then bin=$OURS; else bin=$THEIRS; fi
    [ -n "$bin" ] || continue
    set -- $(total "$who" "$bin" floor $N1) $(total "$who" "$bin" floor $N2)
    kb=$(( $3 - $1 )); kB=$(( $4 - $2 ))
    for s in ir_mac ir_mac_implicit cr_sig kur_sig rr_sig genm_sig; do
        set -- $(total "$who" "$bin" $s $N1) $(total "$who" "$bin" $s $N2)
        d=$((N2 - N1))
        echo "$who scenario=$s allocs_per_txn=$(( ($3 - $1 - kb) / d )) bytes_per_txn=$(( ($4 - $2 - kB) / d )) keygen_allocs=$(( kb / d ))"
    done
done
