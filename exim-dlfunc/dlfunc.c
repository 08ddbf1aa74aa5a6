/*
 * dlfunc.c - the ${dlfunc} entry points of relayguard-exim.so.
 *
 *   ${dlfunc{/usr/lib/.../relayguard-exim.so}{rg_rcpt}{CONFIG}{...}}
 *
 * Each is Exim's exim_dlfunc_t: it returns OK with the yield (a verdict
 * an ACL reads with ${extract}, or a DKIM value), or ERROR with a message
 * Exim writes to its log; the expansion then fails and the ACL defers.
 * The work is in module.c; this file only speaks Exim's ABI and reads
 * what the local_scan API offers of the message (recipients, headers).
 */
#define DLFUNC_IMPL
/* Exim's header is not written for -Wstrict-prototypes -Wshadow */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#pragma GCC diagnostic ignored "-Wshadow"
#include <local_scan.h>
#pragma GCC diagnostic pop

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rgexim.h"

#define SCRIPT_HEADER "X-PHP-Originating-Script"

/* The value of the message's X-PHP-Originating-Script header ("UID:file"
 * as PHP writes it), trimmed into buf; NULL when absent or too long.
 * Deleted headers (type '*') do not count. */
static const char *php_script(char *buf, size_t len)
{
    size_t nlen = sizeof SCRIPT_HEADER - 1;
    for (header_line *h = header_list; h != NULL; h = h->next) {
        if (h->type == '*' || h->text == NULL || h->slen <= (int)nlen ||
            strncasecmp(CS h->text, SCRIPT_HEADER, nlen) != 0 || h->text[nlen] != ':')
            continue;
        const char *v = CS h->text + nlen + 1;
        size_t n = (size_t)h->slen - nlen - 1;
        while (n > 0 && (*v == ' ' || *v == '\t'))
            v++, n--;
        while (n > 0 && (v[n - 1] == '\n' || v[n - 1] == '\r' || v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        if (n >= len)
            return NULL;
        memcpy(buf, v, n);
        buf[n] = '\0';
        return buf;
    }
    return NULL;
}

/* The yield is module.c's static buffer: Exim copies it into its own
 * store right after the call (expand.c: string_cat), so handing out our
 * memory is safe, and it is untainted. */
static int run(rgx_fn fn, uschar **yield, int argc, uschar *argv[])
{
    const char *out = "";
    const char **rcpts = NULL;
    char script[1025];
    rgx_msg m = { NULL, 0, NULL };
    if (fn == RGX_NOT_SMTP || fn == RGX_DATA) {
        if (recipients_count > 0 && recipients_list != NULL) {
            rcpts = calloc((size_t)recipients_count, sizeof *rcpts);
            if (rcpts == NULL) {
                *yield = US"relayguard: out of memory";
                return ERROR;
            }
            for (int i = 0; i < recipients_count; i++)
                if (recipients_list[i].address)
                    rcpts[m.nrcpts++] = CS recipients_list[i].address;
        }
        m.rcpts = rcpts;
        m.script = php_script(script, sizeof script);
    }
    int rc = rgx_call(fn, argc, (char **)argv, &m, &out);
    free(rcpts);
    *yield = (uschar *)out;
    return rc == 0 ? OK : ERROR;
}

int rg_mail(uschar **yield, int argc, uschar *argv[]);
int rg_rcpt(uschar **yield, int argc, uschar *argv[]);
int rg_data(uschar **yield, int argc, uschar *argv[]);
int rg_not_smtp(uschar **yield, int argc, uschar *argv[]);
int rg_dkim_domain(uschar **yield, int argc, uschar *argv[]);
int rg_dkim_selector(uschar **yield, int argc, uschar *argv[]);
int rg_dkim_key(uschar **yield, int argc, uschar *argv[]);
int rg_preload(uschar **yield, int argc, uschar *argv[]);

int rg_mail(uschar **yield, int argc, uschar *argv[])
{
    return run(RGX_MAIL, yield, argc, argv);
}

int rg_rcpt(uschar **yield, int argc, uschar *argv[])
{
    return run(RGX_RCPT, yield, argc, argv);
}

int rg_data(uschar **yield, int argc, uschar *argv[])
{
    return run(RGX_DATA, yield, argc, argv);
}

int rg_not_smtp(uschar **yield, int argc, uschar *argv[])
{
    return run(RGX_NOT_SMTP, yield, argc, argv);
}

int rg_dkim_domain(uschar **yield, int argc, uschar *argv[])
{
    return run(RGX_DKIM_DOMAIN, yield, argc, argv);
}

int rg_dkim_selector(uschar **yield, int argc, uschar *argv[])
{
    return run(RGX_DKIM_SELECTOR, yield, argc, argv);
}

int rg_dkim_key(uschar **yield, int argc, uschar *argv[])
{
    return run(RGX_DKIM_KEY, yield, argc, argv);
}

int rg_preload(uschar **yield, int argc, uschar *argv[])
{
    return run(RGX_PRELOAD, yield, argc, argv);
}
