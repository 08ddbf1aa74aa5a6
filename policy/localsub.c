/*
 * localsub.c - the X-Relayguard-Local token (localsub.h): settings, the key
 * file, minting (relayguard-sendmail) and verifying (the engine).
 *
 * The token is hand-parsed: it is one short line in a fixed layout that
 * relayguard itself writes, and anything else in it is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "conf.h"
#include "limit.h"
#include "localsub.h"
#include "util.h"

void rg_localsub_conf_init(rg_localsub_conf *c)
{
    memset(c, 0, sizeof *c);
    c->max_age_ms = 3600 * 1000;
    c->sendmail = rg_strv_split("/usr/sbin/sendmail");
}

void rg_localsub_conf_clear(rg_localsub_conf *c)
{
    free(c->key_path);
    rg_strv_free(c->sendmail);
    free(c->smtp_clients);
    memset(c, 0, sizeof *c);
}

int rg_localsub_conf_apply(rg_localsub_conf *c, const char *k, const char *v,
                           const char *file, int line, char *err, size_t errlen)
{
    if (strcmp(k, "local_key") == 0) {
        if (v[0] != '/') {
            rg_seterr(err, errlen, "%s:%d: local_key must be an absolute path", file, line);
            return -1;
        }
        free(c->key_path);
        c->key_path = rg_strdup(v);
    } else if (strcmp(k, "local_submission") == 0) {
        if (strcmp(v, "optional") == 0 || strcmp(v, "required") == 0) {
            c->required = v[0] == 'r';
        } else {
            rg_seterr(err, errlen, "%s:%d: bad local_submission '%s' (optional or required)",
                      file, line, v);
            return -1;
        }
    } else if (strcmp(k, "local_max_age") == 0) {
        uint64_t ms;
        if (rg_duration_parse(v, &ms) < 0 || ms < 60 * 1000 || ms > 7ull * 86400 * 1000) {
            rg_seterr(err, errlen, "%s:%d: bad local_max_age '%s' (1m to 7d, e.g. 1h)", file,
                      line, v);
            return -1;
        }
        c->max_age_ms = ms;
    } else if (strcmp(k, "local_sendmail") == 0) {
        if (v[0] != '/') {
            rg_seterr(err, errlen, "%s:%d: local_sendmail must start with an absolute path "
                      "(e.g. /usr/sbin/sendmail)", file, line);
            return -1;
        }
        rg_strv_free(c->sendmail);
        c->sendmail = rg_strv_split(v);
    } else if (strcmp(k, "local_smtp_clients") == 0) {
        char **w = rg_strv_split(v);
        size_t n = rg_strv_len(w);
        rg_cidr *nets = rg_calloc(n + 1, sizeof *nets);
        for (size_t i = 0; i < n; i++) {
            if (rg_cidr_parse(w[i], &nets[i]) < 0) {
                rg_seterr(err, errlen, "%s:%d: bad local_smtp_clients network '%s' "
                          "(an address or CIDR, e.g. 127.0.0.1, ::1)", file, line, w[i]);
                free(nets);
                rg_strv_free(w);
                return -1;
            }
        }
        rg_strv_free(w);
        free(c->smtp_clients);
        c->smtp_clients = nets;
        c->n_smtp_clients = n;
    } else {
        return 0;
    }
    return 1;
}

bool rg_localsub_smtp_client(const rg_localsub_conf *c, const char *addr)
{
    rg_cidr ip;
    if (c->n_smtp_clients == 0 || addr == NULL || rg_ip_parse(addr, &ip) < 0)
        return false;
    for (size_t i = 0; i < c->n_smtp_clients; i++)
        if (rg_cidr_contains(&c->smtp_clients[i], &ip))
            return true;
    return false;
}

int rg_localsub_key_load(const char *path, rg_localsub_key *k, char *err, size_t errlen)
{
    struct stat st;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);

    memset(k, 0, sizeof *k);
    if (fd < 0) {
        rg_seterr(err, errlen, "local_key %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rg_seterr(err, errlen, "local_key %s: not a regular file", path);
        close(fd);
        return -1;
    }
    if (st.st_mode & 007) {
        rg_seterr(err, errlen, "local_key %s: readable or writable by others "
                  "(chown root:relayguard and chmod 0640 it)", path);
        close(fd);
        return -1;
    }
    /* one byte more than the limit tells a file that is too long */
    unsigned char buf[RG_LOCALSUB_KEY_MAX + 1];
    size_t got = 0;
    while (got < sizeof buf && (n = read(fd, buf + got, sizeof buf - got)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rg_seterr(err, errlen, "local_key %s: %s", path, strerror(errno));
            close(fd);
            OPENSSL_cleanse(buf, sizeof buf);
            return -1;
        }
        got += (size_t)n;
    }
    close(fd);
    while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r'))
        got--;
    if (got > RG_LOCALSUB_KEY_MAX || got < RG_LOCALSUB_KEY_MIN) {
        rg_seterr(err, errlen, "local_key %s: the key must be %d to %d bytes "
                  "(e.g. openssl rand -hex 32 > FILE)", path, RG_LOCALSUB_KEY_MIN,
                  RG_LOCALSUB_KEY_MAX);
        OPENSSL_cleanse(buf, sizeof buf);
        return -1;
    }
    memcpy(k->bytes, buf, got);
    k->len = got;
    OPENSSL_cleanse(buf, sizeof buf);
    return 0;
}

