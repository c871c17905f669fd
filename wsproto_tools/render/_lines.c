/* The --ndjson line of a decoded message, written in C.
 *
 * LineWriter.write(item) appends the same bytes as the pure-Python
 * wsproto_tools.render.capture.MessageLines writes for a CapturedMessage (UTF-8,
 * newline included) to an internal buffer, and returns True.  Anything outside
 * the common shapes (a reserved opcode, session findings, flags outside the
 * table, a payload field of an unexpected type, numbers beyond 64 bits...)
 * leaves the buffer as it was and returns False: the caller then writes that
 * line with the Python writer and append()s it.  take() hands over the buffer.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "../_cslots.h"

typedef struct {
    PyObject_HEAD
    char *buf;
    Py_ssize_t len;
    Py_ssize_t cap;
    Py_ssize_t limit;         /* the buffer never grows past this (bytes) */
    Py_ssize_t max_payload;   /* longer payloads are cut, by the Python writer (-1: none) */
    PyObject *opcode_heads;   /* dict: opcode -> bytes '"opcode":"text","length":' */
    PyObject *type_names;     /* dict: type code -> str */
    PyObject *type_codes;     /* dict: payload class -> its type code (the fixed ones) */
    PyObject *flag_lists;     /* tuple of 8 bytes: the JSON list of each flag value */
    PyObject *simple;         /* dict: payload class -> tuple of (name, b'"name":') or None */
    PyObject *simple_fn;      /* callable(cls) -> that tuple or None */
    PyObject *binary_cls;
    PyObject *text_cls;
    PyObject *batch_cls;
    PyObject *payload_json;   /* callable(payload) -> str: the JSON of any other payload */
    int with_hex;
    /* the WebSocket payload of the line being written and where its hex lies in
     * the buffer (-1: not written), reused for a BinaryData that ends it */
    const unsigned char *whole;
    Py_ssize_t whole_size;
    Py_ssize_t whole_hex;
    PyObject *last_ts;        /* the last capture time and its repr (UTF-8 bytes) */
    PyObject *last_ts_text;
} LineWriter;

/* interned attribute names */
static PyObject *s_ts, *s_conn, *s_direction, *s_msg, *s_violations, *s_wsp, *s_session,
    *s_number, *s_note, *s_opcode, *s_payload, *s_compressed, *s_text, *s_close_code,
    *s_close_reason, *s_frames, *s_flags, *s_sequence, *s_session_id, *s_timestamp,
    *s_type_code, *s_data, *s_messages;

#define FALLBACK 1 /* not a shape handled here: the caller uses the Python writer */
#define FAILED -1  /* an exception is set */

static const char HEX[] = "0123456789abcdef";
/* the two hex digits of each byte value, as they lie in memory */
static char HEX_PAIRS[256][2];

static int
reserve(LineWriter *w, Py_ssize_t extra)
{
    if (w->len + extra > w->limit) {
        PyErr_SetString(PyExc_MemoryError, "line buffer limit reached");
        return FAILED;
    }
    if (w->len + extra <= w->cap)
        return 0;
    Py_ssize_t cap = w->cap ? w->cap : 1 << 16;
    while (cap < w->len + extra)
        cap *= 2;
    char *grown = PyMem_Realloc(w->buf, (size_t)cap);
    if (grown == NULL) {
        PyErr_NoMemory();
        return FAILED;
    }
    w->buf = grown;
    w->cap = cap;
    return 0;
}

static int
put(LineWriter *w, const char *text, Py_ssize_t size)
{
    if (reserve(w, size) < 0)
        return FAILED;
    memcpy(w->buf + w->len, text, (size_t)size);
    w->len += size;
    return 0;
}

#define PUT_LITERAL(w, s) put((w), (s), (Py_ssize_t)(sizeof(s) - 1))

static int
put_bytes_object(LineWriter *w, PyObject *bytes)
{
    return put(w, PyBytes_AS_STRING(bytes), PyBytes_GET_SIZE(bytes));
}

