/*
 * null-milter - a libmilter filter that does nothing, negotiating what
 * relayguard-milter negotiates (no HELO, DATA or unknown events; no reply to
 * connect, MAIL, headers, end of headers and body chunks).  Its CPU per
 * message is libmilter's own floor: bench/run-milter.sh runs it beside
 * relayguard-milter.  Built with the tree, never installed.
 *
 *   null-milter SOCKET          e.g. unix:/tmp/null.sock
 */
#include <libmilter/mfapi.h>
#include <stdint.h>
#include <stdio.h>

#define NR_FLAGS (SMFIP_NR_CONN | SMFIP_NR_MAIL | SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_NR_BODY)

/* the granted flags are the connection's private data (never dereferenced) */
static sfsistat go_on(SMFICTX *ctx, unsigned long flag)
{
    return ((uintptr_t)smfi_getpriv(ctx) & flag) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat cb_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
                             unsigned long f2, unsigned long f3, unsigned long *pf0,
                             unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
    (void)f2;
    (void)f3;
    *pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS);
    *pf1 = f1 & (SMFIP_NOUNKNOWN | SMFIP_NOHELO | SMFIP_NODATA | NR_FLAGS);
    *pf2 = 0;
    *pf3 = 0;
    smfi_setpriv(ctx, (void *)(uintptr_t)(*pf1 & NR_FLAGS));
    return SMFIS_CONTINUE;
}

static sfsistat cb_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *sa)
{
    (void)host;
    (void)sa;
    return go_on(ctx, SMFIP_NR_CONN);
}

static sfsistat cb_envfrom(SMFICTX *ctx, char **argv)
{
    (void)argv;
    return go_on(ctx, SMFIP_NR_MAIL);
}

static sfsistat cb_envrcpt(SMFICTX *ctx, char **argv)
{
    (void)ctx;
    (void)argv;
    return SMFIS_CONTINUE;
}

static sfsistat cb_header(SMFICTX *ctx, char *name, char *value)
{
    (void)name;
    (void)value;
    return go_on(ctx, SMFIP_NR_HDR);
}

static sfsistat cb_eoh(SMFICTX *ctx)
{
    return go_on(ctx, SMFIP_NR_EOH);
}

static sfsistat cb_body(SMFICTX *ctx, unsigned char *buf, size_t len)
{
    (void)buf;
    (void)len;
    return go_on(ctx, SMFIP_NR_BODY);
}

static sfsistat cb_eom(SMFICTX *ctx)
{
    (void)ctx;
    return SMFIS_CONTINUE;
}

static sfsistat cb_close(SMFICTX *ctx)
{
    smfi_setpriv(ctx, NULL);
    return SMFIS_CONTINUE;
}

static struct smfiDesc desc = {
    .xxfi_name = "null",
    .xxfi_version = SMFI_VERSION,
    .xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS,
    .xxfi_connect = cb_connect,
    .xxfi_envfrom = cb_envfrom,
    .xxfi_envrcpt = cb_envrcpt,
    .xxfi_header = cb_header,
    .xxfi_eoh = cb_eoh,
    .xxfi_body = cb_body,
    .xxfi_eom = cb_eom,
    .xxfi_close = cb_close,
    .xxfi_negotiate = cb_negotiate,
};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: null-milter SOCKET\n");
        return 2;
    }
    if (smfi_setconn(argv[1]) != MI_SUCCESS || smfi_register(desc) != MI_SUCCESS ||
        smfi_opensocket(1) != MI_SUCCESS) {
        fprintf(stderr, "null-milter: cannot listen on %s\n", argv[1]);
        return 1;
    }
    return smfi_main() == MI_SUCCESS ? 0 : 1;
}
