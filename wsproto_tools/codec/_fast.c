/* codec.decode for the common v2 messages, in C (codec/wire.py is the
 * specification).
 *
 * FastDecoder.decode(data, *, version=None, limits=..., cipher=None) reads the
 * messages with no timestamp, no COMPRESSED or ENCRYPTED flag and a payload that
 * is BinaryData, TextData, a compiled msgpack class (codec/fastpath.py) or a
 * Batch of such; it hands every other call, with its arguments as given, to the
 * Python decode it was built with (which also reports every error).  The v2
 * header is read as codec/header.py (unpack_v2) reads it: this is its one C
 * mirror.  msgpack bodies it cannot read itself go to a Python callable.
 * Objects are built as the Python path builds them: allocated without
 * __init__, slots set through their descriptors.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    PyObject_HEAD
    PyObject *classes;      /* dict: v2 type byte -> payload class (one-byte types) */
    int batch_byte;
    PyTypeObject *message_cls;
    PyObject *set_payload, *set_sequence, *set_session, *set_timestamp, *set_flags;
    PyObject *flags;        /* (Flags.NONE, Flags.ACK_REQUESTED) */
    PyObject *binary_cls, *text_cls, *batch_cls;
    PyObject *set_data, *set_text, *set_messages;
    PyObject *msgpack_payload; /* callable(cls, body, limits) -> payload or None */
    PyObject *specs;        /* dict: class -> ((name bytes, kind, optional, default, slot), ...) */
    PyObject *zero;
    PyObject *fallback;     /* the Python decode: every call this one does not read */
    PyObject *default_limits;
    PyObject *small_body;   /* callable(limits) -> the size of body that needs no bounds */
    PyObject *last_limits;  /* the Limits read last, and what was read from it */
    Py_ssize_t max_message, max_items, small;
} FastDecoder;

/* Field kinds of the compiled msgpack payloads (codec/fastpath.py). */
enum { K_UINT = 0, K_STR = 1, K_BYTES = 2, K_BOOL = 3 };
#define MAX_FIELDS 16
static PyObject DELEGATE_OBJECT; /* a sentinel address, never a real object */
#define DELEGATE (&DELEGATE_OBJECT)

/* The v2 header (codec/header.py): head byte 01 S T 0 fff, type, varints.  The
 * head bytes read here: marker 01, no T, reserved bit clear, no COMPRESSED or
 * ENCRYPTED (S and ACK_REQUESTED are free). */
#define V2_PLAIN_MASK 0xDB
#define V2_MARKER 0x40
#define V2_HAS_SESSION 0x20
#define V2_HAS_TIMESTAMP 0x10
#define U32_MAX 0xFFFFFFFFull

/* read_varint of codec/varint.py: minimal LEB128 of at most max_bits' worth of
 * shifts and at most max_value; 0 on success, -1 when the Python reader raises. */
static int
read_varint(const unsigned char *data, Py_ssize_t size, Py_ssize_t *pos, int max_bits,
            unsigned long long max_value, unsigned long long *out)
{
    Py_ssize_t p = *pos;
    if (p >= size)
        return -1;
    unsigned int byte = data[p];
    if (byte < 0x80) {
        *out = byte;
        *pos = p + 1;
        return byte <= max_value ? 0 : -1;
    }
    unsigned long long value = byte & 0x7F;
    int shift = 7;
    p++;
    for (;;) {
        if (p >= size)
            return -1;
        byte = data[p++];
        if (byte < 0x80) {
            if (shift >= 64 || (shift > 0 && (unsigned long long)byte > (~0ull >> shift)))
                return -1; /* beyond 64 bits: beyond any max_value here */
            value |= (unsigned long long)byte << shift;
            break;
        }
        value |= (unsigned long long)(byte & 0x7F) << shift;
        shift += 7;
        if (shift >= max_bits)
            return -1;
    }
    if (byte == 0 || value > max_value)
        return -1;
    *out = value;
    *pos = p;
    return 0;
}

static int
bit_length(unsigned long long value)
{
    int bits = 0;
    while (value) {
        bits++;
        value >>= 1;
    }
    return bits;
}

