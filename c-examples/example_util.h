/*
 * example_util.h: helpers shared by the examples; not part of the cmpkit API.
 *
 * Everything here is plumbing the examples in c-examples/ would otherwise each repeat, so that
 * every example keeps only what it demonstrates of the cmpkit API:
 *
 *   - command-line parsing: parse_arguments (a table of --options plus positional
 *     arguments), and the arguments shared by the enrollment examples (struct
 *     enroll_options, parse_enroll_args, enroll_usage);
 *   - files: read_file, write_file, wipe;
 *   - failures: call_failed (result name + cmpkit_last_error), ctx_failed (result name +
 *     cmpkit_ctx_last_error), exchange_failed (result name + detail + the server's answer);
 *   - output: write_key_pem and write_cert_pem (the size-query pattern), and
 *     load_or_generate_key;
 *   - a minimal HTTP/1.0 POST client over a non-blocking POSIX socket with poll():
 *     parse_url, http_post, now_ms (nonblocking.c and event_loop.c).
 *
 * Header-only C11 + POSIX: every function is `static inline`, so an example that uses only
 * some of them compiles warning-free with -Wall -Wextra -Wpedantic -Werror. Include it with
 * quotes after <cmpkit.h>; the compiler finds it next to the example, so building one by
 * hand needs only `-I include` (for cmpkit.h):
 *
 *   cc -std=c11 -Wall -Wextra -Wpedantic -I include c-examples/enroll.c \
 *      -L target/debug -lcmpkit -Wl,-rpath,target/debug -o enroll
 */
#ifndef CMPKIT_EXAMPLE_UTIL_H
#define CMPKIT_EXAMPLE_UTIL_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <cmpkit.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#if defined(__GNUC__)
#define EXAMPLE_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define EXAMPLE_PRINTF(fmt, args)
#endif

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- command line ------------------------------------------------------------------ */

/*
 * One --option of a command line; set the member that says what it takes:
 *   .flag                          no value: *flag = 1
 *   .value                         a string: *value = it
 *   .list, .count, .capacity       a string, repeatable: list[(*count)++] = it
 *   .number, .min, .max, .what     a whole number in [min, max]; `what` names it in the
 *                                  error ("--reason: x is not a CRLReason code (0..10)")
 */
struct arg_option {
    const char *name;
    int *flag;
    const char **value;
    const char **list;
    size_t *count;
    size_t capacity;
    int *number;
    long min, max;
    const char *what;
};

/*
 * Parses argv[1..argc): the --options in `options` (anywhere) and exactly `n_positional`
 * positional arguments, stored through `positional` in order. The caller initializes the
 * destinations (defaults) before. Returns 0 on success, 2 on a usage error (message printed).
 */
static inline int parse_arguments(int argc, char **argv, const struct arg_option *options,
                                  size_t n_options, const char **const *positional,
                                  size_t n_positional)
{
    size_t n_seen = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const struct arg_option *opt = NULL;
        for (size_t k = 0; k < n_options && opt == NULL; k++) {
            if (strcmp(a, options[k].name) == 0) {
                opt = &options[k];
            }
        }
        if (opt != NULL && opt->flag != NULL) {
            *opt->flag = 1;
        } else if (opt != NULL) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s needs a value\n", a);
                return 2;
            }
            const char *v = argv[++i];
            if (opt->value != NULL) {
                *opt->value = v;
            } else if (opt->number != NULL) {
                char *end = NULL;
                long n = strtol(v, &end, 10);
                if (end == v || *end != '\0' || n < opt->min || n > opt->max) {
                    fprintf(stderr, "%s: %s is not %s (%ld..%ld)\n", a, v, opt->what, opt->min,
                            opt->max);
                    return 2;
                }
                *opt->number = (int)n;
            } else if (*opt->count < opt->capacity) {
                opt->list[(*opt->count)++] = v;
            } else {
                fprintf(stderr, "at most %zu %s\n", opt->capacity, a);
                return 2;
            }
        } else if (strncmp(a, "--", 2) == 0) {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        } else if (n_seen < n_positional) {
            *positional[n_seen++] = a;
        } else {
            fprintf(stderr, "too many arguments: %s\n", a);
            return 2;
        }
    }
    if (n_seen != n_positional) {
        fprintf(stderr, "missing arguments\n");
        return 2;
    }
    return 0;
}

/* The arguments of the enrollment examples (enroll, external_key, nonblocking, event_loop). */
#define MAX_SANS 16

