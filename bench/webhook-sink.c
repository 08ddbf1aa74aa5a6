/*
 * webhook-sink - a fast webhook receiver for bench/run-webhook.sh.
 *
 *   webhook-sink PORT SECRET
 *
 * Listens on 127.0.0.1:PORT (libevent's evhttp, keep-alive), checks every
 * POST's X-Relayguard-Signature (HMAC-SHA256 of "TS.body" with SECRET) as a
 * real receiver would, counts the events of the JSON array (objects at the
 * top level) and answers 200, or 400 when the signature does not verify.
 * GET /count answers "EVENTS POSTS BAD".  Not a test component: the tests
 * use t/webhookd/receiver.py, which checks much more but is slower.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

static const char *secret;
static unsigned long long events, posts, bad;

/* Top-level objects of a JSON array: '{' at depth 1, outside strings. */
static unsigned long long count_objects(const char *s, size_t n)
{
    unsigned long long c = 0;
    int depth = 0, str = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                str = 0;
        } else if (ch == '"') {
            str = 1;
        } else if (ch == '[' || ch == '{') {
            if (ch == '{' && depth == 1)
                c++;
            depth++;
        } else if (ch == ']' || ch == '}') {
            depth--;
        }
    }
    return c;
}

static int verify(const char *hdr, const char *body, size_t len)
{
    const char *t, *v;
    if (hdr == NULL || strncmp(hdr, "t=", 2) != 0 || (v = strstr(hdr, ",v1=")) == NULL)
        return 0;
    t = hdr + 2;
    size_t tlen = (size_t)(v - t);
    v += 4;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    char *msg = malloc(tlen + 1 + len);
    if (msg == NULL)
        return 0;
    memcpy(msg, t, tlen);
    msg[tlen] = '.';
    memcpy(msg + tlen + 1, body, len);
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)msg, tlen + 1 + len, mac, &maclen);
    free(msg);
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned i = 0; i < maclen; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    return strlen(v) == 2 * maclen && CRYPTO_memcmp(hex, v, 2 * maclen) == 0;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct evbuffer *out = evbuffer_new();
    if (evhttp_request_get_command(req) == EVHTTP_REQ_GET) {
        evbuffer_add_printf(out, "%llu %llu %llu\n", events, posts, bad);
        evhttp_send_reply(req, 200, "OK", out);
        evbuffer_free(out);
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = (const char *)evbuffer_pullup(in, -1);
    const char *sig = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Relayguard-Signature");
    posts++;
    if (body == NULL || !verify(sig, body, len)) {
        bad++;
        evbuffer_add(out, "bad signature\n", 14);
        evhttp_send_reply(req, 400, "Bad Request", out);
    } else {
        events += count_objects(body, len);
        evbuffer_add(out, "ok\n", 3);
        evhttp_send_reply(req, 200, "OK", out);
    }
    evbuffer_free(out);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: webhook-sink PORT SECRET\n");
        return 2;
    }
    secret = argv[2];
    struct event_base *base = event_base_new();
    struct evhttp *http = base ? evhttp_new(base) : NULL;
    if (http == NULL || evhttp_bind_socket(http, "127.0.0.1", (unsigned short)atoi(argv[1])) < 0) {
        fprintf(stderr, "webhook-sink: cannot listen on 127.0.0.1:%s\n", argv[1]);
        return 1;
    }
    evhttp_set_max_body_size(http, 64 << 20);
    evhttp_set_gencb(http, on_request, NULL);
    event_base_dispatch(base);
    evhttp_free(http);
    event_base_free(base);
    return 0;
}