static int
set_slot(PyObject *descr, PyObject *obj, PyObject *value)
{
    return Py_TYPE(descr)->tp_descr_set(descr, obj, value);
}

static PyObject *
new_of(PyObject *cls)
{
    PyTypeObject *type = (PyTypeObject *)cls;
    return type->tp_alloc(type, 0);
}

static PyObject *decode_one(FastDecoder *f, const unsigned char *data, Py_ssize_t size,
                            PyObject *limits, Py_ssize_t max_items, Py_ssize_t small,
                            int nested);

/* The payload of class ``cls`` from the msgpack map ``body`` when the map is
 * plain: str keys naming each field at most once, values of each field's exact
 * kind, required fields present, nothing after the map.  DELEGATE for anything
 * else (the Python decoder then decides, nil values and duplicate keys
 * included); NULL with an exception on failure. */
static PyObject *
plain_payload(PyObject *cls, PyObject *spec, const unsigned char *body, Py_ssize_t size)
{
    Py_ssize_t nfields = PyTuple_GET_SIZE(spec);
    if (nfields > MAX_FIELDS || size < 1)
        return DELEGATE;
    PyObject *values[MAX_FIELDS] = {NULL};
    PyObject *result = DELEGATE;
    Py_ssize_t pos = 0, count;
    unsigned int b = body[pos++];
    if (b >= 0x80 && b <= 0x8F)
        count = b & 0x0F;
    else if (b == 0xDE && size >= 3) {
        count = (body[1] << 8) | body[2];
        pos = 3;
    }
    else
        return DELEGATE;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (pos >= size)
            goto done;
        unsigned int k = body[pos++];
        Py_ssize_t klen;
        if (k >= 0xA0 && k <= 0xBF)
            klen = k & 0x1F;
        else if (k == 0xD9 && pos < size)
            klen = body[pos++];
        else
            goto done;
        if (pos + klen > size)
            goto done;
        Py_ssize_t field = -1;
        for (Py_ssize_t j = 0; j < nfields; j++) {
            PyObject *name = PyTuple_GET_ITEM(PyTuple_GET_ITEM(spec, j), 0);
            if (PyBytes_GET_SIZE(name) == klen
                && memcmp(PyBytes_AS_STRING(name), body + pos, (size_t)klen) == 0) {
                field = j;
                break;
            }
        }
        pos += klen;
        if (field < 0 || values[field] != NULL || pos >= size)
            goto done; /* an unknown or repeated key */
        long kind = PyLong_AsLong(PyTuple_GET_ITEM(PyTuple_GET_ITEM(spec, field), 1));
        unsigned int v = body[pos++];
        PyObject *value = NULL;
        if (kind == K_UINT) {
            unsigned long long n;
            Py_ssize_t width = v == 0xCC ? 1 : v == 0xCD ? 2 : v == 0xCE ? 4 : v == 0xCF ? 8 : 0;
            if (v < 0x80)
                n = v;
            else if (width && pos + width <= size) {
                n = 0;
                for (Py_ssize_t w = 0; w < width; w++)
                    n = (n << 8) | body[pos + w];
                pos += width;
            }
            else
                goto done;
            value = PyLong_FromUnsignedLongLong(n);
        }
        else if (kind == K_STR || kind == K_BYTES) {
            Py_ssize_t len;
            if (kind == K_STR && v >= 0xA0 && v <= 0xBF)
                len = v & 0x1F;
            else if ((kind == K_STR ? v == 0xD9 : v == 0xC4) && pos + 1 <= size)
                len = body[pos++];
            else if ((kind == K_STR ? v == 0xDA : v == 0xC5) && pos + 2 <= size) {
                len = (body[pos] << 8) | body[pos + 1];
                pos += 2;
            }
            else
                goto done;
            if (pos + len > size)
                goto done;
            if (kind == K_STR) {
                value = PyUnicode_DecodeUTF8((const char *)body + pos, len, "strict");
                if (value == NULL) {
                    if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
                        goto error;
                    PyErr_Clear();
                    goto done;
                }
            }
            else
                value = PyBytes_FromStringAndSize((const char *)body + pos, len);
            pos += len;
        }
        else if (kind == K_BOOL && (v == 0xC2 || v == 0xC3))
            value = Py_NewRef(v == 0xC3 ? Py_True : Py_False);
        else
            goto done;
        if (value == NULL)
            goto error;
        values[field] = value;
    }
    if (pos != size)
        goto done;
    for (Py_ssize_t j = 0; j < nfields; j++) {
        if (values[j] == NULL) {
            PyObject *item = PyTuple_GET_ITEM(spec, j);
            if (!PyObject_IsTrue(PyTuple_GET_ITEM(item, 2)))
                goto done; /* a required field is missing */
            values[j] = Py_NewRef(PyTuple_GET_ITEM(item, 3));
        }
    }
    PyObject *payload = new_of(cls);
    if (payload == NULL)
        goto error;
    for (Py_ssize_t j = 0; j < nfields; j++) {
        if (set_slot(PyTuple_GET_ITEM(PyTuple_GET_ITEM(spec, j), 4), payload, values[j]) < 0) {
            Py_DECREF(payload);
            goto error;
        }
    }
    result = payload;
    goto done;
