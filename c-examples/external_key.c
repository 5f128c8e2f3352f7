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

#include "example_util.h" /* shared helpers, incl. the MAC context setup: not cmpkit API */

#include <stdio.h>
#include <string.h>

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
        call_failed(rc, "hsm: cmpkit_key_sign");
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
        return call_failed(rc, "cmpkit_key_public_key_der");
    }
    rc = cmpkit_key_new_external(spki, spki_len, CMPKIT_SIG_ALG_ECDSA_SHA256, hsm_sign, hsm,
                                 hsm_release, out);
    if (rc != CMPKIT_RESULT_OK) {
        return call_failed(rc, "cmpkit_key_new_external");
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

/* Creates the ir for `key` with the subject and SANs. Returns 0 on success. */
static int make_request(const struct enroll_options *o, const cmpkit_key *key,
                        cmpkit_request **out)
{
    cmpkit_request *req = NULL;
    cmpkit_result rc = cmpkit_request_new_ir(key, &req);
    if (rc != CMPKIT_RESULT_OK) {
        return call_failed(rc, "cmpkit_request_new_ir");
    }
    if (set_subject_and_sans(o, req) != 0) {
        cmpkit_request_free(req);
        return -1;
    }
    *out = req;
    return 0;
}

int main(int argc, char **argv)
{
    struct enroll_options o;
    if (parse_enroll_args(argc, argv, &o) != 0) {
        return enroll_usage(argc > 0 ? argv[0] : "external_key");
    }

    int exit_code = 1;
    struct hsm hsm = {NULL, 0, 0};
    cmpkit_key *key = NULL;
    cmpkit_ctx *ctx = NULL;
    cmpkit_request *req = NULL;
    cmpkit_response *rsp = NULL;

    /* hsm.secret_key (loaded from --key, or generated) stays here; only the external `key`
     * goes to the library. */
    if (load_or_generate_key(o.key_file, &hsm.secret_key) != 0 || make_external_key(&hsm, &key) != 0 ||
        make_enroll_ctx(&o, 1, &ctx) != 0 || make_request(&o, key, &req) != 0) {
        goto done;
    }

    cmpkit_result rc = cmpkit_execute(ctx, req, &rsp);
    if (rc != CMPKIT_RESULT_OK) {
        exchange_failed(rc, cmpkit_ctx_last_error(ctx), rsp, "enrollment failed");
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
