/*
 * proto.h - the milter protocol (version 6, as Postfix and Sendmail speak
 * it), filter side: one connection's codec and the calls a filter makes
 * from its callbacks.  The names follow libmilter's (smfi_getpriv becomes
 * rgm_getpriv, SMFIS_CONTINUE becomes RGM_CONTINUE) so a libmilter filter
 * translates mechanically; why relayguard does not use libmilter is said
 * at the top of proto.c.
 *
 * A connection (rgm_ctx) is fed the bytes its socket delivered
 * (rgm_ctx_inbuf/rgm_ctx_input); every complete packet runs its callback
 * at once, and the replies gather in an output buffer the caller writes
 * out (rgm_ctx_output/rgm_ctx_sent).  proto.c does no I/O of its own
 * except rgm_progress; server.c owns the sockets.
 */
#ifndef RG_MILTER_PROTO_H
#define RG_MILTER_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The wire constants (SMFIC_*, SMFIR_*, SMFIP_*) come from Sendmail's
 * libmilter-dev header; only the header is used, not the library. */
#include <libmilter/mfdef.h>

/* Action flags and macro stages: public protocol values that libmilter
 * keeps in mfapi.h (next to its API, which relayguard does not use). */
#ifndef SMFIF_ADDHDRS
#define SMFIF_NONE        0x00000000L
#define SMFIF_ADDHDRS     0x00000001L   /* add headers */
#define SMFIF_CHGBODY     0x00000002L   /* replace the body */
#define SMFIF_ADDRCPT     0x00000004L   /* add recipients */
#define SMFIF_DELRCPT     0x00000008L   /* delete recipients */
#define SMFIF_CHGHDRS     0x00000010L   /* change or delete headers */
#define SMFIF_QUARANTINE  0x00000020L   /* quarantine */
#define SMFIF_CHGFROM     0x00000040L   /* change the envelope sender */
#define SMFIF_ADDRCPT_PAR 0x00000080L   /* add recipients with ESMTP arguments */
#define SMFIF_SETSYMLIST  0x00000100L   /* ask for a list of macros */
#define SMFIM_CONNECT 0
#define SMFIM_HELO    1
#define SMFIM_ENVFROM 2
#define SMFIM_ENVRCPT 3
#define SMFIM_DATA    4
#define SMFIM_EOM     5
#define SMFIM_EOH     6
#endif

#define RGM_STAGES 7                    /* SMFIM_CONNECT .. SMFIM_EOH */

/* What a callback returns (libmilter's SMFIS_*). */
typedef enum rgm_status {
    RGM_CONTINUE = 0,
    RGM_REJECT,
    RGM_DISCARD,
    RGM_ACCEPT,
    RGM_TEMPFAIL,
    RGM_NOREPLY,        /* the step has no reply (SMFIP_NR_* granted) */
    RGM_SKIP,           /* body: no more body chunks (SMFIP_SKIP granted) */
} rgm_status;

#define RGM_SUCCESS 0
#define RGM_FAILURE (-1)

typedef struct rgm_ctx rgm_ctx;

/* The filter: callbacks may be NULL (that step then just continues). */
typedef struct rgm_desc {
    const char *name;
    unsigned long flags;        /* SMFIF_* the filter may use */
    rgm_status (*connect)(rgm_ctx *, char *hostname, struct sockaddr *);
    rgm_status (*helo)(rgm_ctx *, char *helo);
    rgm_status (*envfrom)(rgm_ctx *, char **argv);
    rgm_status (*envrcpt)(rgm_ctx *, char **argv);
    rgm_status (*header)(rgm_ctx *, char *name, char *value);
    rgm_status (*eoh)(rgm_ctx *);
    rgm_status (*body)(rgm_ctx *, unsigned char *buf, size_t len);
    rgm_status (*eom)(rgm_ctx *);
    rgm_status (*abort)(rgm_ctx *);
    rgm_status (*close)(rgm_ctx *);
    rgm_status (*unknown)(rgm_ctx *, const char *cmd);
    rgm_status (*data)(rgm_ctx *);
    /* f0: the MTA's actions (SMFIF_*), f1: its protocol flags (SMFIP_*);
     * set pf0 and pf1 to the ones wanted (a subset), pf2 and pf3 to 0.
     * NULL: the actions of flags, and the steps whose callback is NULL
     * are not sent (SMFIP_NO*). */
    rgm_status (*negotiate)(rgm_ctx *, unsigned long f0, unsigned long f1, unsigned long f2,
                            unsigned long f3, unsigned long *pf0, unsigned long *pf1,
                            unsigned long *pf2, unsigned long *pf3);
} rgm_desc;

