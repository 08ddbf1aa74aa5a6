/*
 * verp.c - return-path tokens: mint and verify (format in verp.h).
 *
 * HMAC-SHA256 is OpenSSL's; the base32 coder is written here because
 * OpenSSL has none and the 39-character body needs the RFC 4648 alphabet in
 * lower case without padding (a local part is matched case-insensitively by
 * some MTAs, so base64 would not survive).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "util.h"
#include "verp.h"

#define BODY_BYTES   24
#define HEAD_BYTES   14          /* version+time and ID: what the MAC covers */
#define MAC_BYTES    10
#define TOKEN_VERSION      1u
#define MAC_DOMAIN   "relayguard-verp-1"

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";

static const char *const purposes[] = { "bounces", "unsubscribe" };

const char *
rg_verp_status_name(rg_verp_status s)
{
    switch (s) {
    case RG_VERP_OK:          return "ok";
    case RG_VERP_MALFORMED:   return "malformed";
    case RG_VERP_UNKNOWN_KEY: return "unknown_key";
    case RG_VERP_BAD_MAC:     return "bad_mac";
    case RG_VERP_EXPIRED:     return "expired";
    case RG_VERP_FUTURE:      return "future";
    case RG_VERP_KEY_RETIRED: return "key_retired";
    }
    return "unknown";
}

/* base32 of in[0..n) into out (ceil(n*8/5) characters and a NUL). */
static void
b32_encode(const unsigned char *in, size_t n, char *out)
{
    unsigned buf = 0, bits = 0;
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        buf = (buf << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = b32[(buf >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0)
        out[o++] = b32[(buf << (5 - bits)) & 31];
    out[o] = '\0';
}

/* Decode exactly len characters into out[n]; any case.  Unused trailing
 * bits must be zero, so that every token has one spelling.  0 or -1. */
static int
b32_decode(const char *s, size_t len, unsigned char *out, size_t n)
{
    unsigned buf = 0, bits = 0;
    size_t o = 0;

    if (len != (n * 8 + 4) / 5)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i], v;
        if (c >= 'a' && c <= 'z')
            v = c - 'a';
        else if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= '2' && c <= '7')
            v = c - '2' + 26;
        else
            return -1;
        buf = ((buf << 5) | (unsigned)v) & 0xfff;
        bits += 5;
        if (bits >= 8) {
            out[o++] = (unsigned char)(buf >> (bits - 8));
            bits -= 8;
        }
    }
    if (o != n || (buf & ((1u << bits) - 1)) != 0)
        return -1;
    return 0;
}

void
rg_verp_id_text(const unsigned char id[RG_VERP_ID_BYTES], char *out)
{
    b32_encode(id, RG_VERP_ID_BYTES, out);
}

int
rg_verp_new_id(unsigned char id[RG_VERP_ID_BYTES])
{
    return RAND_bytes(id, RG_VERP_ID_BYTES) == 1 ? 0 : -1;
}

/* The MAC of head under key for purpose.  0 or -1 (OpenSSL failure). */
static int
compute_mac(const rg_bounce_key *key, rg_verp_purpose purpose, const unsigned char *head,
            unsigned char mac[MAC_BYTES])
{
    unsigned char msg[64 + HEAD_BYTES], full[EVP_MAX_MD_SIZE];
    unsigned int flen = 0;
    int n = snprintf((char *)msg, 64, "%s|%s|%s|", MAC_DOMAIN, purposes[purpose], key->id);

    if (n < 0 || n >= 64)
        return -1;
    memcpy(msg + n, head, HEAD_BYTES);
    if (HMAC(EVP_sha256(), key->secret, (int)key->secret_len, msg, (size_t)n + HEAD_BYTES,
             full, &flen) == NULL || flen < MAC_BYTES)
        return -1;
    memcpy(mac, full, MAC_BYTES);
    OPENSSL_cleanse(full, sizeof full);
    return 0;
}

