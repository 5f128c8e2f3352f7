/*
 * event_loop: a certification request (cr) driven by the program's own event loop, which
 * also honours the server's polling: when the CA answers "waiting", the loop schedules the
 * pollReq with a timer instead of blocking inside the library.
 *
 *   event_loop URL SECRET REF SUBJECT OUT_KEY.pem OUT_CERT.pem
 *              [--key KEY.pem] [--implicit-confirm] [--recipient DN] [--san-dns NAME]...
 *
 * URL is http://HOST[:PORT]/PATH with HOST an IPv4 literal. Each turn of the loop asks
 * cmpkit_transaction_wait_ms how long to wait before the pending request may go out (0: now;
 * more while polling) and waits with poll(2) — the place where a real program would also
 * serve its other file descriptors; then the request (cmpkit_transaction_request) is POSTed
 * over a minimal HTTP/1.0 client on a non-blocking socket, and the answer fed to
 * cmpkit_transaction_feed, until cmpkit_transaction_is_done. The HTTP client is the one of
 * nonblocking.c, duplicated because every example is a single file.
 * Exit code: 0 certificate issued and confirmed, 1 failure, 2 usage error.
 *
 * Build: cc -std=c11 -Wall -Wextra -Wpedantic -I include c-examples/event_loop.c \
 *           -L target/debug -lcmpkit -Wl,-rpath,target/debug -o event_loop
 */
#define _POSIX_C_SOURCE 200809L

#include <cmpkit.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
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

/* ---- a minimal HTTP/1.0 client ---------------------------------------------------- */

#define HTTP_TIMEOUT_MS 30000
#define HTTP_MAX_RESPONSE (1024 * 1024 + 16 * 1024)

struct url {
    struct sockaddr_in addr;
    char host[64];
    unsigned port;
    const char *path;
};

/* Parses http://A.B.C.D[:PORT]/PATH. Returns 0 on success. */
static int parse_url(const char *text, struct url *u)
{
    const char *p = text;
    memset(u, 0, sizeof *u);
    if (strncmp(p, "http://", 7) != 0) {
        fprintf(stderr, "%s: only http:// URLs are supported\n", text);
        return -1;
    }
    p += 7;
    size_t host_len = strcspn(p, ":/");
    if (host_len == 0 || host_len >= sizeof u->host) {
        fprintf(stderr, "%s: bad host\n", text);
        return -1;
    }
    memcpy(u->host, p, host_len);
    u->host[host_len] = '\0';
    p += host_len;
    u->port = 80;
    if (*p == ':') {
        char *end = NULL;
        unsigned long port = strtoul(p + 1, &end, 10);
        if (end == p + 1 || port == 0 || port > 65535 || (*end != '/' && *end != '\0')) {
            fprintf(stderr, "%s: bad port\n", text);
            return -1;
        }
        u->port = (unsigned)port;
        p = end;
    }
    u->path = *p == '/' ? p : "/";
    u->addr.sin_family = AF_INET;
    u->addr.sin_port = htons((uint16_t)u->port);
    if (inet_pton(AF_INET, u->host, &u->addr.sin_addr) != 1) {
        fprintf(stderr, "%s: the host must be an IPv4 address like 127.0.0.1\n", text);
        return -1;
    }
    return 0;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until `fd` is ready for `events` or the deadline passes. Returns 0 when ready. */
static int wait_for(int fd, short events, long long deadline, char *err, size_t err_cap)
{
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0) {
            snprintf(err, err_cap, "timed out after %d ms", HTTP_TIMEOUT_MS);
            return -1;
        }
        struct pollfd pfd = {fd, events, 0};
        int n = poll(&pfd, 1, (int)left);
        if (n > 0) {
            return 0;
        }
        if (n < 0 && errno != EINTR) {
            snprintf(err, err_cap, "poll: %s", strerror(errno));
            return -1;
        }
    }
}

