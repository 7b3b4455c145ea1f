/*
 * _sfp.c - the extension module sfp._sfp: sfp.Error and the codec
 * (encode, decode, info) over libsfp. The Python layer (sfp/__init__.py)
 * wraps these in numpy arrays; this file only moves bytes.
 */
#include "sfppy.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

PyObject *sfppy_error;

static const char *const coder_names[] = {
    [SFP_CODER_PLAIN] = "plain",
    [SFP_CODER_GECKO] = "gecko",
    [SFP_CODER_RANS] = "rans",
};
static const char *const rounding_names[] = {
    [SFP_ROUND_RNE] = "rne",
    [SFP_ROUND_TRUNC] = "trunc",
    [SFP_ROUND_STOCHASTIC] = "stochastic",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int name_index(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; s && i < n; i++)
        if (names[i] && strcmp(names[i], s) == 0)
            return (int)i;
    return -1;
}

PyObject *sfppy_error_new(int code, const char *name, const char *status,
                          const char *what, const char *text)
{
    PyObject *msg, *exc, *v = NULL;
    msg = what ? PyUnicode_FromFormat("%s: %s", what, text) : PyUnicode_FromString(text);
    if (!msg)
        return NULL;
    exc = PyObject_CallOneArg(sfppy_error, msg);
    Py_DECREF(msg);
    if (!exc)
        return NULL;
    if (!(v = PyLong_FromLong(code)) || PyObject_SetAttrString(exc, "code", v) < 0)
        goto fail;
    Py_DECREF(v);
    if (!(v = PyUnicode_FromString(name)) || PyObject_SetAttrString(exc, "name", v) < 0)
        goto fail;
    Py_DECREF(v);
    v = status ? PyUnicode_FromString(status) : Py_NewRef(Py_None);
    if (!v || PyObject_SetAttrString(exc, "status", v) < 0)
        goto fail;
    Py_DECREF(v);
    return exc;
fail:
    Py_XDECREF(v);
    Py_DECREF(exc);
    return NULL;
}

