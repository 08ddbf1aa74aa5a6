/*
 * dkim_sign - sign a message with policy/dkim.c, for the verifier tests.
 *
 *   dkim_sign CONFIG DOMAIN < message > signed-message
 *
 * Reads relayguard.conf CONFIG (its dkim block), parses the message's
 * header block the way an MTA hands it to a milter (name, value with its
 * folding), feeds the body as it is, and writes the DKIM-Signature headers
 * followed by the unchanged message.  Exit 0, 1 on error, 2 when DOMAIN
 * has no key.  RG_DKIM_CHUNK=N feeds the body in N-byte pieces.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "dkim.h"
#include "util.h"

int main(int argc, char **argv)
{
    char err[1024];
    if (argc != 3) {
        fprintf(stderr, "usage: dkim_sign CONFIG DOMAIN < message\n");
        return 1;
    }
    rg_config *cfg = rg_config_load(argv[1], err, sizeof err);
    if (cfg == NULL) {
        fprintf(stderr, "dkim_sign: %s\n", err);
        return 1;
    }
    rg_dkim_keys *keys = rg_dkim_keys_load(cfg, err, sizeof err);
    if (keys == NULL) {
        fprintf(stderr, "dkim_sign: %s\n", err);
        rg_config_free(cfg);
        return 1;
    }
    size_t len = 0, cap = 1 << 16;
    char *msg = rg_malloc(cap);
    size_t n;
    while ((n = fread(msg + len, 1, cap - len - 1, stdin)) > 0) {
        len += n;
        if (len + 1 == cap)
            msg = rg_realloc(msg, cap *= 2);
    }
    msg[len] = '\0';

    /* header block: up to the first empty line */
    rg_dkim_header *h = NULL;
    size_t nh = 0;
    size_t p = 0;
    const char *eol = "\n";
    for (size_t i = 0; i < len; i++)
        if (msg[i] == '\n') {
            eol = (i > 0 && msg[i - 1] == '\r') ? "\r\n" : "\n";
            break;
        }
    while (p < len) {
        size_t ls = p, le = p;
        while (le < len && msg[le] != '\n')
            le++;
        size_t content_end = (le > ls && msg[le - 1] == '\r') ? le - 1 : le;
        if (content_end == ls) {            /* the empty line */
            p = le < len ? le + 1 : le;
            break;
        }
        /* continuation lines belong to this field */
        size_t fe = le;
        while (fe + 1 < len && (msg[fe + 1] == ' ' || msg[fe + 1] == '\t')) {
            fe++;
            while (fe < len && msg[fe] != '\n')
                fe++;
        }
        size_t vend = fe;
        if (vend > ls && msg[vend - 1] == '\r')
            vend--;
        char *field = rg_strndup(msg + ls, vend - ls);
        char *colon = strchr(field, ':');
        if (colon == NULL) {
            fprintf(stderr, "dkim_sign: header line without ':'\n");
            return 1;
        }
        *colon = '\0';
        char *value = colon + 1;
        if (*value == ' ')
            value++;               /* what Postfix gives a milter */
        h = rg_realloc(h, (nh + 1) * sizeof *h);
        h[nh].name = field;
        h[nh].value = value;
        nh++;
        p = fe < len ? fe + 1 : fe;
    }
    rg_dkim_signer *s = rg_dkim_signer_new(keys, cfg, argv[2], time(NULL));
    if (s == NULL) {
        fprintf(stderr, "dkim_sign: no key for %s\n", argv[2]);
        for (size_t i = 0; i < nh; i++)
            free((char *)h[i].name);
        free(h);
        free(msg);
        rg_dkim_keys_unref(keys);
        rg_config_free(cfg);
        return 2;
    }
    /* RG_DKIM_CHUNK=N: the body in N-byte pieces, as an MTA sends it in
     * chunks that may split a CRLF or a run of blanks */
    const char *chunk_env = getenv("RG_DKIM_CHUNK");
    size_t chunk = chunk_env ? strtoul(chunk_env, NULL, 10) : 0;
    for (size_t off = p; off < len;) {
        size_t piece = chunk && chunk < len - off ? chunk : len - off;
        rg_dkim_body(s, (const unsigned char *)msg + off, piece);
        off += piece;
    }
    char *sig[8];
    int ns = rg_dkim_sign(s, h, nh, sig, 8, err, sizeof err);
    if (ns < 0) {
        fprintf(stderr, "dkim_sign: %s\n", err);
        return 1;
    }
    for (int i = 0; i < ns; i++) {
        /* the signer folds with "\n\t"; an MTA writes its own line ends */
        printf("DKIM-Signature: ");
        for (const char *c = sig[i]; *c; c++) {
            if (*c == '\n')
                fputs(eol, stdout);
            else
                putchar(*c);
        }
        fputs(eol, stdout);
        free(sig[i]);
    }
    fwrite(msg, 1, len, stdout);
    for (size_t i = 0; i < nh; i++)
        free((char *)h[i].name);
    free(h);
    free(msg);
    rg_dkim_signer_free(s);
    rg_dkim_keys_unref(keys);
    rg_config_free(cfg);
    return 0;
}
