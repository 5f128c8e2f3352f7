/*
 * enroll: get a certificate from a CMP server with an initialization request (ir)
 * protected by a shared secret (MAC), using the blocking cmpkit_execute.
 *
 *   enroll URL SECRET REF SUBJECT OUT_KEY.pem OUT_CERT.pem
 *          [--key KEY.pem] [--implicit-confirm] [--recipient DN] [--san-dns NAME]...
 *
 * Without --key a new EC P-256 key is generated; with it, the key in KEY.pem is certified.
 * Exit code: 0 certificate issued and confirmed, 1 failure, 2 usage error.
 *
 * Build: cc -std=c11 -Wall -Wextra -Wpedantic -I include c-examples/enroll.c \
 *           -L target/debug -lcmpkit -Wl,-rpath,target/debug -o enroll
 */
#define _POSIX_C_SOURCE 200809L

#include <cmpkit.h>

#include "example_util.h" /* shared helpers, incl. the MAC context setup: not cmpkit API */

#include <stdio.h>
#include <string.h>

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
        return enroll_usage(argc > 0 ? argv[0] : "enroll");
    }

    int exit_code = 1;
    cmpkit_key *key = NULL;
    cmpkit_ctx *ctx = NULL;
    cmpkit_request *req = NULL;
    cmpkit_response *rsp = NULL;

    if (load_or_generate_key(o.key_file, &key) != 0 || make_enroll_ctx(&o, 1, &ctx) != 0 ||
        make_request(&o, key, &req) != 0) {
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

    if (write_key_pem(key, o.out_key) != 0 || write_cert_pem(rsp, o.out_cert) != 0) {
        goto done;
    }
    printf("wrote %s and %s\n", o.out_key, o.out_cert);
    exit_code = 0;

done:
    cmpkit_response_free(rsp);
    cmpkit_request_free(req);
    cmpkit_ctx_free(ctx);
    cmpkit_key_free(key);
    return exit_code;
}