error:
    result = NULL;
done:
    for (Py_ssize_t j = 0; j < nfields; j++)
        Py_XDECREF(values[j]);
    return result;
}



static PyObject *
decode_batch(FastDecoder *f, const unsigned char *data, Py_ssize_t size, Py_ssize_t pos,
             PyObject *limits, Py_ssize_t max_items, Py_ssize_t small)
{
    PyObject *items = PyList_New(0);
    if (items == NULL)
        return NULL;
    int size_bits = bit_length((unsigned long long)size);
    while (pos < size) {
        if (PyList_GET_SIZE(items) >= max_items)
            goto none;
        unsigned long long length;
        if (read_varint(data, size, &pos, size_bits, (unsigned long long)size, &length) < 0)
            goto none;
        if (!length || pos + (Py_ssize_t)length > size)
            goto none;
        PyObject *item =
            decode_one(f, data + pos, (Py_ssize_t)length, limits, max_items, small, 1);
        if (item == NULL)
            goto error;
        if (item == Py_None) {
            Py_DECREF(item);
            goto none;
        }
        int rc = PyList_Append(items, item);
        Py_DECREF(item);
        if (rc < 0)
            goto error;
        pos += (Py_ssize_t)length;
    }
    PyObject *tuple = PyList_AsTuple(items);
    Py_DECREF(items);
    if (tuple == NULL)
        return NULL;
    PyObject *batch = new_of(f->batch_cls);
    if (batch == NULL || set_slot(f->set_messages, batch, tuple) < 0) {
        Py_XDECREF(batch);
        Py_DECREF(tuple);
        return NULL;
    }
    Py_DECREF(tuple);
    return batch;
none:
    Py_DECREF(items);
    Py_RETURN_NONE;
error:
    Py_DECREF(items);
    return NULL;
}

