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

#include <stdio.h>
#include <stdlib.h>
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
    const char **positional[] = {&o->url, &o->secret, &o->ref};
    size_t n_positional = 0;
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--recipient") == 0 || strcmp(a, "--itav") == 0 ||
            strcmp(a, "--out") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s needs a value\n", a);
                return 2;
            }
            const char *v = argv[++i];
            if (strcmp(a, "--recipient") == 0) {
                o->recipient = v;
            } else if (strcmp(a, "--out") == 0) {
                o->out = v;
            } else if (o->n_itavs < MAX_ITAVS) {
                o->itavs[o->n_itavs++] = v;
            } else {
                fprintf(stderr, "at most %d --itav\n", MAX_ITAVS);
                return 2;
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

/* Prints a failed ctx call; returns -1. */
static int ctx_failed(const cmpkit_ctx *ctx, const char *what, cmpkit_result rc)
{
    const char *detail = cmpkit_ctx_last_error(ctx);
    fprintf(stderr, "%s: %s: %s\n", what, cmpkit_result_name(rc), detail ? detail : "");
    return -1;
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
        fprintf(stderr, "cmpkit_request_new_genm: %s: %s\n", cmpkit_result_name(rc),
                cmpkit_last_error() ? cmpkit_last_error() : "");
        return -1;
    }
    for (size_t i = 0; i < o->n_itavs; i++) {
        rc = cmpkit_request_add_itav(req, o->itavs[i], NULL, 0);
        if (rc != CMPKIT_RESULT_OK) {
            fprintf(stderr, "cmpkit_request_add_itav(%s): %s: %s\n", o->itavs[i],
                    cmpkit_result_name(rc), cmpkit_last_error() ? cmpkit_last_error() : "");
            cmpkit_request_free(req);
            return -1;
        }
    }
    *out = req;
    return 0;
}

/* Writes `len` bytes to `path`. Returns 0 on success. */
static int write_der(const char *path, const uint8_t *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    size_t done = fwrite(data, 1, len, f);
    if (fclose(f) != 0 || done != len) {
        perror(path);
        return -1;
    }
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
        const char *detail = cmpkit_ctx_last_error(ctx);
        fprintf(stderr, "genm failed: %s: %s\n", cmpkit_result_name(rc),
                detail ? detail : "(no detail)");
        if (rsp != NULL) {
            fprintf(stderr, "the server said: %s\n", cmpkit_response_summary(rsp));
        }
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
            fprintf(stderr, "caCerts: %s: %s\n", cmpkit_result_name(rc),
                    cmpkit_last_error() ? cmpkit_last_error() : "");
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
            if (i == 0 && o.out != NULL && write_der(o.out, der, der_len) != 0) {
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
