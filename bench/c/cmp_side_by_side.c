/*
 * cmp_side_by_side: the same CMP transactions through cmpkit's C API and through
 * OpenSSL's own CMP client and server (OSSL_CMP_CTX + OSSL_CMP_SRV_CTX), in one process,
 * on one libcrypto, with the same keys and certificates.
 *
 *   cmp_side_by_side [N] [ROUNDS] [all|SCENARIO]
 *
 * N transactions per scenario and implementation (default 300), after 10 warm-ups each,
 * in ROUNDS round-robin rounds (default 10): every round runs a batch of each scenario
 * with both implementations, alternating which goes first. Scenarios (as in
 * examples/bench_cmp.rs and shared/bench/ossl_cmp_bench.c):
 *
 *   ir_mac           ir + certConf, PBM shared secret (500 iterations, HMAC-SHA256)
 *   ir_mac_implicit  ir with implicit confirmation granted
 *   cr_sig           cr + certConf, ECDSA P-256 signatures both ways
 *   kur_sig          kur of the client certificate + certConf
 *   rr_sig           rr of the client certificate
 *   genm_sig         genm id-it-caCerts
 *
 * Each client talks to its own library's server in-process; every message crosses as DER
 * (cmpkit: cmpkit_server_process in the transfer callback; OpenSSL: i2d, then d2i +
 * OSSL_CMP_SRV_process_request + i2d, then d2i). The PKI (a root, a CMP server and a client
 * certificate, EC P-256 and ECDSA-SHA256) is generated once at start. cmpkit's server
 * issues with its built-in CA (cmpkit_server_config_set_ca) set to the same root as the
 * OpenSSL server's CA callback, which is this file's C code; both CAs issue the same
 * extensions (basicConstraints, subject and authority key identifiers) and 128-bit serials.
 *
 * Checks: every transaction must succeed (status accepted, certificate or genp present,
 * expected number of round trips, server callbacks called as expected); after each batch,
 * untimed, every issued certificate is decoded and must carry the requested key, name the
 * root as issuer and verify with the root's key. Any failure exits with status 2.
 *
 * Output: for each scenario and implementation a line
 *   scenario=S impl=I n=N cpu_us_per_txn=.. us_per_txn=.. best_cpu_us_per_txn=..
 *            crypto_allocs_per_txn=.. all_allocs_per_txn=..
 * then a line "ratio scenario=S cpu=.. best_cpu=.. crypto_allocs=.." (OpenSSL / cmpkit: > 1
 * means cmpkit is faster or allocates less), and a Markdown table.
 *   cpu: CLOCK_THREAD_CPUTIME_ID; us: CLOCK_MONOTONIC; best: the best batch's mean.
 *   crypto_allocs: CRYPTO_malloc/CRYPTO_realloc calls of libcrypto (counted through
 *     CRYPTO_set_mem_functions), the same yardstick for both.
 *   all_allocs: every malloc/calloc/realloc in the process (glibc only: counted by
 *     interposing malloc; -DNO_MALLOC_COUNT turns that off and prints -1). For cmpkit the
 *     difference all - crypto is its Rust heap; for OpenSSL it is this program's own few.
 *
 * CMP_SIDE_BY_SIDE_IMPL=openssl or =cmpkit in the environment runs only that implementation
 * (no ratio then), for profiling one side with perf.
 *
 * Build: bench/c_compare.sh does it (cc ... -lcmpkit -lcrypto); C11 + POSIX, OpenSSL 3.0
 * or later.
 */
#define _POSIX_C_SOURCE 200809L

#include <cmpkit.h>

#include <openssl/cmp.h>
#include <openssl/crmf.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WARMUP 10
#define PBM_ITERATIONS 500 /* OpenSSL's fixed PBM iteration count */
#define CERT_MAX 2048      /* room for one issued certificate's DER */

static const char REF[] = "side-by-side-ref";
static const char SECRET[] = "side-by-side-secret-0123456789";

/* ------------------------------------------------------------------------------------ */
/* failures                                                                              */

static void fail(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("FATAL: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    ERR_print_errors_fp(stderr);
    exit(2);
}

#define ENSURE(cond)                                                                   \
    do {                                                                               \
        if (!(cond))                                                                   \
            fail("%s:%d: %s", __FILE__, __LINE__, #cond);                              \
    } while (0)

/* ------------------------------------------------------------------------------------ */
/* allocation counting                                                                   */

static unsigned long crypto_allocs; /* libcrypto's CRYPTO_malloc / CRYPTO_realloc */
static unsigned long all_allocs;    /* every malloc / calloc / realloc (glibc) */
static int all_allocs_counted;

static void *count_crypto_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    crypto_allocs++;
    return malloc(n);
}

static void *count_crypto_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    crypto_allocs++;
    return realloc(p, n);
}

static void count_crypto_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    free(p);
}

#if defined(__GLIBC__) && !defined(NO_MALLOC_COUNT)
/*
 * The process-wide allocator entry points, defined in the executable so that every shared
 * object (libcmpkit's Rust code, libcrypto, libc's callers) reaches them first; they count
 * and forward to glibc's implementation. One thread, so a plain counter does.
 */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

void *malloc(size_t n)
{
    all_allocs++;
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    all_allocs++;
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    all_allocs++;
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}
#define ALL_ALLOCS_AVAILABLE 1
#else
#define ALL_ALLOCS_AVAILABLE 0
#endif

/* ------------------------------------------------------------------------------------ */
/* clocks                                                                                */

typedef struct {
    double cpu, wall; /* microseconds */
} stamp;

static double us_of(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static stamp stamp_now(void)
{
    stamp s = { us_of(CLOCK_THREAD_CPUTIME_ID), us_of(CLOCK_MONOTONIC) };

    return s;
}

/* ------------------------------------------------------------------------------------ */
/* the PKI, made once                                                                    */

typedef struct {
    EVP_PKEY *key;
    X509 *cert;
    unsigned char *der; /* the certificate */
    int der_len;
} credential;

static credential root, server_id, client_id;

/* An enrollment key: for OpenSSL, for cmpkit, and its SubjectPublicKeyInfo to compare. */
typedef struct {
    EVP_PKEY *pkey;
    cmpkit_key *ck;
    unsigned char *spki;
    int spki_len;
} enroll_key;

static X509_NAME *cn_name(const char *cn)
{
    X509_NAME *n = X509_NAME_new();

    ENSURE(n != NULL);
    ENSURE(X509_NAME_add_entry_by_NID(n, NID_commonName, MBSTRING_UTF8,
                                      (const unsigned char *)cn, -1, -1, 0));
    return n;
}

/* A positive random 128-bit serial number, as cmpkit's CA makes them. */
static int set_random_serial(X509 *x)
{
    unsigned char b[16];
    BIGNUM *bn;
    int ok;

    if (RAND_bytes(b, sizeof b) != 1)
        return 0;
    b[0] = (unsigned char)((b[0] & 0x7f) | 0x01);
    bn = BN_bin2bn(b, sizeof b, NULL);
    ok = bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok;
}

/* Add extension `nid` with the OpenSSL config text `value` (issuer = root.cert or x). */
static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *e;
    int ok;

    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    ok = e != NULL && X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok;
}

