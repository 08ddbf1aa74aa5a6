/*
 * rgexim.h - relayguard-exim.so's calls, free of Exim's headers.
 *
 * dlfunc.c holds the ${dlfunc} entry points (it includes Exim's
 * local_scan.h, whose names clash with relayguard's); module.c does the
 * work with nothing but relayguard's headers.  See relayguard-exim(8).
 */
#ifndef RG_EXIM_H
#define RG_EXIM_H

#include <stddef.h>

typedef enum rgx_fn {
    RGX_MAIL = 0,       /* acl_smtp_mail */
    RGX_RCPT,           /* acl_smtp_rcpt */
    RGX_DATA,           /* acl_smtp_data */
    RGX_NOT_SMTP,       /* acl_not_smtp */
    RGX_DKIM_DOMAIN,    /* smtp transport dkim_domain */
    RGX_DKIM_SELECTOR,  /* dkim_selector */
    RGX_DKIM_KEY,       /* dkim_private_key */
    RGX_PRELOAD,        /* smtp_accept_max_per_host, in the daemon */
    RGX_N
} rgx_fn;

/* What Exim knows of the message beyond the arguments (dlfunc.c reads it
 * from the local_scan API: recipients_list, header_list). */
typedef struct rgx_msg {
    const char *const *rcpts;   /* the recipients */
    size_t nrcpts;
    const char *script;         /* X-PHP-Originating-Script, NULL if absent */
} rgx_msg;

/*
 * Run fn with its ${dlfunc} arguments (argc strings; Exim passes at most 7
 * reliably, see relayguard-exim(8)).  m: the recipients for RGX_NOT_SMTP,
 * which checks each, and RGX_DATA, which charges their count; the script
 * for both.  Returns 0 with the yield in *out, or -1 with an error message
 * in *out (Exim logs it and fails the expansion, so the ACL defers).  *out
 * is static: valid until the next call.  Never aborts.
 */
int rgx_call(rgx_fn fn, int argc, char **argv, const rgx_msg *m, const char **out);

#endif
