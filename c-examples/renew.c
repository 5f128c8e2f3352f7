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

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    const char **positional[] = {&o->url, &o->old_cert, &o->old_key, &o->out_key,
                                 &o->out_cert};
    size_t n_positional = 0;
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--key") == 0 || strcmp(a, "--trust") == 0 ||
            strcmp(a, "--recipient") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s needs a value\n", a);
                return 2;
            }
            const char *v = argv[++i];
            if (strcmp(a, "--key") == 0) {
                o->key_file = v;
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

/* Writes `len` bytes to `path` (created with `mode` if new, truncated). Returns 0 on success. */
static int write_file(const char *path, const uint8_t *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0) {
        perror(path);
        return -1;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0) {
            perror(path);
            close(fd);
            return -1;
        }
        done += (size_t)n;
    }
    if (close(fd) != 0) {
        perror(path);
        return -1;
    }
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

/* Writes the private key as PKCS#8 PEM (mode 0600). Returns 0 on success. */
static int write_key_pem(const cmpkit_key *key, const char *path)
{
    size_t len = 0;
    cmpkit_result rc = cmpkit_key_private_key_pem(key, NULL, 0, &len);
    if (rc != CMPKIT_RESULT_BUFFER_TOO_SMALL) {
        fprintf(stderr, "cmpkit_key_private_key_pem (size): %s: %s\n", cmpkit_result_name(rc),
                cmpkit_last_error() ? cmpkit_last_error() : "");
        return -1;
    }
    uint8_t *pem = malloc(len);
    if (pem == NULL) {
        fprintf(stderr, "out of memory\n");
        return -1;
    }
    rc = cmpkit_key_private_key_pem(key, pem, len, &len);
    int ret = -1;
    if (rc != CMPKIT_RESULT_OK) {
        fprintf(stderr, "cmpkit_key_private_key_pem: %s: %s\n", cmpkit_result_name(rc),
                cmpkit_last_error() ? cmpkit_last_error() : "");
    } else {
        ret = write_file(path, pem, len, 0600);
    }
    wipe(pem, len);
    free(pem);
    return ret;
}

/* Writes the issued certificate as PEM. Returns 0 on success. */
static int write_cert_pem(const cmpkit_response *rsp, const char *path)
{
    size_t len = 0;
    cmpkit_result rc = cmpkit_response_cert_pem(rsp, NULL, 0, &len);
    if (rc != CMPKIT_RESULT_BUFFER_TOO_SMALL) {
        fprintf(stderr, "cmpkit_response_cert_pem (size): %s: %s\n", cmpkit_result_name(rc),
                cmpkit_last_error() ? cmpkit_last_error() : "");
        return -1;
    }
    uint8_t *pem = malloc(len);
    if (pem == NULL) {
        fprintf(stderr, "out of memory\n");
        return -1;
    }
    int ret = -1;
    rc = cmpkit_response_cert_pem(rsp, pem, len, &len);
    if (rc != CMPKIT_RESULT_OK) {
        fprintf(stderr, "cmpkit_response_cert_pem: %s: %s\n", cmpkit_result_name(rc),
                cmpkit_last_error() ? cmpkit_last_error() : "");
    } else {
        ret = write_file(path, pem, len, 0644);
    }
    free(pem);
    return ret;
}

/* Loads or generates the key to certify. Returns 0 on success. */
static int get_key(const struct options *o, cmpkit_key **key)
{
    cmpkit_result rc;
    if (o->key_file == NULL) {
        rc = cmpkit_key_generate(CMPKIT_KEY_KIND_EC_P256, 0, key);
        if (rc != CMPKIT_RESULT_OK) {
            fprintf(stderr, "cmpkit_key_generate: %s: %s\n", cmpkit_result_name(rc),
                    cmpkit_last_error() ? cmpkit_last_error() : "");
            return -1;
        }
        return 0;
    }
    uint8_t *data = NULL;
    size_t len = 0;
    if (read_file(o->key_file, &data, &len) != 0) {
        return -1;
    }
    rc = cmpkit_key_from_pem_or_der(data, len, key);
    wipe(data, len);
    free(data);
    if (rc != CMPKIT_RESULT_OK) {
        fprintf(stderr, "cmpkit_key_from_pem_or_der(%s): %s: %s\n", o->key_file,
                cmpkit_result_name(rc), cmpkit_last_error() ? cmpkit_last_error() : "");
        return -1;
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
        fprintf(stderr, "cmpkit_key_from_pem_or_der(%s): %s: %s\n", o->old_key,
                cmpkit_result_name(rc), cmpkit_last_error() ? cmpkit_last_error() : "");
        goto out;
    }
    rc = cmpkit_request_new_kur(new_key, cert, cert_len, old_key, out);
    if (rc != CMPKIT_RESULT_OK) {
        fprintf(stderr, "cmpkit_request_new_kur: %s: %s\n", cmpkit_result_name(rc),
                cmpkit_last_error() ? cmpkit_last_error() : "");
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

    if (get_key(&o, &key) != 0 || make_ctx(&o, &ctx) != 0 ||
        make_request(&o, key, &req) != 0) {
        goto done;
    }

    cmpkit_result rc = cmpkit_execute(ctx, req, &rsp);
    if (rc != CMPKIT_RESULT_OK) {
        const char *detail = cmpkit_ctx_last_error(ctx);
        fprintf(stderr, "key update failed: %s: %s\n", cmpkit_result_name(rc),
                detail ? detail : "(no detail)");
        if (rsp != NULL) {
            fprintf(stderr, "the server said: %s\n", cmpkit_response_summary(rsp));
        }
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