/* Sends all of `data` on the non-blocking socket. Returns 0 on success. */
static int send_all(int fd, const uint8_t *data, size_t len, long long deadline, char *err,
                    size_t err_cap)
{
    size_t done = 0;
    while (done < len) {
        if (wait_for(fd, POLLOUT, deadline, err, err_cap) != 0) {
            return -1;
        }
        ssize_t n = send(fd, data + done, len - done, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                continue;
            }
            snprintf(err, err_cap, "send: %s", strerror(errno));
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

/* Finds header `name` in the header block [hdr, hdr_end); returns its value or NULL. */
static const char *find_header(const char *hdr, const char *hdr_end, const char *name)
{
    size_t name_len = strlen(name);
    const char *line = strstr(hdr, "\r\n");
    while (line != NULL && line + 2 < hdr_end) {
        line += 2;
        if ((size_t)(hdr_end - line) > name_len && strncasecmp(line, name, name_len) == 0 &&
            line[name_len] == ':') {
            const char *v = line + name_len + 1;
            while (*v == ' ' || *v == '\t') {
                v++;
            }
            return v;
        }
        line = strstr(line, "\r\n");
    }
    return NULL;
}

/*
 * POSTs `req` to the URL and returns the reply's body: *reply (the caller frees it) holds the
 * whole reply, the body starts at *body with *body_len bytes. Returns 0 on success; otherwise
 * a description is in `err`.
 */
static int http_post(const struct url *u, const uint8_t *req, size_t req_len, uint8_t **reply,
                     const uint8_t **body, size_t *body_len, char *err, size_t err_cap)
{
    long long deadline = now_ms() + HTTP_TIMEOUT_MS;
    uint8_t *buf = NULL;
    int ret = -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        snprintf(err, err_cap, "socket: %s", strerror(errno));
        return -1;
    }
    int flags = fcntl(fd, F_GETFL, 0);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        snprintf(err, err_cap, "fcntl: %s", strerror(errno));
        goto out;
    }
    if (connect(fd, (const struct sockaddr *)&u->addr, sizeof u->addr) != 0) {
        if (errno != EINPROGRESS) {
            snprintf(err, err_cap, "connect to %s:%u: %s", u->host, u->port, strerror(errno));
            goto out;
        }
        if (wait_for(fd, POLLOUT, deadline, err, err_cap) != 0) {
            goto out;
        }
        int so_error = 0;
        socklen_t so_len = sizeof so_error;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &so_len) != 0 || so_error != 0) {
            snprintf(err, err_cap, "connect to %s:%u: %s", u->host, u->port,
                     strerror(so_error ? so_error : errno));
            goto out;
        }
    }

    char head[1024];
    int head_len = snprintf(head, sizeof head,
                            "POST %s HTTP/1.0\r\n"
                            "Host: %s:%u\r\n"
                            "Content-Type: application/pkixcmp\r\n"
                            "Content-Length: %zu\r\n"
                            "Connection: close\r\n"
                            "\r\n",
                            u->path, u->host, u->port, req_len);
    if (head_len < 0 || (size_t)head_len >= sizeof head) {
        snprintf(err, err_cap, "the path is too long");
        goto out;
    }
    if (send_all(fd, (const uint8_t *)head, (size_t)head_len, deadline, err, err_cap) != 0 ||
        send_all(fd, req, req_len, deadline, err, err_cap) != 0) {
        goto out;
    }

    /* Read until EOF, or until Content-Length bytes of body are there. One byte more than
     * the data is kept for a terminating NUL so the header block can be searched as text. */
    size_t used = 0, cap = 0;
    const char *hdr_end = NULL;
    size_t want = 0; /* total length from Content-Length, 0 = read to EOF */
    for (;;) {
        if (want != 0 && used >= want) {
            break;
        }
        if (used + 1 >= cap) {
            size_t ncap = cap ? cap * 2 : 8192;
            if (ncap > HTTP_MAX_RESPONSE + 1) {
                ncap = HTTP_MAX_RESPONSE + 1;
            }
            if (used + 1 >= ncap) {
                snprintf(err, err_cap, "the reply exceeds %d bytes", HTTP_MAX_RESPONSE);
                goto out;
            }
            uint8_t *n = realloc(buf, ncap);
            if (n == NULL) {
                snprintf(err, err_cap, "out of memory");
                goto out;
            }
            buf = n;
            cap = ncap;
        }
        if (wait_for(fd, POLLIN, deadline, err, err_cap) != 0) {
            goto out;
        }
        ssize_t n = recv(fd, buf + used, cap - 1 - used, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                continue;
            }
            snprintf(err, err_cap, "recv: %s", strerror(errno));
            goto out;
        }
        if (n == 0) {
            break; /* EOF */
        }
        used += (size_t)n;
        buf[used] = '\0';
        if (hdr_end == NULL) {
            hdr_end = strstr((const char *)buf, "\r\n\r\n");
            if (hdr_end != NULL) {
                const char *cl = find_header((const char *)buf, hdr_end, "Content-Length");
                if (cl != NULL) {
                    size_t hdr_len = (size_t)(hdr_end + 4 - (const char *)buf);
                    unsigned long long v = strtoull(cl, NULL, 10);
                    if (v > HTTP_MAX_RESPONSE) {
                        snprintf(err, err_cap, "Content-Length %llu is too large", v);
                        goto out;
                    }
                    want = hdr_len + (size_t)v;
                }
            }
        }
    }
    if (buf == NULL) {
        snprintf(err, err_cap, "the server closed the connection without a reply");
        goto out;
    }
    buf[used] = '\0';
    hdr_end = strstr((const char *)buf, "\r\n\r\n");
    if (hdr_end == NULL) {
        snprintf(err, err_cap, "the reply has no complete HTTP header");
        goto out;
    }
    int status = 0;
    if (sscanf((const char *)buf, "HTTP/%*d.%*d %d", &status) != 1) {
        snprintf(err, err_cap, "the reply has no HTTP status line");
        goto out;
    }
    if (status != 200) {
        snprintf(err, err_cap, "HTTP status %d", status);
        goto out;
    }
    size_t hdr_len = (size_t)(hdr_end + 4 - (const char *)buf);
    if (want != 0 && used < want) {
        snprintf(err, err_cap, "the reply is truncated (%zu of %zu bytes)", used, want);
        goto out;
    }
    *body = buf + hdr_len;
    *body_len = (want != 0 ? want : used) - hdr_len;
    *reply = buf;
    buf = NULL;
    ret = 0;
