/*
 * verdict.c - names of stages and actions, and a one-line verdict summary.
 */
#include <stdio.h>

#include "rg.h"

/* "connect", "mail", "rcpt", "header", "eom"; "?" for an unknown value. */
const char *
rg_stage_name(rg_stage s)
{
    switch (s) {
    case RG_STAGE_CONNECT: return "connect";
    case RG_STAGE_MAIL:    return "mail";
    case RG_STAGE_RCPT:    return "rcpt";
    case RG_STAGE_HEADER:  return "header";
    case RG_STAGE_EOM:     return "eom";
    }
    return "?";
}

/* "dunno", "accept", "tempfail", "reject"; "?" for an unknown value. */
const char *
rg_action_name(rg_action a)
{
    switch (a) {
    case RG_DUNNO:    return "dunno";
    case RG_ACCEPT:   return "accept";
    case RG_TEMPFAIL: return "tempfail";
    case RG_REJECT:   return "reject";
    }
    return "?";
}

/*
 * "reject: 550 5.7.1 text (reason=sender_domain account=alice)"; for accept and
 * dunno "accept (reason=ok account=alice)".  Truncated (still NUL-terminated)
 * when buf is too small.  Returns buf.
 */
char *
rg_verdict_format(const rg_verdict *v, char *buf, size_t len)
{
    int n;

    if (len == 0)
        return buf;
    if (v->action == RG_TEMPFAIL || v->action == RG_REJECT)
        n = snprintf(buf, len, "%s: %d %s %s (reason=%s account=%s)",
                     rg_action_name(v->action), v->code, v->dsn, v->text,
                     v->reason, v->account[0] ? v->account : "-");
    else
        n = snprintf(buf, len, "%s (reason=%s account=%s)", rg_action_name(v->action),
                     v->reason[0] ? v->reason : "ok", v->account[0] ? v->account : "-");
    if (n < 0)
        buf[0] = '\0';
    return buf;
}
