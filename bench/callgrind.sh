#!/bin/sh
# Instructions and crypto operations per transaction, with callgrind (deterministic: immune
# to the load of a shared machine), for cmpkit's bench_cmp and, side by side, OpenSSL's
# ossl_cmp_bench in der mode. Counters are zeroed on entry to the timed function and
# dumped on its exit; the last dump is the timed loop (warm-up and setup excluded).
#
# Usage: bench/callgrind.sh [N] [OURS] [THEIRS]
#   N       transactions per scenario (default 10)
#   OURS    bench_cmp binary (default $CARGO_TARGET_DIR/release/examples/bench_cmp);
#           set LD_LIBRARY_PATH for one built against another OpenSSL (BENCHMARKS.md)
#   THEIRS  ossl_cmp_bench binary (default /tmp/ossl_cmp_bench_35; "" to skip)
# Raw files go to ${CG_OUT:-/tmp/cmpkit_cg}.
set -eu
N=${1:-10}
OURS=${2:-${CARGO_TARGET_DIR:-target}/release/examples/bench_cmp}
THEIRS=${3-/tmp/ossl_cmp_bench_35}
OUT=${CG_OUT:-/tmp/cmpkit_cg}
mkdir -p "$OUT"

# Per callee: calls and inclusive Ir, from the "calls=" lines and the cost line after each.
count() { # file label scenario server_fn
    awk -v n="$N" -v s="$3" -v who="$2" -v srvfn="$4" '
        function setname(rest,   id, nm) {
            if (match(rest, /^\([0-9]+\)/)) {
                id = substr(rest, 2, RLENGTH - 2); nm = substr(rest, RLENGTH + 2)
                sub(/\.(constprop|isra|part)\.[0-9]+$/, "", nm)
                if (nm != "") names[id] = nm
                return id
            }
            names[rest] = rest; return rest
        }
        /^fn=/  { setname(substr($0, 4)) }
        /^cfn=/ { cfn = setname(substr($0, 5)) }
        after { incl[cfn] += $2; after = 0 }
        /^calls=/ { split(substr($0, 7), a, " "); calls[cfn] += a[1]; after = 1 }
        /^summary:/ { total = $2 }
        END {
            for (id in calls) { c[names[id]] += calls[id]; ic[names[id]] += incl[id] }
            pbm = c["cmpkit::protection::pbm::Spec::derive_key"] + c["OSSL_CRMF_pbm_new"]
            pbm_ir = ic["cmpkit::protection::pbm::Spec::derive_key"] + ic["OSSL_CRMF_pbm_new"]
            prim = ic["ECDSA_sign_ex"] + ic["ECDSA_verify"] + pbm_ir
            printf "%s scenario=%s n=%d Ir_per_txn=%.0f server_Ir=%.0f prim_Ir=%.0f prim_share=%.2f", \
                who, s, n, total / n, ic[srvfn] / n, prim / n, prim / total
            printf " ecdsa_sign=%.2f ecdsa_verify=%.2f pbm=%.2f x509_verify_cert=%.2f x509_sign=%.2f keygen=%.2f\n", \
                c["ECDSA_sign_ex"] / n, c["ECDSA_verify"] / n, pbm / n, \
                c["X509_verify_cert"] / n, c["X509_sign"] / n, c["EVP_PKEY_generate"] / n
        }' "$1"
}

last_dump() { ls "$1".* | awk -F. '{ print $NF, $0 }' | sort -n | tail -1 | cut -d' ' -f2; }

for s in ir_mac ir_mac_implicit cr_sig kur_sig rr_sig genm_sig; do
    f="$OUT/cmpkit.$s.out"
    rm -f "$f" "$f".*
    valgrind --tool=callgrind --zero-before=bench_timed_loop --dump-after=bench_timed_loop \
        --callgrind-out-file="$f" "$OURS" "$N" der "$s" 1 >"$OUT/cmpkit.$s.stdout" 2>"$OUT/cmpkit.$s.log"
    count "$(last_dump "$f")" cmpkit "$s" "cmpkit::server::Server::process"
    if [ -n "$THEIRS" ]; then
        f="$OUT/openssl.$s.out"
        rm -f "$f" "$f".*
        valgrind --tool=callgrind --zero-before=timed_loop --dump-after=timed_loop \
            --callgrind-out-file="$f" "$THEIRS" "$N" der "$s" 1 >"$OUT/openssl.$s.stdout" 2>"$OUT/openssl.$s.log"
        count "$(last_dump "$f")" openssl "${s}_der" bench_server_der
    fi
done