static PyObject *
decode_one(FastDecoder *f, const unsigned char *data, Py_ssize_t size, PyObject *limits,
           Py_ssize_t max_items, Py_ssize_t small, int nested)
{
    if (size < 3 || (data[0] & V2_PLAIN_MASK) != V2_MARKER)
        Py_RETURN_NONE;
    unsigned int head = data[0];
    PyObject *key = PyLong_FromLong(data[1]);
    if (key == NULL)
        return NULL;
    PyObject *cls = PyDict_GetItemWithError(f->classes, key); /* borrowed */
    Py_DECREF(key);
    if (cls == NULL) {
        if (PyErr_Occurred())
            return NULL;
        if (nested || data[1] != f->batch_byte)
            Py_RETURN_NONE;
    }
    Py_ssize_t pos = 2;
    unsigned long long sequence, session_id = 0;
    if (read_varint(data, size, &pos, 32, U32_MAX, &sequence) < 0)
        Py_RETURN_NONE;
    if (head & V2_HAS_SESSION) {
        if (read_varint(data, size, &pos, 64, ~0ull, &session_id) < 0 || !session_id)
            Py_RETURN_NONE;
    }
    PyObject *payload;
    if (cls == NULL) {
        payload = decode_batch(f, data, size, pos, limits, max_items, small);
    }
    else if (cls == f->binary_cls) {
        PyObject *bytes = PyBytes_FromStringAndSize((const char *)data + pos, size - pos);
        if (bytes == NULL)
            return NULL;
        payload = new_of(cls);
        if (payload != NULL && set_slot(f->set_data, payload, bytes) < 0)
            Py_CLEAR(payload);
        Py_DECREF(bytes);
    }
    else if (cls == f->text_cls) {
        PyObject *text = PyUnicode_DecodeUTF8((const char *)data + pos, size - pos, "strict");
        if (text == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
                return NULL;
            PyErr_Clear();
            Py_RETURN_NONE; /* the general path reports where */
        }
        payload = new_of(cls);
        if (payload != NULL && set_slot(f->set_text, payload, text) < 0)
            Py_CLEAR(payload);
        Py_DECREF(text);
    }
    else {
        payload = DELEGATE;
        PyObject *spec = PyDict_GetItemWithError(f->specs, cls); /* borrowed */
        if (spec == NULL && PyErr_Occurred())
            return NULL;
        if (spec != NULL && size - pos <= small)
            payload = plain_payload(cls, spec, data + pos, size - pos);
        if (payload == DELEGATE) {
            PyObject *body = PyBytes_FromStringAndSize((const char *)data + pos, size - pos);
            if (body == NULL)
                return NULL;
            PyObject *args[] = {cls, body, limits};
            payload = PyObject_Vectorcall(f->msgpack_payload, args, 3, NULL);
            Py_DECREF(body);
        }
    }
    if (payload == NULL || payload == Py_None)
        return payload;

    PyObject *msg = NULL, *seq = NULL, *sid = NULL;
    seq = PyLong_FromUnsignedLongLong(sequence);
    sid = session_id ? PyLong_FromUnsignedLongLong(session_id) : Py_NewRef(f->zero);
    if (seq == NULL || sid == NULL)
        goto error;
    msg = new_of((PyObject *)f->message_cls);
    if (msg == NULL)
        goto error;
    if (set_slot(f->set_payload, msg, payload) < 0 || set_slot(f->set_sequence, msg, seq) < 0
        || set_slot(f->set_session, msg, sid) < 0
        || set_slot(f->set_timestamp, msg, f->zero) < 0
        || set_slot(f->set_flags, msg, PyTuple_GET_ITEM(f->flags, (head >> 2) & 1)) < 0)
        goto error;
    Py_DECREF(payload);
    Py_DECREF(seq);
    Py_DECREF(sid);
    return msg;
error:
    Py_XDECREF(msg);
    Py_DECREF(payload);
    Py_XDECREF(seq);
    Py_XDECREF(sid);
    return NULL;
}

/* The bounds of ``limits`` (read once per Limits object); -1 with an exception. */
static int
read_limits(FastDecoder *f, PyObject *limits)
{
    if (limits == f->last_limits)
        return 0;
    Py_ssize_t values[3];
    static const char *names[] = {"max_message", "max_batch_items"};
    for (int i = 0; i < 2; i++) {
        PyObject *value = PyObject_GetAttrString(limits, names[i]);
        if (value == NULL)
            return -1;
        values[i] = PyLong_AsSsize_t(value);
        Py_DECREF(value);
        if (values[i] == -1 && PyErr_Occurred())
            return -1;
    }
    PyObject *small = PyObject_CallOneArg(f->small_body, limits);
    if (small == NULL)
        return -1;
    values[2] = PyLong_AsSsize_t(small);
    Py_DECREF(small);
    if (values[2] == -1 && PyErr_Occurred())
        return -1;
    Py_XSETREF(f->last_limits, Py_NewRef(limits));
    f->max_message = values[0];
    f->max_items = values[1];
    f->small = values[2];
    return 0;
}