PyObject *sfppy_raise(int code, const char *name, const char *status,
                      const char *what, const char *text)
{
    PyObject *exc = sfppy_error_new(code, name, status, what, text);
    if (exc) {
        PyErr_SetObject(sfppy_error, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

PyObject *sfppy_raise_sfp(int code, const char *what)
{
    return sfppy_raise(code, sfp_strerror_name(code), NULL, what, sfp_strerror(code));
}

PyObject *sfppy_raise_inval(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return sfppy_raise(SFP_EINVAL, sfp_strerror_name(SFP_EINVAL), NULL,
                       sfp_strerror(SFP_EINVAL), buf);
}

PyObject *sfppy_raise_nospc(const char *what, Py_ssize_t have, size_t want)
{
    char text[160];
    snprintf(text, sizeof text, "%s (out holds %zd bytes, the values need %zu)",
             sfp_strerror(SFP_ENOSPC), have, want);
    return sfppy_raise(SFP_ENOSPC, sfp_strerror_name(SFP_ENOSPC), NULL, what, text);
}

const char *sfppy_dtype_name(sfp_dtype t)
{
    return t == SFP_DTYPE_BF16 ? "bfloat16" : "float32";
}

int sfppy_dtype_arg(PyObject *arg, int *out)
{
    const char *s;
    if (!arg || arg == Py_None) {
        *out = 0;
        return 0;
    }
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "dtype must be a str or None");
        return -1;
    }
    s = PyUnicode_AsUTF8(arg);
    if (!s)
        return -1;
    if (!strcmp(s, "float32") || !strcmp(s, "f32")) {
        *out = SFP_DTYPE_F32;
        return 0;
    }
    if (!strcmp(s, "bfloat16") || !strcmp(s, "bf16")) {
        *out = SFP_DTYPE_BF16;
        return 0;
    }
    sfppy_raise_inval("unknown dtype '%s' (float32 or bfloat16)", s);
    return -1;
}

int sfppy_params(sfp_dtype dtype, PyObject *mantissa, int exponent,
                 const char *coder, const char *rounding, unsigned group,
                 unsigned long long seed, int anchor, sfp_params *p)
{
    unsigned kmax = dtype == SFP_DTYPE_BF16 ? 7 : 23;
    long k = kmax;
    int ci, ri, rc;
    sfp_params q;

    if (mantissa && mantissa != Py_None) {
        k = PyLong_AsLong(mantissa);
        if (k == -1 && PyErr_Occurred())
            return -1;
    }
    if (k < 0 || k > (long)kmax) {
        sfppy_raise_inval("mantissa %ld is outside 0..%u for %s", k, kmax,
                          sfppy_dtype_name(dtype));
        return -1;
    }
    if (exponent < 1 || exponent > 8) {
        sfppy_raise_inval("exponent %d is outside 1..8", exponent);
        return -1;
    }
    sfp_coder cv; /* libsfp's names, "auto" (the smaller frame) included */
    if (!coder || sfp_coder_parse(coder, &cv) < 0) {
        sfppy_raise_inval("unknown coder '%s' (plain, gecko, rans or auto)", coder ? coder : "");
        return -1;
    }
    ci = (int)cv;
    if ((ri = name_index(rounding_names, COUNT(rounding_names), rounding)) < 0) {
        sfppy_raise_inval("unknown rounding '%s' (rne, trunc or stochastic)",
                          rounding ? rounding : "");
        return -1;
    }
    if (group && group != 8 && group != 16 && group != 32 && group != 64) {
        sfppy_raise_inval("group %u is not 8, 16, 32 or 64", group);
        return -1;
    }
    if (anchor < -1 || anchor > 254) {
        sfppy_raise_inval("anchor %d is outside 0..254 (or -1: the tensor's largest exponent)",
                          anchor);
        return -1;
    }
    sfp_params_default(&q);
    q.dtype = dtype;
    q.mbits = (unsigned)k;
    q.ebits = (unsigned)exponent;
    q.coder = (sfp_coder)ci;
    q.rounding = (sfp_rounding)ri;
    q.gecko_group = group;
    q.seed = seed;
    q.anchor = anchor;
    if ((rc = sfp_params_check(&q)) < 0) {
        sfppy_raise_sfp(rc, "parameters");
        return -1;
    }
    *p = q;
    return 0;
}

/* Element kind of a buffer format: 'f' float32, 'r' raw bytes, '2' two-byte
 * integers, 0 anything else. */
static int format_kind(const char *fmt, Py_ssize_t itemsize)
{
    if (!fmt)
        return 'r';
    if (*fmt == '@' || *fmt == '=' || *fmt == '<')
        fmt++;
    else if ((*fmt == '>' || *fmt == '!') && itemsize > 1)
        return 0; /* big endian */
    if (fmt[0] && fmt[1])
        return 0;
    switch (fmt[0]) {
    case 'f':
        return 'f';
    case 'B':
    case 'b':
    case 'c':
        return 'r';
    case 'H':
    case 'h':
        return '2';
    default:
        return 0;
    }
}

int sfppy_values_get(PyObject *obj, int dtype_arg, sfppy_values *v)
{
    int kind;
    size_t es;
    memset(v, 0, sizeof *v);
    if (PyObject_GetBuffer(obj, &v->view, PyBUF_RECORDS_RO) < 0)
        return -1;
    v->have_view = 1;
    kind = format_kind(v->view.format, v->view.itemsize);
    const char *fmt = v->view.format ? v->view.format : "B";
    if (!dtype_arg) {
        if (kind != 'f') {
            sfppy_raise_inval("cannot tell the element type of a buffer of format '%s': "
                              "pass dtype='float32' or dtype='bfloat16'", fmt);
            goto fail;
        }
        dtype_arg = SFP_DTYPE_F32;
    } else if (dtype_arg == SFP_DTYPE_F32 ? (kind != 'f' && kind != 'r')
                                          : (kind != '2' && kind != 'r')) {
        sfppy_raise_inval("a buffer of format '%s' does not hold %s values", fmt,
                          sfppy_dtype_name((sfp_dtype)dtype_arg));
        goto fail;
    }
    v->dtype = (sfp_dtype)dtype_arg;
    es = sfp_dtype_size(v->dtype);
    if ((size_t)v->view.len % es) {
        sfppy_raise_inval("%zd bytes are not a whole number of %s values",
                          v->view.len, sfppy_dtype_name(v->dtype));
        goto fail;
    }
    v->count = (size_t)v->view.len / es;
    v->data = v->view.buf;
    if (!PyBuffer_IsContiguous(&v->view, 'C')) {
        v->copy = PyMem_RawMalloc(v->view.len ? (size_t)v->view.len : 1);
        if (!v->copy) {
            PyErr_NoMemory();
            goto fail;
        }
        if (PyBuffer_ToContiguous(v->copy, &v->view, v->view.len, 'C') < 0)
            goto fail;
        v->data = v->copy;
    }
    return 0;
fail:
    sfppy_values_release(v);
    return -1;
}

void sfppy_values_release(sfppy_values *v)
{
    PyMem_RawFree(v->copy);
    v->copy = NULL;
    if (v->have_view)
        PyBuffer_Release(&v->view);
    v->have_view = 0;
}

void sfppy_widen(void *dst, const void *src, size_t n, sfp_dtype src_t)
{
    if (src_t == SFP_DTYPE_BF16) {
        const uint16_t *s = src;
        uint32_t *d = dst;
        for (size_t i = 0; i < n; i++)
            d[i] = (uint32_t)s[i] << 16;
    } else if (dst != src) {
        memcpy(dst, src, n * sfp_dtype_size(src_t));
    }
}

/* ----------------------------------------------------------------- codec */

PyDoc_STRVAR(encode_doc,
"encode(data, mantissa=None, exponent=8, coder='gecko', rounding='rne', *,\n"
"       dtype=None, group=0, seed=0, anchor=-1, zmap='bitmap') -> bytes\n\n"
"One sfp frame (docs/FORMAT.md) of the values in data (any object with the\n"
"buffer protocol). See sfp.encode.");

static PyObject *py_encode(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"data", "mantissa", "exponent", "coder", "rounding",
                             "dtype", "group", "seed", "anchor", "zmap", NULL};
    PyObject *data, *mantissa = Py_None, *dtype_o = Py_None, *out = NULL;
    int exponent = 8, anchor = -1, dtype_arg, rc;
    const char *coder = "gecko", *rounding = "rne", *zmap = "bitmap";
    unsigned group = 0;
    unsigned long long seed = 0;
    sfppy_values v;
    sfp_params p;
    size_t bound, len = 0;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|Oiss$OIKis", kwlist, &data, &mantissa,
                                     &exponent, &coder, &rounding, &dtype_o, &group,
                                     &seed, &anchor, &zmap))
        return NULL;
    unsigned zm;
    if (sfp_zmap_parse(zmap, &zm) < 0)
        return sfppy_raise_inval("unknown zmap '%s' (bitmap or huffman)", zmap);
    if (sfppy_dtype_arg(dtype_o, &dtype_arg) < 0 || sfppy_values_get(data, dtype_arg, &v) < 0)
        return NULL;
    if (sfppy_params(v.dtype, mantissa, exponent, coder, rounding, group, seed, anchor, &p) < 0)
        goto done;
    p.zmap = zm;
    bound = sfp_frame_bound(v.count, &p);
    if (!bound || bound > PY_SSIZE_T_MAX) {
        sfppy_raise_sfp(SFP_EOVERFLOW, "encode");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)bound);
    if (!out)
        goto done;
    Py_BEGIN_ALLOW_THREADS
    rc = sfp_encode(v.data, v.count, &p, PyBytes_AS_STRING(out), bound, &len, NULL);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        Py_CLEAR(out);
        sfppy_raise_sfp(rc, "encode");
        goto done;
    }
    _PyBytes_Resize(&out, (Py_ssize_t)len);
