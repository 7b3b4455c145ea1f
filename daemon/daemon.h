/*
 * daemon.h - the composition root of sfpd (daemon.c). It creates the core
 * (store, job policies) and the edges (IPC server, gRPC, metrics), hands
 * the edges the core objects and a snapshot source, and owns the process:
 * the libuv loop, signals, reload, drain, the systemd watchdog and
 * sd_notify. Nothing below it calls back up into it except through the
 * callbacks it gives out. Only main.c includes this header.
 */
#ifndef SFPD_DAEMON_H
#define SFPD_DAEMON_H

#include "base/config.h"

/*
 * Runs the daemon until SIGTERM/SIGINT drains it. cfg is owned by the
 * daemon from here on (updated on SIGHUP); argc/argv are kept for reloads.
 * Returns the process exit code.
 */
int sfpd_daemon_run(sfpd_config *cfg, int argc, char **argv);

#endif /* SFPD_DAEMON_H */
