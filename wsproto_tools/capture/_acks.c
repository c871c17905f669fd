/* capture/acks.py's AckTracker in C: the same counts, per message.
 *
 * AckTracker(highest_sent, latencies, sequenced, acknowledge_cls, batch_cls,
 * max_entries) keeps, per sender, the sequence numbers waiting for the peer's
 * Acknowledge (a dict: sequence -> capture time, and a ring of the sequences in
 * the order they were sent); ``highest_sent`` and ``latencies`` are the Python
 * dict and list the caller reads.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "../_cslots.h"

typedef struct {
    PyObject *sent;       /* dict: sequence (int) -> capture time (float) */
    PyObject **order;     /* ring of sequence ints (new references) */
    Py_ssize_t head, count, cap;
} Pending;

typedef struct {
    PyObject_HEAD
    Pending pending[2];   /* 0: sent by the client, 1: by the server */
    PyObject *highest_sent;
    PyObject *latencies;
    PyObject *sequenced;  /* frozenset of payload classes */
    PyObject *acknowledge_cls;
    PyObject *batch_cls;
    Py_ssize_t max_entries;
    Py_ssize_t retransmissions;
} Tracker;

static PyObject *s_payload, *s_sequence, *s_session_id, *s_messages;

static int
order_push(Pending *p, PyObject *sequence)
{
    if (p->count == p->cap) {
        Py_ssize_t cap = p->cap ? p->cap * 2 : 64;
        PyObject **ring = PyMem_Malloc((size_t)cap * sizeof(PyObject *));
        if (ring == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < p->count; i++)
            ring[i] = p->order[(p->head + i) % p->cap];
        PyMem_Free(p->order);
        p->order = ring;
        p->head = 0;
        p->cap = cap;
    }
    p->order[(p->head + p->count) % p->cap] = Py_NewRef(sequence);
    p->count++;
    return 0;
}

static int
sequenced_message(Tracker *t, PyObject *message, int client, PyObject *ts)
{
    int rc = -1;
    PyObject *sequence = NULL, *session = NULL, *key = NULL;
    if ((sequence = SLOT_GET(message, s_sequence)) == NULL)
        goto done;
    int zero = PyObject_Not(sequence);
    if (zero) {
        rc = zero < 0 ? -1 : 0;
        goto done;
    }
    if ((session = SLOT_GET(message, s_session_id)) == NULL)
        goto done;
    if ((key = PyTuple_Pack(2, session, client ? Py_True : Py_False)) == NULL)
        goto done;
    PyObject *highest = PyDict_GetItemWithError(t->highest_sent, key); /* borrowed */
    if (highest == NULL && PyErr_Occurred())
        goto done;
    int again = 0;
    if (highest != NULL && (again = PyObject_RichCompareBool(sequence, highest, Py_LE)) < 0)
        goto done;
    if (again)
        t->retransmissions++;
    else {
        if (PyDict_GET_SIZE(t->highest_sent) >= t->max_entries)
            PyDict_Clear(t->highest_sent);
        if (PyDict_SetItem(t->highest_sent, key, sequence) < 0)
            goto done;
    }
    Pending *p = &t->pending[client ? 0 : 1];
    if (PyDict_GET_SIZE(p->sent) < t->max_entries) {
        int known = PyDict_Contains(p->sent, sequence);
        if (known < 0)
            goto done;
        if (!known && (PyDict_SetItem(p->sent, sequence, ts) < 0 || order_push(p, sequence) < 0))
            goto done;
    }
    rc = 0;
done:
    Py_XDECREF(sequence);
    Py_XDECREF(session);
    Py_XDECREF(key);
    return rc;
}

static int
acknowledge(Tracker *t, PyObject *payload, int client, double now)
{
    Pending *p = &t->pending[client ? 1 : 0]; /* it acknowledges the peer's messages */
    if (p->count == 0)
        return 0;
    PyObject *upto = SLOT_GET(payload, s_sequence);
    if (upto == NULL)
        return -1;
    int rc = 0;
    while (p->count) {
        PyObject *front = p->order[p->head];
        int covered = PyObject_RichCompareBool(front, upto, Py_LE);
        if (covered <= 0) {
            rc = covered;
            break;
        }
        p->order[p->head] = NULL;
        p->head = (p->head + 1) % p->cap;
        p->count--;
        PyObject *at = PyDict_GetItemWithError(p->sent, front); /* borrowed */
        if (at == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_KeyError, "a pending sequence is missing");
            Py_DECREF(front);
            rc = -1;
            break;
        }
        double sent = PyFloat_AsDouble(at);
        if (sent == -1.0 && PyErr_Occurred()) {
            Py_DECREF(front);
            rc = -1;
            break;
        }
        int popped = PyDict_DelItem(p->sent, front);
        Py_DECREF(front);
        if (popped < 0) {
            rc = -1;
            break;
        }
        if (PyList_GET_SIZE(t->latencies) < t->max_entries) {
            PyObject *latency = PyFloat_FromDouble(now - sent);
            if (latency == NULL || PyList_Append(t->latencies, latency) < 0) {
                Py_XDECREF(latency);
                rc = -1;
                break;
            }
            Py_DECREF(latency);
        }
    }
    Py_DECREF(upto);
    return rc;
}

static int
one(Tracker *t, PyObject *message, int client, PyObject *ts, double now)
{
    PyObject *payload = SLOT_GET(message, s_payload);
    if (payload == NULL)
        return -1;
    int rc = 0;
    PyObject *cls = (PyObject *)Py_TYPE(payload);
    int sequenced = PySet_Contains(t->sequenced, cls);
    if (sequenced < 0)
        rc = -1;
    else if (sequenced)
        rc = sequenced_message(t, message, client, ts);
    else if (cls == t->acknowledge_cls)
        rc = acknowledge(t, payload, client, now);
    Py_DECREF(payload);
    return rc;
}

