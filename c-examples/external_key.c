/*
 * external_key: the enrollment of enroll.c, but the private key stays in an "HSM".
 *
 *   external_key URL SECRET REF SUBJECT OUT_KEY.pem OUT_CERT.pem
 *                [--key KEY.pem] [--implicit-confirm] [--recipient DN] [--san-dns NAME]...
 *
 * The "HSM" here is a separate object holding a software key (loaded from KEY.pem, or
 * generated). The key that is enrolled is an external key (cmpkit_key_new_external): the
 * library knows only its public key and asks the sign callback for every signature (the
 * proof of possession). The callback signs inside the "HSM" with cmpkit_key_sign. A real
 * program would call PKCS#11, a TPM or a secure element there instead.
 * OUT_KEY.pem is written from the HSM object (for the test), never from the library.
 * Exit code: 0 certificate issued and confirmed, 1 failure, 2 usage error.
 *
 * Build: cc -std=c11 -Wall -Wextra -Wpedantic -I include c-examples/external_key.c \
 *           -L target/debug -lcmpkit -Wl,-rpath,target/debug -o external_key
 */
#define _POSIX_C_SOURCE 200809L

#include <cmpkit.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SANS 16

struct options {
    const char *url;
    const char *secret;
    const char *ref;
    const char *subject;
    const char *out_key;
    const char *out_cert;
    const char *key_file;
    const char *recipient;
    int implicit_confirm;
    const char *san_dns[MAX_SANS];
    size_t n_san_dns;
};

static int usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s URL SECRET REF SUBJECT OUT_KEY.pem OUT_CERT.pem\n"
            "          [--key KEY.pem] [--implicit-confirm] [--recipient DN] [--san-dns NAME]...\n",
            prog);
    return 2;
}

/* Returns 0 on success, 2 on a usage error (message printed). */
static int parse_args(int argc, char **argv, struct options *o)
{
    const char **positional[] = {&o->url,     &o->secret,  &o->ref,
                                 &o->subject, &o->out_key, &o->out_cert};
    size_t n_positional = 0;
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--implicit-confirm") == 0) {
            o->implicit_confirm = 1;
        } else if (strcmp(a, "--key") == 0 || strcmp(a, "--recipient") == 0 ||
                   strcmp(a, "--san-dns") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s needs a value\n", a);
                return 2;
            }
            const char *v = argv[++i];
            if (strcmp(a, "--key") == 0) {
                o->key_file = v;
            } else if (strcmp(a, "--recipient") == 0) {
                o->recipient = v;
            } else if (o->n_san_dns < MAX_SANS) {
                o->san_dns[o->n_san_dns++] = v;
            } else {
                fprintf(stderr, "at most %d --san-dns\n", MAX_SANS);
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

/* Loads or generates the HSM's private key. Returns 0 on success. */
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

/* The "HSM": owns the private key; the library never sees this object's key. */
struct hsm {
    cmpkit_key *secret_key;
    int sign_calls;
    int released;
};

/* The sign callback: sign `tbs` inside the HSM. */
static int32_t hsm_sign(void *userdata, uint32_t alg, const uint8_t *tbs, size_t tbs_len,
                        uint8_t *sig, size_t *sig_len)
{
    struct hsm *hsm = userdata;
    if (alg != CMPKIT_SIG_ALG_ECDSA_SHA256) {
        fprintf(stderr, "hsm: asked for algorithm %u, only ECDSA-SHA256 is set up\n",
                (unsigned)alg);
        return 1;
    }
    cmpkit_result rc = cmpkit_key_sign(hsm->secret_key, tbs, tbs_len, sig, *sig_len, sig_len);
    if (rc != CMPKIT_RESULT_OK) {
        fprintf(stderr, "hsm: cmpkit_key_sign: %s: %s\n", cmpkit_result_name(rc),
                cmpkit_last_error() ? cmpkit_last_error() : "");
        return 1;
    }
    hsm->sign_calls++;
    return 0;
}

/* The free callback: the library is done with the HSM handle. */
static void hsm_release(void *userdata)
{
    struct hsm *hsm = userdata;
    hsm->released++;
}

/* Makes the enrollment key: the HSM key's public half plus the sign callback. */
static int make_external_key(struct hsm *hsm, cmpkit_key **out)
{
    const uint8_t *spki = NULL;
    size_t spki_len = 0;
    cmpkit_result rc = cmpkit_key_public_key_der(hsm->secret_key, &spki, &spki_len);
    if (rc != CMPKIT_RESULT_OK) {
        fprintf(stderr, "cmpkit_key_public_key_der: %s: %s\n", cmpkit_result_name(rc),
                cmpkit_last_error() ? cmpkit_last_error() : "");
        return -1;
    }
    rc = cmpkit_key_new_external(spki, spki_len, CMPKIT_SIG_ALG_ECDSA_SHA256, hsm_sign, hsm,
                                 hsm_release, out);
    if (rc != CMPKIT_RESULT_OK) {
        fprintf(stderr, "cmpkit_key_new_external: %s: %s\n", cmpkit_result_name(rc),
                cmpkit_last_error() ? cmpkit_last_error() : "");
        return -1;
    }
    /* The library holds no private key for it: exporting must fail with NOT_FOUND. */
    size_t len = 0;
    rc = cmpkit_key_private_key_pem(*out, NULL, 0, &len);
    if (rc != CMPKIT_RESULT_NOT_FOUND) {
        fprintf(stderr, "the external key exported a private key?! (%s)\n",
                cmpkit_result_name(rc));
        cmpkit_key_free(*out);
        *out = NULL;
        return -1;
    }
    printf("library has no private key: export refused with %s\n", cmpkit_result_name(rc));
    return 0;
}

/* Prints a failed ctx call; returns -1. */
static int ctx_failed(const cmpkit_ctx *ctx, const char *what, cmpkit_result rc)
{
    const char *detail = cmpkit_ctx_last_error(ctx);
    fprintf(stderr, "%s: %s: %s\n", what, cmpkit_result_name(rc), detail ? detail : "");
    return -1;
}

/* Creates the context: server URL, secret, recipient, implicit confirm. Returns 0 on success. */
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
    if ((rc = cmpkit_ctx_set_implicit_confirm(ctx, o->implicit_confirm)) != CMPKIT_RESULT_OK) {
        ctx_failed(ctx, "cmpkit_ctx_set_implicit_confirm", rc);
        goto fail;
    }
    *out = ctx;
    return 0;
fail:
    cmpkit_ctx_free(ctx);
    return -1;
}