static void
hex_scalar(char *out, const unsigned char *data, Py_ssize_t size)
{
    for (Py_ssize_t i = 0; i < size; i++)
        memcpy(out + 2 * i, HEX_PAIRS[data[i]], 2);
}

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_HEX_SSSE3 1
/* 16 bytes at a time: each nibble looked up in a register by pshufb */
__attribute__((target("ssse3"))) static void
hex_ssse3(char *out, const unsigned char *data, Py_ssize_t size)
{
    const __m128i digits = _mm_setr_epi8('0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a',
                                         'b', 'c', 'd', 'e', 'f');
    const __m128i low = _mm_set1_epi8(0x0F);
    Py_ssize_t i = 0;
    for (; i + 16 <= size; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(data + i));
        __m128i hi = _mm_shuffle_epi8(digits, _mm_and_si128(_mm_srli_epi16(v, 4), low));
        __m128i lo = _mm_shuffle_epi8(digits, _mm_and_si128(v, low));
        _mm_storeu_si128((__m128i *)(out + 2 * i), _mm_unpacklo_epi8(hi, lo));
        _mm_storeu_si128((__m128i *)(out + 2 * i + 16), _mm_unpackhi_epi8(hi, lo));
    }
    hex_scalar(out + 2 * i, data + i, size - i);
}
#endif

static void (*hex_into)(char *, const unsigned char *, Py_ssize_t) = hex_scalar;

static int
put_hex(LineWriter *w, const unsigned char *data, Py_ssize_t size)
{
    if (reserve(w, 2 * size) < 0)
        return FAILED;
    hex_into(w->buf + w->len, data, size);
    w->len += 2 * size;
    return 0;
}

/* An int as decimal digits; FALLBACK for anything but an int within 64 bits. */
static int
put_int(LineWriter *w, PyObject *value)
{
    if (!PyLong_Check(value) || PyBool_Check(value))
        return FALLBACK;
    if (reserve(w, 21) < 0)
        return FAILED;
    int overflow = 0;
    long long small = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (small == -1 && PyErr_Occurred())
        return FAILED;
    if (overflow == 0) {
        w->len += format_i64(w->buf + w->len, small);
        return 0;
    }
    unsigned long long big = PyLong_AsUnsignedLongLong(value);
    if (big == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return FALLBACK;
    }
    w->len += format_u64(w->buf + w->len, big);
    return 0;
}

static int
put_ssize(LineWriter *w, Py_ssize_t value)
{
    if (reserve(w, 21) < 0)
        return FAILED;
    w->len += format_i64(w->buf + w->len, (long long)value);
    return 0;
}

/* A str as a JSON string, as json's encode_basestring (ensure_ascii off) writes it. */
static int
put_json_str(LineWriter *w, PyObject *text)
{
    if (!PyUnicode_Check(text))
        return FALLBACK;
    Py_ssize_t size;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &size);
    if (utf8 == NULL) { /* lone surrogates: let the Python writer decide */
        PyErr_Clear();
        return FALLBACK;
    }
    if (reserve(w, 6 * size + 2) < 0)
        return FAILED;
    char *out = w->buf + w->len;
    Py_ssize_t o = 0;
    out[o++] = '"';
    for (Py_ssize_t i = 0; i < size; i++) {
        unsigned char c = (unsigned char)utf8[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            out[o++] = (char)c;
            continue;
        }
        out[o++] = '\\';
        switch (c) {
        case '"': out[o++] = '"'; break;
        case '\\': out[o++] = '\\'; break;
        case '\n': out[o++] = 'n'; break;
        case '\r': out[o++] = 'r'; break;
        case '\t': out[o++] = 't'; break;
        case '\b': out[o++] = 'b'; break;
        case '\f': out[o++] = 'f'; break;
        default:
            out[o++] = 'u';
            out[o++] = '0';
            out[o++] = '0';
            out[o++] = HEX[c >> 4];
            out[o++] = HEX[c & 0x0F];
        }
    }
    out[o++] = '"';
    w->len += o;
    return 0;
}

