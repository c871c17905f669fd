/* The common WebSocket frame, read in C (see ws/messages.py, scan_messages).
 *
 * scan(data, start, client, decompress, max_payload, max_message, on_failure)
 * reads frames of ``data`` from ``start`` for as long as each one is the
 * common case of MessageAssembler.receive_raw's fast path: a whole (FIN) text
 * or binary message, RSV1 only when ``decompress`` is given, masked as its
 * sender must, its length in the shortest form and within both limits.  Each
 * becomes a WsMessage (unmasked, inflated by ``decompress``, text decoded) as
 * the Python path builds it.  It stops before the first frame that is anything
 * else or incomplete, and right after a message whose inflation raised
 * FrameError (that message is ``on_failure(opcode, payload, wire_length,
 * error)``), so that the caller can replace the compression context.
 * Returns (messages, position reached, whether it stopped after a failure).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static PyTypeObject *message_cls;   /* WsMessage */
static PyObject *setters[9];        /* its slots, in order */
static PyObject *frame_error;       /* FrameError */
static PyObject *invalid_utf8;      /* ("invalid-utf8",) */
static PyObject *no_violations;     /* () */

static void
unmask(unsigned char *out, const unsigned char *in, Py_ssize_t size, const unsigned char *key)
{
    Py_ssize_t i = 0;
    if (size >= 8) {
        uint64_t key8;
        unsigned char k[8] = {key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]};
        memcpy(&key8, k, 8);
        for (; i + 8 <= size; i += 8) {
            uint64_t chunk;
            memcpy(&chunk, in + i, 8);
            chunk ^= key8;
            memcpy(out + i, &chunk, 8);
        }
    }
    for (; i < size; i++)
        out[i] = in[i] ^ key[i & 3];
}

static PyObject *
make_message(long opcode, PyObject *payload, int compressed, Py_ssize_t wire_length,
             PyObject *violations, PyObject *text)
{
    PyObject *msg = message_cls->tp_alloc(message_cls, 0);
    if (msg == NULL)
        return NULL;
    PyObject *values[9];
    values[0] = PyLong_FromLong(opcode);
    values[1] = Py_NewRef(payload);
    values[2] = Py_NewRef(compressed ? Py_True : Py_False);
    values[3] = PyLong_FromLong(1);
    values[4] = PyLong_FromSsize_t(wire_length);
    values[5] = Py_NewRef(violations);
    values[6] = Py_NewRef(Py_None);
    values[7] = Py_NewRef(Py_None);
    values[8] = Py_NewRef(text);
    int failed = 0;
    for (int i = 0; i < 9; i++) {
        if (values[i] == NULL
            || (!failed && Py_TYPE(setters[i])->tp_descr_set(setters[i], msg, values[i]) < 0))
            failed = 1;
    }
    for (int i = 0; i < 9; i++)
        Py_XDECREF(values[i]);
    if (failed) {
        Py_DECREF(msg);
        return NULL;
    }
    return msg;
}

