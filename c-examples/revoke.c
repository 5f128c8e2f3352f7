/*
 * revoke: ask the CA to revoke a certificate with a revocation request (rr), signed with
 * the certificate's own key, using the blocking cmpkit_execute.
 *
 *   revoke URL CERT.pem KEY.pem [--reason N] [--trust ROOTS.pem] [--recipient DN]
 *
 * N is a CRLReason code (0 unspecified, 1 keyCompromise, 4 superseded, 5
 * cessationOfOperation, ...); without --reason none is sent. The responses are signed by the
 * CA: --trust names the root certificates to verify them with.
 * Exit code: 0 revoked, 1 failure (including the CA refusing), 2 usage error.
 *
 * Build: cc -std=c11 -Wall -Wextra -Wpedantic -I include c-examples/revoke.c \
 *           -L target/debug -lcmpkit -Wl,-rpath,target/debug -o revoke
 */
#define _POSIX_C_SOURCE 200809L

#include <cmpkit.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct options {
    const char *url;
    const char *cert;
    const char *key;
    const char *trust;
    const char *recipient;
    int reason;
};

static int usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s URL CERT.pem KEY.pem [--reason N] [--trust ROOTS.pem] [--recipient DN]\n",
            prog);
    return 2;
}

/* Returns 0 on success, 2 on a usage error (message printed). */
static int parse_args(int argc, char **argv, struct options *o)
{
    const char **positional[] = {&o->url, &o->cert, &o->key};
    size_t n_positional = 0;
    memset(o, 0, sizeof *o);
    o->reason = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--reason") == 0 || strcmp(a, "--trust") == 0 ||
            strcmp(a, "--recipient") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s needs a value\n", a);
                return 2;
            }
            const char *v = argv[++i];
            if (strcmp(a, "--reason") == 0) {
                char *end = NULL;
                long r = strtol(v, &end, 10);
                if (end == v || *end != '\0' || r < 0 || r > 10) {
                    fprintf(stderr, "--reason: %s is not a CRLReason code (0..10)\n", v);
                    return 2;
                }
                o->reason = (int)r;
            } else if (strcmp(a, "--trust") == 0) {
                o->trust = v;
            } else {
                o->recipient = v;
            }
        } else if (strncmp(a, "--", 2) == 0) {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        } else if (n_positional < sizeof positional / sizeof positional[0]) {
            *positional[n_positional++] = a;
        } else {
            fprintf(stderr, "too many arguments: %s\n", a);
            return 2;
        }
    }
    if (n_positional != sizeof positional / sizeof positional[0]) {
        fprintf(stderr, "missing arguments\n");
        return 2;
    }
    return 0;
}

