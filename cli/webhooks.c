/*
 * webhooks.c - `relayguard webhooks status | list-dead | retry ID|--all |
 * drop ID|--all`.
 *
 * Reads and moves the queue state relayguard-webhookd keeps in Redis
 * (webhookd/whq.h); nothing is sent from here: a retried dead letter goes
 * back to the end of its queue and a running webhookd sends it.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "util.h"
#include "webhooks.h"
#include "whq.h"

enum { EX_OK = 0, EX_NO = 1, EX_USAGE = 2, EX_STORE = 3 };

static void iso(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "-");
}

static void json_out(const char *s)
{
    rg_buf b = { 0 };
    rg_buf_json_str(&b, s);
    fputs(b.s, stdout);
    free(b.s);
}

/* Printable on one line: control bytes and invalid UTF-8 become '?'. */
static void text_out(const char *s, size_t max)
{
    char *clean = rg_malloc(strlen(s) + 1);
    rg_text_sanitize(s, clean, strlen(s) + 1);
    if (max && strlen(clean) > max)
        printf("%.*s...", (int)max, clean);
    else
        fputs(clean, stdout);
    free(clean);
}

typedef struct list_ctx {
    bool json, first;
} list_ctx;

static int print_dead(void *arg, const rg_wh_dead *d)
{
    list_ctx *c = arg;
    char since[32], died[32];
    iso(d->since_ms, since, sizeof since);
    iso(d->died_ms, died, sizeof died);
    if (c->json) {
        printf("%s\n  {\"id\": ", c->first ? "" : ",");
        json_out(d->id);
        printf(", \"url\": ");
        json_out(d->url);
        printf(", \"account\": ");
        json_out(d->account);
        printf(", \"attempts\": %ld, \"failing_since\": \"%s\", \"died\": \"%s\", \"error\": ",
               d->attempts, since, died);
        json_out(d->error);
        /* the event is JSON already (webhookd wrote it) */
        printf(", \"event\": %s}", d->event[0] ? d->event : "null");
    } else {
        printf("%s %s ", d->id, died);
        text_out(d->account[0] ? d->account : "-", 0);
        putchar(' ');
        text_out(d->url, 0);
        printf(" attempts=%ld error=", d->attempts);
        text_out(d->error, 0);
        printf("\n  ");
        text_out(d->event, 300);
        putchar('\n');
    }
    c->first = false;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: relayguard [-c FILE] [--json] webhooks status | list-dead | retry ID|--all | drop ID|--all\n");
}

int rg_cli_webhooks(const char *conf_path, bool json, int argc, char **argv)
{
    const char *verb = NULL, *id = NULL;
    bool all = false;
    char err[1024];

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--all") == 0)
            all = true;
        else if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            conf_path = argv[++i];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            conf_path = argv[i] + 9;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "relayguard: webhooks: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return EX_USAGE;
        } else if (verb == NULL)
            verb = argv[i];
        else if (id == NULL)
            id = argv[i];
        else {
            fprintf(stderr, "relayguard: webhooks: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return EX_USAGE;
        }
    }
    if (verb == NULL) {
        fprintf(stderr, "relayguard: webhooks: status, list-dead, retry or drop?\n");
        usage(stderr);
        return EX_USAGE;
    }
    bool is_drop = strcmp(verb, "drop") == 0;
    bool is_retry = strcmp(verb, "retry") == 0 || is_drop;     /* both take ID|--all */
    if (strcmp(verb, "status") != 0 && strcmp(verb, "list-dead") != 0 && !is_retry) {
        fprintf(stderr, "relayguard: webhooks: unknown command '%s' (status, list-dead, retry, drop)\n", verb);
        usage(stderr);
        return EX_USAGE;
    }
    if (is_retry ? (all == (id != NULL)) : (all || id != NULL)) {
        fprintf(stderr, "relayguard: webhooks %s: %s\n", verb,
                is_retry ? "give one dead-letter ID or --all" : "takes no argument");
        usage(stderr);
        return EX_USAGE;
    }
    if (id && (id[0] == '\0' || strspn(id, "0123456789") != strlen(id) || strlen(id) > 19)) {
        fprintf(stderr, "relayguard: webhooks %s: bad ID '%s' (a number from list-dead)\n", verb, id);
        return EX_USAGE;
    }

    rg_config *cfg = rg_config_load(conf_path, err, sizeof err);
    if (cfg == NULL) {
        fprintf(stderr, "relayguard: %s\n", err);
        return EX_USAGE;
    }
    rg_whq *q = rg_whq_connect(cfg, err, sizeof err);
    rg_config_free(cfg);
    if (q == NULL) {
        fprintf(stderr, "relayguard: %s\n", err);
        return EX_STORE;
    }

    int rc = EX_OK;
    if (strcmp(verb, "status") == 0) {
        rg_wh_status st;
        if (rg_whq_status(q, &st) < 0) {
            rc = EX_STORE;
        } else if (json) {
            printf("{\"queues\": %lld, \"queued\": %lld, \"sending\": %lld, \"waiting_retry\": %lld, "
                   "\"dead\": %lld, \"routed\": %lld, \"delivered\": %lld, \"retried\": %lld, "
                   "\"died\": %lld, \"lost\": %lld}\n", st.queues, st.queued, st.leased,
                   st.waiting_retry, st.dead, st.routed, st.delivered, st.retried, st.died, st.lost);
        } else {
            printf("queues          %lld (%lld sending, %lld waiting to retry)\n", st.queues,
                   st.leased, st.waiting_retry);
            printf("events queued   %lld\n", st.queued);
            printf("dead letters    %lld\n", st.dead);
            printf("routed          %lld\n", st.routed);
            printf("delivered       %lld\n", st.delivered);
            printf("retried         %lld\n", st.retried);
            printf("died            %lld\n", st.died);
            printf("lost            %lld%s\n", st.lost,
                   st.lost ? " (trimmed from the events stream before webhookd read them)" : "");
        }
    } else if (strcmp(verb, "list-dead") == 0) {
        list_ctx c = { .json = json, .first = true };
        if (json)
            printf("[");
        long n = rg_whq_dead_list(q, print_dead, &c);
        if (json)
            printf("%s]\n", c.first ? "" : "\n");
        if (n < 0)
            rc = EX_STORE;
        else if (n == 0 && !json)
            rc = EX_NO;
    } else {
        long n = is_drop ? rg_whq_dead_drop(q, all ? NULL : id) : rg_whq_dead_retry(q, all ? NULL : id);
        if (n < 0) {
            rc = EX_STORE;
        } else if (n == 0 && id) {
            fprintf(stderr, "relayguard: webhooks %s: no dead letter %s\n", verb, id);
            rc = EX_NO;
        } else if (json) {
            printf("{\"%s\": %ld}\n", is_drop ? "dropped" : "retried", n);
        } else if (is_drop) {
            printf("%ld dead letter%s deleted\n", n, n == 1 ? "" : "s");
        } else {
            printf("%ld dead letter%s back in %s queue%s\n", n, n == 1 ? "" : "s",
                   n == 1 ? "its" : "their", n == 1 ? "" : "s");
        }
    }
    if (rc == EX_STORE)
        fprintf(stderr, "relayguard: %s\n", rg_whq_error(q));
    rg_whq_close(&q);
    return rc;
}