struct enroll_options {
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

static inline int enroll_usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s URL SECRET REF SUBJECT OUT_KEY.pem OUT_CERT.pem\n"
            "          [--key KEY.pem] [--implicit-confirm] [--recipient DN] [--san-dns NAME]...\n",
            prog);
    return 2;
}

/* Returns 0 on success, 2 on a usage error (message printed). */
static inline int parse_enroll_args(int argc, char **argv, struct enroll_options *o)
{
    const char **const positional[] = {&o->url,     &o->secret,  &o->ref,
                                       &o->subject, &o->out_key, &o->out_cert};
    const struct arg_option options[] = {
        {.name = "--implicit-confirm", .flag = &o->implicit_confirm},
        {.name = "--key", .value = &o->key_file},
        {.name = "--recipient", .value = &o->recipient},
        {.name = "--san-dns", .list = o->san_dns, .count = &o->n_san_dns, .capacity = MAX_SANS},
    };
    memset(o, 0, sizeof *o);
    return parse_arguments(argc, argv, options, ARRAY_LEN(options), positional,
                           ARRAY_LEN(positional));
}

/* ---- files ------------------------------------------------------------------------- */

/* Reads a whole file; the caller frees *data. Returns 0 on success. */
static inline int read_file(const char *path, uint8_t **data, size_t *len)
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
static inline int write_file(const char *path, const uint8_t *data, size_t len, mode_t mode)
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
static inline void wipe(uint8_t *p, size_t len)
{
    volatile uint8_t *v = p;
    while (len--) {
        *v++ = 0;
    }
}

/* ---- failures ---------------------------------------------------------------------- */

/* Prints "<what>: <result name>: <cmpkit_last_error()>" for a failed cmpkit call, `what`
 * formatted like printf. Returns -1. */
static inline int call_failed(cmpkit_result rc, const char *what, ...) EXAMPLE_PRINTF(2, 3);
static inline int call_failed(cmpkit_result rc, const char *what, ...)
{
    va_list ap;
    va_start(ap, what);
    vfprintf(stderr, what, ap);
    va_end(ap);
    const char *detail = cmpkit_last_error();
    fprintf(stderr, ": %s: %s\n", cmpkit_result_name(rc), detail ? detail : "");
    return -1;
}

/* Prints a failed ctx call ("<what>: <result name>: <cmpkit_ctx_last_error>"); returns -1. */
static inline int ctx_failed(const cmpkit_ctx *ctx, const char *what, cmpkit_result rc)
{
    const char *detail = cmpkit_ctx_last_error(ctx);
    fprintf(stderr, "%s: %s: %s\n", what, cmpkit_result_name(rc), detail ? detail : "");
    return -1;
}

/*
 * Creates the context of the enrollment examples: shared secret and reference, recipient,
 * implicit confirmation, and (with `with_url`) the built-in HTTP transfer to o->url.
 * Returns 0 on success.
 */