static PyObject *
FastDecoder_decode(FastDecoder *f, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *limits = f->default_limits;
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (nargs != 1 || !PyBytes_CheckExact(args[0]))
        goto fallback;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        PyObject *value = args[nargs + i];
        if (PyUnicode_CompareWithASCIIString(name, "limits") == 0)
            limits = value;
        else if (PyUnicode_CompareWithASCIIString(name, "version") == 0) {
            if (value != Py_None) {
                if (!PyLong_CheckExact(value))
                    goto fallback;
                int overflow;
                if (PyLong_AsLongAndOverflow(value, &overflow) != 2)
                    goto fallback;
            }
        }
        else if (PyUnicode_CompareWithASCIIString(name, "cipher") != 0)
            goto fallback; /* an unknown keyword: Python reports it */
        /* a cipher opens ENCRYPTED messages only, which are Python's */
    }
    if (read_limits(f, limits) < 0)
        return NULL;
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    if (size > f->max_message)
        goto fallback;
    PyObject *msg = decode_one(f, (const unsigned char *)PyBytes_AS_STRING(args[0]), size,
                               limits, f->max_items, f->small, 0);
    if (msg != Py_None)
        return msg;
    Py_DECREF(msg);
fallback:
    return PyObject_Vectorcall(f->fallback, args, (size_t)nargs, kwnames);
}

static int
FastDecoder_init(FastDecoder *f, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"classes", "batch_byte", "message_cls", "message_slots", "flags",
                            "binary_cls", "text_cls", "batch_cls", "payload_slots",
                            "msgpack_payload", "specs", "fallback", "default_limits",
                            "small_body", NULL};
    PyObject *classes, *message_cls, *message_slots, *flags, *binary_cls, *text_cls,
        *batch_cls, *payload_slots, *msgpack_payload, *specs, *fallback, *default_limits,
        *small_body;
    int batch_byte;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!iO!O!O!OOOO!OO!OOO", names,
                                     &PyDict_Type, &classes, &batch_byte, &PyType_Type,
                                     &message_cls, &PyTuple_Type, &message_slots,
                                     &PyTuple_Type, &flags, &binary_cls, &text_cls,
                                     &batch_cls, &PyTuple_Type, &payload_slots,
                                     &msgpack_payload, &PyDict_Type, &specs, &fallback,
                                     &default_limits, &small_body))
        return -1;
    if (!PyCallable_Check(fallback) || !PyCallable_Check(small_body)
        || !PyCallable_Check(msgpack_payload)) {
        PyErr_SetString(PyExc_TypeError, "fallback, small_body and msgpack_payload are callables");
        return -1;
    }
    if (PyTuple_GET_SIZE(message_slots) != 5 || PyTuple_GET_SIZE(payload_slots) != 3
        || PyTuple_GET_SIZE(flags) != 2) {
        PyErr_SetString(PyExc_ValueError, "5 message slots, 3 payload slots, 2 flags");
        return -1;
    }
    for (int i = 0; i < 5; i++) {
        PyObject *d = PyTuple_GET_ITEM(message_slots, i);
        if (Py_TYPE(d)->tp_descr_set == NULL) {
            PyErr_SetString(PyExc_TypeError, "slots are data descriptors");
            return -1;
        }
    }
    for (int i = 0; i < 3; i++) {
        PyObject *d = PyTuple_GET_ITEM(payload_slots, i);
        if (Py_TYPE(d)->tp_descr_set == NULL) {
            PyErr_SetString(PyExc_TypeError, "slots are data descriptors");
            return -1;
        }
    }
    if (!PyType_Check(binary_cls) || !PyType_Check(text_cls) || !PyType_Check(batch_cls)) {
        PyErr_SetString(PyExc_TypeError, "payload classes are types");
        return -1;
    }
    PyObject *value;
    Py_ssize_t pos = 0;
    PyObject *key;
    while (PyDict_Next(specs, &pos, &key, &value)) {
        if (!PyType_Check(key) || !PyTuple_Check(value)) {
            PyErr_SetString(PyExc_TypeError, "specs maps classes to tuples");
            return -1;
        }
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(value); j++) {
            PyObject *item = PyTuple_GET_ITEM(value, j);
            if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 5
                || !PyBytes_Check(PyTuple_GET_ITEM(item, 0))
                || !PyLong_Check(PyTuple_GET_ITEM(item, 1))
                || Py_TYPE(PyTuple_GET_ITEM(item, 4))->tp_descr_set == NULL) {
                PyErr_SetString(PyExc_TypeError,
                                "a field spec is (name bytes, kind, optional, default, slot)");
                return -1;
            }
        }
    }
    pos = 0;
    while (PyDict_Next(classes, &pos, &key, &value)) {
        if (!PyType_Check(value)) {
            PyErr_SetString(PyExc_TypeError, "classes maps to types");
            return -1;
        }
    }