done:
    sfppy_values_release(&v);
    return out;
}

PyDoc_STRVAR(decode_doc,
"decode(frame, out=None, raw=False) -> (buffer, count, dtype)\n\n"
"Verifies and decodes one frame. The values are written as float32\n"
"(bfloat16 widened exactly) or, with raw, in the frame's own dtype; into\n"
"out (a writable contiguous buffer large enough) or a new bytearray.");

static PyObject *py_decode(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"frame", "out", "raw", NULL};
    Py_buffer fb, ob;
    PyObject *out_o = Py_None, *res = NULL, *dst_o = NULL;
    int raw = 0, rc = 0, have_ob = 0;
    sfp_frame_info fi;
    size_t native, want, n = 0;
    void *tmp = NULL, *dst;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*|Op", kwlist, &fb, &out_o, &raw))
        return NULL;
    if ((rc = sfp_frame_parse(fb.buf, (size_t)fb.len, &fi)) < 0) {
        sfppy_raise_sfp(rc, "decode");
        goto done;
    }
    if (fi.count > PY_SSIZE_T_MAX / 4) {
        sfppy_raise_sfp(SFP_EOVERFLOW, "decode");
        goto done;
    }
    native = (size_t)fi.count * sfp_dtype_size(fi.dtype);
    want = raw ? native : (size_t)fi.count * 4;
    if (out_o != Py_None) {
        if (PyObject_GetBuffer(out_o, &ob, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
            goto done;
        have_ob = 1;
        if ((size_t)ob.len < want) {
            sfppy_raise_nospc("decode", ob.len, want);
            goto done;
        }
        dst = ob.buf;
        dst_o = Py_NewRef(out_o);
    } else {
        dst_o = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)want);
        if (!dst_o)
            goto done;
        dst = PyByteArray_AS_STRING(dst_o);
    }
    if (want != native && !(tmp = PyMem_RawMalloc(native ? native : 1))) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = sfp_decode(fb.buf, (size_t)fb.len, tmp ? tmp : dst, native, &n);
    if (rc == 0 && tmp)
        sfppy_widen(dst, tmp, n, fi.dtype);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        sfppy_raise_sfp(rc, "decode");
        goto done;
    }
    res = Py_BuildValue("OKs", dst_o, (unsigned long long)n,
                        raw ? sfppy_dtype_name(fi.dtype) : "float32");