static inline int make_enroll_ctx(const struct enroll_options *o, int with_url, cmpkit_ctx **out)
{
    cmpkit_ctx *ctx = NULL;
    cmpkit_result rc = cmpkit_ctx_new(&ctx);
    if (rc != CMPKIT_RESULT_OK) {
        fprintf(stderr, "cmpkit_ctx_new: %s\n", cmpkit_result_name(rc));
        return -1;
    }
    if (with_url && (rc = cmpkit_ctx_set_server_url(ctx, o->url)) != CMPKIT_RESULT_OK) {
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

/* Sets the subject and the DNS subjectAltNames of the options on `req`. Returns 0 on success. */
static inline int set_subject_and_sans(const struct enroll_options *o, cmpkit_request *req)
{
    cmpkit_result rc = cmpkit_request_set_subject(req, o->subject);
    if (rc != CMPKIT_RESULT_OK) {
        return call_failed(rc, "cmpkit_request_set_subject(%s)", o->subject);
    }
    for (size_t i = 0; i < o->n_san_dns; i++) {
        rc = cmpkit_request_add_san(req, CMPKIT_SAN_KIND_DNS, o->san_dns[i]);
        if (rc != CMPKIT_RESULT_OK) {
            return call_failed(rc, "cmpkit_request_add_san(%s)", o->san_dns[i]);
        }
    }
    return 0;
}

/*
 * Prints a failed exchange with the server: "<what>: <result name>: <detail>", `what`
 * formatted like printf and `detail` the ctx's or transaction's last error, then what the
 * server answered, if `rsp` is not NULL.
 */
static inline void exchange_failed(cmpkit_result rc, const char *detail,
                                   const cmpkit_response *rsp, const char *what, ...)
    EXAMPLE_PRINTF(4, 5);
static inline void exchange_failed(cmpkit_result rc, const char *detail,
                                   const cmpkit_response *rsp, const char *what, ...)
{
    va_list ap;
    va_start(ap, what);
    vfprintf(stderr, what, ap);
    va_end(ap);
    fprintf(stderr, ": %s: %s\n", cmpkit_result_name(rc), detail ? detail : "(no detail)");
    if (rsp != NULL) {
        fprintf(stderr, "the server said: %s\n", cmpkit_response_summary(rsp));
    }
}

/* ---- keys and certificates --------------------------------------------------------- */

/* Writes the private key as PKCS#8 PEM (mode 0600). Returns 0 on success. */
static inline int write_key_pem(const cmpkit_key *key, const char *path)
{
    size_t len = 0;
    cmpkit_result rc = cmpkit_key_private_key_pem(key, NULL, 0, &len);
    if (rc != CMPKIT_RESULT_BUFFER_TOO_SMALL) {
        return call_failed(rc, "cmpkit_key_private_key_pem (size)");
    }
    uint8_t *pem = malloc(len);
    if (pem == NULL) {
        fprintf(stderr, "out of memory\n");
        return -1;
    }
    rc = cmpkit_key_private_key_pem(key, pem, len, &len);
    int ret = -1;
    if (rc != CMPKIT_RESULT_OK) {
        call_failed(rc, "cmpkit_key_private_key_pem");
    } else {
        ret = write_file(path, pem, len, 0600);
    }
    wipe(pem, len);
    free(pem);
    return ret;
}

/* Writes the issued certificate as PEM. Returns 0 on success. */
static inline int write_cert_pem(const cmpkit_response *rsp, const char *path)
{
    size_t len = 0;
    cmpkit_result rc = cmpkit_response_cert_pem(rsp, NULL, 0, &len);
    if (rc != CMPKIT_RESULT_BUFFER_TOO_SMALL) {
        return call_failed(rc, "cmpkit_response_cert_pem (size)");
    }
    uint8_t *pem = malloc(len);
    if (pem == NULL) {
        fprintf(stderr, "out of memory\n");
        return -1;
    }
    int ret = -1;
    rc = cmpkit_response_cert_pem(rsp, pem, len, &len);
    if (rc != CMPKIT_RESULT_OK) {
        call_failed(rc, "cmpkit_response_cert_pem");
    } else {
        ret = write_file(path, pem, len, 0644);
    }
    free(pem);
    return ret;
}

/* Loads the key in `key_file` (PEM or DER), or generates an EC P-256 key if it is NULL.
 * Returns 0 on success. */
static inline int load_or_generate_key(const char *key_file, cmpkit_key **key)
{
    cmpkit_result rc;
    if (key_file == NULL) {
        rc = cmpkit_key_generate(CMPKIT_KEY_KIND_EC_P256, 0, key);
        if (rc != CMPKIT_RESULT_OK) {
            return call_failed(rc, "cmpkit_key_generate");
        }
        return 0;
    }
    uint8_t *data = NULL;
    size_t len = 0;
    if (read_file(key_file, &data, &len) != 0) {
        return -1;
    }
    rc = cmpkit_key_from_pem_or_der(data, len, key);
    wipe(data, len);
    free(data);
    if (rc != CMPKIT_RESULT_OK) {
        return call_failed(rc, "cmpkit_key_from_pem_or_der(%s)", key_file);
    }
    return 0;
}

/* ---- a minimal HTTP/1.0 client ----------------------------------------------------- */

#define HTTP_TIMEOUT_MS 30000
#define HTTP_MAX_RESPONSE (1024 * 1024 + 16 * 1024)

struct url {
    struct sockaddr_in addr;
    char host[64];
    unsigned port;
    const char *path;
};

/* Parses http://A.B.C.D[:PORT]/PATH. Returns 0 on success. */
static inline int parse_url(const char *text, struct url *u)
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

/* Milliseconds on the monotonic clock. */
static inline long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until `fd` is ready for `events` or the deadline passes. Returns 0 when ready. */
static inline int wait_for(int fd, short events, long long deadline, char *err, size_t err_cap)
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
static inline int send_all(int fd, const uint8_t *data, size_t len, long long deadline,
                           char *err, size_t err_cap)
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
static inline const char *find_header(const char *hdr, const char *hdr_end, const char *name)
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
static inline int http_post(const struct url *u, const uint8_t *req, size_t req_len,
                            uint8_t **reply, const uint8_t **body, size_t *body_len, char *err,
                            size_t err_cap)
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

#endif /* CMPKIT_EXAMPLE_UTIL_H */
