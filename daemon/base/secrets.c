/* secrets.c - token and PEM files of the daemon's options, read by the one
 * reader sfpd and sfpctl share (rpc/rpc.h), with the daemon's log lines. */
#include "rpc.h"
#include "base/secrets.h"
#include "base/sfpd.h"

#include <errno.h>

static void warn_loose(const char *option, const char *path, const sfp_rpc_file_info *fi)
{
    if (fi->loose)
        sfpd_warn("%s %s is readable by group or others (mode %03o)", option, path, fi->mode);
}

int sfpd_load_token(const char *option, const char *path, size_t min, char **out, size_t *len)
{
    sfp_rpc_file_info fi;
    const char *why = NULL;
    int r;

    if (!path || !path[0]) {
        sfpd_err("%s is required here and is not set", option);
        return -EINVAL;
    }
    if ((r = sfp_rpc_read_token(path, min, out, len, &fi, &why)) < 0) {
        sfpd_err("%s %s: %s (one line of %zu..%u printable ASCII characters without blanks, "
                 "e.g. openssl rand -hex 32)", option, path, why, min ? min : 1, SFP_RPC_TOKEN_MAX);
        return r;
    }
    warn_loose(option, path, &fi);
    return 0;
}

int sfpd_load_pem(const char *option, const char *path, bool secret, char **out, size_t *len)
{
    sfp_rpc_file_info fi;
    const char *why = NULL;
    int r = sfp_rpc_read_pem(path, out, len, &fi, &why);
    if (r < 0) {
        sfpd_err("%s %s: %s", option, path, why);
        return r;
    }
    if (secret)
        warn_loose(option, path, &fi);
    return 0;
}

void sfpd_free_secret(char *s, size_t len) { sfp_rpc_free_secret(s, len); }
