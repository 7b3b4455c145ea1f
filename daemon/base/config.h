/*
 * config.h - sfpd configuration: one declarative option table.
 *
 * Each option is X(name, type, default, min, max, live, help). The table
 * drives the INI parser (inih), the command-line flags (--name=value or
 * --name value, '-' and '_' interchangeable), the SFPD_<NAME> environment
 * variables, --help and --print-config. Precedence, lowest first:
 * built-in default, config file, environment, command line. SIGHUP re-reads
 * the file and the environment (flags still win) and applies the options
 * marked live; the others keep their value and a warning is logged.
 */
#ifndef SFPD_CONFIG_H
#define SFPD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum sfpd_opt_type {
    SFPD_OPT_STRING,
    SFPD_OPT_SIZE,     /* bytes, suffixes K M G T (binary) accepted     */
    SFPD_OPT_UINT,
    SFPD_OPT_SECONDS,  /* seconds, decimals accepted                    */
    SFPD_OPT_MODE,     /* octal file mode                               */
    SFPD_OPT_LEVEL,    /* error | warn | info | debug                   */
    SFPD_OPT_IDLIST,   /* comma separated numeric ids, or empty         */
} sfpd_opt_type;

#define SFPD_KiB (UINT64_C(1) << 10)
#define SFPD_MiB (UINT64_C(1) << 20)
#define SFPD_GiB (UINT64_C(1) << 30)

/* X(name, type, default, min, max, live, help) */
#define SFPD_OPTIONS(X)                                                           \
    X(socket, STRING, "/run/sfpd/sfpd.sock", 0, 0, false,                         \
      "Unix socket the workers connect to")                                       \
    X(socket_mode, MODE, "0660", 0, 0777, false,                                  \
      "permission bits of the socket")                                            \
    X(socket_group, STRING, "", 0, 0, false,                                      \
      "group owning the socket (name or gid; empty: the daemon's group)")         \
    X(spill_dir, STRING, "/var/lib/sfpd/spill", 0, 0, false,                      \
      "directory of the disk tier's segment files")                               \
    X(dram_budget, SIZE, "1G", 0, UINT64_C(1) << 50, true,                        \
      "bytes of frames the DRAM tier may hold, all jobs together")               \
    X(job_dram_budget, SIZE, "0", 0, UINT64_C(1) << 50, true,                     \
      "bytes of frames one job may hold in DRAM (0: dram_budget)")                \
    X(spill_write_behind, SIZE, "16M", 0, UINT64_C(1) << 40, true,                \
      "bytes of frames that may be on their way to a lower tier while a Put they make room for is admitted; DRAM exceeds dram_budget by at most this (0: the Put waits for the writes)") \
    X(job_quota, SIZE, "0", 0, UINT64_C(1) << 60, true,                           \
      "bytes of frames one job may store in all tiers (0: unlimited)")            \
    X(disk_budget, SIZE, "0", 0, UINT64_C(1) << 60, true,                         \
      "bytes the disk tier may use (0: until the filesystem is full)")            \
    X(segment_size, SIZE, "64M", 1 << 20, UINT64_C(1) << 40, true,                \
      "size at which a spill segment file is closed and a new one started")      \
    X(max_tensor, SIZE, "1G", 1024, UINT64_C(1) << 40, true,                      \
      "largest tensor (uncompressed bytes) a Put or Encode may carry")           \
    X(max_message, SIZE, "64K", 1024, 16 << 20, false,                            \
      "largest IPC message (length prefix excluded)")                             \
    X(max_shm, SIZE, "64G", 4096, UINT64_C(1) << 44, true,                        \
      "largest shared-memory region a client may attach")                        \
    X(max_connections, UINT, "1024", 1, 1000000, true,                            \
      "connections served at once; more are refused")                             \
    X(threads, UINT, "0", 0, 1024, false,                                         \
      "thread pool size for encode/decode/disk I/O (0: half the CPUs, at least "  \
      "1; at least 4 with a peer tier)")                                          \
    X(prefetch_depth, UINT, "4", 0, 4096, true,                                   \
      "stashes kept ahead in DRAM during backward (0: no prefetch)")              \
    X(grace_period, SECONDS, "30", 0, 86400 * 7, true,                            \
      "seconds a job's data survives its last connection (and a restart)")        \
    X(io_timeout, SECONDS, "30", 0, 86400, true,                                  \
      "seconds a half-received message may stall, or a new connection may wait for its Hello, before the connection closes") \
    X(allow_uids, IDLIST, "", 0, 0, true,                                         \
      "uids allowed to connect besides root and the daemon's own uid")            \
    X(allow_gids, IDLIST, "", 0, 0, true,                                         \
      "gids allowed to connect (primary group of the peer)")                      \
    X(grpc_listen, STRING, "127.0.0.1:50051", 0, 0, false,                        \
      "gRPC API address: host:port, [v6]:port or unix:/path (empty: no gRPC)")   \
    X(grpc_max_calls, UINT, "1024", 1, 1000000, false,                            \
      "gRPC calls served at once; more are refused with RESOURCE_EXHAUSTED")     \
    X(grpc_drain_grace, SECONDS, "0.5", 0, 600, false,                            \
      "minimum seconds gRPC keeps answering (NOT_SERVING) after SIGTERM")        \
    X(grpc_tls_cert, STRING, "", 0, 0, false,                                     \
      "PEM certificate chain of the gRPC server (empty: plaintext gRPC)")        \
    X(grpc_tls_key, STRING, "", 0, 0, false,                                      \
      "PEM private key of grpc_tls_cert")                                        \
    X(grpc_tls_client_ca, STRING, "", 0, 0, false,                                \
      "PEM CA bundle: when set, gRPC clients must present a certificate it signed") \
    X(admin_token_file, STRING, "", 0, 0, false,                                  \
      "file holding the admin token SetPolicy/EndJob require (empty: no check)") \
    X(metrics_listen, STRING, "127.0.0.1:9464", 0, 0, false,                      \
      "Prometheus /metrics address: host:port (empty: no HTTP endpoint)")        \
    X(tier_order, STRING, "dram,disk", 0, 0, false,                               \
      "tier order: dram,disk, dram,peer,disk or dram,disk,peer")                 \
    X(peers, STRING, "", 0, 0, false,                                             \
      "network tier: comma list of peer sfpd gRPC addresses host:port")          \
    X(peer_max_bytes, SIZE, "1G", 0, UINT64_C(1) << 50, false,                    \
      "frame bytes this daemon may place on each peer (0: unlimited)")           \
    X(peer_write_through, UINT, "0", 0, 1, false,                                 \
      "1: keep a local disk copy of every frame placed on a peer")               \
    X(peer_timeout, SECONDS, "5", 0, 600, false,                                  \
      "deadline in seconds of one call to a peer (at least 0.01)")               \
    X(peer_node_name, STRING, "", 0, 0, false,                                    \
      "name this daemon gives itself on peers (empty: hostname:spill_dir)")      \
    X(peer_token_file, STRING, "", 0, 0, false,                                   \
      "file holding the shared secret of the Peer service (both directions)")    \
    X(peering, UINT, "0", 0, 1, false,                                            \
      "1: serve the Peer gRPC service (hold frames of other daemons)")           \
    X(peer_serve_max_bytes, SIZE, "1G", 0, UINT64_C(1) << 50, false,              \
      "frame bytes held for each peer that spills here (Peer service)")          \
    X(peer_serve_budget, SIZE, "0", 0, UINT64_C(1) << 50, true,                   \
      "frame bytes held for all peers together (Peer service; 0: no total bound)") \
    X(peer_lease, SECONDS, "300", 0, 86400 * 7, true,                             \
      "seconds a client node's frames are kept without a call from it (Peer service; 0: until restart)") \
    X(log_level, LEVEL, "info", 0, 3, true,                                       \
      "error, warn, info or debug")

