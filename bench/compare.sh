#!/bin/sh
# Wall and thread-CPU time per transaction: cmpkit's bench_cmp (built against the system's
# OpenSSL and, if given, against OpenSSL 3.5) and OpenSSL's ossl_cmp_bench in der mode,
# interleaved (the order reverses every run, ABBA) so that load from elsewhere falls on
# all alike. Prints the median over the runs of each run's mean, and the ratio
# cmpkit / OpenSSL on CPU time per scenario (< 1: cmpkit is faster).
#
# Usage: bench/compare.sh [N] [RUNS]     (defaults 1000, 3)
# Binaries (see BENCHMARKS.md for building them):
#   OURS     default $CARGO_TARGET_DIR/release/examples/bench_cmp   (system OpenSSL)
#   OURS35   default /work/target-bench-35/release/examples/bench_cmp, run with
#            LD_LIBRARY_PATH=$OPENSSL35/lib (skipped if missing)
#   THEIRS   default /tmp/ossl_cmp_bench_35 (OpenSSL's harness built against 3.5)
# Logs are kept in ${COMPARE_OUT:-a new /tmp/cmpkit_compare.XXXXXX}.
set -eu
N=${1:-1000}
RUNS=${2:-3}
OURS=${OURS:-${CARGO_TARGET_DIR:-target}/release/examples/bench_cmp}
OURS35=${OURS35:-/work/target-bench-35/release/examples/bench_cmp}
OPENSSL35=${OPENSSL35:-/tmp/openssl-3.5}
THEIRS=${THEIRS:-/tmp/ossl_cmp_bench_35}
OUT=${COMPARE_OUT:-$(mktemp -d /tmp/cmpkit_compare.XXXXXX)}
mkdir -p "$OUT"

run() { # label
    case $1 in
    cmpkit-sys) "$OURS" "$N" der all ;;
    cmpkit-35) LD_LIBRARY_PATH=$OPENSSL35/lib "$OURS35" "$N" der all ;;
    openssl-35) "$THEIRS" "$N" der all ;;
    esac
}
LABELS="cmpkit-sys"
[ -x "$OURS35" ] && LABELS="$LABELS cmpkit-35"
LABELS="$LABELS openssl-35"
for l in $LABELS; do : >"$OUT/$l.log"; done

r=1
while [ "$r" -le "$RUNS" ]; do
    if [ $((r % 2)) -eq 1 ]; then order=$LABELS
    else order=$(echo "$LABELS" | tr ' ' '\n' | tac | tr '\n' ' '); fi
    for l in $order; do
        echo "# run $r $l load:$(uptime | sed 's/.*average://')" | tee -a "$OUT/$l.log"
        run "$l" | tee -a "$OUT/$l.log"
    done
    r=$((r + 1))
done

# Median over runs of us_per_txn / cpu_us_per_txn (and floors' us / cpu_us), per label.
for l in $LABELS; do
    awk -v l="$l" '
        /^(scenario|floor)=/ {
            split($1, kv, "="); key = kv[2]
            for (i = 2; i <= NF; i++) { split($i, f, "=")
                if (f[1] == "us_per_txn" || f[1] == "us") w[key] = w[key] " " f[2]
                if (f[1] == "cpu_us_per_txn" || f[1] == "cpu_us") c[key] = c[key] " " f[2]
                if (f[1] == "allocs_per_txn") a[key] = f[2] }
            if (!(key in seen)) { seen[key] = 1; keys[++nk] = key } }
        function median(s,   v, n, i, j, t) {
            n = split(s, v, " ")
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
                if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
            return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }
        END { for (k = 1; k <= nk; k++)
            printf "median lib=%s what=%s us=%.1f cpu_us=%.1f%s\n", l, keys[k],
                median(w[keys[k]]), median(c[keys[k]]),
                (keys[k] in a) ? " rust_allocs_per_txn=" a[keys[k]] : "" }' "$OUT/$l.log"
done | tee "$OUT/summary"

echo "# cmpkit / OpenSSL 3.5 (der mode), median thread CPU per transaction"
awk '
    { split($2, a, "="); split($3, b, "="); split($5, c, "=")
      lib = a[2]; what = b[2]; cpu[lib, what] = c[2]
      if (what ~ /_der$/ && !(what in seen)) { seen[what] = 1; ws[++n] = what } }
    END {
        printf "%-22s %12s %12s %12s %10s %10s\n", "scenario", "openssl-35", "cmpkit-35", "cmpkit-sys", "ratio-35", "ratio-sys"
        for (i = 1; i <= n; i++) { w = ws[i]; o = cpu["openssl-35", w]
            printf "%-22s %12.1f %12s %12.1f %10s %10.2f\n", w, o,
                (("cmpkit-35", w) in cpu) ? sprintf("%.1f", cpu["cmpkit-35", w]) : "-",
                cpu["cmpkit-sys", w],
                (("cmpkit-35", w) in cpu) ? sprintf("%.2f", cpu["cmpkit-35", w] / o) : "-",
                cpu["cmpkit-sys", w] / o } }' "$OUT/summary"

# Crypto floor per transaction = S x sign + V x verify + P x PBM, with each library's own
# operation counts (measured with bench/callgrind.sh) and the C harness's floor medians
# (OpenSSL 3.5, same run); overhead = CPU / floor - 1.
echo "# floor from OpenSSL 3.5's in-binary floor medians; ops S/V/P per library"
awk '
    BEGIN {
        split("ir_mac_der 2 1 4 2 1 8|ir_mac_implicit_der 2 1 2 2 1 4|cr_sig_der 6 8 0 6 9 0|kur_sig_der 6 8 0 6 9 0|rr_sig_der 2 4 0 2 4 0|genm_sig_der 2 4 0 2 4 0", rows, "|")
    }
    { split($2, a, "="); split($3, b, "="); split($5, c, "="); cpu[a[2], b[2]] = c[2] }
    END {
        sg = cpu["openssl-35", "ecdsa_p256_sign"]; vf = cpu["openssl-35", "ecdsa_p256_verify"]
        pb = cpu["openssl-35", "pbm_sha256_500"]
        printf "%-22s %8s %10s %9s %10s %8s %10s %9s %10s\n", "scenario", "ops-ours", "floor-ours", "cmpkit-35", "overhead", "ops-ossl", "floor-ossl", "ossl-35", "overhead"
        for (i = 1; i <= 6; i++) { split(rows[i], r, " "); w = r[1]
            fo = r[2] * sg + r[3] * vf + r[4] * pb; ft = r[5] * sg + r[6] * vf + r[7] * pb
            us = (("cmpkit-35", w) in cpu) ? cpu["cmpkit-35", w] : cpu["cmpkit-sys", w]
            printf "%-22s %8s %10.1f %9.1f %9.0f%% %8s %10.1f %9.1f %9.0f%%\n", w,
                r[2] "/" r[3] "/" r[4], fo, us, (us / fo - 1) * 100,
                r[5] "/" r[6] "/" r[7], ft, cpu["openssl-35", w], (cpu["openssl-35", w] / ft - 1) * 100 } }' "$OUT/summary"
echo "# logs in $OUT"
