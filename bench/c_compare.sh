#!/bin/sh
# Builds bench/c/cmp_side_by_side.c (cmpkit's C API and OpenSSL's OSSL_CMP_* in one binary,
# on one libcrypto) and runs it.
#
# Usage: bench/c_compare.sh [N] [ROUNDS] [all|SCENARIO]       (defaults 300, 10, all)
#
# Environment:
#   OPENSSL_DIR   the OpenSSL to build and run against (include/, lib/); default
#                 /tmp/openssl-3.5. "system" uses the system's OpenSSL (pkg-config or
#                 /usr/include, the default library path).
#   CMPKIT_LIB    the directory holding libcmpkit.so; default
#                 $CARGO_TARGET_DIR/release (CARGO_TARGET_DIR default: target), built
#                 first with `cargo build --release` against OPENSSL_DIR unless
#                 NO_CARGO_BUILD=1. libcmpkit must be built against the same OpenSSL
#                 version as the one it runs with here.
#   OUT           the executable to write; default $CMPKIT_LIB/cmp_side_by_side
#   CC            the C compiler (default cc)
# Extra compiler flags may follow in CFLAGS (e.g. -DNO_MALLOC_COUNT).
set -eu
N=${1:-300}
ROUNDS=${2:-10}
ONLY=${3:-all}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OPENSSL_DIR=${OPENSSL_DIR:-/tmp/openssl-3.5}
CC=${CC:-cc}

if [ "$OPENSSL_DIR" = system ]; then
    SSL_CFLAGS=$(pkg-config --cflags libcrypto 2>/dev/null || true)
    SSL_LIBS=$(pkg-config --libs libcrypto 2>/dev/null || echo -lcrypto)
    RUN_PATH=
    BUILD_ENV="-u OPENSSL_DIR" # openssl-sys finds the system's OpenSSL by itself
else
    SSL_CFLAGS="-I$OPENSSL_DIR/include"
    SSL_LIBS="-L$OPENSSL_DIR/lib -Wl,-rpath,$OPENSSL_DIR/lib -lcrypto"
    RUN_PATH=$OPENSSL_DIR/lib
    BUILD_ENV="OPENSSL_DIR=$OPENSSL_DIR"
fi

if [ -z "${CMPKIT_LIB:-}" ]; then
    CMPKIT_LIB=${CARGO_TARGET_DIR:-$ROOT/target}/release
    if [ "${NO_CARGO_BUILD:-0}" != 1 ]; then
        (cd "$ROOT" && env $BUILD_ENV cargo build --release --lib)
    fi
fi
OUT=${OUT:-$CMPKIT_LIB/cmp_side_by_side}

# The cdylib's soname is libcmpkit.so.<major>, which cargo does not create.
major=$(sed -n 's/^#define CMPKIT_VERSION_MAJOR \([0-9]*\)/\1/p' "$ROOT/include/cmpkit.h")
[ -e "$CMPKIT_LIB/libcmpkit.so.$major" ] || ln -sf libcmpkit.so "$CMPKIT_LIB/libcmpkit.so.$major"

# shellcheck disable=SC2086 # word splitting of the flag lists is intended
"$CC" -std=c11 -O2 -g -Wall -Wextra -Wpedantic -Werror -I "$ROOT/include" $SSL_CFLAGS \
    ${CFLAGS:-} "$ROOT/bench/c/cmp_side_by_side.c" -o "$OUT" \
    -L "$CMPKIT_LIB" -Wl,-rpath,"$CMPKIT_LIB" -lcmpkit $SSL_LIBS

echo "# load:$(uptime | sed 's/.*average://')"
if [ -n "$RUN_PATH" ]; then
    LD_LIBRARY_PATH=$RUN_PATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$OUT" "$N" "$ROUNDS" "$ONLY"
else
    "$OUT" "$N" "$ROUNDS" "$ONLY"
fi
