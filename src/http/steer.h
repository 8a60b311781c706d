/* src/http/steer.h - new connections to the queue of the CPU that received
 * them (tacio_http_queue_options_t.steer_by_cpu; internal API).
 *
 * WHY: queues on one address with SO_REUSEPORT get new connections by a
 * hash of the addresses. The queue's thread is then woken on whatever CPU
 * it last ran on, and io_uring's wake-ups, unlike a socket's own, carry no
 * hint to run it where the waker is. On a machine whose every CPU is busy
 * (clients and server, or several connections at once) the woken thread
 * waits behind another while the CPU it could use goes idle: 9% of the time
 * in the RSA handshake benchmark (docs/http.md "Shards"). With every queue
 * bound to one CPU (tacio_pool_options_t.cpus) and each connection sent to
 * the queue of the CPU that took its SYN, the connection's work happens
 * where its packets arrive, and that idle time goes.
 *
 * HOW: a classic BPF program on the reuseport group
 * (SO_ATTACH_REUSEPORT_CBPF, Linux 4.6; kernels before 6.2 ignore
 * SO_INCOMING_CPU in groups) maps the receiving CPU to the index of that
 * CPU's socket in the group; a CPU with no queue gets the kernel's hash.
 * The group's order is the order its sockets began to listen, and closing
 * one moves the group's last socket into its place: the registry here
 * mirrors that, so every queue that listens on the address must join.
 */
#ifndef TACIO_HTTP_STEER_H
#define TACIO_HTTP_STEER_H

#include <tacio/status.h>

/* fd has just begun to listen with SO_REUSEPORT: add it, for cpu, to its
 * address's group and attach the group's new program. Call it right after
 * listen(2), before another socket on the address may listen.
 * RETURN VALUE: TACIO_SUCCESS; TACIO_NO_MEMORY; the mapped errno of
 *   getsockname or setsockopt (the socket then listens unsteered). */
tacio_status_t tacio__steer_join(int fd, unsigned cpu);

/* fd, a joined socket, is about to close: its group's program is rebuilt
 * for the order the kernel will have. Unknown fds are ignored. */
void tacio__steer_leave(int fd);

#endif
