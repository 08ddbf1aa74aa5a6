/*
 * proto.h - the Postfix SMTP access policy delegation protocol
 * (SMTPD_POLICY_README), without any I/O.
 *
 * A request is "name=value" lines ended by an empty line; the reply is
 * "action=...\n\n".  The server feeds the bytes it has read to
 * rg_proto_scan() until a request is complete (or the input is refused),
 * then rg_proto_parse() turns it into an rg_request in place, and
 * rg_proto_reply() turns the engine's verdict into the reply.
 */
#ifndef RG_PROTO_H
#define RG_PROTO_H

#include <stddef.h>

#include "rg.h"

#define RG_PROTO_LINE_MAX    8192   /* bytes per line, without the newline */
#define RG_PROTO_REQUEST_MAX 65536  /* bytes per request, with the newlines */
#define RG_PROTO_ATTRS_MAX   256    /* attributes per request */
#define RG_PROTO_TEXT_MAX    500    /* reply text after "CODE DSN " */
#define RG_PROTO_REPLY_MAX   (RG_PROTO_TEXT_MAX + 64)

/* Where the scan of a connection's input stands; zero it for each request. */
typedef struct rg_proto_scan {
    size_t pos;          /* bytes already looked at */
    size_t line_start;   /* start of the current (incomplete) line */
    unsigned nattrs;     /* complete attribute lines so far */
} rg_proto_scan;

typedef enum rg_proto_status {
    RG_PROTO_MORE = 0,   /* no complete request yet: read more */
    RG_PROTO_DONE,       /* a request ends at *reqlen (the empty line included) */
    RG_PROTO_BAD         /* framing violation: drop the connection; err says why */
} rg_proto_status;

/*
 * Look at buf[0..len) (the same buffer, grown, on each call; st carries the
 * work done before).  Checks line and request length, attribute count, NUL
 * bytes, '=' and clean names as lines complete, so garbage is refused as
 * soon as it is seen.  Never reads past len.
 */
rg_proto_status rg_proto_scan_input(rg_proto_scan *st, const char *buf, size_t len,
                                    size_t *reqlen, char *err, size_t errlen);

/* What the server should do with a parsed request. */
typedef enum rg_proto_kind {
    RG_PROTO_ASK = 0,    /* ask the engine; req is filled in */
    RG_PROTO_DUNNO,      /* not a stage relayguard checks: reply DUNNO at once */
    RG_PROTO_BAD_REQUEST /* missing or unknown request=: reply DEFER_IF_PERMIT */
} rg_proto_kind;

typedef struct rg_proto_request {
    rg_proto_kind kind;
    rg_request req;              /* strings point into the parsed buffer */
    const char *request;         /* request= value, NULL if absent */
    const char *protocol_state;  /* NULL if absent */
} rg_proto_request;

/*
 * Parse a complete request of len bytes (as found by rg_proto_scan_input) in
 * place: newlines and '=' become NUL, so out's strings live as long as buf.
 * Unknown attributes are ignored (Postfix adds new ones over time).  Cannot
 * fail: anything the scan let through parses.
 */
void rg_proto_parse(char *buf, size_t len, rg_proto_request *out);

/*
 * The reply for a verdict: "action=DUNNO\n\n" for RG_DUNNO and RG_ACCEPT
 * (relayguard never whitelists, later restrictions still apply), else
 * "action=CODE D.S.N TEXT\n\n" with the text made one printable ASCII line
 * of at most RG_PROTO_TEXT_MAX bytes.  buf needs RG_PROTO_REPLY_MAX bytes.
 * Returns the reply length (0 only if buflen is too small).
 */
size_t rg_proto_reply(const rg_verdict *v, char *buf, size_t buflen);

/* The fixed replies. */
#define RG_PROTO_REPLY_DUNNO "action=DUNNO\n\n"
#define RG_PROTO_REPLY_BAD   "action=DEFER_IF_PERMIT relayguard: bad request\n\n"

#endif
