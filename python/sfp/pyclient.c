/*
 * pyclient.c - sfp._sfp.Client: one libsfpclient connection to sfpd.
 *
 * libsfpclient is not thread safe, so every call holds the object's lock;
 * the GIL is released while a call waits for the lock or for sfpd. The
 * public methods move data through the start of the shared memory (what
 * libsfpclient does for data outside it). The underscore methods are the
 * zero-copy path of sfp.torch: it owns the layout of the shared memory
 * and places tensors there itself (_stage, _put_async, _flush, _get_shm,
 * _unstage, _release).
 */
#include "sfppy.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <pythread.h>
#include <sfp/client.h>

/* Asynchronous puts one object keeps track of between two _flush calls. */
#define PEND_MAX 4096

typedef struct {
    PyObject_HEAD
    sfpc *c;                 /* NULL once closed */
    PyThread_type_lock lock;
    unsigned char *shm;
    size_t shm_size;
    char job[129];
    char socket[128];
    unsigned rank;
    int timeout_ms;
    sfpc_put_info *pend;     /* PEND_MAX slots */
    size_t npend;
} Client;

/* ---------------------------------------------------------------- errors */

/* sfp.Error (not raised) for a libsfpclient error code of call `what`. */
static PyObject *client_error(Client *self, int rc, const char *what)
{
    const char *status = sfpc_status_name(rc);
    const char *dm = self->c ? sfpc_last_message(self->c) : "";
    char text[512];
    if (!status || !strcmp(dm, status))
        dm = ""; /* a local error, or no more than the status name */
    snprintf(text, sizeof text, "%s (%s)%s%s", sfpc_strerror(rc),
             status ? status : sfpc_strerror_name(rc), dm[0] ? ": " : "", dm);
    return sfppy_error_new(rc, sfpc_strerror_name(rc), status, what, text);
}

static PyObject *raise_client(Client *self, int rc, const char *what)
{
    PyObject *exc = client_error(self, rc, what);
    if (exc) {
        PyErr_SetObject(sfppy_error, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* Takes the lock (the GIL released while waiting); -1 with ValueError set
 * when the client is closed. */
static int lock(Client *self)
{
    if (!PyThread_acquire_lock(self->lock, NOWAIT_LOCK)) {
        Py_BEGIN_ALLOW_THREADS
        PyThread_acquire_lock(self->lock, WAIT_LOCK);
        Py_END_ALLOW_THREADS
    }
    if (!self->c) {
        PyThread_release_lock(self->lock);
        PyErr_SetString(PyExc_ValueError, "operation on a closed sfp.Client");
        return -1;
    }
    return 0;
}

static void unlock(Client *self) { PyThread_release_lock(self->lock); }

/* A key from (tensor, step); tensor must outlive the key. */
static int make_key(Client *self, PyObject *tensor, unsigned long long step, sfpc_key *k)
{
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(tensor, &n);
    if (!s)
        return -1;
    if (n < 1 || n > 255 || strlen(s) != (size_t)n) {
        sfppy_raise_inval("tensor name must be 1..255 bytes without NUL (got %zd)", n);
        return -1;
    }
    k->rank = self->rank;
    k->step = step;
    k->tensor = s;
    return 0;
}

/* ------------------------------------------------------------- lifecycle */

static PyObject *client_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    Client *self = (Client *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    self->lock = PyThread_allocate_lock();
    self->pend = PyMem_RawCalloc(PEND_MAX, sizeof *self->pend);
    if (!self->lock || !self->pend) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static int client_init(Client *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"socket", "job", "rank", "timeout", "shm_size", "name", NULL};
    PyObject *sock_o = Py_None, *job_o = Py_None;
    unsigned rank = 0;
    double timeout = 5.0;
    Py_ssize_t shm_size = 64 << 20;
    const char *name = "python", *sock = NULL, *job;
    char defjob[129], host[64];
    sfpc_options o;
    sfpc *c = NULL;
    int rc;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OOIdns", kwlist, &sock_o, &job_o, &rank,
                                     &timeout, &shm_size, &name))
        return -1;
    if (self->c) {
        PyErr_SetString(PyExc_RuntimeError, "sfp.Client is already connected");
        return -1;
    }
    if (sock_o != Py_None) {
        if (!PyUnicode_Check(sock_o) || !(sock = PyUnicode_AsUTF8(sock_o))) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "socket must be a str or None");
            return -1;
        }
    } else {
        sock = getenv("SFP_SOCKET");
        if (!sock || !sock[0])
            sock = "/run/sfpd/sfpd.sock";
    }
    if (job_o == Py_None) {
        if (gethostname(host, sizeof host) < 0)
            strcpy(host, "localhost");
        host[sizeof host - 1] = 0;
        snprintf(defjob, sizeof defjob, "py-%s-%ld", host, (long)getpid());
        job = defjob;
    } else if (!PyUnicode_Check(job_o) || !(job = PyUnicode_AsUTF8(job_o))) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "job must be a str or None");
        return -1;
    }
    if (!job[0] || strlen(job) > 128) {
        sfppy_raise_inval("job must be 1..128 bytes");
        return -1;
    }
    if (strlen(sock) >= sizeof self->socket) {
        sfppy_raise_inval("socket path longer than %zu bytes", sizeof self->socket - 1);
        return -1;
    }
    if (!(timeout > 0 && timeout <= 86400)) {
        sfppy_raise_inval("timeout must be in (0, 86400] seconds");
        return -1;
    }
    if (shm_size < 4096) {
        sfppy_raise_inval("shm_size must be at least 4096 bytes");
        return -1;
    }
    snprintf(self->job, sizeof self->job, "%s", job);
    snprintf(self->socket, sizeof self->socket, "%s", sock);
    self->rank = rank;
    self->timeout_ms = timeout * 1000 < 1 ? 1 : (int)(timeout * 1000);
    sfpc_options_default(&o);
    o.socket_path = self->socket;
    o.job_id = self->job;
    o.rank = rank;
    o.shm_size = (size_t)shm_size;
    o.timeout_ms = self->timeout_ms;
    o.client_name = name;
    Py_BEGIN_ALLOW_THREADS
    rc = sfpc_connect(&o, &c);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        char what[192];
        snprintf(what, sizeof what, "connect to %s", self->socket);
        raise_client(self, rc, what);
        return -1;
    }
    self->c = c;
    self->shm = sfpc_shm(c, &self->shm_size);
    return 0;
}

