/*
 * nonblocking: the enrollment of enroll.c, but the program moves the bytes itself.
 *
 *   nonblocking URL SECRET REF SUBJECT OUT_KEY.pem OUT_CERT.pem
 *               [--key KEY.pem] [--implicit-confirm] [--recipient DN] [--san-dns NAME]...
 *
 * URL is http://HOST[:PORT]/PATH with HOST an IPv4 literal. cmpkit_transaction_start makes the
 * transaction; each request it gives (cmpkit_transaction_request) is POSTed with a minimal
 * HTTP/1.0 client over a non-blocking POSIX socket (http_post in example_util.h: poll() with
 * a deadline, so it never hangs), and the answer's body goes to cmpkit_transaction_feed,
 * until cmpkit_transaction_is_done. The same loop fits an event loop, a serial line or CoAP.
 * Exit code: 0 certificate issued and confirmed, 1 failure, 2 usage error.
 *
 * Build: cc -std=c11 -Wall -Wextra -Wpedantic -I include c-examples/nonblocking.c \
 *           -L target/debug -lcmpkit -Wl,-rpath,target/debug -o nonblocking
 */
#define _POSIX_C_SOURCE 200809L

#include <cmpkit.h>

#include "example_util.h" /* shared helpers, incl. the MAC context setup: not cmpkit API */

#include <stdio.h>
#include <stdlib.h>
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
    struct url url;
    if (parse_enroll_args(argc, argv, &o) != 0) {
        return enroll_usage(argc > 0 ? argv[0] : "nonblocking");
    }
    if (parse_url(o.url, &url) != 0) {
        return enroll_usage(argc > 0 ? argv[0] : "nonblocking");
    }

    int exit_code = 1;
    cmpkit_key *key = NULL;
    cmpkit_ctx *ctx = NULL;
    cmpkit_request *req = NULL;
    cmpkit_transaction *tx = NULL;
    cmpkit_response *rsp = NULL;

    if (load_or_generate_key(o.key_file, &key) != 0 || make_enroll_ctx(&o, 0, &ctx) != 0 ||
        make_request(&o, key, &req) != 0) {
        goto done;
    }

    cmpkit_result rc = cmpkit_transaction_start(ctx, req, &tx);
    if (rc != CMPKIT_RESULT_OK) {
        ctx_failed(ctx, "cmpkit_transaction_start", rc);
        goto done;
    }

    int round_trips = 0;
    while (!cmpkit_transaction_is_done(tx)) {
        const uint8_t *msg = NULL;
        size_t msg_len = 0;
        rc = cmpkit_transaction_request(tx, &msg, &msg_len);
        if (rc != CMPKIT_RESULT_OK) {
            call_failed(rc, "cmpkit_transaction_request");
            break;
        }
        uint8_t *reply = NULL;
        const uint8_t *body = NULL;
        size_t body_len = 0;
        char err[256];
        if (http_post(&url, msg, msg_len, &reply, &body, &body_len, err, sizeof err) != 0) {
            /* The transfer failed: end the transaction with our reason. */
            fprintf(stderr, "HTTP POST to %s failed: %s\n", o.url, err);
            rc = cmpkit_transaction_abort(tx, err);
            if (rc != CMPKIT_RESULT_OK) {
                fprintf(stderr, "cmpkit_transaction_abort: %s\n", cmpkit_result_name(rc));
            }
            break;
        }
        round_trips++;
        /* A failed feed ends the transaction; the loop condition sees it. */
        (void)cmpkit_transaction_feed(tx, body, body_len);
        free(reply);
    }

    rc = cmpkit_transaction_result(tx);
    if (cmpkit_transaction_response(tx, &rsp) != CMPKIT_RESULT_OK) {
        rsp = NULL;
    }
    if (rc != CMPKIT_RESULT_OK) {
        /* The server's answer only if it gave a PKIStatus (not for a failed transfer). */
        exchange_failed(rc, cmpkit_transaction_last_error(tx),
                        cmpkit_response_status(rsp) >= 0 ? rsp : NULL,
                        "enrollment failed after %d round trips", round_trips);
        goto done;
    }

    printf("round trips: %d\n", round_trips);
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
    cmpkit_transaction_free(tx);
    cmpkit_request_free(req);
    cmpkit_ctx_free(ctx);
    cmpkit_key_free(key);
    return exit_code;
}
