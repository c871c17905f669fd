/* CaptureStats.add (capture/stats.py) in C.
 *
 * Tally(types, violations, on_control) counts what CaptureStats.add counts for
 * each CapturedMessage: the integer counters stay here until take() returns
 * them (and starts again from zero), in the order of COUNTERS below; the
 * ``types`` and ``violations`` Counters are updated in place; pings and pongs
 * are handed to ``on_control(item)`` (their round-trip matching stays in
 * Python).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "../_cslots.h"

enum {
    MESSAGES,
    FROM_CLIENT,
    WIRE_BYTES,
    PAYLOAD_BYTES,
    COMPRESSED_WIRE,
    COMPRESSED_PLAIN,
    PLAIN_WIRE,
    PLAIN_PAYLOAD,
    UNDECODED,
    WSP_MESSAGES,
    WSP_ERRORS,
    OPCODES, /* 16 of them */
    COUNTERS = OPCODES + 16
};

typedef struct {
    PyObject_HEAD
    long long counts[COUNTERS];
    PyObject *types;       /* Counter: payload class -> messages */
    PyObject *violations;  /* Counter: code -> messages */
    PyObject *on_control;  /* callable(item) for pings and pongs */
} Tally;

static PyObject *s_msg, *s_opcode, *s_direction, *s_wire_length, *s_payload, *s_compressed,
    *s_note, *s_violations, *s_wsp, *s_client;

static int
bump(PyObject *counter, PyObject *key)
{
    PyObject *old = PyDict_GetItemWithError(counter, key); /* borrowed */
    if (old == NULL && PyErr_Occurred())
        return -1;
    PyObject *one = PyLong_FromLong(1);
    if (one == NULL)
        return -1;
    PyObject *value = old == NULL ? Py_NewRef(one) : PyNumber_Add(old, one);
    Py_DECREF(one);
    if (value == NULL)
        return -1;
    int rc = PyDict_SetItem(counter, key, value);
    Py_DECREF(value);
    return rc;
}

static long long
as_count(PyObject *value, int *failed)
{
    long long n = PyLong_AsLongLong(value);
    if (n == -1 && PyErr_Occurred())
        *failed = 1;
    return n;
}

static PyObject *
Tally_add(Tally *t, PyObject *item)
{
    PyObject *msg = NULL, *opcode = NULL, *direction = NULL, *wire = NULL, *payload = NULL,
             *compressed = NULL, *note = NULL, *violations = NULL, *wsp = NULL;
    PyObject *result = NULL;
    int failed = 0;
    if ((msg = SLOT_GET(item, s_msg)) == NULL || (opcode = SLOT_GET(msg, s_opcode)) == NULL
        || (direction = SLOT_GET(item, s_direction)) == NULL
        || (wire = SLOT_GET(msg, s_wire_length)) == NULL
        || (payload = SLOT_GET(msg, s_payload)) == NULL
        || (compressed = SLOT_GET(msg, s_compressed)) == NULL
        || (note = SLOT_GET(item, s_note)) == NULL
        || (violations = SLOT_GET(item, s_violations)) == NULL
        || (wsp = SLOT_GET(item, s_wsp)) == NULL)
        goto done;
    long op = PyLong_AsLong(opcode);
    if (op == -1 && PyErr_Occurred())
        goto done;
    if (op < 0 || op > 15) {
        PyErr_SetString(PyExc_ValueError, "an opcode is 0..15");
        goto done;
    }
    Py_ssize_t size = PyObject_Length(payload);
    if (size < 0)
        goto done;
    long long wire_length = as_count(wire, &failed);
    int is_compressed = PyObject_IsTrue(compressed);
    int client = PyObject_RichCompareBool(direction, s_client, Py_EQ);
    int has_violations = PyObject_IsTrue(violations);
    if (failed || is_compressed < 0 || client < 0 || has_violations < 0)
        goto done;
    /* the Counters first: nothing is counted when they fail */
    if (has_violations) {
        PyObject *iter = PyObject_GetIter(violations);
        if (iter == NULL)
            goto done;
        PyObject *code;
        while ((code = PyIter_Next(iter)) != NULL) {
            int rc = bump(t->violations, code);
            Py_DECREF(code);
            if (rc < 0) {
                Py_DECREF(iter);
                goto done;
            }
        }
        Py_DECREF(iter);
        if (PyErr_Occurred())
            goto done;
    }
    int wsp_message = 0, wsp_error = 0;
    if (wsp != Py_None) {
        if (PyTuple_CheckExact(wsp)) {
            if (PyTuple_GET_SIZE(wsp) < 2) {
                PyErr_SetString(PyExc_ValueError, "wsp is (version, message)");
                goto done;
            }
            PyObject *decoded = SLOT_GET(PyTuple_GET_ITEM(wsp, 1), s_payload);
            if (decoded == NULL)
                goto done;
            int rc = bump(t->types, (PyObject *)Py_TYPE(decoded));
            Py_DECREF(decoded);
            if (rc < 0)
                goto done;
            wsp_message = 1;
        }
        else
            wsp_error = 1;
    }
    long long *c = t->counts;
    c[MESSAGES] += 1;
    c[OPCODES + op] += 1;
    c[FROM_CLIENT] += client;
    c[WIRE_BYTES] += wire_length;
    c[PAYLOAD_BYTES] += size;
    if (is_compressed) {
        if (note == Py_None) {
            c[COMPRESSED_WIRE] += wire_length;
            c[COMPRESSED_PLAIN] += size;
        }
    }
    else {
        c[PLAIN_WIRE] += wire_length;
        c[PLAIN_PAYLOAD] += size;
    }
    if (note != Py_None)
        c[UNDECODED] += 1;
    c[WSP_MESSAGES] += wsp_message;
    c[WSP_ERRORS] += wsp_error;
    if (op == 9 || op == 10) {
        PyObject *done_ = PyObject_CallOneArg(t->on_control, item);
        if (done_ == NULL)
            goto done;
        Py_DECREF(done_);
    }
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(msg);
    Py_XDECREF(opcode);
    Py_XDECREF(direction);
    Py_XDECREF(wire);
    Py_XDECREF(payload);
    Py_XDECREF(compressed);
    Py_XDECREF(note);
    Py_XDECREF(violations);
    Py_XDECREF(wsp);
    return result;
}

