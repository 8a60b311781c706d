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
 *
 * WHEN NOT: with a network card that delivers every connection on one CPU
 * (one receive queue, no RPS), or clients that all run on one CPU over
 * loopback, steering would give one queue every connection. So every
 * accepted connection's SO_INCOMING_CPU is counted, and every 512
 * connections each group is looked at: when the busiest of its n CPUs took
 * more than 1.5/n of the connections that came in on its CPUs, its program
 * becomes "always the kernel's hash" (as plain SO_REUSEPORT), and the
 * steering program comes back when that share is below 1.2/n.
 */
#ifndef TACIO_HTTP_STEER_H
#define TACIO_HTTP_STEER_H

#include <stdbool.h>
#include <stddef.h>

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

/* fd was just accepted from a joined socket: count the CPU it came in on.
 * Returns true when this connection's count made a group turn its steering
 * off or back on, with a line for the log in why. Lock-free but every
 * 512th call. */
bool tacio__steer_arrived(int fd, char *why, size_t len);

#endif
