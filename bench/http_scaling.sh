#!/bin/sh
# HTTP server throughput with 1 and 2 worker threads, runs alternating (1, 2, 2, 1, 1, 2,
# ...) so that load from elsewhere falls on both alike. Each line of bench_cmp's output
# carries the rate, the server's and the client's CPU time per request, the CPU the rest
# of the machine used during the run, and the load average at its start; the summary gives
# the median rate per worker count and their ratio, over all runs and over the quiet ones
# (other processes used at most $QUIET CPUs, default 0.25, during the run).
#
# Usage: bench/http_scaling.sh [SECONDS] [RUNS] [bench_cmp http options ...]
#   e.g. bench/http_scaling.sh 4 3 scenario=cr_sig_implicit
# Connections default to 2 (one client thread each, persistent); override with CONNS=N.
# Binary: BIN, default /work/target-bench-35/release/examples/bench_cmp, run with
# LD_LIBRARY_PATH=$OPENSSL35/lib (OpenSSL 3.5). Log: ${HTTP_OUT:-a new /tmp file}.
set -eu
SECS=${1:-4}
RUNS=${2:-3}
shift 2 2>/dev/null || shift $#
BIN=${BIN:-/work/target-bench-35/release/examples/bench_cmp}
OPENSSL35=${OPENSSL35:-/tmp/openssl-3.5}
CONNS=${CONNS:-2}
# A run is "quiet" when the rest of the machine used at most this many CPUs during it.
QUIET=${QUIET:-0.25}
OUT=${HTTP_OUT:-$(mktemp /tmp/cmpkit_http.XXXXXX)}
# RUNS=0 only summarises an existing log: HTTP_OUT=log bench/http_scaling.sh 0 0
[ "$RUNS" -gt 0 ] && : >"$OUT"

# Percent of the machine's CPU in use over 2 s (all processes).
busy_pct() {
    a=$(head -1 /proc/stat)
    sleep 2
    b=$(head -1 /proc/stat)
    printf '%s\n%s\n' "$a" "$b" | awk '{ t = 0; for (i = 2; i <= 9; i++) t += $i; idle = $5 + $6
        if (NR == 1) { t0 = t; i0 = idle } else printf "%d", 100 * (1 - (idle - i0) / (t - t0)) }'
}
# With WAIT_IDLE=P, each run waits (at most WAIT_MAX seconds, default 300) until the
# machine is at most P percent busy, so that both worker counts meet a quiet machine.
wait_idle() {
    [ -n "${WAIT_IDLE:-}" ] || return 0
    waited=0
    while [ "$(busy_pct)" -gt "$WAIT_IDLE" ] && [ "$waited" -lt "${WAIT_MAX:-300}" ]; do
        waited=$((waited + 2))
    done
}

r=1
while [ "$r" -le "$RUNS" ]; do
    if [ $((r % 2)) -eq 1 ]; then order="1 2"; else order="2 1"; fi
    for w in $order; do
        wait_idle
        LD_LIBRARY_PATH=$OPENSSL35/lib "$BIN" http "$SECS" "$w" "$CONNS" "$@" 2>/dev/null |
            tee -a "$OUT"
    done
    r=$((r + 1))
done

awk '
function field(name,   i, kv) {
    for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == name) return kv[2] }
    return ""
}
function median(a, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
/^http / {
    w = field("workers"); n[w]++
    rate[w, n[w]] = field("req_per_s") + 0
    if (field("cpus_used_by_others") + 0 <= QUIET) { q[w]++; qrate[w, q[w]] = rate[w, n[w]] }
}
END {
    for (w = 1; w <= 2; w++) {
        for (i = 1; i <= n[w]; i++) v[i] = rate[w, i]
        m[w] = median(v, n[w])
        printf "workers=%d runs=%d median_req_per_s=%.0f", w, n[w], m[w]
        if (q[w] > 0) {
            for (i = 1; i <= q[w]; i++) v[i] = qrate[w, i]
            qm[w] = median(v, q[w])
            printf " quiet_runs=%d quiet_median_req_per_s=%.0f", q[w], qm[w]
        }
        printf "\n"
    }
    if (m[1] > 0) printf "ratio_2_over_1=%.2f", m[2] / m[1]
    if (qm[1] > 0 && qm[2] > 0) printf " quiet_ratio_2_over_1=%.2f", qm[2] / qm[1]
    printf "\n"
}' QUIET="$QUIET" "$OUT"
echo "log: $OUT"