#define KEEP(field, obj) Py_XSETREF(f->field, Py_NewRef(obj))
    KEEP(classes, classes);
    f->batch_byte = batch_byte;
    Py_XSETREF(f->message_cls, (PyTypeObject *)Py_NewRef(message_cls));
    KEEP(set_payload, PyTuple_GET_ITEM(message_slots, 0));
    KEEP(set_sequence, PyTuple_GET_ITEM(message_slots, 1));
    KEEP(set_session, PyTuple_GET_ITEM(message_slots, 2));
    KEEP(set_timestamp, PyTuple_GET_ITEM(message_slots, 3));
    KEEP(set_flags, PyTuple_GET_ITEM(message_slots, 4));
    KEEP(flags, flags);
    KEEP(binary_cls, binary_cls);
    KEEP(text_cls, text_cls);
    KEEP(batch_cls, batch_cls);
    KEEP(set_data, PyTuple_GET_ITEM(payload_slots, 0));
    KEEP(set_text, PyTuple_GET_ITEM(payload_slots, 1));
    KEEP(set_messages, PyTuple_GET_ITEM(payload_slots, 2));
    KEEP(msgpack_payload, msgpack_payload);
    KEEP(specs, specs);
    KEEP(fallback, fallback);
    KEEP(default_limits, default_limits);
    KEEP(small_body, small_body);
    Py_CLEAR(f->last_limits);
#undef KEEP
    PyObject *zero = PyLong_FromLong(0);
    if (zero == NULL)
        return -1;
    Py_XSETREF(f->zero, zero);
    return 0;
}

static int
FastDecoder_traverse(FastDecoder *f, visitproc visit, void *arg)
{
    Py_VISIT(f->classes);
    Py_VISIT(f->message_cls);
    Py_VISIT(f->set_payload);
    Py_VISIT(f->set_sequence);
    Py_VISIT(f->set_session);
    Py_VISIT(f->set_timestamp);
    Py_VISIT(f->set_flags);
    Py_VISIT(f->flags);
    Py_VISIT(f->binary_cls);
    Py_VISIT(f->text_cls);
    Py_VISIT(f->batch_cls);
    Py_VISIT(f->set_data);
    Py_VISIT(f->set_text);
    Py_VISIT(f->set_messages);
    Py_VISIT(f->msgpack_payload);
    Py_VISIT(f->specs);
    Py_VISIT(f->fallback);
    Py_VISIT(f->default_limits);
    Py_VISIT(f->small_body);
    Py_VISIT(f->last_limits);
    return 0;
}

static int
FastDecoder_clear(FastDecoder *f)
{
    Py_CLEAR(f->classes);
    Py_CLEAR(f->message_cls);
    Py_CLEAR(f->set_payload);
    Py_CLEAR(f->set_sequence);
    Py_CLEAR(f->set_session);
    Py_CLEAR(f->set_timestamp);
    Py_CLEAR(f->set_flags);
    Py_CLEAR(f->flags);
    Py_CLEAR(f->binary_cls);
    Py_CLEAR(f->text_cls);
    Py_CLEAR(f->batch_cls);
    Py_CLEAR(f->set_data);
    Py_CLEAR(f->set_text);
    Py_CLEAR(f->set_messages);
    Py_CLEAR(f->msgpack_payload);
    Py_CLEAR(f->specs);
    Py_CLEAR(f->zero);
    Py_CLEAR(f->fallback);
    Py_CLEAR(f->default_limits);
    Py_CLEAR(f->small_body);
    Py_CLEAR(f->last_limits);
    return 0;
}

