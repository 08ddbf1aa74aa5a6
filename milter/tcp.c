/*
 * tcp.c - keep libmilter fast on inet: sockets.
 *
 * libmilter never touches its sockets' TCP options.  On loopback TCP that
 * costs two delayed-ACK stalls (about 40 ms each) per message:
 *  - its replies go out in several small writes, and Nagle holds the second
 *    until the first is ACKed: TCP_NODELAY on the listening socket, which
 *    Linux hands down to every accepted socket, fixes that;
 *  - the MTA sends a macro packet and then its command in two writes (Postfix
 *    does), so its Nagle waits for our ACK of the macros, which the kernel
 *    delays hoping to piggyback it on a reply - but macros get no reply.
 *    TCP_QUICKACK sends that ACK at once; the kernel drops quick-ACK mode
 *    again by itself, so it is set each time libmilter has read the 5-byte
 *    header (length, command) of a macro packet ('D').  Every other command
 *    gets a reply, which carries the ACK.
 * libmilter gives no hook for either (no descriptor of the listening socket,
 * no callback per read), so the executable provides accept(), read() and
 * close() of its own: they take precedence over libc's for libmilter too,
 * remember which descriptors libmilter accepted, and set TCP_QUICKACK after
 * a macro header was read on one of those.  Everything else goes straight
 * to libc.
 */
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libmilter/mfdef.h>

#include "tcp.h"

#define MAX_FD 65536

static int (*libc_accept)(int, struct sockaddr *, socklen_t *);
static ssize_t (*libc_read)(int, void *, size_t);
static int (*libc_close)(int);
static int quickack;                    /* set once before any thread starts */
static unsigned char accepted[MAX_FD];  /* written only for descriptors we own */

void rg_milter_tcp_init(void)
{
    libc_accept = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
    libc_read = (ssize_t (*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
    libc_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
}

int rg_milter_tcp_tune_listener(void)
{
    int n = 0;
    for (int fd = 3; fd < 1024; fd++) {
        struct stat st;
        int acc = 0, dom = 0, one = 1;
        socklen_t l = sizeof acc, l2 = sizeof dom;
        if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
            continue;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l) < 0 || !acc)
            continue;
        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &l2) < 0 ||
            (dom != AF_INET && dom != AF_INET6))
            continue;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0)
            n++;
    }
    if (n > 0)
        quickack = 1;
    return n;
}

int accept(int fd, struct sockaddr *sa, socklen_t *len)
{
    int c = libc_accept(fd, sa, len);
    if (c >= 0 && c < MAX_FD && quickack)
        accepted[c] = 1;
    return c;
}

ssize_t read(int fd, void *buf, size_t n)
{
    ssize_t r = libc_read(fd, buf, n);
    if (r == 5 && n == 5 && fd >= 0 && fd < MAX_FD && accepted[fd] &&
        ((const char *)buf)[4] == SMFIC_MACRO) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    }
    return r;
}

int close(int fd)
{
    if (fd >= 0 && fd < MAX_FD)
        accepted[fd] = 0;
    return libc_close(fd);
}