static void client_dealloc(Client *self)
{
    sfpc_close(&self->c);
    if (self->lock)
        PyThread_free_lock(self->lock);
    PyMem_RawFree(self->pend);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *client_close(Client *self, PyObject *unused)
{
    if (!self->c)
        Py_RETURN_NONE;
    if (lock(self) < 0)
        return NULL;
    sfpc_close(&self->c);
    self->shm = NULL;
    self->npend = 0;
    unlock(self);
    Py_RETURN_NONE;
}

/* ----------------------------------------------------------- public API */

static PyObject *client_put(Client *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"tensor", "data", "step", "mantissa", "exponent", "coder",
                             "rounding", "dtype", "seed", "anchor", "group", NULL};
    PyObject *tensor, *data, *mantissa = Py_None, *dtype_o = Py_None;
    unsigned long long step = 0, seed = 0;
    int exponent = 8, anchor = -1, dtype_arg, rc;
    unsigned group = 0;
    const char *coder = "gecko", *rounding = "rne";
    sfppy_values v;
    sfp_params p;
    sfpc_key k;
    sfpc_put_info info;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "UO|K$OissOKiI", kwlist, &tensor, &data, &step,
                                     &mantissa, &exponent, &coder, &rounding, &dtype_o,
                                     &seed, &anchor, &group))
        return NULL;
    if (make_key(self, tensor, step, &k) < 0 || sfppy_dtype_arg(dtype_o, &dtype_arg) < 0 ||
        sfppy_values_get(data, dtype_arg, &v) < 0)
        return NULL;
    if (sfppy_params(v.dtype, mantissa, exponent, coder, rounding, group, seed, anchor, &p) < 0 ||
        lock(self) < 0) {
        sfppy_values_release(&v);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = sfpc_put(self->c, &k, v.data, v.count, &p, 0, &info);
    Py_END_ALLOW_THREADS
    if (rc < 0)
        raise_client(self, rc, "put");
    unlock(self);
    sfppy_values_release(&v);
    if (rc < 0)
        return NULL;
    return Py_BuildValue("{sKsisK}", "stored_bytes", (unsigned long long)info.stored_bytes,
                         "tier", info.tier, "policy_generation",
                         (unsigned long long)info.policy_generation);
}