typedef struct sfpd_config {
#define SFPD__CFG_FIELD_STRING(n) char *n;
#define SFPD__CFG_FIELD_SIZE(n) uint64_t n;
#define SFPD__CFG_FIELD_UINT(n) uint64_t n;
#define SFPD__CFG_FIELD_SECONDS(n) double n;
#define SFPD__CFG_FIELD_MODE(n) uint64_t n;
#define SFPD__CFG_FIELD_LEVEL(n) uint64_t n;
#define SFPD__CFG_FIELD_IDLIST(n) char *n;
#define SFPD__CFG_FIELD(name, type, def, mn, mx, live, help) SFPD__CFG_FIELD_##type(name)
    SFPD_OPTIONS(SFPD__CFG_FIELD)
#undef SFPD__CFG_FIELD
    char *config_file; /* NULL: none */
    /* parsed IDLISTs */
    uint32_t *uids, *gids;
    size_t n_uids, n_gids;
} sfpd_config;

typedef enum sfpd_action {
    SFPD_ACTION_RUN,
    SFPD_ACTION_HELP,
    SFPD_ACTION_PRINT_CONFIG,
    SFPD_ACTION_VERSION,
} sfpd_action;

/*
 * Builds a config from defaults, the file named by --config (or
 * SFPD_CONFIG), the environment and argv. On error writes a message to
 * stderr and returns a negative errno; *out is untouched. On success *out
 * is owned by the caller (sfpd_config_free).
 */
int sfpd_config_load(int argc, char **argv, sfpd_config **out, sfpd_action *action);

/* Re-reads file and environment with the same argv; same ownership. */
int sfpd_config_reload(const sfpd_config *old, int argc, char **argv, sfpd_config **out);

/* Copies the live options of src into dst, logs the non-live that differ. */
void sfpd_config_apply_live(sfpd_config *dst, const sfpd_config *src);

void sfpd_config_free(sfpd_config **c);
void sfpd_config_print(const sfpd_config *c, FILE *f);
void sfpd_config_help(FILE *f, const char *argv0);

/* Parses "64M"-style sizes; returns 0 or -EINVAL. Exposed for tests. */
int sfpd_parse_size(const char *s, uint64_t *out);

#endif /* SFPD_CONFIG_H */