/* A str as it is (already JSON, or a plain word). */
static int
put_raw_str(LineWriter *w, PyObject *text)
{
    if (!PyUnicode_Check(text))
        return FALLBACK;
    Py_ssize_t size;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &size);
    if (utf8 == NULL) {
        PyErr_Clear();
        return FALLBACK;
    }
    return put(w, utf8, size);
}

/* getattr(obj, name) into *out (a new reference); FAILED with the error set. */
#define GET(out, obj, name)                  \
    do {                                     \
        (out) = SLOT_GET((obj), (name));    \
        if ((out) == NULL)                   \
            goto error;                      \
    } while (0)

#define CHECK(call)                 \
    do {                            \
        int _rc = (call);           \
        if (_rc) {                  \
            rc = _rc;               \
            goto done;              \
        }                           \
    } while (0)

static int put_wsp(LineWriter *w, PyObject *version, PyObject *message, int depth);

static int
put_simple_payload(LineWriter *w, PyObject *payload, PyObject *fields)
{
    int rc = 0;
    int first = 1;
    PyObject *value = NULL;
    CHECK(PUT_LITERAL(w, "{"));
    Py_ssize_t count = PyTuple_GET_SIZE(fields);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = PyTuple_GET_ITEM(fields, i);
        value = PyObject_GetAttr(payload, PyTuple_GET_ITEM(pair, 0)); /* varied names */
        if (value == NULL) {
            rc = FAILED;
            goto done;
        }
        if (value != Py_None) {
            if (!first)
                CHECK(PUT_LITERAL(w, ","));
            first = 0;
            CHECK(put_bytes_object(w, PyTuple_GET_ITEM(pair, 1)));
            if (PyLong_CheckExact(value))
                CHECK(put_int(w, value));
            else if (PyUnicode_CheckExact(value))
                CHECK(put_json_str(w, value));
            else if (value == Py_True)
                CHECK(PUT_LITERAL(w, "true"));
            else if (value == Py_False)
                CHECK(PUT_LITERAL(w, "false"));
            else {
                rc = FALLBACK;
                goto done;
            }
        }
        Py_CLEAR(value);
    }
    CHECK(PUT_LITERAL(w, "}"));
done:
    Py_XDECREF(value);
    return rc;
}

static int
put_payload(LineWriter *w, PyObject *payload, int depth)
{
    int rc = 0;
    PyObject *value = NULL;
    PyTypeObject *cls = Py_TYPE(payload);
    if ((PyObject *)cls == w->binary_cls) {
        value = SLOT_GET(payload, s_data);
        if (value == NULL)
            return FAILED;
        if (!PyBytes_CheckExact(value)) {
            rc = FALLBACK;
            goto done;
        }
        CHECK(PUT_LITERAL(w, "{\"hex\":\""));
        Py_ssize_t size = PyBytes_GET_SIZE(value);
        const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(value);
        if (w->whole_hex >= 0 && size <= w->whole_size
            && memcmp(w->whole + w->whole_size - size, data, (size_t)size) == 0) {
            /* the same bytes end the payload: copy their hex (already written) */
            CHECK(reserve(w, 2 * size));
            memcpy(w->buf + w->len, w->buf + w->whole_hex + 2 * (w->whole_size - size),
                   (size_t)(2 * size));
            w->len += 2 * size;
        }
        else
            CHECK(put_hex(w, data, size));
        CHECK(PUT_LITERAL(w, "\"}"));
        goto done;
    }
    if ((PyObject *)cls == w->text_cls) {
        value = SLOT_GET(payload, s_text);
        if (value == NULL)
            return FAILED;
        CHECK(PUT_LITERAL(w, "{\"text\":"));
        CHECK(put_json_str(w, value));
        CHECK(PUT_LITERAL(w, "}"));
        goto done;
    }
    if ((PyObject *)cls == w->batch_cls) {
        if (depth > 4)
            return FALLBACK;
        value = SLOT_GET(payload, s_messages);
        if (value == NULL)
            return FAILED;
        if (!PyTuple_Check(value)) {
            rc = FALLBACK;
            goto done;
        }
        CHECK(PUT_LITERAL(w, "{\"messages\":["));
        Py_ssize_t count = PyTuple_GET_SIZE(value);
        for (Py_ssize_t i = 0; i < count; i++) {
            if (i)
                CHECK(PUT_LITERAL(w, ","));
            CHECK(put_wsp(w, NULL, PyTuple_GET_ITEM(value, i), depth + 1));
        }
        CHECK(PUT_LITERAL(w, "]}"));
        goto done;
    }
    PyObject *fields = PyDict_GetItemWithError(w->simple, (PyObject *)cls); /* borrowed */
    if (fields == NULL) {
        if (PyErr_Occurred())
            return FAILED;
        fields = PyObject_CallOneArg(w->simple_fn, (PyObject *)cls);
        if (fields == NULL)
            return FAILED;
        if (fields != Py_None && !PyTuple_Check(fields)) {
            Py_DECREF(fields);
            return FALLBACK;
        }
        int stored = PyDict_SetItem(w->simple, (PyObject *)cls, fields);
        Py_DECREF(fields); /* the dict holds it */
        if (stored < 0)
            return FAILED;
    }
    if (fields != Py_None)
        return put_simple_payload(w, payload, fields);
    value = PyObject_CallOneArg(w->payload_json, payload);
    if (value == NULL)
        return FAILED;
    CHECK(put_raw_str(w, value));
done:
    Py_XDECREF(value);
    return rc;
}

