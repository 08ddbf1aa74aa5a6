/*
 * webhooks.h - `relayguard webhooks`: the webhook queues and dead letters
 * of relayguard-webhookd (webhookd/whq.h).
 */
#ifndef RG_CLI_WEBHOOKS_H
#define RG_CLI_WEBHOOKS_H

#include <stdbool.h>

/* argv: the words after "webhooks".  Returns the exit code (relayguard(1)). */
int rg_cli_webhooks(const char *conf_path, bool json, int argc, char **argv);

#endif
