/*
 * pybitwave.c - sfp._sfp.BitWave: libsfp's BitWave controller (one
 * network-wide container width moved by the training loss, method-spec
 * §5.2), as sfp-train runs it. sfp.torch.offload(policy="bitwave") feeds
 * it with offload.observe_loss(loss).
 */
#include "sfppy.h"

#include <sfp/policy.h>

typedef struct {
    PyObject_HEAD
    sfp_bitwave bw;
} BitWave;

static int bitwave_init(BitWave *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"m_init", "m_min", "m_max", "e_init", "e_min", "e_max",
                             "beta", "tau", "period", "warmup", NULL};
    sfp_bitwave_config c;
    unsigned long long warmup;
    int rc;
    sfp_bitwave_config_default(&c);
    warmup = c.warmup;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|$IIIIIIddIK", kwlist, &c.m_init, &c.m_min,
                                     &c.m_max, &c.e_init, &c.e_min, &c.e_max, &c.beta, &c.tau,
                                     &c.period, &warmup))
        return -1;
    c.warmup = warmup;
    if ((rc = sfp_bitwave_init(&self->bw, &c)) < 0) {
        sfppy_raise(rc, sfp_strerror_name(rc), NULL, "BitWave",
                    "inconsistent configuration (need m_min <= m_init <= m_max <= 23, "
                    "1 <= e_min <= e_init <= e_max <= 8, 0 <= beta < 1, tau >= 0, period >= 1)");
        return -1;
    }
    return 0;
}

static PyObject *bitwave_observe(BitWave *self, PyObject *args)
{
    unsigned long long step;
    double loss;
    int rc;
    if (!PyArg_ParseTuple(args, "Kd", &step, &loss))
        return NULL;
    if ((rc = sfp_bitwave_observe(&self->bw, step, loss)) < 0)
        return sfppy_raise(rc, sfp_strerror_name(rc), NULL, "BitWave.observe",
                           "the loss is not finite");
    Py_RETURN_NONE;
}

static PyObject *bitwave_reset(BitWave *self, PyObject *unused)
{
    sfp_bitwave_reset_average(&self->bw);
    Py_RETURN_NONE;
}

static PyObject *bitwave_config(BitWave *self, PyObject *unused)
{
    const sfp_bitwave_config *c = &self->bw.cfg;
    return Py_BuildValue("{sIsIsIsIsIsIsdsdsIsK}", "m_init", c->m_init, "m_min", c->m_min,
                         "m_max", c->m_max, "e_init", c->e_init, "e_min", c->e_min, "e_max",
                         c->e_max, "beta", c->beta, "tau", c->tau, "period", c->period,
                         "warmup", (unsigned long long)c->warmup);
}

static PyObject *get_m(BitWave *self, void *u) { return PyLong_FromUnsignedLong(self->bw.m); }
static PyObject *get_e(BitWave *self, void *u) { return PyLong_FromUnsignedLong(self->bw.e); }
static PyObject *get_down(BitWave *self, void *u)
{
    return PyLong_FromUnsignedLongLong(self->bw.decisions_down);
}
static PyObject *get_up(BitWave *self, void *u)
{
    return PyLong_FromUnsignedLongLong(self->bw.decisions_up);
}
static PyObject *get_avg(BitWave *self, void *u)
{
    if (!self->bw.have_avg)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(self->bw.avg);
}

static PyGetSetDef bitwave_getset[] = {
    {"mantissa", (getter)get_m, NULL, "Current mantissa bits.", NULL},
    {"exponent", (getter)get_e, NULL, "Current exponent bits.", NULL},
    {"decisions_down", (getter)get_down, NULL, "Width decrements so far.", NULL},
    {"decisions_up", (getter)get_up, NULL, "Width increments so far.", NULL},
    {"average", (getter)get_avg, NULL, "Loss average (None before the first loss).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef bitwave_methods[] = {
    {"observe", (PyCFunction)bitwave_observe, METH_VARARGS,
     "observe(step, loss): feeds the loss of a step (steps start at 0)."},
    {"reset_average", (PyCFunction)bitwave_reset, METH_NOARGS,
     "Forgets the loss average (after a learning-rate change)."},
    {"config", (PyCFunction)bitwave_config, METH_NOARGS, "The configuration as a dict."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject bitwave_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sfp._sfp.BitWave",
    .tp_basicsize = sizeof(BitWave),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "BitWave(*, m_init=7, m_min=2, m_max=23, e_init=8, e_min=4, e_max=8,\n"
              "        beta=0.99, tau=0.01, period=10, warmup=50)\n\n"
              "libsfp's BitWave width controller (defaults: sfp_bitwave_config_default).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)bitwave_init,
    .tp_methods = bitwave_methods,
    .tp_getset = bitwave_getset,
};

int sfppy_bitwave_add(PyObject *m)
{
    if (PyType_Ready(&bitwave_type) < 0)
        return -1;
    return PyModule_AddObjectRef(m, "BitWave", (PyObject *)&bitwave_type);
}