/* The "wsp" object of a Message; version NULL for a batch item (no "version" key). */
static int
put_wsp(LineWriter *w, PyObject *version, PyObject *message, int depth)
{
    int rc = 0;
    PyObject *payload = NULL, *flags = NULL, *code = NULL, *value = NULL;
    GET(payload, message, s_payload);
    GET(flags, message, s_flags);
    code = PyDict_GetItemWithError(w->type_codes, (PyObject *)Py_TYPE(payload));
    if (code != NULL)
        Py_INCREF(code);
    else if (PyErr_Occurred())
        goto error;
    else
        GET(code, payload, s_type_code); /* Unknown, Sealed: the code is their own */
    if (!PyLong_Check(flags) || !PyLong_Check(code)) {
        rc = FALLBACK;
        goto done;
    }
    long bits = PyLong_AsLong(flags);
    if (bits == -1 && PyErr_Occurred())
        goto error;
    if (bits < 0 || bits >= PyTuple_GET_SIZE(w->flag_lists)) {
        rc = FALLBACK;
        goto done;
    }
    CHECK(PUT_LITERAL(w, "{"));
    if (version != NULL) {
        CHECK(PUT_LITERAL(w, "\"version\":"));
        CHECK(put_int(w, version));
        CHECK(PUT_LITERAL(w, ","));
    }
    CHECK(PUT_LITERAL(w, "\"type\":\""));
    PyObject *name = PyDict_GetItemWithError(w->type_names, code); /* borrowed */
    if (name == NULL) {
        if (PyErr_Occurred())
            goto error;
        CHECK(PUT_LITERAL(w, "Unknown"));
    }
    else
        CHECK(put_raw_str(w, name));
    CHECK(PUT_LITERAL(w, "\",\"type_code\":"));
    CHECK(put_int(w, code));
    CHECK(PUT_LITERAL(w, ",\"flags\":"));
    CHECK(put_bytes_object(w, PyTuple_GET_ITEM(w->flag_lists, bits)));
    CHECK(PUT_LITERAL(w, ",\"sequence\":"));
    GET(value, message, s_sequence);
    CHECK(put_int(w, value));
    Py_CLEAR(value);
    CHECK(PUT_LITERAL(w, ",\"session_id\":"));
    GET(value, message, s_session_id);
    CHECK(put_int(w, value));
    Py_CLEAR(value);
    CHECK(PUT_LITERAL(w, ",\"timestamp\":"));
    GET(value, message, s_timestamp);
    CHECK(put_int(w, value));
    Py_CLEAR(value);
    CHECK(PUT_LITERAL(w, ",\"payload\":"));
    CHECK(put_payload(w, payload, depth));
    CHECK(PUT_LITERAL(w, "}"));
    goto done;
error:
    rc = FAILED;
done:
    Py_XDECREF(payload);
    Py_XDECREF(flags);
    Py_XDECREF(code);
    Py_XDECREF(value);
    return rc;
}

