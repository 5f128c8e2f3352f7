/*
 * cacerts: ask the CA for its certificates with a general message (genm, id-it-caCerts)
 * protected by a shared secret, and print what the genp brought back.
 *
 *   cacerts URL SECRET REF [--recipient DN] [--itav OID]... [--out CERTS.der]
 *
 * With --itav the genm asks for these InfoTypes (without value, through
 * cmpkit_request_add_itav; e.g. 1.3.6.1.5.5.7.4.1, signKeyPairTypes) instead of caCerts.
 * Every genp value is listed (OID and size, or "no value": OpenSSL's 3.0 mock server just
 * echoes the request, and refuses a genm with more than one InfoTypeAndValue); the CA
 * certificates, if the genp has them, are counted and the first is written to --out as DER.
 * Exit code: 0 genp received, 1 failure, 2 usage error.
 *
 * Build: cc -std=c11 -Wall -Wextra -Wpedantic -I include c-examples/cacerts.c \
 *           -L target/debug -lcmpkit -Wl,-rpath,target/debug -o cacerts
 */
#define _POSIX_C_SOURCE 200809L

#include <cmpkit.h>

#include "example_util.h" /* arguments, files, failures: not cmpkit API */

#include <stdio.h>
#include <string.h>

#define MAX_ITAVS 8

struct options {
    const char *url;
    const char *secret;
    const char *ref;
    const char *recipient;
    const char *out;
    const char *itavs[MAX_ITAVS];
    size_t n_itavs;
};

static int usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s URL SECRET REF [--recipient DN] [--itav OID]... [--out CERTS.der]\n",
            prog);
    return 2;
}

/* Returns 0 on success, 2 on a usage error (message printed). */
static int parse_args(int argc, char **argv, struct options *o)
{
    const char **const positional[] = {&o->url, &o->secret, &o->ref};
    const struct arg_option options[] = {
        {.name = "--recipient", .value = &o->recipient},
        {.name = "--itav", .list = o->itavs, .count = &o->n_itavs, .capacity = MAX_ITAVS},
        {.name = "--out", .value = &o->out},
    };
    memset(o, 0, sizeof *o);
    return parse_arguments(argc, argv, options, ARRAY_LEN(options), positional,
                           ARRAY_LEN(positional));
}

/* Creates the context: server URL, secret, recipient. Returns 0 on success. */
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
    rc = cmpkit_ctx_set_secret(ctx, (const uint8_t *)o->secret, strlen(o->secret),
                               (const uint8_t *)o->ref, strlen(o->ref));
    if (rc != CMPKIT_RESULT_OK) {
        ctx_failed(ctx, "cmpkit_ctx_set_secret", rc);
        goto fail;
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

/* Creates the genm: caCerts, or the --itav types. Returns 0 on success. */
static int make_request(const struct options *o, cmpkit_request **out)
{
    cmpkit_request *req = NULL;
    cmpkit_result rc = o->n_itavs == 0 ? cmpkit_request_new_genm_ca_certs(&req)
                                       : cmpkit_request_new_genm(&req);
    if (rc != CMPKIT_RESULT_OK) {
        return call_failed(rc, "cmpkit_request_new_genm");
    }
    for (size_t i = 0; i < o->n_itavs; i++) {
        rc = cmpkit_request_add_itav(req, o->itavs[i], NULL, 0);
        if (rc != CMPKIT_RESULT_OK) {
            call_failed(rc, "cmpkit_request_add_itav(%s)", o->itavs[i]);
            cmpkit_request_free(req);
            return -1;
        }
    }
    *out = req;
    return 0;
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse_args(argc, argv, &o) != 0) {
        return usage(argc > 0 ? argv[0] : "cacerts");
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
        exchange_failed(rc, cmpkit_ctx_last_error(ctx), rsp, "genm failed");
        goto done;
    }

    size_t n = cmpkit_response_genp_count(rsp);
    printf("genp values: %zu\n", n);
    for (size_t i = 0; i < n; i++) {
        const char *oid = NULL;
        const uint8_t *value = NULL;
        size_t value_len = 0;
        rc = cmpkit_response_genp_at(rsp, i, &oid, &value, &value_len);
        if (rc != CMPKIT_RESULT_OK) {
            fprintf(stderr, "cmpkit_response_genp_at(%zu): %s\n", i, cmpkit_result_name(rc));
            goto done;
        }
        if (value == NULL) {
            printf("  %s: no value\n", oid);
        } else {
            printf("  %s: %zu bytes of DER\n", oid, value_len);
        }
    }

    size_t certs = cmpkit_response_cert_count(rsp, CMPKIT_CERT_LIST_GENP_CA_CERTS);
    if (certs == 0) {
        /* No caCerts value (or one that does not decode: cert_at says which). */
        const uint8_t *der = NULL;
        size_t der_len = 0;
        rc = cmpkit_response_cert_at(rsp, CMPKIT_CERT_LIST_GENP_CA_CERTS, 0, &der, &der_len);
        if (rc == CMPKIT_RESULT_NOT_FOUND) {
            printf("caCerts: none (the server sent no caCerts value)\n");
        } else {
            call_failed(rc, "caCerts");
            goto done;
        }
    } else {
        printf("caCerts: %zu\n", certs);
        for (size_t i = 0; i < certs; i++) {
            const uint8_t *der = NULL;
            size_t der_len = 0;
            rc = cmpkit_response_cert_at(rsp, CMPKIT_CERT_LIST_GENP_CA_CERTS, i, &der, &der_len);
            if (rc != CMPKIT_RESULT_OK) {
                fprintf(stderr, "cmpkit_response_cert_at(%zu): %s\n", i, cmpkit_result_name(rc));
                goto done;
            }
            printf("  certificate %zu: %zu bytes of DER\n", i, der_len);
            if (i == 0 && o.out != NULL && write_file(o.out, der, der_len, 0644) != 0) {
                goto done;
            }
        }
    }
    exit_code = 0;

done:
    cmpkit_response_free(rsp);
    cmpkit_request_free(req);
    cmpkit_ctx_free(ctx);
    return exit_code;
}