/*
 * A certificate for `subject`, signed by `signer` (issuer `issuer`, NULL: self-signed).
 * The public key is set by the caller through `x` before signing: `pub` if not NULL.
 * `ku` (may be NULL) is a keyUsage value; end-entity certificates of the CA have none.
 */
static X509 *make_cert(const X509_NAME *subject, EVP_PKEY *pub, X509_PUBKEY *spki, X509 *issuer,
                       EVP_PKEY *signer, int ca, const char *ku)
{
    X509 *x = X509_new();

    if (x == NULL || !X509_set_version(x, X509_VERSION_3) || !set_random_serial(x)
        || !X509_set_subject_name(x, subject)
        || !X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : subject)
        || X509_gmtime_adj(X509_getm_notBefore(x), 0) == NULL
        || X509_gmtime_adj(X509_getm_notAfter(x), 365L * 86400) == NULL)
        goto err;
    if (pub != NULL && !X509_set_pubkey(x, pub))
        goto err;
    if (spki != NULL) {
        /* copy algorithm and key bits as they are, without decoding the key */
        ASN1_OBJECT *alg;
        const ASN1_OBJECT *alg0;
        const unsigned char *bits0;
        int bits_len, ptype;
        const void *pval0;
        void *pval = NULL;
        X509_ALGOR *a;
        unsigned char *bits;

        if (!X509_PUBKEY_get0_param(NULL, &bits0, &bits_len, &a, spki))
            goto err;
        X509_ALGOR_get0(&alg0, &ptype, &pval0, a);
        alg = OBJ_dup(alg0);
        if (ptype == V_ASN1_OBJECT)
            pval = OBJ_dup(pval0);
        else if (ptype == V_ASN1_SEQUENCE)
            pval = ASN1_STRING_dup(pval0);
        bits = OPENSSL_memdup(bits0, (size_t)bits_len);
        if (alg == NULL || bits == NULL
            || ((ptype == V_ASN1_OBJECT || ptype == V_ASN1_SEQUENCE) && pval == NULL)
            || !X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(x), alg, ptype, pval, bits,
                                       bits_len)) {
            ASN1_OBJECT_free(alg);
            OPENSSL_free(bits);
            if (ptype == V_ASN1_OBJECT)
                ASN1_OBJECT_free(pval);
            else
                ASN1_STRING_free(pval);
            goto err;
        }
    }
    if (!add_ext(x, issuer != NULL ? issuer : x, NID_basic_constraints,
                 ca ? "critical,CA:TRUE" : "critical,CA:FALSE")
        || (ku != NULL && !add_ext(x, x, NID_key_usage, ku))
        || !add_ext(x, x, NID_subject_key_identifier, "hash")
        || (issuer != NULL
            && !add_ext(x, issuer, NID_authority_key_identifier, "keyid:always"))
        || X509_sign(x, signer, EVP_sha256()) <= 0)
        goto err;
    return x;
err:
    X509_free(x);
    return NULL;
}

static void make_credential(credential *c, const char *cn, credential *issuer)
{
    X509_NAME *n = cn_name(cn);

    ENSURE((c->key = EVP_EC_gen("P-256")) != NULL);
    c->cert = make_cert(n, c->key, NULL, issuer != NULL ? issuer->cert : NULL,
                        issuer != NULL ? issuer->key : c->key, issuer == NULL,
                        issuer == NULL ? "critical,keyCertSign,cRLSign"
                                       : "critical,digitalSignature");
    ENSURE(c->cert != NULL);
    c->der = NULL;
    ENSURE((c->der_len = i2d_X509(c->cert, &c->der)) > 0);
    X509_NAME_free(n);
}

static void free_credential(credential *c)
{
    EVP_PKEY_free(c->key);
    X509_free(c->cert);
    OPENSSL_free(c->der);
}

/* A cmpkit key holding the same private key as `pkey` (through PKCS#8 DER). */
static cmpkit_key *to_cmpkit_key(EVP_PKEY *pkey)
{
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pkey);
    unsigned char *der = NULL;
    int len = p8 != NULL ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : -1;
    cmpkit_key *k = NULL;
    cmpkit_result rc;

    ENSURE(len > 0);
    rc = cmpkit_key_from_pem_or_der(der, (size_t)len, &k);
    if (rc != CMPKIT_RESULT_OK)
        fail("cmpkit_key_from_pem_or_der: %s: %s", cmpkit_result_name(rc),
             cmpkit_last_error());
    OPENSSL_cleanse(der, (size_t)len);
    OPENSSL_free(der);
    PKCS8_PRIV_KEY_INFO_free(p8);
    return k;
}

static char *to_pem(int (*write)(BIO *, void *), void *obj, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data, *copy;
    long n;

    ENSURE(b != NULL && write(b, obj));
    n = BIO_get_mem_data(b, &data);
    ENSURE(n > 0 && (copy = malloc((size_t)n)) != NULL);
    memcpy(copy, data, (size_t)n);
    *len = (size_t)n;
    BIO_free(b);
    return copy;
}

static int write_cert_pem(BIO *b, void *x)
{
    return PEM_write_bio_X509(b, x);
}

static int write_key_pem(BIO *b, void *k)
{
    return PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
}

/* ------------------------------------------------------------------------------------ */
/* scenarios                                                                             */

enum op { OP_IR, OP_CR, OP_KUR, OP_RR, OP_GENM };

typedef struct {
    const char *name;
    enum op op;
    int mac;       /* shared secret (PBM) rather than signature */
    int implicit;  /* ask for implicit confirmation */
    int transfers; /* round trips per transaction */
} scenario;

static const scenario SCENARIOS[] = {
    { "ir_mac", OP_IR, 1, 0, 2 },  { "ir_mac_implicit", OP_IR, 1, 1, 1 },
    { "cr_sig", OP_CR, 0, 0, 2 },  { "kur_sig", OP_KUR, 0, 0, 2 },
    { "rr_sig", OP_RR, 0, 0, 1 },  { "genm_sig", OP_GENM, 0, 0, 1 },
};
#define N_SCENARIOS ((int)(sizeof SCENARIOS / sizeof SCENARIOS[0]))

static int issues_cert(const scenario *s)
{
    return s->op == OP_IR || s->op == OP_CR || s->op == OP_KUR;
}