static int
write_item(LineWriter *w, PyObject *item)
{
    int rc = 0;
    w->whole_hex = -1;
    PyObject *msg = NULL, *opcode = NULL, *payload = NULL, *text = NULL, *value = NULL;
    PyObject *wsp = NULL;
    GET(msg, item, s_msg);
    GET(value, item, s_session);
    int has_session = PyObject_IsTrue(value);
    if (has_session < 0)
        goto error;
    if (has_session) { /* session findings: rare, left to the Python writer */
        rc = FALLBACK;
        goto done;
    }
    Py_CLEAR(value);
    GET(opcode, msg, s_opcode);
    PyObject *head = PyDict_GetItemWithError(w->opcode_heads, opcode); /* borrowed */
    if (head == NULL) {
        if (PyErr_Occurred())
            goto error;
        rc = FALLBACK; /* a reserved opcode */
        goto done;
    }
    long op = PyLong_AsLong(opcode);
    if (op == -1 && PyErr_Occurred())
        goto error;
    GET(payload, msg, s_payload);
    if (!PyBytes_CheckExact(payload)
        || (w->max_payload >= 0 && PyBytes_GET_SIZE(payload) > w->max_payload)) {
        rc = FALLBACK; /* a payload to cut: the Python writer cuts it */
        goto done;
    }

    CHECK(PUT_LITERAL(w, "{\"ts\":"));
    GET(value, item, s_ts);
    if (value != w->last_ts) {
        PyObject *repr = PyObject_Repr(value);
        if (repr == NULL)
            goto error;
        Py_ssize_t size;
        const char *utf8 = PyUnicode_AsUTF8AndSize(repr, &size);
        if (utf8 == NULL) {
            Py_DECREF(repr);
            goto error;
        }
        PyObject *encoded = PyBytes_FromStringAndSize(utf8, size);
        Py_DECREF(repr);
        if (encoded == NULL)
            goto error;
        Py_XSETREF(w->last_ts_text, encoded);
        Py_INCREF(value);
        Py_XSETREF(w->last_ts, value);
    }
    CHECK(put_bytes_object(w, w->last_ts_text));
    Py_CLEAR(value);
    CHECK(PUT_LITERAL(w, ",\"conn\":"));
    GET(value, item, s_conn);
    CHECK(put_int(w, value));
    Py_CLEAR(value);
    CHECK(PUT_LITERAL(w, ",\"direction\":\""));
    GET(value, item, s_direction);
    CHECK(put_raw_str(w, value));
    Py_CLEAR(value);
    CHECK(PUT_LITERAL(w, "\","));
    CHECK(put_bytes_object(w, head));
    CHECK(put_ssize(w, PyBytes_GET_SIZE(payload)));
    GET(value, msg, s_compressed);
    int compressed = PyObject_IsTrue(value);
    if (compressed < 0)
        goto error;
    Py_CLEAR(value);
    if (compressed)
        CHECK(PUT_LITERAL(w, ",\"compressed\":true,"));
    else
        CHECK(PUT_LITERAL(w, ",\"compressed\":false,"));

    const unsigned char *bytes = (const unsigned char *)PyBytes_AS_STRING(payload);
    Py_ssize_t size = PyBytes_GET_SIZE(payload);
    GET(text, msg, s_text);
    if (op == 1 && text != Py_None) {
        CHECK(PUT_LITERAL(w, "\"text\":"));
        CHECK(put_json_str(w, text));
        if (w->with_hex) {
            CHECK(PUT_LITERAL(w, ",\"hex\":\""));
            CHECK(put_hex(w, bytes, size));
            CHECK(PUT_LITERAL(w, "\""));
        }
    }
    else {
        CHECK(PUT_LITERAL(w, "\"hex\":\""));
        w->whole = bytes;
        w->whole_size = size;
        w->whole_hex = w->len;
        CHECK(put_hex(w, bytes, size));
        CHECK(PUT_LITERAL(w, "\""));
    }
    if (op == 8) {
        CHECK(PUT_LITERAL(w, ",\"close_code\":"));
        GET(value, msg, s_close_code);
        if (value == Py_None)
            CHECK(PUT_LITERAL(w, "null"));
        else
            CHECK(put_int(w, value));
        Py_CLEAR(value);
        CHECK(PUT_LITERAL(w, ",\"close_reason\":"));
        GET(value, msg, s_close_reason);
        if (value == Py_None)
            CHECK(PUT_LITERAL(w, "null"));
        else
            CHECK(put_json_str(w, value));
        Py_CLEAR(value);
    }

    GET(value, item, s_violations);
    if (!PyTuple_Check(value)) {
        rc = FALLBACK;
        goto done;
    }
    CHECK(PUT_LITERAL(w, ",\"violations\":["));
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(value); i++) {
        if (i)
            CHECK(PUT_LITERAL(w, ","));
        CHECK(put_json_str(w, PyTuple_GET_ITEM(value, i)));
    }
    CHECK(PUT_LITERAL(w, "]"));
    Py_CLEAR(value);

    GET(wsp, item, s_wsp);
    if (wsp != Py_None) {
        if (PyTuple_CheckExact(wsp) && PyTuple_GET_SIZE(wsp) == 2) {
            CHECK(PUT_LITERAL(w, ",\"wsp\":"));
            CHECK(put_wsp(w, PyTuple_GET_ITEM(wsp, 0), PyTuple_GET_ITEM(wsp, 1), 0));
        }
        else if (PyUnicode_CheckExact(wsp)) {
            CHECK(PUT_LITERAL(w, ",\"wsp\":{\"error\":"));
            CHECK(put_json_str(w, wsp));
            CHECK(PUT_LITERAL(w, "}"));
        }
        else {
            rc = FALLBACK;
            goto done;
        }
    }

    CHECK(PUT_LITERAL(w, ",\"packet\":"));
    GET(value, item, s_number);
    CHECK(put_int(w, value));
    Py_CLEAR(value);
    GET(value, msg, s_frames);
    if (!PyLong_Check(value)) {
        rc = FALLBACK;
        goto done;
    }
    long frames = PyLong_AsLong(value);
    if (frames == -1 && PyErr_Occurred())
        goto error;
    if (frames != 1) {
        CHECK(PUT_LITERAL(w, ",\"frames\":"));
        CHECK(put_int(w, value));
    }
    Py_CLEAR(value);
    GET(value, item, s_note);
    if (value != Py_None) {
        CHECK(PUT_LITERAL(w, ",\"note\":"));
        CHECK(put_json_str(w, value));
    }
    CHECK(PUT_LITERAL(w, "}\n"));
    goto done;