/* Reads a whole file; the caller frees *data. Returns 0 on success. */
static int read_file(const char *path, uint8_t **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t used = 0, cap = 0;
    if (f == NULL) {
        perror(path);
        return -1;
    }
    for (;;) {
        if (used == cap) {
            size_t ncap = cap ? cap * 2 : 4096;
            uint8_t *n = realloc(buf, ncap);
            if (n == NULL) {
                fprintf(stderr, "%s: out of memory\n", path);
                free(buf);
                fclose(f);
                return -1;
            }
            buf = n;
            cap = ncap;
        }
        size_t got = fread(buf + used, 1, cap - used, f);
        used += got;
        if (got == 0) {
            break;
        }
    }
    if (ferror(f)) {
        perror(path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    *data = buf;
    *len = used;
    return 0;
}


/* Overwrites secret bytes before they are freed (volatile: not optimized away). */
static void wipe(uint8_t *p, size_t len)
{
    volatile uint8_t *v = p;
    while (len--) {
        *v++ = 0;
    }
}


/* Prints a failed ctx call; returns -1. */
static int ctx_failed(const cmpkit_ctx *ctx, const char *what, cmpkit_result rc)
{
    const char *detail = cmpkit_ctx_last_error(ctx);
    fprintf(stderr, "%s: %s: %s\n", what, cmpkit_result_name(rc), detail ? detail : "");
    return -1;
}

/* Creates the context: server URL, trust anchors, recipient. No credentials: the rr is
 * signed with the certificate's key. Returns 0 on success. */
static int make_ctx(const struct options *o, cmpkit_ctx **out)
{
    cmpkit_ctx *ctx = NULL;
    cmpkit_result rc = cmpkit_ctx_new(&ctx);
    if (rc != CMPKIT_RESULT_OK) {
        fprintf(stderr, "cmpkit_ctx_new: %s\n", cmpkit_result_name(rc));
        return -1;
    }
    if ((rc = cmpkit_ctx_set_server_url(ctx, o->url)) != CMPKIT_RESULT_OK) {
        ctx_failed(ctx, "cmpkit_ctx_set_server_url", rc);
        goto fail;
    }
    if (o->trust != NULL) {
        uint8_t *pem = NULL;
        size_t len = 0;
        if (read_file(o->trust, &pem, &len) != 0) {
            goto fail;
        }
        rc = cmpkit_ctx_add_trust_anchors(ctx, pem, len);
        free(pem);
        if (rc != CMPKIT_RESULT_OK) {
            ctx_failed(ctx, "cmpkit_ctx_add_trust_anchors", rc);
            goto fail;
        }
    }
    if (o->recipient != NULL &&
        (rc = cmpkit_ctx_set_recipient(ctx, o->recipient)) != CMPKIT_RESULT_OK) {
        ctx_failed(ctx, "cmpkit_ctx_set_recipient", rc);
        goto fail;
    }
    *out = ctx;
    return 0;
fail:
    cmpkit_ctx_free(ctx);
    return -1;
}

/* Creates the rr for the certificate in o->cert, signed with the key in o->key.
 * Returns 0 on success. */
static int make_request(const struct options *o, cmpkit_request **out)
{
    uint8_t *cert = NULL, *key_pem = NULL;
    size_t cert_len = 0, key_len = 0;
    cmpkit_key *key = NULL;
    int ret = -1;
    if (read_file(o->cert, &cert, &cert_len) != 0 ||
        read_file(o->key, &key_pem, &key_len) != 0) {
        goto out;
    }
    cmpkit_result rc = cmpkit_key_from_pem_or_der(key_pem, key_len, &key);
    if (rc != CMPKIT_RESULT_OK) {
        fprintf(stderr, "cmpkit_key_from_pem_or_der(%s): %s: %s\n", o->key,
                cmpkit_result_name(rc), cmpkit_last_error() ? cmpkit_last_error() : "");
        goto out;
    }
    rc = cmpkit_request_new_rr(cert, cert_len, o->reason, key, out);
    if (rc != CMPKIT_RESULT_OK) {
        fprintf(stderr, "cmpkit_request_new_rr: %s: %s\n", cmpkit_result_name(rc),
                cmpkit_last_error() ? cmpkit_last_error() : "");
        goto out;
    }
    ret = 0;
out:
    /* The request keeps its own reference to the key. */
    cmpkit_key_free(key);
    if (key_pem != NULL) {
        wipe(key_pem, key_len);
    }
    free(key_pem);
    free(cert);
    return ret;
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse_args(argc, argv, &o) != 0) {
        return usage(argc > 0 ? argv[0] : "revoke");
    }

    int exit_code = 1;
    cmpkit_ctx *ctx = NULL;
    cmpkit_request *req = NULL;
    cmpkit_response *rsp = NULL;

    if (make_ctx(&o, &ctx) != 0 || make_request(&o, &req) != 0) {
        goto done;
    }

    cmpkit_result rc = cmpkit_execute(ctx, req, &rsp);
    if (rc != CMPKIT_RESULT_OK) {
        const char *detail = cmpkit_ctx_last_error(ctx);
        fprintf(stderr, "revocation failed: %s: %s\n", cmpkit_result_name(rc),
                detail ? detail : "(no detail)");
        if (rsp != NULL) {
            const char *text = cmpkit_response_status_string(rsp);
            fprintf(stderr, "the server said: %s\n", cmpkit_response_summary(rsp));
            fprintf(stderr, "status %d, statusString: %s\n", cmpkit_response_status(rsp),
                    text ? text : "(none)");
        }
        goto done;
    }

    /* Success: accepted (0), grantedWithMods (1), revocationWarning (4) or
     * revocationNotification (5). */
    printf("revoked: %s (status %d)\n", cmpkit_response_summary(rsp),
           cmpkit_response_status(rsp));
    exit_code = 0;

done:
    cmpkit_response_free(rsp);
    cmpkit_request_free(req);
    cmpkit_ctx_free(ctx);
    return exit_code;
}
