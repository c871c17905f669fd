/* Helpers shared by the C speedups: reading the slots of __slots__ classes
 * directly, and decimal digits without printf.
 *
 * SLOT_GET(obj, name) is getattr(obj, name) for an object whose class keeps
 * ``name`` in a slot (a member descriptor of type T_OBJECT_EX) and uses the
 * generic __getattribute__: the slot's offset is looked up once per call site
 * and class, then read directly.  For any other object, and for an unset slot,
 * it is plain PyObject_GetAttr (which raises as Python would).  It returns a
 * new reference, or NULL with an exception set.
 */
#ifndef WSP_CSLOTS_H
#define WSP_CSLOTS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

typedef struct {
    PyTypeObject *type; /* a strong reference: the cached class stays alive */
    Py_ssize_t offset;  /* -1: not a plain slot of this class */
} SlotCache;

static Py_ssize_t
slot_offset(PyTypeObject *type, PyObject *name)
{
    if (type->tp_getattro != PyObject_GenericGetAttr)
        return -1;
    PyObject *descr = PyObject_GetAttr((PyObject *)type, name);
    if (descr == NULL) {
        PyErr_Clear();
        return -1;
    }
    Py_ssize_t offset = -1;
    if (Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyMemberDef *def = ((PyMemberDescrObject *)descr)->d_member;
        if (def->type == T_OBJECT_EX && !(def->flags & READ_RESTRICTED))
            offset = def->offset;
    }
    Py_DECREF(descr);
    return offset;
}

static inline PyObject *
slot_get(SlotCache *cache, PyObject *obj, PyObject *name)
{
    PyTypeObject *type = Py_TYPE(obj);
    if (cache->type != type) {
        Py_ssize_t offset = slot_offset(type, name);
        Py_INCREF(type);
        Py_XSETREF(cache->type, type);
        cache->offset = offset;
    }
    if (cache->offset >= 0) {
        PyObject *value = *(PyObject **)((char *)obj + cache->offset);
        if (value != NULL)
            return Py_NewRef(value);
    }
    return PyObject_GetAttr(obj, name);
}

#define SLOT_GET(obj, name)                                \
    ({                                                     \
        static SlotCache _cache = {NULL, -1};              \
        slot_get(&_cache, (obj), (name));                  \
    })

/* The decimal digits of value into out (at least 21 bytes); returns their count. */
static inline int
format_u64(char *out, unsigned long long value)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    for (int i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

static inline int
format_i64(char *out, long long value)
{
    if (value < 0) {
        out[0] = '-';
        return 1 + format_u64(out + 1, (unsigned long long)0 - (unsigned long long)value);
    }
    return format_u64(out, (unsigned long long)value);
}

#endif
