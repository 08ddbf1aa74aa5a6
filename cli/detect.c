/*
 * detect.c - `relayguard account resume NAME`: lift what relayguard-detectd
 * did to an account (suspension, throttle) and start its cool-down, during
 * which detections are reported but not acted on (policy/detect_store.h).
 */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "account.h"
#include "admin.h"
#include "config.h"
#include "detect_store.h"

enum { EX_OK = 0, EX_NO = 1, EX_USAGE = 2, EX_STORE = 3 };

int rg_cli_account_resume(const char *conf_path, int argc, char **argv);

int rg_cli_account_resume(const char *conf_path, int argc, char **argv)
{
    char err[1024];
    if (argc != 1 || argv[0][0] == '-') {
        fprintf(stderr, "relayguard: usage: relayguard account resume NAME\n");
        return EX_USAGE;
    }
    const char *name = argv[0];
    if (!rg_account_name_valid(name)) {
        fprintf(stderr, "relayguard: account resume: bad name '%s' (1..64 of A-Z a-z 0-9 . _ @ + -)\n",
                name);
        return EX_USAGE;
    }
    rg_config *cfg = rg_config_load(conf_path, err, sizeof err);
    if (cfg == NULL) {
        fprintf(stderr, "relayguard: %s\n", err);
        return EX_USAGE;
    }
    rg_admin *ad = rg_admin_connect(cfg, err, sizeof err);
    if (ad == NULL) {
        fprintf(stderr, "relayguard: %s\n", err);
        rg_config_free(cfg);
        return EX_STORE;
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    uint64_t now = (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
    int r = rg_detect_store_resume(ad, cfg, name, now);
    int rc = EX_OK;
    if (r == -2) {
        fprintf(stderr, "relayguard: account %s not found\n", name);
        rc = EX_NO;
    } else if (r < 0) {
        fprintf(stderr, "relayguard: %s\n", rg_admin_error(ad));
        rc = EX_STORE;
    } else {
        char until[64];
        time_t t = (time_t)((now + cfg->detect.cooldown_ms) / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(until, sizeof until, "%Y-%m-%dT%H:%M:%SZ", &tm);
        printf("account %s resumed; detections are not acted on until %s\n", name, until);
    }
    rg_admin_close(&ad);
    rg_config_free(cfg);
    return rc;
}
