/* The records of a pcap file, cut out of a block in C (see capture/reader.py).
 *
 * split(block, pos, big_endian, unit, linktype, limit, number) returns
 * (packets, position reached): every whole record of ``block`` from ``pos`` on,
 * as the tuples the Python reader yields, (number, ts, linktype, data), numbered
 * from ``number + 1``, with ts = seconds + fraction * unit.  It stops before a
 * record header cut short, a record whose captured length exceeds ``limit``, or
 * a record cut short: the Python reader deals with those (refills, warnings).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

static inline uint32_t
read32(const unsigned char *p, int big)
{
    return big ? ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]
               : ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}

static PyObject *
split(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError,
                        "split(block: bytes, pos, big_endian, unit, linktype, limit, number)");
        return NULL;
    }
    const unsigned char *block = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    int big = PyObject_IsTrue(args[2]);
    double unit = PyFloat_AsDouble(args[3]);
    PyObject *linktype = args[4];
    long long limit = PyLong_AsLongLong(args[5]);
    long long number = PyLong_AsLongLong(args[6]);
    if (PyErr_Occurred() || big < 0)
        return NULL;
    if (pos < 0 || pos > size) {
        PyErr_SetString(PyExc_ValueError, "pos is outside the block");
        return NULL;
    }
    PyObject *packets = PyList_New(0);
    if (packets == NULL)
        return NULL;
    while (size - pos >= 16) {
        const unsigned char *head = block + pos;
        uint32_t incl = read32(head + 8, big);
        if ((long long)incl > limit || size - pos - 16 < (Py_ssize_t)incl)
            break;
        double ts = (double)read32(head, big) + (double)read32(head + 4, big) * unit;
        number += 1;
        PyObject *packet = Py_BuildValue("(LdOy#)", number, ts, linktype,
                                         (const char *)head + 16, (Py_ssize_t)incl);
        if (packet == NULL || PyList_Append(packets, packet) < 0) {
            Py_XDECREF(packet);
            Py_DECREF(packets);
            return NULL;
        }
        Py_DECREF(packet);
        pos += 16 + (Py_ssize_t)incl;
    }
    return Py_BuildValue("(Nn)", packets, pos);
}

static PyMethodDef pcap_methods[] = {
    {"split", (PyCFunction)(void (*)(void))split, METH_FASTCALL,
     "Cut the whole records out of a block; see the module docstring."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef pcap_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "wsproto_tools.capture._pcap",
    .m_doc = "pcap records cut out of a block, in C.",
    .m_size = -1,
    .m_methods = pcap_methods,
};

PyMODINIT_FUNC
PyInit__pcap(void)
{
    return PyModule_Create(&pcap_module);
}