static PyObject *client_get(Client *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"tensor", "step", "out", "raw", "drop", NULL};
    PyObject *tensor, *out_o = Py_None, *dst_o = NULL, *res = NULL;
    unsigned long long step = 0;
    int raw = 0, drop = 0, rc, have_ob = 0;
    sfpc_key k;
    sfpc_get_info gi;
    Py_buffer ob;
    size_t want;
    void *dst;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "U|K$Opp", kwlist, &tensor, &step, &out_o,
                                     &raw, &drop) ||
        make_key(self, tensor, step, &k) < 0 || lock(self) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = sfpc_get(self->c, &k, self->shm, self->shm_size, drop ? SFPC_GET_DROP : 0, &gi);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        raise_client(self, rc, "get");
        goto done;
    }
    if ((gi.dtype != SFP_DTYPE_F32 && gi.dtype != SFP_DTYPE_BF16) ||
        gi.bytes != gi.count * sfp_dtype_size(gi.dtype)) {
        raise_client(self, SFPC_EPROTO, "get");
        goto done;
    }
    want = raw ? (size_t)gi.bytes : (size_t)gi.count * 4;
    if (out_o != Py_None) {
        if (PyObject_GetBuffer(out_o, &ob, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
            goto done;
        have_ob = 1;
        if ((size_t)ob.len < want) {
            sfppy_raise_nospc("get", ob.len, want);
            goto done;
        }
        dst = ob.buf;
        dst_o = Py_NewRef(out_o);
    } else {
        if (want > PY_SSIZE_T_MAX || !(dst_o = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)want)))
            goto done;
        dst = PyByteArray_AS_STRING(dst_o);
    }
    Py_BEGIN_ALLOW_THREADS
    if (raw)
        memcpy(dst, self->shm, want);
    else
        sfppy_widen(dst, self->shm, gi.count, gi.dtype);
    Py_END_ALLOW_THREADS
    res = Py_BuildValue("OKs", dst_o, (unsigned long long)gi.count,
                        raw ? sfppy_dtype_name(gi.dtype) : "float32");
done:
    unlock(self);
    if (have_ob)
        PyBuffer_Release(&ob);
    Py_XDECREF(dst_o);
    return res;
}

static PyObject *client_drop(Client *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"tensor", "step", NULL};
    PyObject *tensor;
    unsigned long long step = 0;
    sfpc_key k;
    int rc;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "U|K", kwlist, &tensor, &step) ||
        make_key(self, tensor, step, &k) < 0 || lock(self) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = sfpc_drop(self->c, &k);
    Py_END_ALLOW_THREADS
    if (rc < 0)
        raise_client(self, rc, "drop");
    unlock(self);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *client_prefetch(Client *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"depth", NULL};
    unsigned depth = 0;
    int rc;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|I", kwlist, &depth) || lock(self) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = sfpc_prefetch(self->c, depth);
    Py_END_ALLOW_THREADS
    if (rc < 0)
        raise_client(self, rc, "prefetch");
    unlock(self);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* flush() and end_job(): no arguments, no reply body. */