error:
    rc = FAILED;
done:
    Py_XDECREF(msg);
    Py_XDECREF(opcode);
    Py_XDECREF(payload);
    Py_XDECREF(text);
    Py_XDECREF(value);
    Py_XDECREF(wsp);
    return rc;
}

static PyObject *
LineWriter_write(LineWriter *w, PyObject *item)
{
    Py_ssize_t start = w->len;
    int rc = write_item(w, item);
    if (rc == 0)
        Py_RETURN_TRUE;
    w->len = start;
    if (rc == FAILED)
        return NULL;
    Py_RETURN_FALSE;
}

static PyObject *
LineWriter_append(LineWriter *w, PyObject *data)
{
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    int rc = put(w, view.buf, view.len);
    PyBuffer_Release(&view);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
LineWriter_take(LineWriter *w, PyObject *Py_UNUSED(ignored))
{
    PyObject *out = PyBytes_FromStringAndSize(w->buf, w->len);
    if (out == NULL)
        return NULL;
    w->len = 0;
    if (w->cap > (1 << 22)) { /* give back a buffer a huge line made grow */
        PyMem_Free(w->buf);
        w->buf = NULL;
        w->cap = 0;
    }
    return out;
}

static PyObject *
LineWriter_write_to(LineWriter *w, PyObject *write)
{
    /* write(view of the buffer), then the buffer starts again empty: no copy */
    if (w->len == 0)
        Py_RETURN_NONE;
    PyObject *view = PyMemoryView_FromMemory(w->buf, w->len, PyBUF_READ);
    if (view == NULL)
        return NULL;
    PyObject *result = PyObject_CallOneArg(write, view);
    if (result == NULL) {
        /* the buffer is kept: nothing is lost; the view is let go, the error kept */
        PyObject *type, *value, *trace;
        PyErr_Fetch(&type, &value, &trace);
        PyObject *released = PyObject_CallMethod(view, "release", NULL);
        Py_XDECREF(released);
        Py_DECREF(view);
        PyErr_Clear();
        PyErr_Restore(type, value, trace);
        return NULL;
    }
    PyObject *released = PyObject_CallMethod(view, "release", NULL);
    Py_DECREF(view);
    Py_DECREF(result);
    if (released == NULL)
        return NULL; /* write kept a view of it */
    Py_DECREF(released);
    w->len = 0;
    if (w->cap > (1 << 22)) {
        PyMem_Free(w->buf);
        w->buf = NULL;
        w->cap = 0;
    }
    Py_RETURN_NONE;
}

static PyObject *
LineWriter_size(LineWriter *w, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(w->len);
}

static int
LineWriter_init(LineWriter *w, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"opcode_heads", "type_names", "type_codes", "flag_lists", "simple_fn",
                            "binary_cls", "text_cls", "batch_cls", "payload_json",
                            "with_hex", "limit", "max_payload", NULL};
    PyObject *heads, *type_names, *type_codes, *flag_lists, *simple_fn, *binary_cls, *text_cls,
        *batch_cls, *payload_json;
    int with_hex = 0;
    Py_ssize_t limit = (Py_ssize_t)1 << 30;
    Py_ssize_t max_payload = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!O!O!OOOOO|pnn", names, &PyDict_Type,
                                     &heads, &PyDict_Type, &type_names, &PyDict_Type,
                                     &type_codes, &PyTuple_Type,
                                     &flag_lists, &simple_fn, &binary_cls, &text_cls,
                                     &batch_cls, &payload_json, &with_hex, &limit,
                                     &max_payload))
        return -1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(flag_lists); i++) {
        if (!PyBytes_Check(PyTuple_GET_ITEM(flag_lists, i))) {
            PyErr_SetString(PyExc_TypeError, "flag_lists holds bytes");
            return -1;
        }
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(heads, &pos, &key, &value)) {
        if (!PyBytes_Check(value)) {
            PyErr_SetString(PyExc_TypeError, "opcode_heads maps to bytes");
            return -1;
        }
    }
    PyObject *simple = PyDict_New();
    if (simple == NULL)
        return -1;
    Py_XSETREF(w->simple, simple);