int
rg_verp_mint(const rg_bounce_conf *bc, rg_verp_purpose purpose,
             const unsigned char id[RG_VERP_ID_BYTES], int64_t now, char *out, size_t outlen)
{
    const rg_bounce_key *key = NULL;
    unsigned char body[BODY_BYTES];

    for (size_t i = 0; i < bc->n_keys && key == NULL; i++)
        if (bc->keys[i].retired == 0)
            key = &bc->keys[i];
    if (key == NULL || now < RG_VERP_EPOCH)
        return -1;
    uint32_t hours = (uint32_t)((now - RG_VERP_EPOCH) / 3600) & 0x0fffffffu;
    uint32_t head = (TOKEN_VERSION << 28) | hours;
    body[0] = (unsigned char)(head >> 24);
    body[1] = (unsigned char)(head >> 16);
    body[2] = (unsigned char)(head >> 8);
    body[3] = (unsigned char)head;
    memcpy(body + 4, id, RG_VERP_ID_BYTES);
    if (compute_mac(key, purpose, body, body + HEAD_BYTES) < 0)
        return -1;

    size_t klen = strlen(key->id);
    if (outlen < klen + 1 + RG_VERP_BODY_LEN + 1)
        return -1;
    memcpy(out, key->id, klen);
    out[klen] = '-';
    b32_encode(body, BODY_BYTES, out + klen + 1);
    return 0;
}