#define NEW_DEVICE_CN "Bench New Device"
#define CLIENT_CN "Bench Client"

/* What the CA side of either implementation saw, for the in-loop checks. */
typedef struct {
    long issued, confirmed, revoked, genm, errors;
} ca_counters;

/* ------------------------------------------------------------------------------------ */
/* OpenSSL: server (OSSL_CMP_SRV_CTX with this file's CA) and client (OSSL_CMP_CTX)      */

static ca_counters ossl_ca;
static X509 *ossl_awaiting_conf; /* the last issued certificate, until certConf */
static OSSL_CMP_ITAV *ossl_cacerts_answer;
static unsigned char *cacerts_value; /* SEQUENCE OF Certificate holding the root */
static int cacerts_value_len;
static long ossl_transfers;

static OSSL_CMP_PKISI *ossl_refuse(int bit, const char *why)
{
    return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_rejection, 1 << bit, why);
}

/*
 * The template's publicKey. OpenSSL 3.2 added a getter; before, the template's DER is
 * walked to its [6] IMPLICIT SubjectPublicKeyInfo, which is decoded after retagging it as
 * the SEQUENCE it is.
 */
static X509_PUBKEY *template_public_key(const OSSL_CRMF_CERTTEMPLATE *t, X509_PUBKEY **owned)
{
    *owned = NULL;
#if OPENSSL_VERSION_NUMBER >= 0x30200000L
    return OSSL_CRMF_CERTTEMPLATE_get0_publicKey(t);
#else
    unsigned char *der = NULL, *copy;
    const unsigned char *p, *end, *q;
    int len = i2d_OSSL_CRMF_CERTTEMPLATE(t, &der), tag, cls, hdr;
    long n;

    if (len <= 0)
        return NULL;
    p = der;
    if (ASN1_get_object(&p, &n, &tag, &cls, len) & 0x80)
        goto done;
    for (end = p + n; p < end; p += n) {
        q = p;
        if (ASN1_get_object(&p, &n, &tag, &cls, end - p) & 0x80)
            break;
        if (cls == V_ASN1_CONTEXT_SPECIFIC && tag == 6) {
            hdr = (int)(p - q);
            if ((copy = OPENSSL_memdup(q, (size_t)(hdr + n))) != NULL) {
                copy[0] = V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED;
                q = copy;
                *owned = d2i_X509_PUBKEY(NULL, &q, hdr + n);
                OPENSSL_free(copy);
            }
            break;
        }
    }
done:
    OPENSSL_free(der);
    return *owned;
#endif
}

static OSSL_CMP_PKISI *ossl_on_cert_request(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *req,
                                            int cert_req_id, const OSSL_CRMF_MSG *crm,
                                            const X509_REQ *p10cr, X509 **cert_out,
                                            STACK_OF(X509) **chain_out,
                                            STACK_OF(X509) **ca_pubs)
{
    const OSSL_CRMF_CERTTEMPLATE *t = crm != NULL ? OSSL_CRMF_MSG_get0_tmpl(crm) : NULL;
    const X509_NAME *subject = t != NULL ? OSSL_CRMF_CERTTEMPLATE_get0_subject(t) : NULL;
    X509_PUBKEY *owned, *spki;
    X509 *x;

    (void)srv;
    (void)cert_req_id;
    *cert_out = NULL;
    *chain_out = NULL;
    *ca_pubs = NULL;
    if (p10cr != NULL || t == NULL)
        return ossl_refuse(OSSL_CMP_PKIFAILUREINFO_badRequest, "CRMF requests only");
    if (OSSL_CMP_MSG_get_bodytype(req) == OSSL_CMP_KUR) {
        const OSSL_CRMF_CERTID *old = OSSL_CRMF_MSG_get0_regCtrl_oldCertID(crm);

        if (old == NULL
            || X509_NAME_cmp(OSSL_CRMF_CERTID_get0_issuer(old),
                             X509_get_subject_name(root.cert)) != 0
            || ASN1_INTEGER_cmp(OSSL_CRMF_CERTID_get0_serialNumber(old),
                                X509_get0_serialNumber(client_id.cert)) != 0)
            return ossl_refuse(OSSL_CMP_PKIFAILUREINFO_badCertId, "unknown oldCertID");
    }
    if (subject == NULL || X509_NAME_entry_count(subject) == 0)
        return ossl_refuse(OSSL_CMP_PKIFAILUREINFO_badCertTemplate, "no subject");
    if ((spki = template_public_key(t, &owned)) == NULL)
        return ossl_refuse(OSSL_CMP_PKIFAILUREINFO_badCertTemplate, "no public key");
    x = make_cert(subject, NULL, spki, root.cert, root.key, 0, NULL);
    X509_PUBKEY_free(owned);
    if (x == NULL)
        return ossl_refuse(OSSL_CMP_PKIFAILUREINFO_systemFailure, "cannot issue");
    X509_free(ossl_awaiting_conf);
    ossl_awaiting_conf = x;
    if (!X509_up_ref(x))
        return NULL;
    *cert_out = x;
    ossl_ca.issued++;
    return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_accepted, 0, NULL);
}

static OSSL_CMP_PKISI *ossl_on_rr(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *rr,
                                  const X509_NAME *issuer, const ASN1_INTEGER *serial)
{
    (void)srv;
    (void)rr;
    /* checked, not recorded: the same certificate is revoked N times */
    if (issuer == NULL || serial == NULL
        || X509_NAME_cmp(issuer, X509_get_subject_name(root.cert)) != 0
        || ASN1_INTEGER_cmp(serial, X509_get0_serialNumber(client_id.cert)) != 0)
        return ossl_refuse(OSSL_CMP_PKIFAILUREINFO_badCertId, "not ours");
    ossl_ca.revoked++;
    return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_accepted, 0, NULL);
}

static int ossl_on_genm(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *genm,
                        const STACK_OF(OSSL_CMP_ITAV) *in, STACK_OF(OSSL_CMP_ITAV) **out)
{
    int i;

    (void)srv;
    (void)genm;
    if ((*out = sk_OSSL_CMP_ITAV_new_null()) == NULL)
        return 0;
    for (i = 0; i < sk_OSSL_CMP_ITAV_num(in); i++) {
        OSSL_CMP_ITAV *a;

        if (OBJ_obj2nid(OSSL_CMP_ITAV_get0_type(sk_OSSL_CMP_ITAV_value(in, i)))
            != NID_id_it_caCerts)
            continue;
        a = OSSL_CMP_ITAV_dup(ossl_cacerts_answer);
        if (a == NULL || !sk_OSSL_CMP_ITAV_push(*out, a)) {
            OSSL_CMP_ITAV_free(a);
            sk_OSSL_CMP_ITAV_pop_free(*out, OSSL_CMP_ITAV_free);
            *out = NULL;
            return 0;
        }
    }
    ossl_ca.genm++;
    return 1;
}