static PyObject *
scan(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (message_cls == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure() first");
        return NULL;
    }
    if (nargs != 7 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError,
                        "scan(data: bytes, start, client, decompress, max_payload, "
                        "max_message, on_failure)");
        return NULL;
    }
    const unsigned char *src = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t end = PyBytes_GET_SIZE(args[0]);
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred())
        return NULL;
    int client = PyObject_IsTrue(args[2]);
    if (client < 0)
        return NULL;
    PyObject *decompress = args[3];
    long long max_payload = PyLong_AsLongLong(args[4]);
    long long max_message = PyLong_AsLongLong(args[5]);
    if ((max_payload == -1 || max_message == -1) && PyErr_Occurred())
        return NULL;
    PyObject *on_failure = args[6];
    if (pos < 0 || pos > end) {
        PyErr_SetString(PyExc_ValueError, "start is outside data");
        return NULL;
    }

    PyObject *messages = PyList_New(0);
    if (messages == NULL)
        return NULL;
    int stopped_by_failure = 0;
    while (end - pos >= 2) {
        unsigned int b0 = src[pos], b1 = src[pos + 1];
        int compressed = (b0 & 0x40) != 0;
        if (!(b0 == 0x82 || b0 == 0x81 || (decompress != Py_None && (b0 == 0xC2 || b0 == 0xC1))))
            break;
        if (((b1 & 0x80) != 0) != client)
            break;
        long long length = b1 & 0x7F;
        Py_ssize_t head = 2;
        if (length == 126) {
            if (end - pos < 4)
                break;
            length = (src[pos + 2] << 8) | src[pos + 3];
            head = 4;
            if (length < 126)
                break; /* not minimal */
        }
        else if (length == 127) {
            if (end - pos < 10)
                break;
            unsigned long long wide = 0;
            for (int i = 0; i < 8; i++)
                wide = (wide << 8) | src[pos + 2 + i];
            if (wide >> 63 || wide < 65536)
                break; /* an error, or not minimal */
            length = (long long)wide;
            head = 10;
        }
        if (length > max_payload || length > max_message)
            break;
        Py_ssize_t total = head + (client ? 4 : 0) + (Py_ssize_t)length;
        if (end - pos < total)
            break;
        PyObject *payload = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)length);
        if (payload == NULL)
            goto error;
        if (client)
            unmask((unsigned char *)PyBytes_AS_STRING(payload), src + pos + head + 4,
                   (Py_ssize_t)length, src + pos + head);
        else
            memcpy(PyBytes_AS_STRING(payload), src + pos + head, (size_t)length);
        pos += total;
        long opcode = b0 & 0x0F;
        PyObject *msg;
        if (compressed) {
            PyObject *inflated = PyObject_CallOneArg(decompress, payload);
            if (inflated == NULL) {
                if (!PyErr_ExceptionMatches(frame_error)) {
                    Py_DECREF(payload);
                    goto error;
                }
                PyObject *type, *value, *trace;
                PyErr_Fetch(&type, &value, &trace);
                PyErr_NormalizeException(&type, &value, &trace);
                PyObject *call[] = {NULL, NULL, payload, NULL, value};
                call[1] = PyLong_FromLong(opcode);
                call[3] = PyLong_FromSsize_t(total);
                msg = (call[1] && call[3])
                    ? PyObject_Vectorcall(on_failure, call + 1,
                                          4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL)
                    : NULL;
                Py_XDECREF(call[1]);
                Py_XDECREF(call[3]);
                Py_XDECREF(type);
                Py_XDECREF(value);
                Py_XDECREF(trace);
                Py_DECREF(payload);
                if (msg == NULL)
                    goto error;
                int rc = PyList_Append(messages, msg);
                Py_DECREF(msg);
                if (rc < 0)
                    goto error;
                stopped_by_failure = 1;
                break;
            }
            if (!PyBytes_CheckExact(inflated)) {
                Py_DECREF(inflated);
                Py_DECREF(payload);
                PyErr_SetString(PyExc_TypeError, "decompress returns bytes");
                goto error;
            }
            Py_SETREF(payload, inflated);
        }
        if (opcode == 1) {
            PyObject *text = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(payload),
                                                  PyBytes_GET_SIZE(payload), "strict");
            if (text == NULL) {
                if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                    Py_DECREF(payload);
                    goto error;
                }
                PyErr_Clear();
                msg = make_message(1, payload, compressed, total, invalid_utf8, Py_None);
            }
            else {
                msg = make_message(1, payload, compressed, total, no_violations, text);
                Py_DECREF(text);
            }
        }
        else
            msg = make_message(opcode, payload, compressed, total, no_violations, Py_None);
        Py_DECREF(payload);
        if (msg == NULL)
            goto error;
        int rc = PyList_Append(messages, msg);
        Py_DECREF(msg);
        if (rc < 0)
            goto error;
    }
    return Py_BuildValue("(NnO)", messages, pos, stopped_by_failure ? Py_True : Py_False);
error:
    Py_DECREF(messages);
    return NULL;
}

static PyObject *
configure(PyObject *module, PyObject *args)
{
    PyObject *cls, *slots, *error_cls;
    if (!PyArg_ParseTuple(args, "O!O!O", &PyType_Type, &cls, &PyTuple_Type, &slots,
                          &error_cls))
        return NULL;
    if (PyTuple_GET_SIZE(slots) != 9) {
        PyErr_SetString(PyExc_ValueError, "WsMessage has 9 slots");
        return NULL;
    }
    for (int i = 0; i < 9; i++) {
        PyObject *d = PyTuple_GET_ITEM(slots, i);
        if (Py_TYPE(d)->tp_descr_set == NULL) {
            PyErr_SetString(PyExc_TypeError, "slots are data descriptors");
            return NULL;
        }
    }
    if (invalid_utf8 == NULL) {
        invalid_utf8 = Py_BuildValue("(s)", "invalid-utf8");
        no_violations = PyTuple_New(0);
        if (invalid_utf8 == NULL || no_violations == NULL)
            return NULL;
    }
    Py_XSETREF(message_cls, (PyTypeObject *)Py_NewRef(cls));
    for (int i = 0; i < 9; i++)
        Py_XSETREF(setters[i], Py_NewRef(PyTuple_GET_ITEM(slots, i)));
    Py_XSETREF(frame_error, Py_NewRef(error_cls));
    Py_RETURN_NONE;
}

static PyMethodDef scan_methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL,
     "Read the common frames of data; see the module docstring."},
    {"configure", configure, METH_VARARGS,
     "configure(WsMessage, its 9 slot descriptors, FrameError)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef scan_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "wsproto_tools.ws._scan",
    .m_doc = "The common WebSocket frame, read in C.",
    .m_size = -1,
    .m_methods = scan_methods,
};

PyMODINIT_FUNC
PyInit__scan(void)
{
    return PyModule_Create(&scan_module);
}