static void
FastDecoder_dealloc(FastDecoder *f)
{
    PyObject_GC_UnTrack(f);
    FastDecoder_clear(f);
    Py_TYPE(f)->tp_free((PyObject *)f);
}

/* header.pack_v2 (codec/header.py) in C: the v2 header of a message. */
static Py_ssize_t
write_varint(unsigned char *out, unsigned long long value)
{
    Py_ssize_t n = 0;
    while (value >= 0x80) {
        out[n++] = (unsigned char)((value & 0x7F) | 0x80);
        value >>= 7;
    }
    out[n++] = (unsigned char)value;
    return n;
}

static PyObject *
pack_v2(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 3 || nargs > 5) {
        PyErr_SetString(PyExc_TypeError,
                        "pack_v2(code, flags, sequence, session_id=0, timestamp=0)");
        return NULL;
    }
    unsigned long long values[5] = {0, 0, 0, 0, 0};
    static const unsigned long long limits[5] = {0xFFFF, 7, U32_MAX, ~0ull, ~0ull};
    for (Py_ssize_t i = 0; i < nargs; i++) {
        values[i] = PyLong_AsUnsignedLongLong(args[i]);
        if (values[i] == (unsigned long long)-1 && PyErr_Occurred())
            return NULL;
        if (values[i] > limits[i]) {
            PyErr_SetString(PyExc_OverflowError, "a v2 header field out of its range");
            return NULL;
        }
    }
    unsigned long long code = values[0], session_id = values[3], timestamp = values[4];
    unsigned char out[4 + 5 + 10 + 10];
    Py_ssize_t n = 0;
    out[n++] = (unsigned char)(V2_MARKER | values[1] | (session_id ? V2_HAS_SESSION : 0)
                               | (timestamp ? V2_HAS_TIMESTAMP : 0));
    if ((code >> 8) <= 2 && (code & 0xFF) < 64)
        out[n++] = (unsigned char)(((code >> 8) << 6) | (code & 0xFF));
    else {
        out[n++] = 0xC0;
        out[n++] = (unsigned char)(code & 0xFF);
        out[n++] = (unsigned char)(code >> 8);
    }
    n += write_varint(out + n, values[2]);
    if (session_id)
        n += write_varint(out + n, session_id);
    if (timestamp)
        n += write_varint(out + n, timestamp);
    return PyBytes_FromStringAndSize((const char *)out, n);
}

static PyMethodDef fast_functions[] = {
    {"pack_v2", (PyCFunction)(void (*)(void))pack_v2, METH_FASTCALL,
     "pack_v2(code, flags, sequence, session_id=0, timestamp=0): the v2 header "
     "(codec/header.py's pack_v2)."},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef FastDecoder_methods[] = {
    {"decode", (PyCFunction)(void (*)(void))FastDecoder_decode, METH_FASTCALL | METH_KEYWORDS,
     "decode(data, *, version=None, limits=DEFAULT_LIMITS, cipher=None): the Message; "
     "what it does not read, the Python decode it was built with reads."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FastDecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wsproto_tools.codec._fast.FastDecoder",
    .tp_doc = "codec.decode for the common v2 messages, in C (see codec/wire.py).",
    .tp_basicsize = sizeof(FastDecoder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)FastDecoder_init,
    .tp_dealloc = (destructor)FastDecoder_dealloc,
    .tp_traverse = (traverseproc)FastDecoder_traverse,
    .tp_clear = (inquiry)FastDecoder_clear,
    .tp_methods = FastDecoder_methods,
};

static struct PyModuleDef fast_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "wsproto_tools.codec._fast",
    .m_doc = "codec.decode for the common v2 messages, and the v2 header, in C.",
    .m_size = -1,
    .m_methods = fast_functions,
};

PyMODINIT_FUNC
PyInit__fast(void)
{
    if (PyType_Ready(&FastDecoderType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&fast_module);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObject(module, "FastDecoder", Py_NewRef(&FastDecoderType)) < 0) {
        Py_DECREF(&FastDecoderType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
