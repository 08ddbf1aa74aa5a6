/*
 * verp.h - the managed return path: bounces+TOKEN@DOMAIN and
 * unsubscribe+TOKEN@DOMAIN (relayguard.conf "bounce" block).
 *
 * A TOKEN is   KEYID "-" BODY   where KEYID names the HMAC key (1 to 8 of
 * [a-z0-9]) and BODY is 39 characters of lower-case base32 (RFC 4648
 * alphabet, no padding) over 24 bytes:
 *
 *   bytes  0..3   version (top 4 bits, 1) and hours since 2020-01-01 UTC
 *                 (28 bits): when the token was minted
 *   bytes  4..13  ID, 80 random bits: names the token's record in Redis
 *                 (keys.h rg:v:ID), which holds the account, the original
 *                 sender and every recipient of the message
 *   bytes 14..23  MAC: HMAC-SHA256 truncated to 80 bits, keyed with KEYID's
 *                 secret, over "relayguard-verp-1", the purpose (bounces or
 *                 unsubscribe), KEYID and bytes 0..13
 *
 * "unsubscribe+" + 8 + 1 + 39 = 60 octets: always inside the 64 of a local
 * part (RFC 5321 4.5.3.1.1).  Why a record rather than the addresses in the
 * token: docs/architecture.md, "The bounce loop".
 *
 * Verification needs no Redis: a forged, tampered, expired or foreign token
 * is refused before anything is looked up.
 */
#ifndef RG_VERP_H
#define RG_VERP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "keys.h"
#include "store.h"

#define RG_VERP_ID_BYTES   10
#define RG_VERP_ID_TEXT    16      /* base32 characters of an ID */
#define RG_VERP_BODY_LEN   39
#define RG_VERP_TOKEN_MAX  (8 + 1 + RG_VERP_BODY_LEN)   /* 48 */
#define RG_VERP_EPOCH      1577836800                  /* 2020-01-01 00:00:00 UTC */

typedef enum rg_verp_purpose {
    RG_VERP_BOUNCES = 0,       /* bounces+TOKEN: the envelope sender (return path) */
    RG_VERP_UNSUBSCRIBE        /* unsubscribe+TOKEN: List-Unsubscribe mailto: */
} rg_verp_purpose;

typedef enum rg_verp_status {
    RG_VERP_OK = 0,
    RG_VERP_MALFORMED,         /* not a token of this format */
    RG_VERP_UNKNOWN_KEY,       /* KEYID is not in the bounce block */
    RG_VERP_BAD_MAC,           /* forged or tampered */
    RG_VERP_EXPIRED,           /* older than token_ttl */
    RG_VERP_FUTURE,            /* minted more than an hour from now */
    RG_VERP_KEY_RETIRED        /* minted after its key was retired */
} rg_verp_status;

/* A verified token. */
typedef struct rg_verp_token {
    char key_id[9];
    int64_t minted;                     /* Unix seconds, to the hour */
    unsigned char id[RG_VERP_ID_BYTES];
    char id_text[RG_VERP_ID_TEXT + 1];  /* base32 of id: the record's key suffix */
} rg_verp_token;

/* A short word for a status ("ok", "bad_mac", ...), for logs and events. */
const char *rg_verp_status_name(rg_verp_status s);

/* 80 random bits (OpenSSL RAND_bytes).  0, or -1 when the RNG fails. */
int rg_verp_new_id(unsigned char id[RG_VERP_ID_BYTES]);

/* base32 text of an ID into out[RG_VERP_ID_TEXT + 1].  Cannot fail. */
void rg_verp_id_text(const unsigned char id[RG_VERP_ID_BYTES], char *out);

/*
 * The token for id, minted at now (Unix seconds) with the signing key (the
 * first key that is not retired), into out (RG_VERP_TOKEN_MAX + 1 bytes at
 * least).  0, or -1 when bc has no signing key or out is too small.
 */
int rg_verp_mint(const rg_bounce_conf *bc, rg_verp_purpose purpose,
                 const unsigned char id[RG_VERP_ID_BYTES], int64_t now,
                 char *out, size_t outlen);

/*
 * Check a token (case-insensitive) at now.  RG_VERP_OK fills out (may be
 * NULL).  The MAC is compared in constant time.  A retired key verifies
 * only tokens minted before its retirement day; every token expires
 * token_ttl after it was minted.
 */
rg_verp_status rg_verp_verify(const rg_bounce_conf *bc, rg_verp_purpose purpose,
                              const char *token, int64_t now, rg_verp_token *out);

/*
 * The bounce domain may be fixed ("bounce.example.net") or a template with
 * "%d", the envelope sender's domain ("bounces.%d": mail from
 * a@example.com returns to bounces.example.com, which keeps SPF aligned
 * with the header From for DMARC; docs/architecture.md, "The bounce loop").
 */
bool rg_verp_domain_is_template(const rg_bounce_conf *bc);

/* The bounce domain for mail from sender (lower case) into out.  0, or -1
 * when there is no bounce block, the template needs a sender domain that
 * sender lacks, or out is too small. */
int rg_verp_domain_for(const rg_bounce_conf *bc, const char *sender, char *out, size_t outlen);

/* Is dom[0..dlen) (any case) a bounce domain: the fixed one, or one the
 * template can make (its "%d" standing for one label or more)? */
bool rg_verp_domain_matches(const rg_bounce_conf *bc, const char *dom, size_t dlen);

/* "bounces+TOKEN@DOMAIN" or "unsubscribe+TOKEN@DOMAIN" for mail from sender
 * (needed only by a template domain; may be NULL otherwise) into out.
 * 0, or -1 (see rg_verp_domain_for). */
int rg_verp_address_for(const rg_bounce_conf *bc, rg_verp_purpose purpose, const char *token,
                        const char *sender, char *out, size_t outlen);

/* rg_verp_address_for without a sender: -1 with a template domain. */
int rg_verp_address(const rg_bounce_conf *bc, rg_verp_purpose purpose, const char *token,
                    char *out, size_t outlen);

/*
 * Is addr (with or without <>) one of ours: bounces+TOKEN@DOMAIN or
 * unsubscribe+TOKEN@DOMAIN, DOMAIN a bounce domain (rg_verp_domain_matches)?  1 with the
 * purpose and the token text (not yet verified) filled, or 0.
 */
int rg_verp_split_address(const rg_bounce_conf *bc, const char *addr,
                          rg_verp_purpose *purpose, char *token, size_t toklen);

/*
 * A token's record rg:v:ID (keys.h) as the store writes it (store.h
 * rg_store_record; rg_store_record_append): "a" the account, "s" the
 * original sender, "r" the recipients one per line, "t" when the token was
 * minted (Unix s); it lives ttl_ms.  One builder for the engine's managed
 * return path and the CLI's "relayguard bounce token".
 */
typedef struct rg_verp_record {
    char key[sizeof RG_KEY_VERP + RG_VERP_ID_TEXT];
    char minted[24];
    char *rcpts;                /* one per line; rg_verp_record_free */
    const char *fields[8];
    rg_store_record rec;        /* what to hand the store */
} rg_verp_record;

/* Fill r for the ID id_text: the n recipients (as given; empty ones are
 * left out) joined one per line.  account and sender must outlive r. */
void rg_verp_record_init(rg_verp_record *r, const char *id_text, const char *account,
                         const char *sender, const char *const *rcpts, size_t n, int64_t minted,
                         uint64_t ttl_ms);
void rg_verp_record_free(rg_verp_record *r);

#endif