out:
    free(buf);
    close(fd);
    return ret;
}

/* ---- the enrollment ------------------------------------------------------------------ */

/* Prints a failed ctx call; returns -1. */
static int ctx_failed(const cmpkit_ctx *ctx, const char *what, cmpkit_result rc)
{
    const char *detail = cmpkit_ctx_last_error(ctx);
    fprintf(stderr, "%s: %s: %s\n", what, cmpkit_result_name(rc), detail ? detail : "");
    return -1;
}

/* Creates the context: secret, recipient, implicit confirm (no transfer: we move the bytes).
 * Returns 0 on success. */
static int make_ctx(const struct options *o, cmpkit_ctx **out)
{
    cmpkit_ctx *ctx = NULL;
    cmpkit_result rc = cmpkit_ctx_new(&ctx);
    if (rc != CMPKIT_RESULT_OK) {
        fprintf(stderr, "cmpkit_ctx_new: %s\n", cmpkit_result_name(rc));
        return -1;
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

/* Creates the cr for `key` with the subject and SANs. Returns 0 on success. */
static int make_request(const struct options *o, const cmpkit_key *key, cmpkit_request **out)
{
    cmpkit_request *req = NULL;
    cmpkit_result rc = cmpkit_request_new_cr(key, &req);
    if (rc != CMPKIT_RESULT_OK) {
        fprintf(stderr, "cmpkit_request_new_cr: %s: %s\n", cmpkit_result_name(rc),
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
    struct url url;
    if (parse_args(argc, argv, &o) != 0) {
        return usage(argc > 0 ? argv[0] : "event_loop");
    }
    if (parse_url(o.url, &url) != 0) {
        return usage(argc > 0 ? argv[0] : "event_loop");
    }

    int exit_code = 1;
    cmpkit_key *key = NULL;
    cmpkit_ctx *ctx = NULL;
    cmpkit_request *req = NULL;
    cmpkit_transaction *tx = NULL;
    cmpkit_response *rsp = NULL;

    if (get_key(&o, &key) != 0 || make_ctx(&o, &ctx) != 0 ||
        make_request(&o, key, &req) != 0) {
        goto done;
    }

    cmpkit_result rc = cmpkit_transaction_start(ctx, req, &tx);
    if (rc != CMPKIT_RESULT_OK) {
        ctx_failed(ctx, "cmpkit_transaction_start", rc);
        goto done;
    }

    int round_trips = 0;
    long long started = now_ms(), waited = 0;
    while (!cmpkit_transaction_is_done(tx)) {
        /* The timer: how long until the pending request may be sent (polling). */
        int64_t wait = cmpkit_transaction_wait_ms(tx);
        if (wait < 0) {
            break; /* done */
        }
        if (wait > 0) {
            printf("server asks to poll again in %lld ms\n", (long long)wait);
            long long until = now_ms() + wait;
            for (;;) {
                long long left = until - now_ms();
                if (left <= 0) {
                    break;
                }
                /* No other descriptors in this example: poll(2) is just the timer. */
                if (poll(NULL, 0, left > 60000 ? 60000 : (int)left) < 0 && errno != EINTR) {
                    perror("poll");
                    break;
                }
            }
            waited += wait;
        }
        const uint8_t *msg = NULL;
        size_t msg_len = 0;
        rc = cmpkit_transaction_request(tx, &msg, &msg_len);
        if (rc != CMPKIT_RESULT_OK) {
            fprintf(stderr, "cmpkit_transaction_request: %s: %s\n", cmpkit_result_name(rc),
                    cmpkit_last_error() ? cmpkit_last_error() : "");
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
        /* A failed feed (including a polling deadline passed) ends the transaction; the loop
         * condition sees it. */
        (void)cmpkit_transaction_feed(tx, body, body_len);
        free(reply);
    }

    rc = cmpkit_transaction_result(tx);
    if (cmpkit_transaction_response(tx, &rsp) != CMPKIT_RESULT_OK) {
        rsp = NULL;
    }
    if (rc != CMPKIT_RESULT_OK) {
        const char *detail = cmpkit_transaction_last_error(tx);
        fprintf(stderr, "certification failed after %d round trips: %s: %s\n", round_trips,
                cmpkit_result_name(rc), detail ? detail : "(no detail)");
        if (rsp != NULL && cmpkit_response_status(rsp) >= 0) {
            fprintf(stderr, "the server said: %s\n", cmpkit_response_summary(rsp));
        }
        goto done;
    }

    printf("round trips: %d\n", round_trips);
    printf("poll rounds: %u\n", cmpkit_response_poll_rounds(rsp));
    printf("waited: %lld ms of %lld ms\n", waited, now_ms() - started);
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
