/*
 * dkim-sign - what signing one message costs relayguard-milter, without
 * the milter around it: policy/dkim.c on a message like the ones of
 * bench/run-milter.sh (smtp-source's headers, a 4 KiB body), and the
 * pieces under it (the Ed25519 signature alone by OpenSSL and by
 * libsodium, SHA-256 of the body).
 * CPU time of this thread (CLOCK_THREAD_CPUTIME_ID), in µs per call.
 * Built with the tree, never installed; run by hand (BENCHMARKS.md):
 *
 *   dkim-sign CONFIG DOMAIN [N]     e.g. a relayguard.conf whose dkim block
 *                                   has an Ed25519 key for DOMAIN
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#ifdef HAVE_LIBSODIUM
#include <sodium.h>
#endif

#include "config.h"
#include "dkim.h"
#include "util.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* The headers Postfix hands the milter for an smtp-source message, plus
 * the one relayguard adds (Feedback-ID). */
static const rg_dkim_header hdrs[] = {
    { "Feedback-ID", "bench:relayguard" },
    { "Received", "from localhost (localhost [127.0.0.1])\n\tby bench.test (Postfix) with ESMTP id 4AbCdEfGh1z2\n\tfor <to@example.net>; Tue, 24 Nov 2026 22:30:00 +0000 (UTC)" },
    { "From", "<a@ed.bench.test>" },
    { "To", "<to@example.net>" },
    { "Date", "Tue, 24 Nov 2026 22:30:00 +0000 (UTC)" },
    { "Message-Id", "<20261124223000.4AbCdEfGh1z2@bench.test>" },
};

