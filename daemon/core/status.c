/* status.c - messages of the core's status codes (status.h). */
#include "core/status.h"

const char *sfpd_strerror(int status)
{
    switch (status) {
    case SFPD_OK:
        return "ok";
#define SFPD__STATUS_MSG(name, value, msg) case value: return msg;
        SFPD_STATUSES(SFPD__STATUS_MSG)
#undef SFPD__STATUS_MSG
    }
    return "unknown error";
}
