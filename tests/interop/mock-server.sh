#!/bin/sh
# mock-server.sh OUTDIR PORT [extra 'openssl cmp' server options...]
#
# Starts the OpenSSL (3.0) CMP mock server ('openssl cmp -port') in the background on
# 127.0.0.1:PORT, URL http://127.0.0.1:PORT/pkix/ (also "/"), using the PKI made by
# make-pki.sh in OUTDIR. Exits 0 once the server accepts connections.
#   OUTDIR/mock-server.pid   PID of the openssl process (stop it with kill PID)
#   OUTDIR/mock-server.log   its output
# Env:
#   MOCK_RSP_CERT  cert returned for every ir/cr/kur/p10cr   [OUTDIR/new.crt]
#   MOCK_TIMEOUT   seconds after which the server is stopped  [600]
#
# In 3.0, -port binds to all interfaces. A small LD_PRELOAD shim (bind-loopback.so,
# built here with cc, loaded into this openssl process only) rewrites a bind() to the
# wildcard address into one to 127.0.0.1.
set -eu

if [ $# -lt 2 ]; then
  echo "usage: $0 OUTDIR PORT [openssl cmp options...]" >&2
  exit 2
fi
OUT=$(cd "$1" && pwd)
PORT=$2
shift 2
RSP_CERT=${MOCK_RSP_CERT:-$OUT/new.crt}
LIFETIME=${MOCK_TIMEOUT:-600}
PIDFILE=$OUT/mock-server.pid
LOG=$OUT/mock-server.log

for f in root.crt ca.crt server.crt server.key secret.txt ref.txt; do
  [ -f "$OUT/$f" ] || { echo "$OUT/$f missing: run make-pki.sh first" >&2; exit 1; }
done
[ -f "$RSP_CERT" ] || { echo "response cert $RSP_CERT missing" >&2; exit 1; }
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  echo "a mock server from $OUT is still running (pid $(cat "$PIDFILE"))" >&2
  exit 1
fi
rm -f "$PIDFILE"

SHIM=$OUT/bind-loopback.so
if [ ! -f "$SHIM" ]; then
  command -v cc >/dev/null 2>&1 || { echo "a C compiler (cc) is needed for the loopback shim" >&2; exit 1; }
  cat > "$OUT/bind-loopback.c" <<'CSRC'
/* LD_PRELOAD: a bind() to INADDR_ANY or in6addr_any becomes a bind() to IPv4 loopback. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    static bind_fn next;
    if (next == NULL)
        next = (bind_fn)dlsym(RTLD_NEXT, "bind");
    if (addr != NULL && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in v4;
        memcpy(&v4, addr, sizeof(v4));
        if (v4.sin_addr.s_addr == htonl(INADDR_ANY)) {
            v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            return next(fd, (const struct sockaddr *)&v4, sizeof(v4));
        }
    }
    if (addr != NULL && addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 v6;
        memcpy(&v6, addr, sizeof(v6));
        if (IN6_IS_ADDR_UNSPECIFIED(&v6.sin6_addr)) {
            /* dual-stack socket: ::ffff:127.0.0.1, i.e. IPv4 loopback only */
            static const unsigned char mapped_lo[16] =
                {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
            memcpy(&v6.sin6_addr, mapped_lo, sizeof(mapped_lo));
            return next(fd, (const struct sockaddr *)&v6, sizeof(v6));
        }
    }
    return next(fd, addr, len);
}
CSRC
  cc -shared -fPIC -O2 -o "$SHIM.tmp.$$" "$OUT/bind-loopback.c" -ldl
  mv -f "$SHIM.tmp.$$" "$SHIM"
fi

(
  cd "$OUT"
  exec timeout -k 5 "$LIFETIME" env LD_PRELOAD="$SHIM" OPENSSL_CONF=/dev/null \
    openssl cmp -config "" -port "$PORT" \
      -srv_ref "$(cat ref.txt)" -srv_secret file:secret.txt \
      -srv_cert server.crt -srv_key server.key \
      -srv_trusted root.crt -srv_untrusted ca.crt \
      -rsp_cert "$RSP_CERT" -rsp_extracerts ca.crt -rsp_capubs root.crt \
      "$@"
) </dev/null >"$LOG" 2>&1 &
WRAPPER=$!

# The 3.0 server logs "ACCEPT <addr>:<port> PID=<pid>" once it listens (after listen(),
# so connections are accepted from then on). No test connection: the single-threaded
# server would treat it as a failed request.
n=0
until grep -q '^ACCEPT ' "$LOG" 2>/dev/null; do
  if ! kill -0 "$WRAPPER" 2>/dev/null || [ "$n" -ge 100 ]; then
    echo "mock server on port $PORT did not start:" >&2
    cat "$LOG" >&2
    kill "$WRAPPER" 2>/dev/null || true
    exit 1
  fi
  sleep 0.1
  n=$((n + 1))
done
PID=$(sed -n 's/^ACCEPT .*PID=\([0-9][0-9]*\).*/\1/p' "$LOG" | head -n 1)
[ -n "$PID" ] || PID=$WRAPPER
echo "$PID" > "$PIDFILE"

# Refuse to run if it listens on anything but loopback.
if command -v ss >/dev/null 2>&1; then
  if ss -ltnH "sport = :$PORT" | awk '{print $4}' | grep -v '127\.0\.0\.1' >/dev/null; then
    echo "mock server is not bound to 127.0.0.1 only; stopping it" >&2
    kill "$PID" 2>/dev/null || true
    exit 1
  fi
fi

echo "mock CMP server: http://127.0.0.1:$PORT/pkix/ pid=$PID dir=$OUT"