static PyObject *
Tracker_feed(Tracker *t, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "feed(message, client, ts)");
        return NULL;
    }
    PyObject *message = args[0], *ts = args[2];
    int client = PyObject_IsTrue(args[1]);
    double now = PyFloat_AsDouble(ts);
    if (client < 0 || (now == -1.0 && PyErr_Occurred()))
        return NULL;
    PyObject *payload = SLOT_GET(message, s_payload);
    if (payload == NULL)
        return NULL;
    int rc = 0;
    if ((PyObject *)Py_TYPE(payload) == t->batch_cls) {
        PyObject *items = SLOT_GET(payload, s_messages);
        if (items == NULL)
            rc = -1;
        else {
            PyObject *seq = PySequence_Fast(items, "a Batch holds a sequence of messages");
            Py_DECREF(items);
            if (seq == NULL)
                rc = -1;
            else {
                Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
                for (Py_ssize_t i = 0; i < n && rc == 0; i++)
                    rc = one(t, PySequence_Fast_GET_ITEM(seq, i), client, ts, now);
                Py_DECREF(seq);
            }
        }
    }
    else
        rc = one(t, message, client, ts, now);
    Py_DECREF(payload);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
Tracker_unacked(Tracker *t, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(PyDict_GET_SIZE(t->pending[0].sent)
                              + PyDict_GET_SIZE(t->pending[1].sent));
}

static PyObject *
Tracker_retransmissions(Tracker *t, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(t->retransmissions);
}

static void
pending_clear(Pending *p)
{
    Py_CLEAR(p->sent);
    for (Py_ssize_t i = 0; i < p->count; i++)
        Py_CLEAR(p->order[(p->head + i) % p->cap]);
    PyMem_Free(p->order);
    p->order = NULL;
    p->head = p->count = p->cap = 0;
}

static int
Tracker_init(Tracker *t, PyObject *args, PyObject *kwargs)
{
    PyObject *highest, *latencies, *sequenced, *ack_cls, *batch_cls;
    Py_ssize_t max_entries;
    if (!PyArg_ParseTuple(args, "O!O!O!OOn", &PyDict_Type, &highest, &PyList_Type, &latencies,
                          &PyFrozenSet_Type, &sequenced, &ack_cls, &batch_cls, &max_entries))
        return -1;
    for (int i = 0; i < 2; i++) {
        pending_clear(&t->pending[i]);
        if ((t->pending[i].sent = PyDict_New()) == NULL)
            return -1;
    }
    Py_XSETREF(t->highest_sent, Py_NewRef(highest));
    Py_XSETREF(t->latencies, Py_NewRef(latencies));
    Py_XSETREF(t->sequenced, Py_NewRef(sequenced));
    Py_XSETREF(t->acknowledge_cls, Py_NewRef(ack_cls));
    Py_XSETREF(t->batch_cls, Py_NewRef(batch_cls));
    t->max_entries = max_entries;
    t->retransmissions = 0;
    return 0;
}

static int
Tracker_traverse(Tracker *t, visitproc visit, void *arg)
{
    for (int i = 0; i < 2; i++)
        Py_VISIT(t->pending[i].sent);
    Py_VISIT(t->highest_sent);
    Py_VISIT(t->latencies);
    Py_VISIT(t->sequenced);
    Py_VISIT(t->acknowledge_cls);
    Py_VISIT(t->batch_cls);
    return 0;
}

static int
Tracker_clear(Tracker *t)
{
    for (int i = 0; i < 2; i++)
        pending_clear(&t->pending[i]);
    Py_CLEAR(t->highest_sent);
    Py_CLEAR(t->latencies);
    Py_CLEAR(t->sequenced);
    Py_CLEAR(t->acknowledge_cls);
    Py_CLEAR(t->batch_cls);
    return 0;
}

static void
Tracker_dealloc(Tracker *t)
{
    PyObject_GC_UnTrack(t);
    Tracker_clear(t);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static PyMethodDef Tracker_methods[] = {
    {"feed", (PyCFunction)(void (*)(void))Tracker_feed, METH_FASTCALL,
     "feed(message, client, ts): one decoded message (a Batch: each item)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Tracker_getset[] = {
    {"unacked", (getter)Tracker_unacked, NULL, "Sequenced messages not acknowledged.", NULL},
    {"retransmissions", (getter)Tracker_retransmissions, NULL,
     "Sequence numbers the session had already sent.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject TrackerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wsproto_tools.capture._acks.AckTracker",
    .tp_doc = "capture/acks.py's AckTracker in C.",
    .tp_basicsize = sizeof(Tracker),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Tracker_init,
    .tp_dealloc = (destructor)Tracker_dealloc,
    .tp_traverse = (traverseproc)Tracker_traverse,
    .tp_clear = (inquiry)Tracker_clear,
    .tp_methods = Tracker_methods,
    .tp_getset = Tracker_getset,
};

static struct PyModuleDef acks_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "wsproto_tools.capture._acks",
    .m_doc = "Ack latency and wsp retransmissions, in C.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__acks(void)
{
#define INTERN(var, text)                                     \
    if ((var = PyUnicode_InternFromString(text)) == NULL) \
        return NULL
    INTERN(s_payload, "payload");
    INTERN(s_sequence, "sequence");
    INTERN(s_session_id, "session_id");
    INTERN(s_messages, "messages");
#undef INTERN
    if (PyType_Ready(&TrackerType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&acks_module);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObject(module, "AckTracker", Py_NewRef(&TrackerType)) < 0) {
        Py_DECREF(&TrackerType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