static void ossl_on_error(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *error,
                          const OSSL_CMP_PKISI *si, const ASN1_INTEGER *code,
                          const OSSL_CMP_PKIFREETEXT *details)
{
    (void)srv;
    (void)error;
    (void)si;
    (void)code;
    (void)details;
    ossl_ca.errors++;
}

static int ossl_on_cert_conf(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *conf, int cert_req_id,
                             const ASN1_OCTET_STRING *cert_hash, const OSSL_CMP_PKISI *si)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    int ok;

    (void)srv;
    (void)conf;
    (void)cert_req_id;
    (void)si;
    /* certHash: the certificate's signature algorithm's hash (SHA-256 here) of its DER */
    ok = ossl_awaiting_conf != NULL && cert_hash != NULL
        && X509_digest(ossl_awaiting_conf, EVP_sha256(), md, &md_len)
        && ASN1_STRING_length(cert_hash) == (int)md_len
        && memcmp(ASN1_STRING_get0_data(cert_hash), md, md_len) == 0;
    if (!ok)
        return 0;
    X509_free(ossl_awaiting_conf);
    ossl_awaiting_conf = NULL;
    ossl_ca.confirmed++;
    return 1;
}

static int ossl_on_poll(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *poll, int cert_req_id,
                        OSSL_CMP_MSG **req, int64_t *check_after)
{
    (void)srv;
    (void)poll;
    (void)cert_req_id;
    (void)check_after;
    *req = NULL;
    return 0; /* this CA never says "waiting" */
}

static int ossl_log(const char *func, const char *file, int line, OSSL_CMP_severity level,
                    const char *msg)
{
    (void)file;
    (void)line;
    if (level <= OSSL_CMP_LOG_ERR)
        fprintf(stderr, "OpenSSL CMP %s: %s\n", func != NULL ? func : "", msg);
    return 1;
}

static X509_STORE *root_store(void)
{
    X509_STORE *s = X509_STORE_new();

    ENSURE(s != NULL && X509_STORE_add_cert(s, root.cert));
    return s;
}

static void ossl_common(OSSL_CMP_CTX *c)
{
    ENSURE(OSSL_CMP_CTX_set_log_cb(c, ossl_log));
    ENSURE(OSSL_CMP_CTX_set_log_verbosity(c, OSSL_CMP_LOG_ERR));
}

/* The caCerts answer: a SEQUENCE OF Certificate holding the root. */
static void make_cacerts_answer(void)
{
    unsigned char *p;

    cacerts_value_len = ASN1_object_size(1, root.der_len, V_ASN1_SEQUENCE);
    ENSURE((cacerts_value = malloc((size_t)cacerts_value_len)) != NULL);
    p = cacerts_value;
    ASN1_put_object(&p, 1, root.der_len, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    memcpy(p, root.der, (size_t)root.der_len);
#if OPENSSL_VERSION_NUMBER >= 0x30200000L
    {
        STACK_OF(X509) *certs = sk_X509_new_null();

        ENSURE(certs != NULL && sk_X509_push(certs, root.cert) > 0);
        ENSURE((ossl_cacerts_answer = OSSL_CMP_ITAV_new_caCerts(certs)) != NULL);
        sk_X509_free(certs);
    }
#else
    {
        /* 3.0 and 3.1 do not type this value: it travels as an ASN1_TYPE */
        const unsigned char *q = cacerts_value;
        ASN1_TYPE *v = d2i_ASN1_TYPE(NULL, &q, cacerts_value_len);

        ENSURE(v != NULL);
        ENSURE((ossl_cacerts_answer = OSSL_CMP_ITAV_create(OBJ_nid2obj(NID_id_it_caCerts), v))
               != NULL);
    }
#endif
}

static OSSL_CMP_SRV_CTX *ossl_server_new(void)
{
    OSSL_CMP_SRV_CTX *srv = OSSL_CMP_SRV_CTX_new(NULL, NULL);
    OSSL_CMP_CTX *c;

    ENSURE(srv != NULL);
    ENSURE(OSSL_CMP_SRV_CTX_init(srv, NULL, ossl_on_cert_request, ossl_on_rr, ossl_on_genm,
                                 ossl_on_error, ossl_on_cert_conf, ossl_on_poll));
    ENSURE(OSSL_CMP_SRV_CTX_set_grant_implicit_confirm(srv, 1));
    c = OSSL_CMP_SRV_CTX_get0_cmp_ctx(srv);
    ossl_common(c);
    ENSURE(OSSL_CMP_CTX_set1_cert(c, server_id.cert));
    ENSURE(OSSL_CMP_CTX_set1_pkey(c, server_id.key));
    ENSURE(OSSL_CMP_CTX_set0_trustedStore(c, root_store()));
    ENSURE(OSSL_CMP_CTX_set1_referenceValue(c, (const unsigned char *)REF, strlen(REF)));
    ENSURE(OSSL_CMP_CTX_set1_secretValue(c, (const unsigned char *)SECRET, strlen(SECRET)));
    return srv;
}

/* The client's transfer: DER out, the server's DER back, as across a network. */
static OSSL_CMP_MSG *ossl_transfer(OSSL_CMP_CTX *c, const OSSL_CMP_MSG *req)
{
    OSSL_CMP_SRV_CTX *srv = OSSL_CMP_CTX_get_transfer_cb_arg(c);
    unsigned char *out = NULL, *back = NULL;
    const unsigned char *p;
    OSSL_CMP_MSG *in, *answer, *rsp = NULL;
    int len = i2d_OSSL_CMP_MSG(req, &out), back_len;

    ossl_transfers++;
    if (len <= 0)
        return NULL;
    /* the server's side: bytes in, bytes out */
    p = out;
    in = d2i_OSSL_CMP_MSG(NULL, &p, len);
    answer = in != NULL ? OSSL_CMP_SRV_process_request(srv, in) : NULL;
    back_len = answer != NULL ? i2d_OSSL_CMP_MSG(answer, &back) : -1;
    OSSL_CMP_MSG_free(in);
    OSSL_CMP_MSG_free(answer);
    OPENSSL_free(out);
    /* the client's side again */
    if (back_len > 0) {
        p = back;
        rsp = d2i_OSSL_CMP_MSG(NULL, &p, back_len);
    }
    OPENSSL_free(back);
    return rsp;
}

static OSSL_CMP_CTX *ossl_client_new(const scenario *s, OSSL_CMP_SRV_CTX *srv)
{
    OSSL_CMP_CTX *c = OSSL_CMP_CTX_new(NULL, NULL);

    ENSURE(c != NULL);
    ossl_common(c);
    ENSURE(OSSL_CMP_CTX_set_transfer_cb(c, ossl_transfer));
    ENSURE(OSSL_CMP_CTX_set_transfer_cb_arg(c, srv));
    if (s->mac) {
        X509_NAME *n = cn_name(NEW_DEVICE_CN);

        ENSURE(OSSL_CMP_CTX_set1_referenceValue(c, (const unsigned char *)REF, strlen(REF)));
        ENSURE(OSSL_CMP_CTX_set1_secretValue(c, (const unsigned char *)SECRET,
                                             strlen(SECRET)));
        /* cmpkit's PBM MAC is HMAC-SHA256; OpenSSL's default would be HMAC-SHA1 */
        ENSURE(OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_MAC_ALGNID, NID_hmacWithSHA256));
        ENSURE(OSSL_CMP_CTX_set1_subjectName(c, n));
        X509_NAME_free(n);
    } else {
        ENSURE(OSSL_CMP_CTX_set1_cert(c, client_id.cert));
        ENSURE(OSSL_CMP_CTX_set1_pkey(c, client_id.key));
        ENSURE(OSSL_CMP_CTX_set0_trustedStore(c, root_store()));
        if (s->op == OP_KUR || s->op == OP_RR)
            ENSURE(OSSL_CMP_CTX_set1_oldCert(c, client_id.cert));
    }
    if (s->implicit)
        ENSURE(OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_IMPLICIT_CONFIRM, 1));
    return c;
}

