/*
 * tcp.h - TCP_NODELAY and TCP_QUICKACK for libmilter's inet: sockets (tcp.c).
 */
#ifndef RG_MILTER_TCP_H
#define RG_MILTER_TCP_H

/* Resolve libc's accept/read/close; call first thing in main(). */
void rg_milter_tcp_init(void);

/* After smfi_opensocket(): TCP_NODELAY on libmilter's listening TCP socket
 * (inherited by accepted sockets) and TCP_QUICKACK after every read on the
 * accepted ones.  Returns the number of listening sockets tuned. */
int rg_milter_tcp_tune_listener(void);

#endif