/* ------------------------------------------------- calls from callbacks */

/* The connection's private data (NULL until set). */
void *rgm_getpriv(rgm_ctx *ctx);
void rgm_setpriv(rgm_ctx *ctx, void *priv);

/* A macro's value ("{i}" or "i" alike), or NULL.  Valid until the MTA
 * sends that stage's macros again. */
const char *rgm_getsymval(rgm_ctx *ctx, const char *name);

/* During negotiation: ask for these macros (space separated) at stage
 * (SMFIM_*).  RGM_FAILURE if the MTA did not offer SMFIF_SETSYMLIST. */
int rgm_setsymlist(rgm_ctx *ctx, int stage, const char *macros);

/* The SMTP reply sent with the next RGM_REJECT/RGM_TEMPFAIL: rcode 4xx or
 * 5xx, xcode "x.y.z" or NULL, text without CR/LF ('%' as "%%").  The
 * class of rcode must match the status returned, else the MTA's default
 * reply goes out. */
int rgm_setreply(rgm_ctx *ctx, const char *rcode, const char *xcode, const char *text);

/* Message changes: only from the eom callback, and only with the action
 * flag negotiated (RGM_FAILURE otherwise). */
int rgm_addheader(rgm_ctx *ctx, const char *name, const char *value);
int rgm_insheader(rgm_ctx *ctx, int idx, const char *name, const char *value);
/* value NULL deletes the idx-th (from 1) header of that name */
int rgm_chgheader(rgm_ctx *ctx, const char *name, int idx, const char *value);
/* args: ESMTP arguments of MAIL FROM, or NULL */
int rgm_chgfrom(rgm_ctx *ctx, const char *from, const char *args);
int rgm_addrcpt(rgm_ctx *ctx, const char *rcpt);
int rgm_addrcpt_par(rgm_ctx *ctx, const char *rcpt, const char *args);
int rgm_delrcpt(rgm_ctx *ctx, const char *rcpt);
/* Ask the MTA for more time (written at once). */
int rgm_progress(rgm_ctx *ctx);

/* ------------------------------------------------------ the codec */

/* Upper bound of one packet's length: Postfix and Sendmail send body
 * chunks of at most 65535 bytes; the rest is far smaller. */
#define RGM_MAX_PACKET (256 * 1024)

/* A connection on descriptor fd (-1 in tests: rgm_progress then only
 * queues).  peer is for log lines ("unix", "127.0.0.1:4711"). */
rgm_ctx *rgm_ctx_new(const rgm_desc *desc, int fd, const char *peer);

/* Runs the close callback if the connection reached it, then frees. */
void rgm_ctx_free(rgm_ctx *ctx);

/* Runs the close callback as rgm_ctx_free does, but keeps the connection's
 * memory (its buffers at their usual size) for rgm_ctx_reuse: a new
 * connection on fd, as rgm_ctx_new makes it, without allocating. */
void rgm_ctx_end(rgm_ctx *ctx);
void rgm_ctx_reuse(rgm_ctx *ctx, int fd, const char *peer);

/* Room for at least want bytes more input: *room is what fits. */
unsigned char *rgm_ctx_inbuf(rgm_ctx *ctx, size_t *room);

typedef enum rgm_io {
    RGM_IO_MORE = 0,    /* fine: write the output, read on */
    RGM_IO_QUIT,        /* the MTA said QUIT: write the output, close */
    RGM_IO_ERROR,       /* protocol error (logged): close */
} rgm_io;

/* n more bytes are in the input buffer: run every complete packet. */
rgm_io rgm_ctx_input(rgm_ctx *ctx, size_t n);

/* The peer closed: RGM_IO_ERROR (and a log line) if it did so in the
 * middle of a packet. */
rgm_io rgm_ctx_eof(rgm_ctx *ctx);

/* Replies waiting to be written; rgm_ctx_sent(n) after writing n of them. */
const unsigned char *rgm_ctx_output(rgm_ctx *ctx, size_t *len);
void rgm_ctx_sent(rgm_ctx *ctx, size_t n);

/* Give back buffer memory grown beyond the steady state (between messages). */
void rgm_ctx_trim(rgm_ctx *ctx);

/* The connection reached its close (QUIT, QUIT_NC or not at all yet). */
int rgm_ctx_connected(const rgm_ctx *ctx);

#endif