done:
    PyMem_RawFree(tmp);
    Py_XDECREF(dst_o);
    if (have_ob)
        PyBuffer_Release(&ob);
    PyBuffer_Release(&fb);
    return res;
}

static int dict_set(PyObject *d, const char *k, PyObject *v)
{
    int rc = v ? PyDict_SetItemString(d, k, v) : -1;
    Py_XDECREF(v);
    return rc;
}

PyDoc_STRVAR(info_doc,
"info(frame) -> dict\n\n"
"What the header of a frame says, after checking the header and the\n"
"checksum (sfp.Error otherwise). See sfp.info.");

static PyObject *py_info(PyObject *self, PyObject *arg)
{
    Py_buffer fb;
    sfp_frame_info fi;
    PyObject *d = NULL, *sizes = NULL;
    int rc;

    if (PyObject_GetBuffer(arg, &fb, PyBUF_SIMPLE) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = sfp_frame_verify(fb.buf, (size_t)fb.len, &fi);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&fb);
    if (rc < 0)
        return sfppy_raise_sfp(rc, "info");
    double raw = (double)fi.count * (double)sfp_dtype_size(fi.dtype);
    if (!(d = PyDict_New()) || !(sizes = PyDict_New()))
        goto fail;
    if (dict_set(sizes, "header", PyLong_FromLong(SFP_FRAME_HEADER_SIZE)) ||
        dict_set(sizes, "zero_map", PyLong_FromUnsignedLongLong(fi.zmap_bytes)) ||
        dict_set(sizes, "exponent", PyLong_FromUnsignedLongLong(fi.exp_bytes)) ||
        dict_set(sizes, "sign", PyLong_FromUnsignedLongLong(fi.sign_bytes)) ||
        dict_set(sizes, "mantissa", PyLong_FromUnsignedLongLong(fi.mant_bytes)) ||
        dict_set(sizes, "trailer", PyLong_FromLong(SFP_FRAME_TRAILER_SIZE)) ||
        dict_set(d, "version", PyLong_FromUnsignedLong(fi.version)) ||
        dict_set(d, "dtype", PyUnicode_FromString(sfppy_dtype_name(fi.dtype))) ||
        dict_set(d, "count", PyLong_FromUnsignedLongLong(fi.count)) ||
        dict_set(d, "nonzero", PyLong_FromUnsignedLongLong(fi.nonzero)) ||
        dict_set(d, "mantissa", PyLong_FromUnsignedLong(fi.mbits)) ||
        dict_set(d, "exponent", PyLong_FromUnsignedLong(fi.ebits)) ||
        dict_set(d, "anchor", PyLong_FromUnsignedLong(fi.anchor)) ||
        dict_set(d, "coder", PyUnicode_FromString((unsigned)fi.coder < COUNT(coder_names)
                                                       ? coder_names[fi.coder] : "?")) ||
        dict_set(d, "group", PyLong_FromUnsignedLong(fi.gecko_group)) ||
        dict_set(d, "flags", PyLong_FromUnsignedLong(fi.flags)) ||
        dict_set(d, "frame_bytes", PyLong_FromUnsignedLongLong(fi.frame_bytes)) ||
        dict_set(d, "raw_bytes", PyLong_FromDouble(raw)) ||
        dict_set(d, "ratio", PyFloat_FromDouble(fi.frame_bytes ? raw / (double)fi.frame_bytes : 0)) ||
        dict_set(d, "bits_per_value", PyFloat_FromDouble(
                     fi.count ? 8.0 * (double)fi.frame_bytes / (double)fi.count : 0)) ||
        dict_set(d, "checksum", PyLong_FromUnsignedLongLong(fi.checksum)) ||
        PyDict_SetItemString(d, "sizes", sizes))
        goto fail;
    Py_DECREF(sizes);
    return d;
fail:
    Py_XDECREF(sizes);
    Py_XDECREF(d);
    return NULL;
}

