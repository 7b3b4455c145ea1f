/* error.c - error names and messages from the SFP_ERRORS list. */
#include "internal.h"

const char *sfp_strerror(int err)
{
    switch (err) {
    case SFP_OK:
        return "success";
#define SFP__ERR_MSG(name, value, msg)                                         \
    case value:                                                                \
        return msg;
        SFP_ERRORS(SFP__ERR_MSG)
#undef SFP__ERR_MSG
    }
    return "unknown error";
}

const char *sfp_strerror_name(int err)
{
    switch (err) {
    case SFP_OK:
        return "SFP_OK";
#define SFP__ERR_NAME(name, value, msg)                                        \
    case value:                                                                \
        return "SFP_" #name;
        SFP_ERRORS(SFP__ERR_NAME)
#undef SFP__ERR_NAME
    }
    return "SFP_EUNKNOWN";
}

/* Every code stays in libsfp's range (sfp.h, SFP_ERROR_MIN). */
#define SFP__ERR_IN_RANGE(name, value, msg)                                    \
    _Static_assert((value) < 0 && (value) >= SFP_ERROR_MIN, "SFP_" #name " out of range");
SFP_ERRORS(SFP__ERR_IN_RANGE)
#undef SFP__ERR_IN_RANGE