int main(int argc, char **argv)
{
    char err[1024];
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: dkim-sign CONFIG DOMAIN [N]\n");
        return 2;
    }
    long n = argc == 4 ? atol(argv[3]) : 20000;
    if (n < 1)
        n = 1;
    rg_config *cfg = rg_config_load(argv[1], err, sizeof err);
    if (cfg == NULL) {
        fprintf(stderr, "dkim-sign: %s\n", err);
        return 1;
    }
    rg_dkim_keys *keys = rg_dkim_keys_load(cfg, err, sizeof err);
    if (keys == NULL) {
        fprintf(stderr, "dkim-sign: %s\n", err);
        return 1;
    }
    /* the body smtp-source -l 4096 sends: lines of "La de da de da N." */
    char body[4096 + 128];
    size_t blen = 0;
    for (int i = 1; blen < 4096; i++)
        blen += (size_t)snprintf(body + blen, sizeof body - blen, "La de da de da %d.\r\n", i);

    /* 1. the whole of it, as the milter does it per message */
    char *sig[8];
    int ns = 0;
    double t0 = now_us();
    for (long i = 0; i < n; i++) {
        rg_dkim_signer *s = rg_dkim_signer_new(keys, cfg, argv[2], time(NULL));
        if (s == NULL) {
            fprintf(stderr, "dkim-sign: no key for %s\n", argv[2]);
            return 1;
        }
        rg_dkim_sign_also(s, "Feedback-ID");
        rg_dkim_body(s, (const unsigned char *)body, blen);
        ns = rg_dkim_sign(s, hdrs, sizeof hdrs / sizeof hdrs[0], sig, 8, err, sizeof err);
        if (ns < 0) {
            fprintf(stderr, "dkim-sign: %s\n", err);
            return 1;
        }
        for (int j = 0; j < ns; j++)
            free(sig[j]);
        rg_dkim_signer_free(s);
    }
    double whole = (now_us() - t0) / (double)n;

    /* 2. the body alone: relaxed canonicalisation and its SHA-256 (no signature) */
    t0 = now_us();
    for (long i = 0; i < n; i++) {
        rg_dkim_signer *s = rg_dkim_signer_new(keys, cfg, argv[2], time(NULL));
        rg_dkim_body(s, (const unsigned char *)body, blen);
        rg_dkim_signer_free(s);
    }
    double bodyc = (now_us() - t0) / (double)n;

    /* 3. OpenSSL alone: SHA-256 of 4 KiB with a fetched digest, and one
     * Ed25519 signature of 32 bytes with a context set up once (the least
     * OpenSSL's EVP interface costs) and with one set up per signature */
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
    unsigned char h[32];
    unsigned int hl;
    t0 = now_us();
    for (long i = 0; i < n; i++)
        EVP_Digest(body, blen, h, &hl, md, NULL);
    double sha = (now_us() - t0) / (double)n;
    double ed_reuse = 0, ed_fresh = 0, ed_sodium = 0;
    EVP_PKEY *pk = NULL;
    for (size_t i = 0; i < rg_dkim_keys_count(keys); i++) {
        const char *dom, *sel, *alg;
        int bits;
        rg_dkim_key_info(keys, i, &dom, &sel, &alg, &bits);
        if (strcmp(dom, argv[2]) == 0 && strcmp(alg, "ed25519-sha256") == 0)
            pk = rg_dkim_key_read(cfg->dkim.keys[i].path, err, sizeof err);
    }
    if (pk) {
        unsigned char s64[64];
        size_t sl;
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        EVP_DigestSignInit_ex(c, NULL, NULL, NULL, NULL, pk, NULL);
        t0 = now_us();
        for (long i = 0; i < n; i++) {
            sl = sizeof s64;
            if (EVP_DigestSign(c, s64, &sl, h, sizeof h) != 1) {
                fprintf(stderr, "dkim-sign: a context signs only once here\n");
                break;
            }
        }
        ed_reuse = (now_us() - t0) / (double)n;
        EVP_MD_CTX_free(c);
        t0 = now_us();
        for (long i = 0; i < n; i++) {
            c = EVP_MD_CTX_new();
            sl = sizeof s64;
            if (EVP_DigestSignInit_ex(c, NULL, NULL, NULL, NULL, pk, NULL) != 1 ||
                EVP_DigestSign(c, s64, &sl, h, sizeof h) != 1)
                break;
            EVP_MD_CTX_free(c);
        }
        ed_fresh = (now_us() - t0) / (double)n;
#ifdef HAVE_LIBSODIUM
        unsigned char seed[32], spk[32], ssk[64];
        size_t seedlen = sizeof seed;
        if (sodium_init() >= 0 && EVP_PKEY_get_raw_private_key(pk, seed, &seedlen) == 1) {
            crypto_sign_seed_keypair(spk, ssk, seed);
            t0 = now_us();
            for (long i = 0; i < n; i++)
                crypto_sign_detached(s64, NULL, h, sizeof h, ssk);
            ed_sodium = (now_us() - t0) / (double)n;
        }
#endif
        EVP_PKEY_free(pk);
    }
    EVP_MD_free(md);

    printf("dkim-sign: %s, %ld rounds, %d signature%s per message, %zu body bytes; "
           "CPU us per call\n", argv[2], n, ns, ns == 1 ? "" : "s", blen);
    printf("%-58s %8.2f\n", "whole message (signer, body, headers, signatures)", whole);
    printf("%-58s %8.2f\n", "body only (relaxed canonicalisation + SHA-256)", bodyc);
    printf("%-58s %8.2f\n", "OpenSSL SHA-256 of the body alone", sha);
    if (ed_reuse > 0) {
        printf("%-58s %8.2f\n", "OpenSSL Ed25519 signature, context set up once", ed_reuse);
        printf("%-58s %8.2f\n", "OpenSSL Ed25519 signature, context set up each time", ed_fresh);
    }
    if (ed_sodium > 0)
        printf("%-58s %8.2f\n", "libsodium Ed25519 signature (what dkim.c uses)", ed_sodium);
    rg_dkim_keys_unref(keys);
    rg_config_free(cfg);
    return 0;
}
