/*
 * null-proto - bench/null-milter.c's do-nothing filter on relayguard's own
 * milter protocol code (milter/proto.c, milter/server.c) instead of
 * libmilter: the floor of relayguard-milter's CPU per message, beside
 * libmilter's.  Built with the tree, never installed.
 *
 *   null-proto SOCKET [WORKERS]     e.g. unix:/tmp/null.sock 8
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>

#include "log.h"
#include "proto.h"
#include "server.h"

#define NR_FLAGS (SMFIP_NR_CONN | SMFIP_NR_MAIL | SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_NR_BODY)

static rgm_status go_on(rgm_ctx *ctx, unsigned long flag)
{
    return ((uintptr_t)rgm_getpriv(ctx) & flag) ? RGM_NOREPLY : RGM_CONTINUE;
}

static rgm_status cb_negotiate(rgm_ctx *ctx, unsigned long f0, unsigned long f1,
                               unsigned long f2, unsigned long f3, unsigned long *pf0,
                               unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
    (void)f2;
    (void)f3;
    *pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS);
    *pf1 = f1 & (SMFIP_NOUNKNOWN | SMFIP_NOHELO | SMFIP_NODATA | NR_FLAGS);
    *pf2 = 0;
    *pf3 = 0;
    rgm_setpriv(ctx, (void *)(uintptr_t)(*pf1 & NR_FLAGS));
    return RGM_CONTINUE;
}

static rgm_status cb_connect(rgm_ctx *ctx, char *host, struct sockaddr *sa)
{
    (void)host;
    (void)sa;
    return go_on(ctx, SMFIP_NR_CONN);
}

static rgm_status cb_envfrom(rgm_ctx *ctx, char **argv)
{
    (void)argv;
    return go_on(ctx, SMFIP_NR_MAIL);
}

static rgm_status cb_envrcpt(rgm_ctx *ctx, char **argv)
{
    (void)ctx;
    (void)argv;
    return RGM_CONTINUE;
}

static rgm_status cb_header(rgm_ctx *ctx, char *name, char *value)
{
    (void)name;
    (void)value;
    return go_on(ctx, SMFIP_NR_HDR);
}

static rgm_status cb_eoh(rgm_ctx *ctx)
{
    return go_on(ctx, SMFIP_NR_EOH);
}

static rgm_status cb_body(rgm_ctx *ctx, unsigned char *buf, size_t len)
{
    (void)buf;
    (void)len;
    return go_on(ctx, SMFIP_NR_BODY);
}

static rgm_status cb_eom(rgm_ctx *ctx)
{
    (void)ctx;
    return RGM_CONTINUE;
}

static const rgm_desc desc = {
    .name = "null",
    .flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS,
    .connect = cb_connect,
    .envfrom = cb_envfrom,
    .envrcpt = cb_envrcpt,
    .header = cb_header,
    .eoh = cb_eoh,
    .body = cb_body,
    .eom = cb_eom,
    .negotiate = cb_negotiate,
};

int main(int argc, char **argv)
{
    char err[256];
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: null-proto SOCKET [WORKERS]\n");
        return 2;
    }
    rg_log_open("null-proto", RG_LOG_STDERR, LOG_WARNING);
    int fd = rgm_listen(argv[1], err, sizeof err);
    if (fd < 0) {
        fprintf(stderr, "null-proto: %s\n", err);
        return 1;
    }
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    if (rgm_server_start(&desc, fd, argc == 3 ? atoi(argv[2]) : 8, 300000, err, sizeof err) < 0) {
        fprintf(stderr, "null-proto: %s\n", err);
        return 1;
    }
    int sig;
    sigwait(&sigs, &sig);
    rgm_server_stop();
    return 0;
}