#define KEEP(field, obj) Py_INCREF(obj); Py_XSETREF(w->field, obj)
    KEEP(opcode_heads, heads);
    KEEP(type_names, type_names);
    KEEP(type_codes, type_codes);
    KEEP(flag_lists, flag_lists);
    KEEP(simple_fn, simple_fn);
    KEEP(binary_cls, binary_cls);
    KEEP(text_cls, text_cls);
    KEEP(batch_cls, batch_cls);
    KEEP(payload_json, payload_json);
#undef KEEP
    w->with_hex = with_hex;
    w->limit = limit;
    w->max_payload = max_payload;
    return 0;
}

static int
LineWriter_traverse(LineWriter *w, visitproc visit, void *arg)
{
    Py_VISIT(w->opcode_heads);
    Py_VISIT(w->type_names);
    Py_VISIT(w->type_codes);
    Py_VISIT(w->flag_lists);
    Py_VISIT(w->simple);
    Py_VISIT(w->simple_fn);
    Py_VISIT(w->binary_cls);
    Py_VISIT(w->text_cls);
    Py_VISIT(w->batch_cls);
    Py_VISIT(w->payload_json);
    Py_VISIT(w->last_ts);
    return 0;
}

static int
LineWriter_clear(LineWriter *w)
{
    Py_CLEAR(w->opcode_heads);
    Py_CLEAR(w->type_names);
    Py_CLEAR(w->type_codes);
    Py_CLEAR(w->flag_lists);
    Py_CLEAR(w->simple);
    Py_CLEAR(w->simple_fn);
    Py_CLEAR(w->binary_cls);
    Py_CLEAR(w->text_cls);
    Py_CLEAR(w->batch_cls);
    Py_CLEAR(w->payload_json);
    Py_CLEAR(w->last_ts);
    Py_CLEAR(w->last_ts_text);
    return 0;
}

