/*
 * renew: update the key of a certificate with a key update request (kur), signed with the
 * key of the certificate being replaced, using the blocking cmpkit_execute.
 *
 *   renew URL OLD_CERT.pem OLD_KEY.pem OUT_KEY.pem OUT_CERT.pem
 *         [--key NEW_KEY.pem] [--trust ROOTS.pem] [--recipient DN]
 *
 * Without --key a new EC P-256 key is generated; with it, the key in NEW_KEY.pem is
 * certified. The new certificate keeps the subject and subjectAltNames of OLD_CERT. The
 * responses are signed by the CA: --trust names the root certificates to verify them with.
 * Exit code: 0 new certificate issued and confirmed, 1 failure, 2 usage error.
 *
 * Build: cc -std=c11 -Wall -Wextra -Wpedantic -I include c-examples/renew.c \
 *           -L target/debug -lcmpkit -Wl,-rpath,target/debug -o renew
 */
#define _POSIX_C_SOURCE 200809L

#include <cmpkit.h>

#include "example_util.h" /* arguments, files, PEM output, failures: not cmpkit API */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct options {
    const char *url;
    const char *old_cert;
    const char *old_key;
    const char *out_key;
    const char *out_cert;
    const char *key_file;
    const char *trust;
    const char *recipient;
};

static int usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s URL OLD_CERT.pem OLD_KEY.pem OUT_KEY.pem OUT_CERT.pem\n"
            "          [--key NEW_KEY.pem] [--trust ROOTS.pem] [--recipient DN]\n",
            prog);
    return 2;
}

/* Returns 0 on success, 2 on a usage error (message printed). */
static int parse_args(int argc, char **argv, struct options *o)
{
    const char **const positional[] = {&o->url, &o->old_cert, &o->old_key, &o->out_key,
                                       &o->out_cert};
    const struct arg_option options[] = {
        {.name = "--key", .value = &o->key_file},
        {.name = "--trust", .value = &o->trust},
        {.name = "--recipient", .value = &o->recipient},
    };
    memset(o, 0, sizeof *o);
    return parse_arguments(argc, argv, options, ARRAY_LEN(options), positional,
                           ARRAY_LEN(positional));
}

/* Creates the context: server URL, trust anchors, recipient. No credentials: the kur is
 * signed with the old key. Returns 0 on success. */
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

/* Creates the kur for `new_key`, replacing the certificate in o->old_cert, signed with the
 * key in o->old_key. Returns 0 on success. */
static int make_request(const struct options *o, const cmpkit_key *new_key,
                        cmpkit_request **out)
{
    uint8_t *cert = NULL, *key_pem = NULL;
    size_t cert_len = 0, key_len = 0;
    cmpkit_key *old_key = NULL;
    int ret = -1;
    if (read_file(o->old_cert, &cert, &cert_len) != 0 ||
        read_file(o->old_key, &key_pem, &key_len) != 0) {
        goto out;
    }
    cmpkit_result rc = cmpkit_key_from_pem_or_der(key_pem, key_len, &old_key);
    if (rc != CMPKIT_RESULT_OK) {
        call_failed(rc, "cmpkit_key_from_pem_or_der(%s)", o->old_key);
        goto out;
    }
    rc = cmpkit_request_new_kur(new_key, cert, cert_len, old_key, out);
    if (rc != CMPKIT_RESULT_OK) {
        call_failed(rc, "cmpkit_request_new_kur");
        goto out;
    }
    ret = 0;
out:
    /* The request keeps its own reference to the old key. */
    cmpkit_key_free(old_key);
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
        return usage(argc > 0 ? argv[0] : "renew");
    }

    int exit_code = 1;
    cmpkit_key *key = NULL;
    cmpkit_ctx *ctx = NULL;
    cmpkit_request *req = NULL;
    cmpkit_response *rsp = NULL;

    if (load_or_generate_key(o.key_file, &key) != 0 || make_ctx(&o, &ctx) != 0 ||
        make_request(&o, key, &req) != 0) {
        goto done;
    }

    cmpkit_result rc = cmpkit_execute(ctx, req, &rsp);
    if (rc != CMPKIT_RESULT_OK) {
        exchange_failed(rc, cmpkit_ctx_last_error(ctx), rsp, "key update failed");
        goto done;
    }

    printf("status: %s\n", cmpkit_response_summary(rsp));
    printf("extraCerts: %zu\n", cmpkit_response_cert_count(rsp, CMPKIT_CERT_LIST_EXTRA_CERTS));
    if (write_key_pem(key, o.out_key) != 0 || write_cert_pem(rsp, o.out_cert) != 0) {
        goto done;
    }
    printf("renewed: wrote %s and %s\n", o.out_key, o.out_cert);
    exit_code = 0;

done:
    cmpkit_response_free(rsp);
    cmpkit_request_free(req);
    cmpkit_ctx_free(ctx);
    cmpkit_key_free(key);
    return exit_code;
}