static int ossl_genp_ok(const STACK_OF(OSSL_CMP_ITAV) *itavs)
{
    const OSSL_CMP_ITAV *a;

    if (sk_OSSL_CMP_ITAV_num(itavs) != 1)
        return 0;
    a = sk_OSSL_CMP_ITAV_value(itavs, 0);
    if (OBJ_obj2nid(OSSL_CMP_ITAV_get0_type(a)) != NID_id_it_caCerts)
        return 0;
#if OPENSSL_VERSION_NUMBER >= 0x30200000L
    {
        STACK_OF(X509) *certs = NULL;

        return OSSL_CMP_ITAV_get0_caCerts(a, &certs) && sk_X509_num(certs) == 1
            && X509_cmp(sk_X509_value(certs, 0), root.cert) == 0;
    }
#else
    {
        const ASN1_TYPE *v = OSSL_CMP_ITAV_get0_value(a);

        return v != NULL && ASN1_TYPE_get(v) == V_ASN1_SEQUENCE
            && ASN1_STRING_length(v->value.sequence) == cacerts_value_len
            && memcmp(ASN1_STRING_get0_data(v->value.sequence), cacerts_value,
                      (size_t)cacerts_value_len) == 0;
    }
#endif
}

/* One OpenSSL transaction, checked; the issued certificate's DER goes to `cert_out`. */
static void ossl_txn(const scenario *s, OSSL_CMP_CTX *c, const enroll_key *k,
                     unsigned char *cert_out)
{
    ca_counters before = ossl_ca;
    long transfers = ossl_transfers;

    if (!OSSL_CMP_CTX_reinit(c))
        fail("OpenSSL %s: reinit", s->name);
    switch (s->op) {
    case OP_IR:
    case OP_CR:
    case OP_KUR: {
        int type = s->op == OP_IR ? OSSL_CMP_IR : s->op == OP_CR ? OSSL_CMP_CR : OSSL_CMP_KUR;
        X509 *cert;
        unsigned char *p = cert_out;

        if (!EVP_PKEY_up_ref(k->pkey) || !OSSL_CMP_CTX_set0_newPkey(c, 1, k->pkey))
            fail("OpenSSL %s: newPkey", s->name);
        cert = OSSL_CMP_exec_certreq(c, type, NULL);
        if (cert == NULL || OSSL_CMP_CTX_get_status(c) != OSSL_CMP_PKISTATUS_accepted)
            fail("OpenSSL %s: no certificate (status %d)", s->name,
                 OSSL_CMP_CTX_get_status(c));
        if (i2d_X509(cert, NULL) > CERT_MAX || i2d_X509(cert, &p) <= 0)
            fail("OpenSSL %s: certificate too large", s->name);
        if (ossl_ca.issued != before.issued + 1
            || ossl_ca.confirmed != before.confirmed + (s->implicit ? 0 : 1))
            fail("OpenSSL %s: issued %ld, confirmed %ld", s->name,
                 ossl_ca.issued - before.issued, ossl_ca.confirmed - before.confirmed);
        break;
    }
    case OP_RR:
        if (OSSL_CMP_exec_RR_ses(c) != 1
            || OSSL_CMP_CTX_get_status(c) != OSSL_CMP_PKISTATUS_accepted
            || ossl_ca.revoked != before.revoked + 1)
            fail("OpenSSL %s: not revoked (status %d)", s->name, OSSL_CMP_CTX_get_status(c));
        break;
    case OP_GENM: {
        OSSL_CMP_ITAV *q = OSSL_CMP_ITAV_create(OBJ_nid2obj(NID_id_it_caCerts), NULL);
        STACK_OF(OSSL_CMP_ITAV) *itavs;

        if (q == NULL || !OSSL_CMP_CTX_push0_genm_ITAV(c, q))
            fail("OpenSSL %s: genm", s->name);
        itavs = OSSL_CMP_exec_GENM_ses(c);
        if (itavs == NULL || OSSL_CMP_CTX_get_status(c) != OSSL_CMP_PKISTATUS_accepted
            || !ossl_genp_ok(itavs) || ossl_ca.genm != before.genm + 1)
            fail("OpenSSL %s: bad genp", s->name);
        sk_OSSL_CMP_ITAV_pop_free(itavs, OSSL_CMP_ITAV_free);
        break;
    }
    }
    if (ossl_transfers - transfers != s->transfers || ossl_ca.errors != before.errors)
        fail("OpenSSL %s: %ld round trips (expected %d), %ld errors", s->name,
             ossl_transfers - transfers, s->transfers, ossl_ca.errors - before.errors);
    if (ERR_peek_error() != 0)
        fail("OpenSSL %s: errors left in the queue", s->name);
}

/* ------------------------------------------------------------------------------------ */
/* cmpkit: server (cmpkit_server, built-in CA + C callbacks) and client (cmpkit_ctx)     */

static ca_counters ck_ca;
static long ck_transfers;
static unsigned char client_serial[32];
static size_t client_serial_len;
static char root_subject[256];

static void ck_check(cmpkit_result rc, const char *what)
{
    if (rc != CMPKIT_RESULT_OK)
        fail("cmpkit %s: %s: %s", what, cmpkit_result_name(rc), cmpkit_last_error());
}