static PyObject *py_version(PyObject *self, PyObject *unused)
{
    return PyUnicode_FromString(sfp_version());
}

static PyMethodDef methods[] = {
    {"encode", (PyCFunction)(void (*)(void))py_encode, METH_VARARGS | METH_KEYWORDS, encode_doc},
    {"decode", (PyCFunction)(void (*)(void))py_decode, METH_VARARGS | METH_KEYWORDS, decode_doc},
    {"info", py_info, METH_O, info_doc},
    {"version", py_version, METH_NOARGS, "libsfp's version string."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "sfp._sfp",
    .m_doc = "C core of the sfp package (libsfp codec, libsfpclient). Use the sfp package.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__sfp(void);

PyMODINIT_FUNC PyInit__sfp(void)
{
    PyObject *m = PyModule_Create(&module_def), *t;
    if (!m)
        return NULL;
    sfppy_error = PyErr_NewExceptionWithDoc(
        "sfp.Error",
        "An sfp call failed. A ValueError with the attributes code (libsfp or\n"
        "libsfpclient error code), name (e.g. 'SFP_ECHECKSUM') and status (the\n"
        "daemon's status name such as 'E_NOT_FOUND', or None).",
        PyExc_ValueError, NULL);
    if (!sfppy_error || PyModule_AddObjectRef(m, "Error", sfppy_error) < 0)
        goto fail;
    if (!(t = PyTuple_New(COUNT(coder_names))))
        goto fail;
    for (size_t i = 0; i < COUNT(coder_names); i++)
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, PyUnicode_FromString(coder_names[i]));
    if (PyErr_Occurred() || PyModule_AddObject(m, "coders", t) < 0) {
        Py_DECREF(t);
        goto fail;
    }
    if (sfppy_client_add(m) < 0 || sfppy_bitwave_add(m) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
