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

#include "example_util.h" /* arguments, files, failures: not cmpkit API */

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
    const char **const positional[] = {&o->url, &o->cert, &o->key};
    const struct arg_option options[] = {
        {.name = "--reason", .number = &o->reason, .min = 0, .max = 10,
         .what = "a CRLReason code"},
        {.name = "--trust", .value = &o->trust},
        {.name = "--recipient", .value = &o->recipient},
    };
    memset(o, 0, sizeof *o);
    o->reason = -1;
    return parse_arguments(argc, argv, options, ARRAY_LEN(options), positional,
                           ARRAY_LEN(positional));
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
        call_failed(rc, "cmpkit_key_from_pem_or_der(%s)", o->key);
        goto out;
    }
    rc = cmpkit_request_new_rr(cert, cert_len, o->reason, key, out);
    if (rc != CMPKIT_RESULT_OK) {
        call_failed(rc, "cmpkit_request_new_rr");
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
        exchange_failed(rc, cmpkit_ctx_last_error(ctx), rsp, "revocation failed");
        if (rsp != NULL) {
            const char *text = cmpkit_response_status_string(rsp);
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