static PyObject *simple_call(Client *self, int (*fn)(sfpc *), const char *what)
{
    int rc;
    if (lock(self) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = fn(self->c);
    Py_END_ALLOW_THREADS
    if (rc < 0)
        raise_client(self, rc, what);
    unlock(self);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *client_flush(Client *self, PyObject *unused)
{
    return simple_call(self, sfpc_flush, "flush");
}

static PyObject *client_end_job(Client *self, PyObject *unused)
{
    return simple_call(self, sfpc_end_job, "end_job");
}

static PyObject *client_stats(Client *self, PyObject *unused)
{
    sfpc_stats s;
    int rc;
    PyObject *d;
    if (lock(self) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = sfpc_stats_get(self->c, &s);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        raise_client(self, rc, "stats");
        unlock(self);
        return NULL;
    }
    unlock(self);
#define U(x) (unsigned long long)(x)
    d = Py_BuildValue("{sKsKsKsKsKsKsKsKsKsKsKsKsKsKsKss}",
                      "dram_bytes", U(s.dram_bytes), "dram_high_water", U(s.dram_high_water),
                      "dram_budget", U(s.dram_budget), "disk_bytes", U(s.disk_bytes),
                      "spills", U(s.spills), "prefetch_hits", U(s.prefetch_hits),
                      "prefetch_misses", U(s.prefetch_misses), "puts", U(s.puts),
                      "gets", U(s.gets), "errors", U(s.errors), "corrupt", U(s.corrupt),
                      "job_bytes_in", U(s.job_bytes_in), "job_bytes_stored",
                      U(s.job_bytes_stored), "job_frames", U(s.job_frames),
                      "job_dram_high_water", U(s.job_dram_high_water), "text",
                      s.text ? s.text : "");
#undef U
    sfpc_stats_free(&s);
    return d;
}

static PyObject *client_policy(Client *self, PyObject *unused)
{
    sfpc_policy p;
    int rc;
    if (lock(self) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = sfpc_policy_get(self->c, &p);
    Py_END_ALLOW_THREADS
    if (rc < 0)
        raise_client(self, rc, "policy");
    unlock(self);
    if (rc < 0)
        return NULL;
    return Py_BuildValue("{sKsIsIsIsIsOsIsIsisO}", "generation",
                         (unsigned long long)p.generation, "min_mantissa", p.min_mbits,
                         "max_mantissa", p.max_mbits, "min_exponent", p.min_ebits,
                         "max_exponent", p.max_ebits, "pin", p.pin ? Py_True : Py_False,
                         "pin_mantissa", p.pin_mbits, "pin_exponent", p.pin_ebits,
                         "coder", p.coder, "freeze", p.freeze ? Py_True : Py_False);
}

/* ------------------------------------------------- zero-copy (sfp.torch) */

/* [off, off + len) inside the shared memory, else -1 with sfp.Error. */
static int check_range(Client *self, unsigned long long off, unsigned long long len)
{
    if (off > self->shm_size || len > self->shm_size - off) {
        sfppy_raise_inval("range [%llu, +%llu) is outside the shared memory (%zu bytes)", off,
                          len, self->shm_size);
        return -1;
    }
    return 0;
}

/* Copies n bytes of values of size es and tells whether all are finite
 * (an exponent field of all ones is NaN or Inf). */
static int copy_finite(void *dst, const void *src, size_t n, unsigned es)
{
    uint32_t bad = 0;
    if (es == 4) {
        const uint32_t *s = src;
        uint32_t *d = dst;
        for (size_t i = 0; i < n / 4; i++) {
            uint32_t v = s[i];
            d[i] = v;
            bad |= ((v & 0x7f800000u) + 0x00800000u) & 0x80000000u;
        }
    } else {
        const uint16_t *s = src;
        uint16_t *d = dst;
        for (size_t i = 0; i < n / 2; i++) {
            uint16_t v = s[i];
            d[i] = v;
            bad |= (uint32_t)(((v & 0x7f80u) + 0x0080u) & 0x8000u);
        }
    }
    return bad == 0;
}

static PyObject *client_stage(Client *self, PyObject *args)
{
    unsigned long long off, ptr, len;
    unsigned es;
    int finite;
    if (!PyArg_ParseTuple(args, "KKKI", &off, &ptr, &len, &es) || lock(self) < 0)
        return NULL;
    if ((es != 2 && es != 4) || len % es || !ptr) {
        unlock(self);
        return sfppy_raise_inval("_stage: bad element size, length or pointer");
    }
    if (check_range(self, off, len) < 0) {
        unlock(self);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    finite = copy_finite(self->shm + off, (const void *)(uintptr_t)ptr, (size_t)len, es);
    Py_END_ALLOW_THREADS
    unlock(self);
    return PyBool_FromLong(finite);
}

static PyObject *client_unstage(Client *self, PyObject *args)
{
    unsigned long long off, ptr, len;
    if (!PyArg_ParseTuple(args, "KKK", &off, &ptr, &len) || lock(self) < 0)
        return NULL;
    if (!ptr) {
        unlock(self);
        return sfppy_raise_inval("_unstage: null pointer");
    }
    if (check_range(self, off, len) < 0) {
        unlock(self);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    memcpy((void *)(uintptr_t)ptr, self->shm + off, (size_t)len);
    Py_END_ALLOW_THREADS
    unlock(self);
    Py_RETURN_NONE;
}

/*
 * Gives the whole pages inside [off, off + len) back to the kernel: the
 * shared memory is a sparse memfd, so released pages cost no memory in
 * either process until they are written again (and then read as zeros).
 */
static PyObject *client_release(Client *self, PyObject *args)
{
    unsigned long long off, len, a, b, page = (unsigned long long)sysconf(_SC_PAGESIZE);
    int rc = 0;
    if (!PyArg_ParseTuple(args, "KK", &off, &len) || lock(self) < 0)
        return NULL;
    if (check_range(self, off, len) < 0) {
        unlock(self);
        return NULL;
    }
    a = (off + page - 1) / page * page;
    b = (off + len) / page * page;
    if (a < b)
        rc = madvise(self->shm + a, (size_t)(b - a), MADV_REMOVE);
    unlock(self);
    if (rc < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *client_put_async(Client *self, PyObject *args)
{
    PyObject *tensor, *mantissa, *dtype_o;
    unsigned long long step, off, count, seed;
    int exponent, dtype_arg, rc;
    const char *coder, *rounding;
    sfp_params p;
    sfpc_key k;
    if (!PyArg_ParseTuple(args, "UKKKOOissK", &tensor, &step, &off, &count, &dtype_o,
                          &mantissa, &exponent, &coder, &rounding, &seed) ||
        make_key(self, tensor, step, &k) < 0 || sfppy_dtype_arg(dtype_o, &dtype_arg) < 0)
        return NULL;
    if (!dtype_arg)
        dtype_arg = SFP_DTYPE_F32;
    if (sfppy_params((sfp_dtype)dtype_arg, mantissa, exponent, coder, rounding, 0, seed, -1,
                     &p) < 0 ||
        lock(self) < 0)
        return NULL;
    if (count > self->shm_size || check_range(self, off, count * sfp_dtype_size(p.dtype)) < 0) {
        if (!PyErr_Occurred())
            sfppy_raise_inval("_put_async: count outside the shared memory");
        unlock(self);
        return NULL;
    }
    if (self->npend == PEND_MAX) {
        unlock(self);
        return sfppy_raise_inval("_put_async: %d puts pending, call _flush first", PEND_MAX);
    }
    Py_BEGIN_ALLOW_THREADS
    rc = sfpc_put(self->c, &k, self->shm + off, (size_t)count, &p, SFPC_ASYNC,
                  &self->pend[self->npend]);
    Py_END_ALLOW_THREADS
    if (rc == 0)
        self->npend++;
    else
        raise_client(self, rc, "put");
    unlock(self);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/*
 * Waits for the asynchronous puts. Returns (results, error): one
 * (stored_bytes, tier, policy_generation) per put in order, tier -1 for a
 * put sfpd refused; error is None or the sfp.Error of the first failure
 * (not raised: the caller decides).
 */
static PyObject *client_flush_async(Client *self, PyObject *unused)
{
    PyObject *list, *err = NULL, *res;
    int rc;
    if (lock(self) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = sfpc_flush(self->c);
    Py_END_ALLOW_THREADS
    if (!(list = PyList_New((Py_ssize_t)self->npend))) {
        unlock(self);
        return NULL;
    }
    for (size_t i = 0; i < self->npend; i++) {
        const sfpc_put_info *in = &self->pend[i];
        PyObject *t = Py_BuildValue("KiK", (unsigned long long)in->stored_bytes, in->tier,
                                    (unsigned long long)in->policy_generation);
        if (!t) {
            Py_DECREF(list);
            unlock(self);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    }
    self->npend = 0;
    if (rc < 0 && !(err = client_error(self, rc, "put"))) {
        Py_DECREF(list);
        unlock(self);
        return NULL;
    }
    unlock(self);
    res = Py_BuildValue("NO", list, err ? err : Py_None);
    Py_XDECREF(err);
    return res;
}

static PyObject *client_get_shm(Client *self, PyObject *args)
{
    PyObject *tensor;
    unsigned long long step, off, cap;
    int drop, rc;
    sfpc_key k;
    sfpc_get_info gi;
    if (!PyArg_ParseTuple(args, "UKKKp", &tensor, &step, &off, &cap, &drop) ||
        make_key(self, tensor, step, &k) < 0 || lock(self) < 0)
        return NULL;
    if (check_range(self, off, cap) < 0) {
        unlock(self);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = sfpc_get(self->c, &k, self->shm + off, (size_t)cap, drop ? SFPC_GET_DROP : 0, &gi);
    Py_END_ALLOW_THREADS
    if (rc < 0)
        raise_client(self, rc, "get");
    unlock(self);
    if (rc < 0)
        return NULL;
    return Py_BuildValue("KKsO", (unsigned long long)gi.count, (unsigned long long)gi.bytes,
                         sfppy_dtype_name(gi.dtype), gi.hit ? Py_True : Py_False);
}

/* ---------------------------------------------------------------- type */

static PyObject *get_job(Client *self, void *u) { return PyUnicode_FromString(self->job); }
static PyObject *get_socket(Client *self, void *u) { return PyUnicode_FromString(self->socket); }
static PyObject *get_rank(Client *self, void *u) { return PyLong_FromUnsignedLong(self->rank); }
static PyObject *get_shm_size(Client *self, void *u) { return PyLong_FromSize_t(self->shm_size); }
static PyObject *get_timeout(Client *self, void *u) { return PyFloat_FromDouble(self->timeout_ms / 1000.0); }
static PyObject *get_closed(Client *self, void *u) { return PyBool_FromLong(self->c == NULL); }
static PyObject *get_pending(Client *self, void *u) { return PyLong_FromSize_t(self->npend); }

static PyGetSetDef client_getset[] = {
    {"job", (getter)get_job, NULL, "The job this connection belongs to.", NULL},
    {"socket", (getter)get_socket, NULL, "Path of sfpd's Unix socket.", NULL},
    {"rank", (getter)get_rank, NULL, "Rank of this connection in the job.", NULL},
    {"shm_size", (getter)get_shm_size, NULL, "Bytes of shared memory with sfpd.", NULL},
    {"timeout", (getter)get_timeout, NULL, "Bound of every call in seconds.", NULL},
    {"closed", (getter)get_closed, NULL, "True after close().", NULL},
    {"_pending", (getter)get_pending, NULL, "Asynchronous puts not yet flushed.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

#define KW (METH_VARARGS | METH_KEYWORDS)
#define FN(f) (PyCFunction)(void (*)(void))(f)
static PyMethodDef client_methods[] = {
    {"put", FN(client_put), KW,
     "put(tensor, data, step=0, *, mantissa=None, exponent=8, coder='gecko', rounding='rne',\n"
     "    dtype=None, seed=0, anchor=-1, group=0) -> dict\n\n"
     "Stores the values of data (buffer protocol) under (rank, step, tensor)."},
    {"get", FN(client_get), KW,
     "get(tensor, step=0, *, out=None, raw=False, drop=False) -> (buffer, count, dtype)"},
    {"drop", FN(client_drop), KW, "drop(tensor, step=0): forgets a stash."},
    {"prefetch", FN(client_prefetch), KW,
     "prefetch(depth=0): backward starts; keep depth stashes ahead in DRAM."},
    {"flush", (PyCFunction)client_flush, METH_NOARGS, "Waits for asynchronous puts."},
    {"end_job", (PyCFunction)client_end_job, METH_NOARGS, "Frees every stash of the job."},
    {"stats", (PyCFunction)client_stats, METH_NOARGS, "The daemon's counters and this job's."},
    {"policy", (PyCFunction)client_policy, METH_NOARGS,
     "The width policy an operator set for this job (sfpctl policy set)."},
    {"close", (PyCFunction)client_close, METH_NOARGS, "Closes the connection."},
    {"_stage", (PyCFunction)client_stage, METH_VARARGS,
     "_stage(offset, address, nbytes, itemsize) -> all finite: copy into the shm."},
    {"_unstage", (PyCFunction)client_unstage, METH_VARARGS,
     "_unstage(offset, address, nbytes): copy out of the shm."},
    {"_release", (PyCFunction)client_release, METH_VARARGS,
     "_release(offset, nbytes): frees the whole pages of a range of the shm."},
    {"_put_async", (PyCFunction)client_put_async, METH_VARARGS,
     "_put_async(tensor, step, offset, count, dtype, mantissa, exponent, coder, rounding, seed)"},
    {"_flush", (PyCFunction)client_flush_async, METH_NOARGS,
     "_flush() -> ([(stored_bytes, tier, policy_generation)], error or None)"},
    {"_get_shm", (PyCFunction)client_get_shm, METH_VARARGS,
     "_get_shm(tensor, step, offset, capacity, drop) -> (count, nbytes, dtype, hit)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject client_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sfp._sfp.Client",
    .tp_basicsize = sizeof(Client),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Client(socket=None, job=None, rank=0, timeout=5.0, shm_size=64 MiB, name='python')\n\n"
              "One connection to sfpd over its Unix socket (libsfpclient). See sfp.Client.",
    .tp_new = client_new,
    .tp_init = (initproc)client_init,
    .tp_dealloc = (destructor)client_dealloc,
    .tp_methods = client_methods,
    .tp_getset = client_getset,
};

int sfppy_client_add(PyObject *m)
{
    if (PyType_Ready(&client_type) < 0)
        return -1;
    if (PyModule_AddObjectRef(m, "Client", (PyObject *)&client_type) < 0)
        return -1;
    return PyModule_AddIntConstant(m, "_PENDING_MAX", PEND_MAX);
}
