/*
 * ca_server: a CMP CA whose issuance policy is C code.
 *
 *   ca_server PORT MAX_REQUESTS SECRET REF
 *
 * Listens on http://127.0.0.1:PORT/pkix/ (PORT 0: any free port; the line
 * "listening on http://127.0.0.1:PORT/pkix/" tells which) and accepts requests
 * MAC-protected with SECRET under the reference REF. Certificates are issued by the
 * library's built-in demo CA, but only when the C policy below allows it: the subject's
 * commonName must end in ".example"; other requests are rejected with failInfo
 * badCertTemplate and the text "policy: CN must end in .example". Stops after
 * MAX_REQUESTS HTTP requests were answered (an enrollment with certConf takes two).
 * Exit code: 0 after a clean stop, 1 on failure, 2 usage error.
 *
 * Build: cc -std=c11 -Wall -Wextra -Wpedantic -I include c-examples/ca_server.c \
 *           -L target/debug -lcmpkit -Wl,-rpath,target/debug -o ca_server
 */
#define _POSIX_C_SOURCE 200809L

#include <cmpkit.h>

#include "example_util.h" /* call_failed: not cmpkit API */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* PKIFailureInfo bit 19. */
#define FAIL_BAD_CERT_TEMPLATE (1u << 19)

struct policy {
    const char *suffix;
    unsigned issued, rejected; /* one worker thread: no locking needed */
};

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

/* The issuance policy: delegate to the built-in CA, or reject. */
static int on_certificate_request(void *userdata, const cmpkit_cert_request_info *info,
                                  cmpkit_decision *decision) {
    struct policy *p = userdata;
    const char *cn = cmpkit_cert_request_info_common_name(info);
    const char *who = cmpkit_cert_request_info_requester(info);
    if (cn != NULL && ends_with(cn, p->suffix)) {
        p->issued++;
        fprintf(stderr, "policy: issue CN=%s for %s\n", cn, who);
        return cmpkit_decision_delegate(decision) == CMPKIT_RESULT_OK ? 0 : 1;
    }
    p->rejected++;
    fprintf(stderr, "policy: reject CN=%s for %s\n", cn ? cn : "(none)", who);
    return cmpkit_decision_reject(decision, FAIL_BAD_CERT_TEMPLATE,
                                  "policy: CN must end in .example") == CMPKIT_RESULT_OK ? 0 : 1;
}

static void on_cert_confirm(void *userdata, const uint8_t *tid, size_t tid_len,
                            const uint8_t *cert, size_t cert_len, int accepted) {
    (void)userdata; (void)tid; (void)tid_len; (void)cert;
    fprintf(stderr, "policy: certificate (%zu bytes) %s\n", cert_len,
            accepted ? "confirmed" : "not confirmed");
}

/* The library's log: each answered request, each rejection and each refused request with the
 * check that failed. Called from the server's worker threads. */
static void on_log(void *userdata, uint32_t level, const char *line) {
    (void)userdata;
    fprintf(stderr, "cmpkit[%s]: %s\n", level == CMPKIT_LOG_LEVEL_ERROR ? "error" : "info", line);
}

static int fail(const char *what, cmpkit_result rc) {
    call_failed(rc, "ca_server: %s", what);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s PORT MAX_REQUESTS SECRET REF\n", argv[0]);
        return 2;
    }
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%s", argv[1]);
    unsigned long max_requests = strtoul(argv[2], NULL, 10);
    const char *secret = argv[3], *ref = argv[4];

    struct policy policy = { ".example", 0, 0 };
    cmpkit_ca_handler handler = { &policy, on_certificate_request, NULL, on_cert_confirm };

    cmpkit_server_config *cfg = NULL;
    cmpkit_server *srv = NULL;
    cmpkit_listener *listener = NULL;
    cmpkit_result rc = cmpkit_server_config_new(&cfg);
    if (rc != CMPKIT_RESULT_OK) return fail("config", rc);
    rc = cmpkit_server_config_add_secret(cfg, (const uint8_t *)ref, strlen(ref),
                                         (const uint8_t *)secret, strlen(secret));
    if (rc == CMPKIT_RESULT_OK)
        rc = cmpkit_server_config_set_log(cfg, CMPKIT_LOG_LEVEL_INFO, on_log, NULL);
    if (rc == CMPKIT_RESULT_OK) rc = cmpkit_server_new(cfg, &handler, &srv);
    cmpkit_server_config_free(cfg);
    if (rc != CMPKIT_RESULT_OK) return fail("server", rc);
    rc = cmpkit_server_listen(srv, addr, 1, &listener);
    if (rc != CMPKIT_RESULT_OK) {
        cmpkit_server_free(srv);
        return fail("listen", rc);
    }
    printf("listening on http://127.0.0.1:%u/pkix/\n", (unsigned)cmpkit_listener_port(listener));
    fflush(stdout);

    const struct timespec tick = { 0, 20 * 1000 * 1000 };
    while (cmpkit_listener_requests_served(listener) < max_requests)
        nanosleep(&tick, NULL);

    rc = cmpkit_listener_stop(listener);
    printf("served %lu requests: %u issued, %u rejected by policy; the CA holds %lu\n",
           max_requests, policy.issued, policy.rejected,
           (unsigned long)cmpkit_server_issued_count(srv));
    cmpkit_server_free(srv);
    return rc == CMPKIT_RESULT_OK ? 0 : fail("stop", rc);
}