/* Creates the ir for `key` with the subject and SANs. Returns 0 on success. */
static int make_request(const struct options *o, const cmpkit_key *key, cmpkit_request **out)
{
    cmpkit_request *req = NULL;
    cmpkit_result rc = cmpkit_request_new_ir(key, &req);
    if (rc != CMPKIT_RESULT_OK) {
        fprintf(stderr, "cmpkit_request_new_ir: %s: %s\n", cmpkit_result_name(rc),
                cmpkit_last_error() ? cmpkit_last_error() : "");
        return -1;
    }
    if ((rc = cmpkit_request_set_subject(req, o->subject)) != CMPKIT_RESULT_OK) {
        fprintf(stderr, "cmpkit_request_set_subject(%s): %s: %s\n", o->subject,
                cmpkit_result_name(rc), cmpkit_last_error() ? cmpkit_last_error() : "");
        cmpkit_request_free(req);
        return -1;
    }
    for (size_t i = 0; i < o->n_san_dns; i++) {
        rc = cmpkit_request_add_san(req, CMPKIT_SAN_KIND_DNS, o->san_dns[i]);
        if (rc != CMPKIT_RESULT_OK) {
            fprintf(stderr, "cmpkit_request_add_san(%s): %s: %s\n", o->san_dns[i],
                    cmpkit_result_name(rc), cmpkit_last_error() ? cmpkit_last_error() : "");
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
        return usage(argc > 0 ? argv[0] : "external_key");
    }

    int exit_code = 1;
    struct hsm hsm = {NULL, 0, 0};
    cmpkit_key *key = NULL;
    cmpkit_ctx *ctx = NULL;
    cmpkit_request *req = NULL;
    cmpkit_response *rsp = NULL;

    /* hsm.secret_key stays here; only the external `key` goes to the library. */
    if (get_key(&o, &hsm.secret_key) != 0 || make_external_key(&hsm, &key) != 0 ||
        make_ctx(&o, &ctx) != 0 || make_request(&o, key, &req) != 0) {
        goto done;
    }

    cmpkit_result rc = cmpkit_execute(ctx, req, &rsp);
    if (rc != CMPKIT_RESULT_OK) {
        const char *detail = cmpkit_ctx_last_error(ctx);
        fprintf(stderr, "enrollment failed: %s: %s\n", cmpkit_result_name(rc),
                detail ? detail : "(no detail)");
        if (rsp != NULL) {
            fprintf(stderr, "the server said: %s\n", cmpkit_response_summary(rsp));
        }
        goto done;
    }

    printf("status: %s\n", cmpkit_response_summary(rsp));
    printf("implicit confirm: %s\n", cmpkit_response_implicit_confirm_granted(rsp)
                                         ? "granted (no certConf sent)"
                                         : "not granted (certificate confirmed with certConf)");
    printf("caPubs: %zu\n", cmpkit_response_cert_count(rsp, CMPKIT_CERT_LIST_CA_PUBS));
    printf("extraCerts: %zu\n", cmpkit_response_cert_count(rsp, CMPKIT_CERT_LIST_EXTRA_CERTS));
    printf("sign callback calls: %d\n", hsm.sign_calls);
    if (hsm.sign_calls < 1) {
        fprintf(stderr, "the sign callback was never called: who signed the POP?\n");
        goto done;
    }

    if (write_key_pem(hsm.secret_key, o.out_key) != 0 || write_cert_pem(rsp, o.out_cert) != 0) {
        goto done;
    }
    printf("wrote %s and %s\n", o.out_key, o.out_cert);
    exit_code = 0;

done:
    cmpkit_response_free(rsp);
    cmpkit_request_free(req);
    cmpkit_ctx_free(ctx);
    cmpkit_key_free(key);
    /* Every handle using the external key is gone: the library must have released it. */
    if (key != NULL && hsm.released != 1) {
        fprintf(stderr, "the free callback ran %d times, expected once\n", hsm.released);
        exit_code = 1;
    } else if (key != NULL) {
        printf("hsm released by the library: once\n");
    }
    cmpkit_key_free(hsm.secret_key);
    return exit_code;
}