void rg_localsub_key_clear(rg_localsub_key *k)
{
    OPENSSL_cleanse(k, sizeof *k);
}

bool rg_localsub_login_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > RG_LOCALSUB_LOGIN_MAX || s[0] == '-')
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@$+-") == n;
}

static bool is_hex(const char *s, size_t n)
{
    return strlen(s) == n && strspn(s, "0123456789abcdef") == n;
}

/* The signed part, "v=1; u=UID; l=LOGIN; t=T; n=NONCE".  Its length, or -1. */
static int signed_part(char *buf, size_t len, unsigned long uid, const char *login, int64_t t,
                       const char *nonce)
{
    int n = snprintf(buf, len, "v=1; u=%lu; l=%s; t=%" PRId64 "; n=%s", uid, login, t, nonce);
    return (n < 0 || (size_t)n >= len) ? -1 : n;
}

/* n bytes as 2n lowercase hex digits and a NUL into out. */
static void to_hex(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static void hmac_hex(const rg_localsub_key *k, const char *msg, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    HMAC(EVP_sha256(), k->bytes, (int)k->len, (const unsigned char *)msg, len, md, &mdlen);
    to_hex(md, mdlen < 32 ? mdlen : 32, out);
}

int rg_localsub_mint(const rg_localsub_key *k, unsigned long uid, const char *login,
                     int64_t now, const char *nonce, char *out, size_t outlen,
                     char *err, size_t errlen)
{
    char fresh[33], part[RG_LOCALSUB_TOKEN_MAX], sig[65];

    if (!rg_localsub_login_valid(login)) {
        rg_seterr(err, errlen, "login '%.64s' cannot be carried in a token", login);
        return -1;
    }
    if (nonce == NULL) {
        unsigned char r[16];
        if (RAND_bytes(r, sizeof r) != 1) {
            rg_seterr(err, errlen, "no random bytes for the nonce (OpenSSL RAND_bytes)");
            return -1;
        }
        to_hex(r, sizeof r, fresh);
        nonce = fresh;
    } else if (!is_hex(nonce, 32)) {
        rg_seterr(err, errlen, "the nonce must be 32 hex digits");
        return -1;
    }
    int n = signed_part(part, sizeof part, uid, login, now, nonce);
    if (n < 0) {
        rg_seterr(err, errlen, "token too long");
        return -1;
    }
    hmac_hex(k, part, (size_t)n, sig);
    int m = snprintf(out, outlen, "%s; s=%s", part, sig);
    if (m < 0 || (size_t)m >= outlen) {
        rg_seterr(err, errlen, "token buffer too small");
        return -1;
    }
    return 0;
}

/* Skip folding whitespace. */
static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    return p;
}

