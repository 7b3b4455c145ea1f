/*
 * secrets.h - the token and PEM files named by sfpd's options
 * (admin_token_file, peer_token_file, grpc_tls_*), read by the reader sfpd
 * and sfpctl share (rpc/rpc.h: token = first line, printable ASCII without
 * blanks, min..4096 bytes; PEM = at most 1 MiB with a BEGIN line).
 */
#ifndef SFPD_BASE_SECRETS_H
#define SFPD_BASE_SECRETS_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Logs why a file is not usable (and warns when a secret is readable by
 * group or others). Returns 0 with *out (release with sfpd_free_secret) or
 * a negative errno.
 */
int sfpd_load_token(const char *option, const char *path, size_t min, char **out, size_t *len);
int sfpd_load_pem(const char *option, const char *path, bool secret, char **out, size_t *len);
/* Wipes and frees what the loaders returned (NULL is a no-op). */
void sfpd_free_secret(char *s, size_t len);

#endif /* SFPD_BASE_SECRETS_H */