static PyObject *
Tally_take(Tally *t, PyObject *Py_UNUSED(ignored))
{
    PyObject *out = PyTuple_New(COUNTERS);
    if (out == NULL)
        return NULL;
    for (int i = 0; i < COUNTERS; i++) {
        PyObject *n = PyLong_FromLongLong(t->counts[i]);
        if (n == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, n);
    }
    memset(t->counts, 0, sizeof t->counts);
    return out;
}

static int
Tally_init(Tally *t, PyObject *args, PyObject *kwargs)
{
    PyObject *types, *violations, *on_control;
    if (!PyArg_ParseTuple(args, "O!O!O", &PyDict_Type, &types, &PyDict_Type, &violations,
                          &on_control))
        return -1;
    Py_XSETREF(t->types, Py_NewRef(types));
    Py_XSETREF(t->violations, Py_NewRef(violations));
    Py_XSETREF(t->on_control, Py_NewRef(on_control));
    memset(t->counts, 0, sizeof t->counts);
    return 0;
}

static int
Tally_traverse(Tally *t, visitproc visit, void *arg)
{
    Py_VISIT(t->types);
    Py_VISIT(t->violations);
    Py_VISIT(t->on_control);
    return 0;
}

static int
Tally_clear(Tally *t)
{
    Py_CLEAR(t->types);
    Py_CLEAR(t->violations);
    Py_CLEAR(t->on_control);
    return 0;
}

static void
Tally_dealloc(Tally *t)
{
    PyObject_GC_UnTrack(t);
    Tally_clear(t);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static PyMethodDef Tally_methods[] = {
    {"add", (PyCFunction)Tally_add, METH_O, "Count one CapturedMessage."},
    {"take", (PyCFunction)Tally_take, METH_NOARGS,
     "The integer counters (see the module docstring); they start again from zero."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TallyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wsproto_tools.capture._tally.Tally",
    .tp_doc = "CaptureStats.add in C.",
    .tp_basicsize = sizeof(Tally),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Tally_init,
    .tp_dealloc = (destructor)Tally_dealloc,
    .tp_traverse = (traverseproc)Tally_traverse,
    .tp_clear = (inquiry)Tally_clear,
    .tp_methods = Tally_methods,
};

static struct PyModuleDef tally_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "wsproto_tools.capture._tally",
    .m_doc = "CaptureStats.add in C.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__tally(void)
{
#define INTERN(var, text)                                     \
    if ((var = PyUnicode_InternFromString(text)) == NULL) \
        return NULL
    INTERN(s_msg, "msg");
    INTERN(s_opcode, "opcode");
    INTERN(s_direction, "direction");
    INTERN(s_wire_length, "wire_length");
    INTERN(s_payload, "payload");
    INTERN(s_compressed, "compressed");
    INTERN(s_note, "note");
    INTERN(s_violations, "violations");
    INTERN(s_wsp, "wsp");
    INTERN(s_client, "client");
#undef INTERN
    if (PyType_Ready(&TallyType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&tally_module);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObject(module, "Tally", Py_NewRef(&TallyType)) < 0) {
        Py_DECREF(&TallyType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
