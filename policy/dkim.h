/*
 * dkim.h - DKIM signing (RFC 6376, RFC 8463) with keys parsed once.
 *
 * The keys of relayguard.conf's dkim block ("key = DOMAIN SELECTOR PATH")
 * are read into an rg_dkim_keys set at start and on SIGHUP, never per
 * message.  A message is signed with every key of its From domain
 * (rsa-sha256 and ed25519-sha256 together give dual signing), relaxed/relaxed,
 * the configured headers when present, the oversigned ones once more.
 *
 *   s = rg_dkim_signer_new(keys, cfg, "example.com", time(NULL));
 *   rg_dkim_body(s, chunk, len); ...           as the body arrives
 *   n = rg_dkim_sign(s, hdrs, nhdrs, out, max, err, sizeof err);
 *   -> out[i] is the value of one DKIM-Signature header to prepend
 *   rg_dkim_signer_free(s);
 *
 * Thread-safe: a key set is immutable and refcounted; signers are per message.
 */
#ifndef RG_DKIM_H
#define RG_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "config.h"

typedef struct rg_dkim_keys rg_dkim_keys;

/*
 * Read every key of cfg->dkim.  A key file that is not a regular file, is
 * readable or writable by group or others, is not RSA (2048 bits or more) or
 * Ed25519, fails the whole load: NULL with "FILE:LINE: dkim key PATH: reason"
 * in err.  No keys configured gives an empty set.  The set holds one
 * reference; free with rg_dkim_keys_unref.
 */
rg_dkim_keys *rg_dkim_keys_load(const rg_config *cfg, char *err, size_t errlen);
rg_dkim_keys *rg_dkim_keys_ref(rg_dkim_keys *k);
void rg_dkim_keys_unref(rg_dkim_keys *k);       /* NULL is fine */
size_t rg_dkim_keys_count(const rg_dkim_keys *k);
/* Does domain (lower case) have a key? */
bool rg_dkim_keys_have(const rg_dkim_keys *k, const char *domain);

/* Describe key i: domain, selector, "rsa-sha256"/"ed25519-sha256", bits. */
void rg_dkim_key_info(const rg_dkim_keys *k, size_t i, const char **domain,
                      const char **selector, const char **alg, int *bits);

/* The DNS TXT record value of key i ("v=DKIM1; k=rsa; p=..."), into buf.
 * 0, or -1 when buf is too small. */
int rg_dkim_key_txt(const rg_dkim_keys *k, size_t i, char *buf, size_t len);

/*
 * Check a private key file's type and permissions and parse it.  Returns an
 * EVP_PKEY (as void *, so this header needs no OpenSSL) the caller frees
 * with EVP_PKEY_free, or NULL with the reason in err.
 */
void *rg_dkim_key_read(const char *path, char *err, size_t errlen);

/*
 * Generate a key (RSA-2048, or Ed25519), write it to path with mode 0600
 * (O_EXCL: never overwrites) and put its TXT record value into txt.
 * 0, or -1 with err.
 */
int rg_dkim_keygen(const char *path, bool ed25519, char *txt, size_t txtlen,
                   char *err, size_t errlen);

/* One header as the MTA has it: name and raw value (folding kept). */
typedef struct rg_dkim_header {
    const char *name;
    const char *value;
} rg_dkim_header;

typedef struct rg_dkim_signer rg_dkim_signer;

/* A signer for one message of domain; NULL when the domain has no key. */
rg_dkim_signer *rg_dkim_signer_new(rg_dkim_keys *keys, const rg_config *cfg,
                                   const char *domain, time_t now);
/* Sign header name too, whatever sign_headers says (the headers relayguard adds). */
void rg_dkim_sign_also(rg_dkim_signer *s, const char *name);
/* Feed body bytes exactly as the MTA sends them (CRLF or bare LF lines). */
void rg_dkim_body(rg_dkim_signer *s, const unsigned char *buf, size_t len);
/*
 * Sign: hdrs are the message's final headers in order (top first), the ones
 * relayguard adds included.  Writes one DKIM-Signature value per key into
 * out[] (new strings, the caller frees) and returns the count, or -1 with
 * err (nothing written).
 */
int rg_dkim_sign(rg_dkim_signer *s, const rg_dkim_header *hdrs, size_t nhdrs, char **out,
                 size_t max, char *err, size_t errlen);
void rg_dkim_signer_free(rg_dkim_signer *s);

/* Canonicalisation, exposed for the unit tests (RFC 6376 3.4.2, 3.4.4). */
/* relaxed header "name:value\r\n" into a new string. */
char *rg_dkim_relaxed_header(const char *name, const char *value);

struct rg_account;

/*
 * Which keys sign a message of account a whose From domain is domain (any
 * case): the rule of feature 7 in one place for the adapters that let
 * their MTA sign (Exim's dkim_* transport options).  Writes the indexes of
 * domain's keys (in cfg->dkim.keys order, which the key set keeps, so
 * cfg->dkim.keys[idx[j]].path is the file) into idx[], at most max, and
 * returns how many; 0 when a is NULL, a may not send for domain, or the
 * domain has no key.
 */
size_t rg_dkim_keys_for(const rg_dkim_keys *k, const struct rg_account *a, const char *domain,
                        size_t *idx, size_t max);

#endif