rg_verp_status
rg_verp_verify(const rg_bounce_conf *bc, rg_verp_purpose purpose, const char *token,
               int64_t now, rg_verp_token *out)
{
    const char *dash = strchr(token, '-');
    unsigned char body[BODY_BYTES], mac[MAC_BYTES];
    char kid[9];

    if (dash == NULL || dash == token || dash - token > 8 ||
        strlen(dash + 1) != RG_VERP_BODY_LEN)
        return RG_VERP_MALFORMED;
    size_t klen = (size_t)(dash - token);
    for (size_t i = 0; i < klen; i++) {
        char c = token[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return RG_VERP_MALFORMED;
        kid[i] = c;
    }
    kid[klen] = '\0';
    if (b32_decode(dash + 1, RG_VERP_BODY_LEN, body, sizeof body) < 0)
        return RG_VERP_MALFORMED;
    uint32_t head = (uint32_t)body[0] << 24 | (uint32_t)body[1] << 16 |
                    (uint32_t)body[2] << 8 | body[3];
    if (head >> 28 != TOKEN_VERSION)
        return RG_VERP_MALFORMED;

    const rg_bounce_key *key = NULL;
    for (size_t i = 0; i < bc->n_keys && key == NULL; i++)
        if (strcmp(bc->keys[i].id, kid) == 0)
            key = &bc->keys[i];
    if (key == NULL)
        return RG_VERP_UNKNOWN_KEY;
    if (compute_mac(key, purpose, body, mac) < 0 ||
        CRYPTO_memcmp(mac, body + HEAD_BYTES, MAC_BYTES) != 0)
        return RG_VERP_BAD_MAC;

    /* Only an authentic token gets this far: its time can be trusted. */
    int64_t minted = RG_VERP_EPOCH + (int64_t)(head & 0x0fffffffu) * 3600;
    if (minted > now + 3600)
        return RG_VERP_FUTURE;
    if (key->retired != 0 && minted >= key->retired)
        return RG_VERP_KEY_RETIRED;
    if (now - minted > (int64_t)(bc->token_ttl_ms / 1000))
        return RG_VERP_EXPIRED;
    if (out != NULL) {
        memcpy(out->key_id, kid, klen + 1);
        out->minted = minted;
        memcpy(out->id, body + 4, RG_VERP_ID_BYTES);
        rg_verp_id_text(out->id, out->id_text);
    }
    return RG_VERP_OK;
}

/* Length of the template's text before and after "%d", or -1 when the
 * domain is fixed. */
static int
template_parts(const char *domain, size_t *pre, size_t *post)
{
    const char *pc = strstr(domain, "%d");
    if (pc == NULL)
        return -1;
    *pre = (size_t)(pc - domain);
    *post = strlen(pc + 2);
    return 0;
}

bool
rg_verp_domain_is_template(const rg_bounce_conf *bc)
{
    return bc->domain != NULL && strstr(bc->domain, "%d") != NULL;
}

int
rg_verp_domain_for(const rg_bounce_conf *bc, const char *sender, char *out, size_t outlen)
{
    size_t pre, post;
    int n;

    if (outlen > 0)
        out[0] = '\0';
    if (bc->domain == NULL)
        return -1;
    if (template_parts(bc->domain, &pre, &post) < 0) {
        n = snprintf(out, outlen, "%s", bc->domain);
    } else {
        const char *at = sender ? strrchr(sender, '@') : NULL;
        if (at == NULL || at[1] == '\0')
            return -1;
        n = snprintf(out, outlen, "%.*s%s%s", (int)pre, bc->domain, at + 1,
                     bc->domain + pre + 2);
        for (char *p = out; n > 0 && (size_t)n < outlen && *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
    }
    if (n < 0 || (size_t)n >= outlen) {
        if (outlen > 0)
            out[0] = '\0';
        return -1;
    }
    return 0;
}

bool
rg_verp_domain_matches(const rg_bounce_conf *bc, const char *dom, size_t dlen)
{
    size_t pre, post;

    if (bc->domain == NULL || dom == NULL)
        return false;
    if (template_parts(bc->domain, &pre, &post) < 0)
        return dlen == strlen(bc->domain) && strncasecmp(dom, bc->domain, dlen) == 0;
    /* "%d" stands for at least one label: something, and not a dot at its ends */
    if (dlen < pre + post + 1 || strncasecmp(dom, bc->domain, pre) != 0 ||
        strncasecmp(dom + dlen - post, bc->domain + pre + 2, post) != 0)
        return false;
    const char *mid = dom + pre;
    size_t mlen = dlen - pre - post;
    return mid[0] != '.' && mid[mlen - 1] != '.' && memchr(mid, '@', mlen) == NULL;
}

int
rg_verp_address_for(const rg_bounce_conf *bc, rg_verp_purpose purpose, const char *token,
                    const char *sender, char *out, size_t outlen)
{
    char dom[256];

    if (rg_verp_domain_for(bc, sender, dom, sizeof dom) < 0) {
        if (outlen > 0)
            out[0] = '\0';
        return -1;
    }
    int n = snprintf(out, outlen, "%s+%s@%s", purposes[purpose], token, dom);
    if (n < 0 || (size_t)n >= outlen) {
        if (outlen > 0)
            out[0] = '\0';
        return -1;
    }
    return 0;
}

int
rg_verp_address(const rg_bounce_conf *bc, rg_verp_purpose purpose, const char *token,
                char *out, size_t outlen)
{
    return rg_verp_address_for(bc, purpose, token, NULL, out, outlen);
}

int
rg_verp_split_address(const rg_bounce_conf *bc, const char *addr, rg_verp_purpose *purpose,
                      char *token, size_t toklen)
{
    if (bc->domain == NULL || addr == NULL)
        return 0;
    while (*addr == ' ' || *addr == '\t' || *addr == '<')
        addr++;
    const char *at = strrchr(addr, '@');
    if (at == NULL)
        return 0;
    size_t dlen = strcspn(at + 1, "> \t\r\n");
    if (!rg_verp_domain_matches(bc, at + 1, dlen))
        return 0;
    for (int p = RG_VERP_BOUNCES; p <= RG_VERP_UNSUBSCRIBE; p++) {
        size_t plen = strlen(purposes[p]);
        if ((size_t)(at - addr) > plen + 1 && strncasecmp(addr, purposes[p], plen) == 0 &&
            addr[plen] == '+') {
            size_t tlen = (size_t)(at - addr) - plen - 1;
            if (tlen >= toklen)
                return 0;
            memcpy(token, addr + plen + 1, tlen);
            token[tlen] = '\0';
            *purpose = (rg_verp_purpose)p;
            return 1;
        }
    }
    return 0;
}

void rg_verp_record_init(rg_verp_record *r, const char *id_text, const char *account,
                         const char *sender, const char *const *rcpts, size_t n, int64_t minted,
                         uint64_t ttl_ms)
{
    memset(r, 0, sizeof *r);
    snprintf(r->key, sizeof r->key, "%s%s", RG_KEY_VERP, id_text);
    snprintf(r->minted, sizeof r->minted, "%" PRId64, minted);
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += (rcpts[i] ? strlen(rcpts[i]) : 0) + 1;
    /* each copied once (not strcat, which rescans from the start) */
    char *p = r->rcpts = rg_malloc(len);
    for (size_t i = 0; i < n; i++) {
        size_t l = rcpts[i] ? strlen(rcpts[i]) : 0;
        if (l == 0)
            continue;
        if (p != r->rcpts)
            *p++ = '\n';
        memcpy(p, rcpts[i], l);
        p += l;
    }
    *p = '\0';
    const char *f[8] = { "a", account, "s", sender, "r", r->rcpts, "t", r->minted };
    memcpy(r->fields, f, sizeof f);
    r->rec.key = r->key;
    r->rec.fields = r->fields;
    r->rec.nfields = 4;
    r->rec.ttl_ms = ttl_ms;
}

void rg_verp_record_free(rg_verp_record *r)
{
    free(r->rcpts);
    r->rcpts = NULL;
}