/* The INTEGER's content octets without leading zero octets. */
static const uint8_t *strip_zeros(const uint8_t *p, size_t *n)
{
    while (*n > 1 && *p == 0) {
        p++;
        (*n)--;
    }
    return p;
}

static int ck_on_revoke(void *userdata, const cmpkit_revocation_info *info,
                        cmpkit_decision *decision)
{
    const uint8_t *serial;
    size_t len;
    const char *issuer = cmpkit_revocation_info_issuer(info);

    (void)userdata;
    /* checked, not recorded: the same certificate is revoked N times */
    if (issuer != NULL && strcmp(issuer, root_subject) == 0
        && cmpkit_revocation_info_serial(info, &serial, &len) == CMPKIT_RESULT_OK
        && (serial = strip_zeros(serial, &len), len == client_serial_len)
        && memcmp(serial, client_serial, len) == 0) {
        ck_ca.revoked++;
        return cmpkit_decision_accept(decision) == CMPKIT_RESULT_OK ? 0 : 1;
    }
    return cmpkit_decision_reject(decision, 1u << 19 /* badCertId */, "not ours")
                   == CMPKIT_RESULT_OK
               ? 0
               : 1;
}

static void ck_on_confirm(void *userdata, const uint8_t *tid, size_t tid_len,
                          const uint8_t *cert, size_t cert_len, int32_t accepted)
{
    (void)userdata;
    (void)tid;
    (void)tid_len;
    (void)cert;
    (void)cert_len;
    if (accepted)
        ck_ca.confirmed++;
    else
        ck_ca.errors++;
}

static cmpkit_server *ck_server_new(cmpkit_key *server_key)
{
    cmpkit_server_config *cfg = NULL;
    cmpkit_server *srv = NULL;
    cmpkit_ca_handler handler = { NULL, NULL /* the built-in CA issues */, ck_on_revoke,
                                  ck_on_confirm };
    size_t cert_len, key_len;
    char *cert_pem = to_pem(write_cert_pem, root.cert, &cert_len);
    char *key_pem = to_pem(write_key_pem, root.key, &key_len);

    ck_check(cmpkit_server_config_new(&cfg), "server config");
    ck_check(cmpkit_server_config_set_ca(cfg, (const uint8_t *)cert_pem, cert_len,
                                         (const uint8_t *)key_pem, key_len),
             "set_ca");
    ck_check(cmpkit_server_config_set_signer(cfg, server_key, server_id.der,
                                             (size_t)server_id.der_len),
             "server signer");
    ck_check(cmpkit_server_config_add_trust_anchors(cfg, root.der, (size_t)root.der_len),
             "server trust");
    ck_check(cmpkit_server_config_add_secret(cfg, (const uint8_t *)REF, strlen(REF),
                                             (const uint8_t *)SECRET, strlen(SECRET)),
             "server secret");
    ck_check(cmpkit_server_config_set_implicit_confirm(cfg, 1), "implicit confirm");
    ck_check(cmpkit_server_new(cfg, &handler, &srv), "server");
    cmpkit_server_config_free(cfg);
    OPENSSL_cleanse(key_pem, key_len);
    free(key_pem);
    free(cert_pem);
    return srv;
}

/* The client's transfer: the request's DER to the server, its DER answer back. */
static int32_t ck_transfer(void *userdata, const uint8_t *req, size_t req_len,
                           cmpkit_buffer *rsp)
{
    cmpkit_bytes *answer = NULL;
    const uint8_t *data;
    size_t len;
    int32_t rc = 1;

    ck_transfers++;
    if (cmpkit_server_process(userdata, req, req_len, &answer) == CMPKIT_RESULT_OK
        && cmpkit_bytes_data(answer, &data, &len) == CMPKIT_RESULT_OK
        && cmpkit_buffer_append(rsp, data, len) == CMPKIT_RESULT_OK)
        rc = 0;
    cmpkit_bytes_free(answer);
    return rc;
}

static cmpkit_ctx *ck_client_new(const scenario *s, cmpkit_server *srv, cmpkit_key *client_key)
{
    cmpkit_ctx *c = NULL;

    ck_check(cmpkit_ctx_new(&c), "ctx");
    ck_check(cmpkit_ctx_set_transfer(c, ck_transfer, srv), "transfer");
    if (s->mac) {
        ck_check(cmpkit_ctx_set_secret(c, (const uint8_t *)SECRET, strlen(SECRET),
                                       (const uint8_t *)REF, strlen(REF)),
                 "secret");
        ck_check(cmpkit_ctx_set_mac_iterations(c, PBM_ITERATIONS), "mac iterations");
    } else {
        ck_check(cmpkit_ctx_set_signer(c, client_key, client_id.der, (size_t)client_id.der_len),
                 "signer");
        ck_check(cmpkit_ctx_add_trust_anchors(c, root.der, (size_t)root.der_len), "trust");
    }
    if (s->implicit)
        ck_check(cmpkit_ctx_set_implicit_confirm(c, 1), "implicit confirm");
    return c;
}

