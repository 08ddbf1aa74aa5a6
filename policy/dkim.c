/*
 * dkim.c - DKIM signatures (RFC 6376 relaxed/relaxed; rsa-sha256 and
 * ed25519-sha256, RFC 8463) written with OpenSSL directly.
 *
 * Why not libopendkim: its signing handle takes the key as PEM text and
 * parses it again for every message (dkim_sign -> dkim_privkey_load ->
 * PEM_read_bio_PrivateKey), about 300 us with OpenSSL 3 here - more than
 * the RSA-2048 signature itself (about 200 us).  The pieces a signer needs
 * are small and fully specified: relaxed header and body canonicalisation,
 * one SHA-256 body hash shared by every key of the domain, and one
 * signature over the canonical headers per key.  So keys are parsed once
 * (rg_dkim_keys_load, at start and on SIGHUP) into EVP_PKEYs that every
 * milter thread shares read-only, and each message costs a hash and the
 * signature.  The tests verify every signature with two independent
 * verifiers, dkimpy and OpenDKIM.
 *
 * Ed25519 with libsodium (when configure finds it): OpenSSL 3.0 spends
 * about 37 us on one Ed25519 signature here, libsodium about 17 us for the
 * same deterministic signature (bench/dkim-sign; BENCHMARKS.md).  OpenSSL still reads the
 * key; libsodium gets its seed once, and is used only after it has made
 * the very signature OpenSSL makes for a test message (Ed25519 has one
 * signature per key and message), else OpenSSL signs.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#ifdef HAVE_LIBSODIUM
#include <sodium.h>
#endif

#include "account.h"
#include "conf.h"
#include "dkim.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

typedef enum { ALG_RSA = 0, ALG_ED25519 } key_alg;

/*
 * OpenSSL 3 looks an algorithm up by name (OBJ_nid2sn, a hash table walk)
 * each time a context is set up from EVP_sha256() or from a bare EVP_PKEY,
 * and setting up a signing context costs more again (2 to 3 us of an
 * Ed25519 signature, bench/dkim-sign).  So SHA-256 is fetched once
 * (sha256_md), and each key keeps what signing needs ready: RSA a signing
 * context to copy (tmpl), Ed25519 a small pool of signing contexts used
 * again (an Ed25519 one-shot signature keeps no state in its context),
 * taken and given back under a lock.
 */
#define POOL_MAX 64             /* Ed25519 contexts kept per key (one per busy thread) */

typedef struct dkim_key {
    char *domain;
    char *selector;
    EVP_PKEY *pkey;
    key_alg alg;
    int bits;
    EVP_MD_CTX *tmpl;           /* RSA: EVP_DigestSignInit done, copied per signature */
    pthread_mutex_t lock;       /* Ed25519: guards pool */
    EVP_MD_CTX *pool[POOL_MAX];
    size_t npool;
    int no_pool;                /* a used context failed: this OpenSSL signs once per context */
#ifdef HAVE_LIBSODIUM
    int sodium;                 /* Ed25519: libsodium signs with sodium_sk */
    unsigned char sodium_sk[64];        /* seed and public key, as libsodium keeps them */
#endif
} dkim_key;

struct rg_dkim_keys {
    dkim_key *keys;
    size_t n;
    int refs;                   /* atomic */
};

