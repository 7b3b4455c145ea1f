/*
 * sfppy.h - what the files of the extension module sfp._sfp share.
 *
 * _sfp.c holds the module, the exception and the codec functions;
 * pyclient.c the Client type over libsfpclient; pybitwave.c the BitWave
 * controller over libsfp's policy API. Every call into C that can take
 * time runs with the GIL released.
 */
#ifndef SFPPY_H
#define SFPPY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <sfp/sfp.h>

/* sfp.Error (a ValueError). */
extern PyObject *sfppy_error;

/* A new sfp.Error instance (not raised), as sfppy_raise describes. */
PyObject *sfppy_error_new(int code, const char *name, const char *status,
                          const char *what, const char *text);
/*
 * Raises sfp.Error with the message "<what>: <text>" (or "<text>" when what
 * is NULL) and the attributes code (int), name (str) and status (the
 * daemon's status name or None). Returns NULL.
 */
PyObject *sfppy_raise(int code, const char *name, const char *status,
                      const char *what, const char *text);
/* sfp.Error for a libsfp error code: libsfp's name and message. */
PyObject *sfppy_raise_sfp(int code, const char *what);
/* sfp.Error with a formatted message, code SFP_EINVAL. */
PyObject *sfppy_raise_inval(const char *fmt, ...);

/* sfp.Error SFP_ENOSPC: an out buffer of `have` bytes, `want` needed. */
PyObject *sfppy_raise_nospc(const char *what, Py_ssize_t have, size_t want);

/* Element type from a dtype argument (None or str); 0 and *out, or -1. */
int sfppy_dtype_arg(PyObject *arg, int *out /* 0: not given */);
/* "float32" or "bfloat16". */
const char *sfppy_dtype_name(sfp_dtype t);

/*
 * Codec settings from the arguments every encoding call takes. mantissa
 * None means all bits of the dtype. Returns 0 with *p, or -1 with sfp.Error
 * set.
 */
int sfppy_params(sfp_dtype dtype, PyObject *mantissa, int exponent,
                 const char *coder, const char *rounding, unsigned group,
                 unsigned long long seed, int anchor, sfp_params *p);

/*
 * A readable buffer of float values: data, count and element type. Takes
 * any object with the buffer protocol; a non-contiguous one is copied.
 * dtype_arg is the caller's dtype argument (0: from the buffer's format).
 * sfppy_values_release() frees what sfppy_values_get() took.
 */
typedef struct sfppy_values {
    Py_buffer view;
    int have_view;
    void *copy;        /* contiguous copy of a strided buffer, or NULL */
    const void *data;
    size_t count;
    sfp_dtype dtype;
} sfppy_values;

int sfppy_values_get(PyObject *obj, int dtype_arg, sfppy_values *v);
void sfppy_values_release(sfppy_values *v);

/*
 * Writes n decoded values of dtype src_t from src to dst as float32
 * (widening bfloat16 exactly) or, with raw, unchanged.
 */
void sfppy_widen(void *dst, const void *src, size_t n, sfp_dtype src_t);

/* Adds the types to the module; 0 or -1. */
int sfppy_client_add(PyObject *module);
int sfppy_bitwave_add(PyObject *module);

#endif