/* One cmpkit transaction, checked; the issued certificate's DER goes to `cert_out`. */
static void ck_txn(const scenario *s, cmpkit_ctx *c, const enroll_key *k,
                   unsigned char *cert_out)
{
    ca_counters before = ck_ca;
    long transfers = ck_transfers;
    cmpkit_request *req = NULL;
    cmpkit_response *rsp = NULL;
    cmpkit_result rc = CMPKIT_RESULT_OK;

    switch (s->op) {
    case OP_IR:
        rc = cmpkit_request_new_ir(k->ck, &req);
        if (rc == CMPKIT_RESULT_OK)
            rc = cmpkit_request_set_subject(req, "CN=" NEW_DEVICE_CN);
        break;
    case OP_CR:
        rc = cmpkit_request_new_cr(k->ck, &req);
        if (rc == CMPKIT_RESULT_OK) /* OpenSSL takes the subject of the client's cert */
            rc = cmpkit_request_set_subject(req, "CN=" CLIENT_CN);
        break;
    case OP_KUR:
        rc = cmpkit_request_new_kur(k->ck, client_id.der, (size_t)client_id.der_len, NULL, &req);
        break;
    case OP_RR:
        rc = cmpkit_request_new_rr(client_id.der, (size_t)client_id.der_len, -1, NULL, &req);
        break;
    case OP_GENM:
        rc = cmpkit_request_new_genm_ca_certs(&req);
        break;
    }
    ck_check(rc, s->name);
    rc = cmpkit_execute(c, req, &rsp);
    /* a genp carries no PKIStatus (-1); everything else must say accepted (0) */
    if (rc != CMPKIT_RESULT_OK || cmpkit_response_status(rsp) != (s->op == OP_GENM ? -1 : 0))
        fail("cmpkit %s: %s (status %d): %s", s->name, cmpkit_result_name(rc),
             cmpkit_response_status(rsp), cmpkit_ctx_last_error(c));
    switch (s->op) {
    case OP_IR:
    case OP_CR:
    case OP_KUR: {
        const uint8_t *der;
        size_t len;

        if (cmpkit_response_cert_der(rsp, &der, &len) != CMPKIT_RESULT_OK || len > CERT_MAX)
            fail("cmpkit %s: no certificate", s->name);
        memcpy(cert_out, der, len);
        if (cmpkit_response_implicit_confirm_granted(rsp) != s->implicit
            || ck_ca.confirmed != before.confirmed + 1) /* certConf or implicit */
            fail("cmpkit %s: confirmation (granted %d, confirmed %ld)", s->name,
                 cmpkit_response_implicit_confirm_granted(rsp), ck_ca.confirmed - before.confirmed);
        break;
    }
    case OP_RR:
        if (ck_ca.revoked != before.revoked + 1)
            fail("cmpkit %s: the CA did not revoke", s->name);
        break;
    case OP_GENM: {
        const uint8_t *der;
        size_t len;

        if (cmpkit_response_cert_count(rsp, CMPKIT_CERT_LIST_GENP_CA_CERTS) != 1
            || cmpkit_response_cert_at(rsp, CMPKIT_CERT_LIST_GENP_CA_CERTS, 0, &der, &len)
                   != CMPKIT_RESULT_OK
            || len != (size_t)root.der_len || memcmp(der, root.der, len) != 0)
            fail("cmpkit %s: bad genp", s->name);
        break;
    }
    }
    if (ck_transfers - transfers != s->transfers || ck_ca.errors != before.errors)
        fail("cmpkit %s: %ld round trips (expected %d)", s->name, ck_transfers - transfers,
             s->transfers);
    cmpkit_response_free(rsp);
    cmpkit_request_free(req);
}

/* ------------------------------------------------------------------------------------ */
/* runs                                                                                  */

enum impl { OSSL, CMPKIT, N_IMPLS };
static const char *const IMPL_NAMES[N_IMPLS] = { "openssl", "cmpkit" };

typedef struct {
    double cpu, wall, best_cpu;
    unsigned long crypto_allocs, all_allocs;
    long n;
} totals;

typedef struct {
    const scenario *s;
    OSSL_CMP_CTX *ossl;
    cmpkit_ctx *ck;
    totals t[N_IMPLS];
} job;

static enroll_key *keys;
static unsigned char (*certs)[CERT_MAX]; /* issued in the current batch */

static void one_txn(job *j, enum impl who, int key)
{
    if (who == OSSL)
        ossl_txn(j->s, j->ossl, &keys[key], certs[key]);
    else
        ck_txn(j->s, j->ck, &keys[key], certs[key]);
}

/*
 * The timed transactions of a batch, one function per implementation and out of line, so
 * that bench/c_callgrind.sh can count their instructions alone (--toggle-collect).
 */
__attribute__((noinline)) static void run_openssl(job *j, int from, int n)
{
    int i;

    for (i = from; i < from + n; i++)
        ossl_txn(j->s, j->ossl, &keys[i], certs[i]);
}

__attribute__((noinline)) static void run_cmpkit(job *j, int from, int n)
{
    int i;

    for (i = from; i < from + n; i++)
        ck_txn(j->s, j->ck, &keys[i], certs[i]);
}

/* The certificates of keys [from, from + n) carry their key, name the root, verify. */
static void check_issued(const job *j, enum impl who, int from, int n)
{
    EVP_PKEY *root_pub = X509_get0_pubkey(root.cert);
    int i;

    for (i = from; i < from + n; i++) {
        const unsigned char *p = certs[i];
        X509 *x = d2i_X509(NULL, &p, CERT_MAX);
        unsigned char *spki = NULL;
        int len = x != NULL ? i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &spki) : -1;

        if (x == NULL || len != keys[i].spki_len || memcmp(spki, keys[i].spki, (size_t)len) != 0
            || X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(root.cert)) != 0
            || X509_verify(x, root_pub) != 1)
            fail("%s %s: certificate %d is not the requested key's, issued by the root",
                 IMPL_NAMES[who], j->s->name, i);
        OPENSSL_free(spki);
        X509_free(x);
    }
}

/* CMP_SIDE_BY_SIDE_IMPL=openssl|cmpkit runs only that implementation (for profiling). */
static int impl_skipped(enum impl who)
{
    const char *only = getenv("CMP_SIDE_BY_SIDE_IMPL");

    return only != NULL && strcmp(only, IMPL_NAMES[who]) != 0;
}

static void batch(job *j, enum impl who, int from, int n)
{
    unsigned long crypto0 = crypto_allocs, all0 = all_allocs;
    stamp t0, t1;
    totals *t = &j->t[who];

    if (impl_skipped(who))
        return;
    t0 = stamp_now();

    if (who == OSSL)
        run_openssl(j, from, n);
    else
        run_cmpkit(j, from, n);
    t1 = stamp_now();
    t->crypto_allocs += crypto_allocs - crypto0;
    t->all_allocs += all_allocs - all0;
    t->cpu += t1.cpu - t0.cpu;
    t->wall += t1.wall - t0.wall;
    if (t->n == 0 || (t1.cpu - t0.cpu) / n < t->best_cpu)
        t->best_cpu = (t1.cpu - t0.cpu) / n;
    t->n += n;
    if (issues_cert(j->s))
        check_issued(j, who, from, n);
}

static void print_totals(const job *j, enum impl who)
{
    const totals *t = &j->t[who];

    printf("scenario=%s impl=%s n=%ld cpu_us_per_txn=%.1f us_per_txn=%.1f "
           "best_cpu_us_per_txn=%.1f crypto_allocs_per_txn=%.1f all_allocs_per_txn=%.1f\n",
           j->s->name, IMPL_NAMES[who], t->n, t->cpu / t->n, t->wall / t->n, t->best_cpu,
           (double)t->crypto_allocs / t->n,
           all_allocs_counted ? (double)t->all_allocs / t->n : -1.0);
}