static void
LineWriter_dealloc(LineWriter *w)
{
    PyObject_GC_UnTrack(w);
    LineWriter_clear(w);
    PyMem_Free(w->buf);
    Py_TYPE(w)->tp_free((PyObject *)w);
}

static PyMethodDef LineWriter_methods[] = {
    {"write", (PyCFunction)LineWriter_write, METH_O,
     "Append the line of a CapturedMessage; False (nothing appended) for a shape "
     "left to the Python writer."},
    {"append", (PyCFunction)LineWriter_append, METH_O, "Append bytes as they are."},
    {"take", (PyCFunction)LineWriter_take, METH_NOARGS,
     "The bytes written so far; the buffer starts again empty."},
    {"write_to", (PyCFunction)LineWriter_write_to, METH_O,
     "write_to(write): call write() with a view of the buffer (not kept), then empty it."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef LineWriter_getset[] = {
    {"size", (getter)LineWriter_size, NULL, "Bytes waiting in the buffer.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject LineWriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wsproto_tools.render._lines.LineWriter",
    .tp_doc = "NDJSON lines of decoded messages, in C (see render/capture.py).",
    .tp_basicsize = sizeof(LineWriter),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)LineWriter_init,
    .tp_dealloc = (destructor)LineWriter_dealloc,
    .tp_traverse = (traverseproc)LineWriter_traverse,
    .tp_clear = (inquiry)LineWriter_clear,
    .tp_methods = LineWriter_methods,
    .tp_getset = LineWriter_getset,
};

static struct PyModuleDef lines_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "wsproto_tools.render._lines",
    .m_doc = "The C line writer of wsp decode --ndjson.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__lines(void)
{
    for (int i = 0; i < 256; i++) {
        HEX_PAIRS[i][0] = HEX[i >> 4];
        HEX_PAIRS[i][1] = HEX[i & 0x0F];
    }
#ifdef HAVE_HEX_SSSE3
    __builtin_cpu_init();
    if (__builtin_cpu_supports("ssse3"))
        hex_into = hex_ssse3;
#endif
#define INTERN(var, text)                          \
    if ((var = PyUnicode_InternFromString(text)) == NULL) \
        return NULL
    INTERN(s_ts, "ts");
    INTERN(s_conn, "conn");
    INTERN(s_direction, "direction");
    INTERN(s_msg, "msg");
    INTERN(s_violations, "violations");
    INTERN(s_wsp, "wsp");
    INTERN(s_session, "session");
    INTERN(s_number, "number");
    INTERN(s_note, "note");
    INTERN(s_opcode, "opcode");
    INTERN(s_payload, "payload");
    INTERN(s_compressed, "compressed");
    INTERN(s_text, "text");
    INTERN(s_close_code, "close_code");
    INTERN(s_close_reason, "close_reason");
    INTERN(s_frames, "frames");
    INTERN(s_flags, "flags");
    INTERN(s_sequence, "sequence");
    INTERN(s_session_id, "session_id");
    INTERN(s_timestamp, "timestamp");
    INTERN(s_type_code, "type_code");
    INTERN(s_data, "data");
    INTERN(s_messages, "messages");
#undef INTERN
    if (PyType_Ready(&LineWriterType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&lines_module);
    if (module == NULL)
        return NULL;
    Py_INCREF(&LineWriterType);
    if (PyModule_AddObject(module, "LineWriter", (PyObject *)&LineWriterType) < 0) {
        Py_DECREF(&LineWriterType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
