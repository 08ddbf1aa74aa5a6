/*
 * server.h - relayguard-milter's sockets: the listening socket and a fixed
 * pool of worker threads, each with its own epoll set of MTA connections
 * (proto.h runs the protocol on each).
 */
#ifndef RG_MILTER_SERVER_H
#define RG_MILTER_SERVER_H

#include <stddef.h>

#include "proto.h"

/* Listen on spec: inet:PORT@HOST, inet:PORT (any address), inet6:PORT@HOST,
 * unix:PATH or local:PATH.  The descriptor, or -1 with err.  TCP sockets
 * get TCP_NODELAY (accepted sockets inherit it). */
int rgm_listen(const char *spec, char *err, size_t errlen);

/* Serve fd with nworkers threads; a connection idle for timeout_ms is
 * closed.  Returns once the threads run (0), or -1 with err. */
int rgm_server_start(const rgm_desc *desc, int fd, int nworkers, unsigned timeout_ms,
                     char *err, size_t errlen);

/* Stop accepting, end every connection (abort and close callbacks run),
 * join the threads, close the listening socket. */
void rgm_server_stop(void);

#endif