static void usage(const char *prog)
{
    fprintf(stderr, "usage: %s [N] [ROUNDS] [all|SCENARIO]\n", prog);
    exit(1);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 300;
    int rounds = argc > 2 ? atoi(argv[2]) : 10;
    const char *only = argc > 3 ? argv[3] : "all";
    job jobs[N_SCENARIOS];
    int n_jobs = 0, i, r, done = 0;
    OSSL_CMP_SRV_CTX *ossl_srv;
    cmpkit_server *ck_srv;
    cmpkit_key *ck_server_key, *ck_client_key;
    const ASN1_INTEGER *serial;

    /* before anything allocates through libcrypto */
    if (!CRYPTO_set_mem_functions(count_crypto_malloc, count_crypto_realloc,
                                  count_crypto_free))
        fail("CRYPTO_set_mem_functions: libcrypto allocated before main");
    all_allocs_counted = ALL_ALLOCS_AVAILABLE;
    if (argc > 4 || n <= 0 || rounds <= 0 || rounds > n)
        usage(argv[0]);
    if ((OpenSSL_version_num() >> 20) != (OPENSSL_VERSION_NUMBER >> 20))
        fail("built with OpenSSL headers %s but runs with %s", OPENSSL_VERSION_TEXT,
             OpenSSL_version(OPENSSL_VERSION));

    make_credential(&root, "Bench Root CA", NULL);
    make_credential(&server_id, "Bench CMP Server", &root);
    make_credential(&client_id, CLIENT_CN, &root);
    serial = X509_get0_serialNumber(client_id.cert);
    client_serial_len = (size_t)ASN1_STRING_length(serial);
    ENSURE(client_serial_len <= sizeof client_serial);
    memcpy(client_serial, ASN1_STRING_get0_data(serial), client_serial_len);
    {
        BIO *b = BIO_new(BIO_s_mem());
        int len;

        ENSURE(b != NULL
               && X509_NAME_print_ex(b, X509_get_subject_name(root.cert), 0, XN_FLAG_RFC2253)
                      >= 0);
        len = BIO_read(b, root_subject, sizeof root_subject - 1);
        ENSURE(len > 0);
        root_subject[len] = '\0';
        BIO_free(b);
    }
    make_cacerts_answer();
    ck_server_key = to_cmpkit_key(server_id.key);
    ck_client_key = to_cmpkit_key(client_id.key);
    ossl_srv = ossl_server_new();
    ck_srv = ck_server_new(ck_server_key);

    /* enrollment keys, shared by both implementations, made before any timing */
    ENSURE((keys = calloc((size_t)n + WARMUP, sizeof *keys)) != NULL);
    ENSURE((certs = calloc((size_t)n + WARMUP, sizeof *certs)) != NULL);
    for (i = 0; i < n + WARMUP; i++) {
        ENSURE((keys[i].pkey = EVP_EC_gen("P-256")) != NULL);
        keys[i].ck = to_cmpkit_key(keys[i].pkey);
        ENSURE((keys[i].spki_len = i2d_PUBKEY(keys[i].pkey, &keys[i].spki)) > 0);
    }

    for (i = 0; i < N_SCENARIOS; i++) {
        job *j;
        int w, impl;

        if (strcmp(only, "all") != 0 && strcmp(only, SCENARIOS[i].name) != 0)
            continue;
        j = &jobs[n_jobs++];
        memset(j, 0, sizeof *j);
        j->s = &SCENARIOS[i];
        j->ossl = ossl_client_new(j->s, ossl_srv);
        j->ck = ck_client_new(j->s, ck_srv, ck_client_key);
        for (impl = 0; impl < N_IMPLS; impl++) { /* keys [n, n + WARMUP) */
            if (impl_skipped((enum impl)impl))
                continue;
            for (w = 0; w < WARMUP; w++)
                one_txn(j, (enum impl)impl, n + w);
            if (issues_cert(j->s))
                check_issued(j, (enum impl)impl, n, WARMUP);
        }
    }
    if (n_jobs == 0)
        usage(argv[0]);

    /* round robin; within a round the implementation that goes first alternates */
    for (r = 0; r < rounds; r++) {
        int size = n / rounds + (r < n % rounds);

        for (i = 0; i < n_jobs; i++) {
            enum impl first = (enum impl)((r + i) % 2);

            batch(&jobs[i], first, done, size);
            batch(&jobs[i], (enum impl)(1 - first), done, size);
        }
        done += size;
    }

    printf("# %s, cmpkit %s; N=%d per scenario and implementation in %d rounds, warm-up %d;"
           " one process, one thread\n",
           OpenSSL_version(OPENSSL_VERSION), cmpkit_version(), n, rounds, WARMUP);
    for (i = 0; i < n_jobs; i++) {
        const totals *o = &jobs[i].t[OSSL], *c = &jobs[i].t[CMPKIT];

        print_totals(&jobs[i], OSSL);
        print_totals(&jobs[i], CMPKIT);
        printf("ratio scenario=%s cpu=%.2f best_cpu=%.2f crypto_allocs=%.2f\n",
               jobs[i].s->name, (o->cpu / o->n) / (c->cpu / c->n), o->best_cpu / c->best_cpu,
               c->crypto_allocs > 0 ? (double)o->crypto_allocs / (double)c->crypto_allocs : 0.0);
    }
    printf("\n| scenario | OpenSSL CPU µs | cmpkit CPU µs | **OpenSSL / cmpkit** | best batch "
           "OpenSSL / cmpkit µs | libcrypto allocs OpenSSL / cmpkit | all allocs OpenSSL / "
           "cmpkit |\n|---|---:|---:|---:|---|---|---|\n");
    for (i = 0; i < n_jobs; i++) {
        const totals *o = &jobs[i].t[OSSL], *c = &jobs[i].t[CMPKIT];

        printf("| `%s` | %.0f | %.0f | **%.2f** | %.0f / %.0f | %.0f / %.0f |", jobs[i].s->name,
               o->cpu / o->n, c->cpu / c->n, (o->cpu / o->n) / (c->cpu / c->n), o->best_cpu,
               c->best_cpu, (double)o->crypto_allocs / o->n, (double)c->crypto_allocs / c->n);
        if (all_allocs_counted)
            printf(" %.0f / %.0f |\n", (double)o->all_allocs / o->n,
                   (double)c->all_allocs / c->n);
        else
            printf(" n/a |\n");
    }

    for (i = 0; i < n_jobs; i++) {
        OSSL_CMP_CTX_free(jobs[i].ossl);
        cmpkit_ctx_free(jobs[i].ck);
    }
    for (i = 0; i < n + WARMUP; i++) {
        EVP_PKEY_free(keys[i].pkey);
        cmpkit_key_free(keys[i].ck);
        OPENSSL_free(keys[i].spki);
    }
    free(keys);
    free(certs);
    cmpkit_server_free(ck_srv);
    cmpkit_key_free(ck_server_key);
    cmpkit_key_free(ck_client_key);
    OSSL_CMP_SRV_CTX_free(ossl_srv);
    OSSL_CMP_ITAV_free(ossl_cacerts_answer);
    X509_free(ossl_awaiting_conf);
    free(cacerts_value);
    free_credential(&root);
    free_credential(&server_id);
    free_credential(&client_id);
    return 0;
}