/* ------------------------------------------------------------------ keys */

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    if ((sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
        rg_panic("dkim: OpenSSL has no SHA-256");
}

/* SHA-256, fetched once for the process (never freed: it lives as long as OpenSSL). */
static const EVP_MD *sha256(void)
{
    pthread_once(&sha256_once, sha256_fetch);
    return sha256_md;
}

void *
rg_dkim_key_read(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        rg_seterr(err, errlen, "cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rg_seterr(err, errlen, "not a regular file");
        close(fd);
        return NULL;
    }
    if (st.st_mode & 077) {
        rg_seterr(err, errlen, "readable or writable by group or others (mode %04o); "
                "a private key must be mode 600 or 400: chmod 600 %s",
                (unsigned)(st.st_mode & 07777), path);
        close(fd);
        return NULL;
    }
    FILE *f = fdopen(fd, "r");
    if (f == NULL) {
        rg_seterr(err, errlen, "cannot read: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (k == NULL) {
        rg_seterr(err, errlen, "not a PEM private key");
        return NULL;
    }
    if (EVP_PKEY_is_a(k, "RSA")) {
        if (EVP_PKEY_get_bits(k) < 2048) {
            rg_seterr(err, errlen, "RSA key of %d bits; DKIM keys need 2048 bits or more",
                    EVP_PKEY_get_bits(k));
            EVP_PKEY_free(k);
            return NULL;
        }
    } else if (!EVP_PKEY_is_a(k, "ED25519")) {
        rg_seterr(err, errlen, "key type %s; use RSA or Ed25519", EVP_PKEY_get0_type_name(k));
        EVP_PKEY_free(k);
        return NULL;
    }
    return k;
}

#ifdef HAVE_LIBSODIUM
/* Let libsodium sign with Ed25519 key d if it makes OpenSSL's signatures. */
static void
sodium_setup(dkim_key *d)
{
    static const unsigned char probe[] = "relayguard: libsodium and OpenSSL agree";
    unsigned char seed[32], pk[32], opk[32], s1[64], s2[64];
    size_t seedlen = sizeof seed, opklen = sizeof opk, s2len = sizeof s2;
    EVP_MD_CTX *ctx = NULL;
    int same = 0;

    if (sodium_init() < 0 || EVP_PKEY_get_raw_private_key(d->pkey, seed, &seedlen) != 1 ||
        seedlen != sizeof seed || EVP_PKEY_get_raw_public_key(d->pkey, opk, &opklen) != 1 ||
        opklen != sizeof opk)
        goto out;
    crypto_sign_seed_keypair(pk, d->sodium_sk, seed);
    if (memcmp(pk, opk, sizeof pk) != 0 ||
        crypto_sign_detached(s1, NULL, probe, sizeof probe, d->sodium_sk) != 0 ||
        (ctx = EVP_MD_CTX_new()) == NULL ||
        EVP_DigestSignInit_ex(ctx, NULL, NULL, NULL, NULL, d->pkey, NULL) != 1 ||
        EVP_DigestSign(ctx, s2, &s2len, probe, sizeof probe) != 1 || s2len != sizeof s2)
        goto out;
    same = memcmp(s1, s2, sizeof s1) == 0;
out:
    EVP_MD_CTX_free(ctx);
    OPENSSL_cleanse(seed, sizeof seed);
    d->sodium = same;
    if (!same) {
        OPENSSL_cleanse(d->sodium_sk, sizeof d->sodium_sk);
        rg_warn("warning: dkim key %s._domainkey.%s: libsodium does not make OpenSSL's "
                "Ed25519 signatures; OpenSSL signs", d->selector, d->domain);
    }
}
#endif

rg_dkim_keys *
rg_dkim_keys_load(const rg_config *cfg, char *err, size_t errlen)
{
    rg_dkim_keys *ks = rg_calloc(1, sizeof *ks);
    ks->refs = 1;
    ks->keys = rg_calloc(cfg->dkim.n_keys + 1, sizeof *ks->keys);
    for (size_t i = 0; i < cfg->dkim.n_keys; i++) {
        const rg_dkim_key_conf *kc = &cfg->dkim.keys[i];
        char why[512];
        EVP_PKEY *k = rg_dkim_key_read(kc->path, why, sizeof why);
        if (k == NULL) {
            rg_seterr(err, errlen, "%s:%d: dkim key %s: %s", cfg->file ? cfg->file : "config",
                    kc->line, kc->path, why);
            rg_dkim_keys_unref(ks);
            return NULL;
        }
        dkim_key *d = &ks->keys[ks->n++];
        d->domain = rg_strdup(kc->domain);
        d->selector = rg_strdup(kc->selector);
        d->pkey = k;
        d->alg = EVP_PKEY_is_a(k, "RSA") ? ALG_RSA : ALG_ED25519;
        d->bits = EVP_PKEY_get_bits(k);
        pthread_mutex_init(&d->lock, NULL);
#ifdef HAVE_LIBSODIUM
        if (d->alg == ALG_ED25519)
            sodium_setup(d);
#endif
        if (d->alg == ALG_RSA &&
            ((d->tmpl = EVP_MD_CTX_new()) == NULL ||
             EVP_DigestSignInit_ex(d->tmpl, NULL, "SHA256", NULL, NULL, k, NULL) != 1)) {
            rg_seterr(err, errlen, "%s:%d: dkim key %s: OpenSSL cannot sign with it",
                      cfg->file ? cfg->file : "config", kc->line, kc->path);
            rg_dkim_keys_unref(ks);
            return NULL;
        }
    }
    return ks;
}

rg_dkim_keys *
rg_dkim_keys_ref(rg_dkim_keys *k)
{
    __atomic_add_fetch(&k->refs, 1, __ATOMIC_SEQ_CST);
    return k;
}

void
rg_dkim_keys_unref(rg_dkim_keys *k)
{
    if (k == NULL || __atomic_sub_fetch(&k->refs, 1, __ATOMIC_SEQ_CST) > 0)
        return;
    for (size_t i = 0; i < k->n; i++) {
        dkim_key *d = &k->keys[i];
        free(d->domain);
        free(d->selector);
        EVP_MD_CTX_free(d->tmpl);
        for (size_t j = 0; j < d->npool; j++)
            EVP_MD_CTX_free(d->pool[j]);
        pthread_mutex_destroy(&d->lock);
#ifdef HAVE_LIBSODIUM
        OPENSSL_cleanse(d->sodium_sk, sizeof d->sodium_sk);
#endif
        EVP_PKEY_free(d->pkey);
    }
    free(k->keys);
    free(k);
}

size_t
rg_dkim_keys_count(const rg_dkim_keys *k)
{
    return k ? k->n : 0;
}

bool
rg_dkim_keys_have(const rg_dkim_keys *k, const char *domain)
{
    for (size_t i = 0; k && i < k->n; i++)
        if (strcmp(k->keys[i].domain, domain) == 0)
            return true;
    return false;
}

void
rg_dkim_key_info(const rg_dkim_keys *k, size_t i, const char **domain, const char **selector,
                 const char **alg, int *bits)
{
    *domain = k->keys[i].domain;
    *selector = k->keys[i].selector;
    *alg = k->keys[i].alg == ALG_RSA ? "rsa-sha256" : "ed25519-sha256";
    *bits = k->keys[i].bits;
}

/* Base64 of len bytes as a new string. */
static char *
b64(const unsigned char *buf, size_t len)
{
    char *out = rg_malloc(4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, buf, (int)len);
    return out;
}

static int
key_txt(EVP_PKEY *k, char *buf, size_t len)
{
    unsigned char *der = NULL;
    int n;
    const char *kt;
    unsigned char raw[64];
    size_t rawlen = sizeof raw;
    char *p;

    if (EVP_PKEY_is_a(k, "RSA")) {
        n = i2d_PUBKEY(k, &der);
        if (n <= 0)
            return -1;
        p = b64(der, (size_t)n);
        OPENSSL_free(der);
        kt = "rsa";
    } else {
        /* RFC 8463: the raw 32-byte public key, not a SubjectPublicKeyInfo */
        if (EVP_PKEY_get_raw_public_key(k, raw, &rawlen) != 1)
            return -1;
        p = b64(raw, rawlen);
        kt = "ed25519";
    }
    int w = snprintf(buf, len, "v=DKIM1; k=%s; p=%s", kt, p);
    free(p);
    return (w < 0 || (size_t)w >= len) ? -1 : 0;
}

int
rg_dkim_key_txt(const rg_dkim_keys *k, size_t i, char *buf, size_t len)
{
    return key_txt(k->keys[i].pkey, buf, len);
}

int
rg_dkim_keygen(const char *path, bool ed25519, char *txt, size_t txtlen, char *err, size_t errlen)
{
    EVP_PKEY *k = ed25519 ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")
                          : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    if (k == NULL) {
        rg_seterr(err, errlen, "key generation failed");
        return -1;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        rg_seterr(err, errlen, "%s: %s", path, strerror(errno));
        EVP_PKEY_free(k);
        return -1;
    }
    FILE *f = fdopen(fd, "w");
    int ok = f != NULL && fchmod(fd, 0600) == 0 &&
             PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1;
    if (f == NULL)
        close(fd);
    else if (fclose(f) != 0)
        ok = 0;
    if (!ok) {
        rg_seterr(err, errlen, "%s: cannot write the key", path);
        unlink(path);
        EVP_PKEY_free(k);
        return -1;
    }
    int r = key_txt(k, txt, txtlen);
    EVP_PKEY_free(k);
    if (r < 0)
        rg_seterr(err, errlen, "cannot encode the public key");
    return r;
}

/* ------------------------------------------------------ canonicalisation */

/* A growing byte buffer. */
typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void
buf_add(buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = rg_realloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void
buf_str(buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

/* Append relaxed "name:value\r\n" (RFC 6376 3.4.2). */
static void
relaxed_header(buf *b, const char *name, const char *value)
{
    size_t start = b->len;
    buf_str(b, name);
    rg_lower(b->p + start);
    /* no blanks at the end of the name */
    while (b->len > start && (b->p[b->len - 1] == ' ' || b->p[b->len - 1] == '\t'))
        b->p[--b->len] = '\0';
    buf_add(b, ":", 1);
    int wsp = 0, any = 0;
    for (const char *v = value; *v; v++) {
        char c = *v;
        if (c == '\r' || c == '\n')
            continue;           /* unfold */
        if (c == ' ' || c == '\t') {
            wsp = 1;
            continue;
        }
        if (wsp && any)
            buf_add(b, " ", 1);
        wsp = 0;
        any = 1;
        buf_add(b, &c, 1);
    }
    buf_add(b, "\r\n", 2);
}

char *
rg_dkim_relaxed_header(const char *name, const char *value)
{
    buf b = { 0 };
    relaxed_header(&b, name, value);
    return b.p;
}

/* --------------------------------------------------------------- signing */

struct rg_dkim_signer {
    rg_dkim_keys *keys;
    const rg_config *cfg;
    char *domain;
    time_t now;
    EVP_MD_CTX *body;           /* SHA-256 of the relaxed body */
    /* relaxed body state (RFC 6376 3.4.4), kept across chunks */
    int wsp;                    /* blanks seen, not yet written */
    int content;                /* the current line has content */
    int cr;                     /* a CR waits for its LF */
    size_t empty;               /* empty lines not yet written */
    char **also;                /* more names to sign (NULL-terminated) */
    size_t nalso;
    char out[4096];             /* canonical bytes not yet hashed */
    size_t nout;
};

static void
body_emit(rg_dkim_signer *s, const char *p, size_t n)
{
    if (s->nout + n > sizeof s->out) {
        EVP_DigestUpdate(s->body, s->out, s->nout);
        s->nout = 0;
        if (n > sizeof s->out) {
            EVP_DigestUpdate(s->body, p, n);
            return;
        }
    }
    memcpy(s->out + s->nout, p, n);
    s->nout += n;
}

static void
body_line_end(rg_dkim_signer *s)
{
    if (s->content)
        body_emit(s, "\r\n", 2);
    else
        s->empty++;             /* written only if content follows */
    s->content = 0;
    s->wsp = 0;
}

static void
body_char(rg_dkim_signer *s, char c)
{
    while (s->empty > 0) {
        body_emit(s, "\r\n", 2);
        s->empty--;
    }
    if (s->wsp)
        body_emit(s, " ", 1);
    s->wsp = 0;
    s->content = 1;
    body_emit(s, &c, 1);
}

/* Content bytes p[0..n) that are already canonical, after what the line
 * held so far: pending empty lines and blanks first, then one copy for the
 * whole run instead of one per byte. */
static void
body_run(rg_dkim_signer *s, const char *p, size_t n)
{
    while (s->empty > 0) {
        body_emit(s, "\r\n", 2);
        s->empty--;
    }
    if (s->wsp)
        body_emit(s, " ", 1);
    s->wsp = 0;
    s->content = 1;
    body_emit(s, p, n);
}

static int
body_special(unsigned char c)
{
    return c == '\r' || c == '\n' || c == ' ' || c == '\t';
}

/*
 * How many bytes from p (a content byte) relaxed canonicalisation leaves
 * as they are: content bytes, single spaces between content bytes, and
 * CRLFs between lines that have content.  For ordinary text that is
 * nearly the whole body, copied in one go.  The run ends on a content
 * byte, so after it the line has content and no blanks wait.
 */
static size_t
canonical_run(const unsigned char *p, const unsigned char *end)
{
    const unsigned char *q = p;
    while (q < end) {
        if (!body_special(q[0]))
            q++;
        else if (q[0] == ' ' && end - q > 1 && !body_special(q[1]))
            q += 2;
        else if (q[0] == '\r' && end - q > 2 && q[1] == '\n' && !body_special(q[2]))
            q += 3;
        else
            break;
    }
    return (size_t)(q - p);
}

void
rg_dkim_body(rg_dkim_signer *s, const unsigned char *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        char c = (char)p[i];
        if (s->cr) {
            s->cr = 0;
            if (c == '\n') {
                body_line_end(s);
                i++;
                continue;
            }
            body_char(s, '\r');     /* a lone CR is content */
        }
        if (c == '\r') {
            s->cr = 1;
        } else if (c == '\n') {
            body_line_end(s);
        } else if (c == ' ' || c == '\t') {
            s->wsp = 1;
        } else {
            size_t n = canonical_run(p + i, p + len);
            body_run(s, (const char *)p + i, n);
            i += n;
            continue;
        }
        i++;
    }
}

rg_dkim_signer *
rg_dkim_signer_new(rg_dkim_keys *keys, const rg_config *cfg, const char *domain, time_t now)
{
    if (keys == NULL || domain == NULL || !rg_dkim_keys_have(keys, domain))
        return NULL;
    rg_dkim_signer *s = rg_calloc(1, sizeof *s);
    s->keys = rg_dkim_keys_ref(keys);
    s->cfg = cfg;
    s->domain = rg_strdup(domain);
    s->now = now;
    s->body = EVP_MD_CTX_new();
    if (s->body == NULL || EVP_DigestInit_ex2(s->body, sha256(), NULL) != 1)
        rg_panic("dkim: cannot start SHA-256");
    return s;
}

void
rg_dkim_signer_free(rg_dkim_signer *s)
{
    if (s == NULL)
        return;
    rg_dkim_keys_unref(s->keys);
    EVP_MD_CTX_free(s->body);
    for (size_t i = 0; i < s->nalso; i++)
        free(s->also[i]);
    free(s->also);
    free(s->domain);
    free(s);
}

void
rg_dkim_sign_also(rg_dkim_signer *s, const char *name)
{
    s->also = rg_realloc(s->also, (s->nalso + 2) * sizeof *s->also);
    s->also[s->nalso++] = rg_lower(rg_strdup(name));
    s->also[s->nalso] = NULL;
}

static bool
in_list(char *const *l, const char *name)
{
    for (; *l; l++)
        if (strcasecmp(*l, name) == 0)
            return true;
    return false;
}

/* h= list: each configured header as often as it occurs, oversigned ones once more. */
static void
header_list(const rg_dkim_signer *s, const rg_dkim_header *h, size_t n, buf *hl)
{
    char *const *sign = s->cfg->dkim.sign_headers, *const *over = s->cfg->dkim.oversign;
    char *const none[] = { NULL };
    char *const *also = s->also ? s->also : none;
    size_t nsign = rg_strv_len(sign), nover = rg_strv_len(over), nalso = s->nalso;
    for (size_t i = 0; i < nsign + nover + nalso; i++) {
        const char *name = i < nsign ? sign[i] : i < nsign + nover ? over[i - nsign]
                                                                   : also[i - nsign - nover];
        if (i >= nsign && in_list(sign, name))
            continue;           /* counted with the signed ones */
        if (i >= nsign + nover && in_list(over, name))
            continue;
        int dup = 0;
        for (size_t j = nsign + nover; j < i; j++)
            dup |= strcasecmp(also[j - nsign - nover], name) == 0;
        if (dup)
            continue;
        size_t count = 0;
        for (size_t j = 0; j < n; j++)
            if (strcasecmp(h[j].name, name) == 0)
                count++;
        if (in_list(over, name))
            count++;
        for (size_t c = 0; c < count; c++) {
            if (hl->len)
                buf_add(hl, ":", 1);
            buf_str(hl, name);
        }
    }
}

/* The canonical headers named in hl (bottom-up instance selection, 5.4.2). */
static void
signed_headers(const rg_dkim_header *h, size_t n, const char *hl, buf *out)
{
    char *used = rg_calloc(n + 1, 1);
    const char *p = hl;
    while (*p) {
        size_t l = strcspn(p, ":");
        for (size_t j = n; j-- > 0;) {
            if (!used[j] && strlen(h[j].name) == l && strncasecmp(h[j].name, p, l) == 0) {
                used[j] = 1;
                relaxed_header(out, h[j].name, h[j].value);
                break;
            }
        }
        p += l;
        if (*p == ':')
            p++;
    }
    free(used);
}

/* A context ready to sign with k (from its pool, a copy of its template,
 * or new), or NULL. */
static EVP_MD_CTX *
sign_ctx_take(dkim_key *k, int *pooled)
{
    EVP_MD_CTX *ctx = NULL;
    *pooled = 0;
    if (k->alg == ALG_ED25519) {
        pthread_mutex_lock(&k->lock);
        if (k->npool > 0 && !k->no_pool)
            ctx = k->pool[--k->npool];
        pthread_mutex_unlock(&k->lock);
        if (ctx) {
            *pooled = 1;
            return ctx;
        }
    }
    if ((ctx = EVP_MD_CTX_new()) == NULL)
        return NULL;
    int ok = k->alg == ALG_RSA ? EVP_MD_CTX_copy_ex(ctx, k->tmpl)
                               : EVP_DigestSignInit_ex(ctx, NULL, NULL, NULL, NULL, k->pkey, NULL);
    if (ok != 1) {
        EVP_MD_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* After a signature: an Ed25519 context that worked goes back to the pool. */
static void
sign_ctx_give(dkim_key *k, EVP_MD_CTX *ctx, int worked)
{
    if (worked && k->alg == ALG_ED25519) {
        pthread_mutex_lock(&k->lock);
        if (k->npool < POOL_MAX && !k->no_pool) {
            k->pool[k->npool++] = ctx;
            ctx = NULL;
        }
        pthread_mutex_unlock(&k->lock);
    }
    EVP_MD_CTX_free(ctx);
}

/* One signature of data with key k into sig (siglen: its room, then the
 * signature's length); 1, 0 when a pooled context failed (try again), or -1. */
static int
sign_once(dkim_key *k, const char *data, size_t len, unsigned char *sig, size_t *siglen)
{
    unsigned char hash[32];
    unsigned int hl = 0;
    int ok, pooled;
#ifdef HAVE_LIBSODIUM
    if (k->sodium) {
        /* RFC 8463: PureEdDSA over the SHA-256 of the canonical data */
        unsigned long long sl = 0;
        if (*siglen < crypto_sign_BYTES ||
            EVP_Digest(data, len, hash, &hl, sha256(), NULL) != 1 ||
            crypto_sign_detached(sig, &sl, hash, hl, k->sodium_sk) != 0)
            return -1;
        *siglen = (size_t)sl;
        return 1;
    }
#endif
    EVP_MD_CTX *ctx = sign_ctx_take(k, &pooled);

    if (ctx == NULL)
        return -1;
    if (k->alg == ALG_RSA) {
        ok = EVP_PKEY_get_size(k->pkey) <= (int)*siglen &&
             EVP_DigestSign(ctx, sig, siglen, (const unsigned char *)data, len) == 1;
    } else {
        /* RFC 8463: PureEdDSA over the SHA-256 of the canonical data */
        ok = EVP_Digest(data, len, hash, &hl, sha256(), NULL) == 1 &&
             EVP_DigestSign(ctx, sig, siglen, hash, hl) == 1;
    }
    if (!ok && pooled) {
        /* a used context this OpenSSL refuses: from now on one per signature */
        pthread_mutex_lock(&k->lock);
        k->no_pool = 1;
        pthread_mutex_unlock(&k->lock);
    }
    sign_ctx_give(k, ctx, ok);
    return ok || pooled ? ok : -1;
}

/* One signature of data with key k into a new base64 string, or NULL. */
static char *
sign_data(dkim_key *k, const char *data, size_t len)
{
    unsigned char sig[1024];
    size_t siglen = sizeof sig;
    int ok = sign_once(k, data, len, sig, &siglen);
    if (ok == 0) {              /* with a new context this time */
        siglen = sizeof sig;
        ok = sign_once(k, data, len, sig, &siglen);
    }
    if (ok != 1)
        return NULL;
    rg_metrics_dkim_signature(k->alg == ALG_RSA ? "rsa-sha256" : "ed25519-sha256");
    return b64(sig, siglen);
}

#define FOLD_AT 78

/* Append "; name=value" (just "name=value" first), starting a new line
 * ("\n\t") when it would pass FOLD_AT; an h= list folds at its colons. */
static void
fold_tag(buf *v, size_t *col, const char *name, const char *value)
{
    size_t len = strlen(name) + strlen(value);
    if (v->len > 0) {
        if (*col + 2 + len > FOLD_AT && *col > 8) {
            buf_str(v, ";\n\t");
            *col = 8;
        } else {
            buf_str(v, "; ");
            *col += 2;
        }
    }
    buf_str(v, name);
    *col += strlen(name);
    if (strcmp(name, "h=") != 0) {
        buf_str(v, value);
        *col += strlen(value);
        return;
    }
    for (const char *p = value; *p;) {
        size_t l = strcspn(p, ":");
        if (p != value) {
            if (*col + 1 + l > FOLD_AT) {
                buf_str(v, ":\n\t");
                *col = 8;
            } else {
                buf_str(v, ":");
                (*col)++;
            }
        }
        buf_add(v, p, l);
        *col += l;
        p += l;
        if (*p == ':')
            p++;
    }
}

/* Append the b= value, folded; whitespace in it is ignored by verifiers. */
static void
fold_b64(buf *v, size_t col, const char *b)
{
    size_t n = strlen(b);
    while (n > 0) {
        size_t room = col < FOLD_AT ? FOLD_AT - col : 0;
        if (room == 0) {
            buf_str(v, "\n\t");
            col = 8;
            continue;
        }
        size_t take = n < room ? n : room;
        buf_add(v, b, take);
        b += take;
        n -= take;
        col += take;
    }
}

int
rg_dkim_sign(rg_dkim_signer *s, const rg_dkim_header *hdrs, size_t nhdrs, char **out,
             size_t max, char *err, size_t errlen)
{
    unsigned char bh[EVP_MAX_MD_SIZE];
    unsigned int bhlen = 0;

    if (s->cr) {
        s->cr = 0;
        body_char(s, '\r');
    }
    if (s->content)
        body_emit(s, "\r\n", 2);    /* a last line without its CRLF */
    s->content = 0;
    s->empty = 0;
    EVP_DigestUpdate(s->body, s->out, s->nout);
    s->nout = 0;
    if (EVP_DigestFinal_ex(s->body, bh, &bhlen) != 1) {
        rg_seterr(err, errlen, "body hash failed");
        return -1;
    }
    char *bh64 = b64(bh, bhlen);
    buf hl = { 0 }, data = { 0 };
    header_list(s, hdrs, nhdrs, &hl);
    signed_headers(hdrs, nhdrs, hl.p ? hl.p : "", &data);
    size_t hdrlen = data.len;

    int n = 0;
    for (size_t i = 0; i < s->keys->n && (size_t)n < max; i++) {
        dkim_key *k = &s->keys->keys[i];
        if (strcmp(k->domain, s->domain) != 0)
            continue;
        buf v = { 0 };
        char t[32];
        snprintf(t, sizeof t, "%lld", (long long)s->now);
        /* folded below 80 columns with "\n\t" (the MTA writes CRLF), so no
         * line of it ever comes near the 998 limit where an MTA would break
         * it for us */
        size_t col = strlen("DKIM-Signature: ");
        fold_tag(&v, &col, "v=1", "");
        fold_tag(&v, &col, "a=", k->alg == ALG_RSA ? "rsa-sha256" : "ed25519-sha256");
        fold_tag(&v, &col, "c=", "relaxed/relaxed");
        fold_tag(&v, &col, "d=", k->domain);
        fold_tag(&v, &col, "s=", k->selector);
        fold_tag(&v, &col, "t=", t);
        fold_tag(&v, &col, "h=", hl.p ? hl.p : "from");
        fold_tag(&v, &col, "bh=", bh64);
        fold_tag(&v, &col, "b=", "");
        /* the signature header itself, b= empty, without its CRLF (3.7) */
        data.len = hdrlen;
        relaxed_header(&data, "DKIM-Signature", v.p);
        data.len -= 2;
        char *b = sign_data(k, data.p, data.len);
        if (b == NULL) {
            rg_seterr(err, errlen, "signing with %s._domainkey.%s failed", k->selector, k->domain);
            free(v.p);
            for (int j = 0; j < n; j++)
                free(out[j]);
            n = -1;
            break;
        }
        fold_b64(&v, col, b);
        free(b);
        out[n++] = v.p;
    }
    free(bh64);
    free(hl.p);
    free(data.p);
    return n;
}

/* ------------------------------------------------ keys for an account */

size_t
rg_dkim_keys_for(const rg_dkim_keys *k, const struct rg_account *a, const char *domain,
                 size_t *idx, size_t max)
{
    char dom[256];
    if (k == NULL || a == NULL || domain == NULL || domain[0] == '\0' ||
        rg_strlcpy(dom, domain, sizeof dom) >= sizeof dom)
        return 0;
    rg_lower(dom);
    if (!rg_account_allows_domain(a, dom))
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < k->n && n < max; i++)
        if (strcmp(k->keys[i].domain, dom) == 0)
            idx[n++] = i;
    return n;
}