/* Read "NAME=" then the value up to ';' (or the end when last) into val.
 * Returns the position after the ';', or NULL. */
static const char *field(const char *p, const char *name, char *val, size_t len, bool last)
{
    size_t nl = strlen(name);
    p = skip_ws(p);
    if (strncmp(p, name, nl) != 0 || p[nl] != '=')
        return NULL;
    p += nl + 1;
    size_t n = strcspn(p, "; \t\r\n");
    if (n == 0 || n >= len)
        return NULL;
    memcpy(val, p, n);
    val[n] = '\0';
    p = skip_ws(p + n);
    if (last)
        return *p == '\0' ? p : NULL;
    return *p == ';' ? p + 1 : NULL;
}

/* A decimal number without sign or leading zeros (but "0"), at most 19 digits. */
static bool decimal(const char *s, uint64_t *out)
{
    size_t n = strlen(s);
    if (n < 1 || n > 19 || strspn(s, "0123456789") != n || (s[0] == '0' && n > 1))
        return false;
    *out = strtoull(s, NULL, 10);
    return true;
}

rg_localsub_status rg_localsub_verify(const rg_localsub_key *k, const char *value, int64_t now,
                                      uint64_t max_age_ms, rg_localsub_id *id)
{
    char v[8], u[24], l[RG_LOCALSUB_LOGIN_MAX + 2], t[24], n[40], s[72];
    char part[RG_LOCALSUB_TOKEN_MAX], want[65];
    uint64_t uid, tm;
    const char *p = value ? value : "";

    memset(id, 0, sizeof *id);
    if (strlen(p) > 4 * RG_LOCALSUB_TOKEN_MAX)
        return RG_LOCALSUB_MALFORMED;
    if ((p = field(p, "v", v, sizeof v, false)) == NULL || strcmp(v, "1") != 0)
        return RG_LOCALSUB_MALFORMED;
    if ((p = field(p, "u", u, sizeof u, false)) == NULL || !decimal(u, &uid) ||
        uid > 0xffffffffu)
        return RG_LOCALSUB_MALFORMED;
    id->uid = (unsigned long)uid;
    if ((p = field(p, "l", l, sizeof l, false)) == NULL || !rg_localsub_login_valid(l))
        return RG_LOCALSUB_MALFORMED;
    rg_strlcpy(id->login, l, sizeof id->login);
    if ((p = field(p, "t", t, sizeof t, false)) == NULL || !decimal(t, &tm) ||
        tm > (uint64_t)INT64_MAX)
        return RG_LOCALSUB_MALFORMED;
    id->time = (int64_t)tm;
    if ((p = field(p, "n", n, sizeof n, false)) == NULL || !is_hex(n, 32))
        return RG_LOCALSUB_MALFORMED;
    rg_strlcpy(id->nonce, n, sizeof id->nonce);
    if ((p = field(p, "s", s, sizeof s, true)) == NULL || !is_hex(s, 64))
        return RG_LOCALSUB_MALFORMED;
    int len = signed_part(part, sizeof part, id->uid, id->login, id->time, id->nonce);
    if (len < 0)
        return RG_LOCALSUB_MALFORMED;
    hmac_hex(k, part, (size_t)len, want);
    if (k->len == 0 || CRYPTO_memcmp(want, s, 64) != 0)
        return RG_LOCALSUB_BAD_SIGNATURE;
    if (id->time > now + RG_LOCALSUB_SKEW_S)
        return RG_LOCALSUB_FUTURE;
    if (now > id->time && (uint64_t)(now - id->time) * 1000 > max_age_ms)
        return RG_LOCALSUB_EXPIRED;
    return RG_LOCALSUB_OK;
}

const char *rg_localsub_status_text(rg_localsub_status s)
{
    switch (s) {
    case RG_LOCALSUB_OK: return "ok";
    case RG_LOCALSUB_MALFORMED: return "malformed";
    case RG_LOCALSUB_BAD_SIGNATURE: return "bad signature";
    case RG_LOCALSUB_EXPIRED: return "expired";
    case RG_LOCALSUB_FUTURE: return "from the future";
    }
    return "?";
}
