/* The common packets of capture/net.py's tcp_segment, parsed in C.
 *
 * parse(linktype, data) returns the same tuple as tcp_segment for an
 * undamaged TCP packet over IPv4 (not a fragment) or IPv6 without extension
 * headers, on Ethernet (no VLAN tag), BSD null/loopback, raw IP or Linux cooked
 * capture (SLL, SLL2); and None for anything else, damaged packets included.
 * segment(linktype, data) hands those to the Python function given to
 * configure() (tcp_segment, which decides, and raises NotTcp where it must).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define ETHERNET 1
#define RAW 101
#define RAW_12 12
#define RAW_14 14
#define IPV4_ONLY 228
#define IPV6_ONLY 229
#define NULL_LOOP 0
#define LOOP 108
#define SLL 113
#define SLL2 276

static inline unsigned int
u16(const unsigned char *p)
{
    return ((unsigned int)p[0] << 8) | p[1];
}

static inline unsigned long
u32(const unsigned char *p)
{
    return ((unsigned long)p[0] << 24) | ((unsigned long)p[1] << 16) | ((unsigned long)p[2] << 8)
           | p[3];
}

/* (src, sport, dst, dport, seq, ack, flags, data[start:end]) with Python's
 * slicing of start and end. */
static PyObject *
build(const unsigned char *data, Py_ssize_t size, Py_ssize_t addr, Py_ssize_t addr_len,
      Py_ssize_t tcp, Py_ssize_t start, Py_ssize_t end)
{
    if (end > size)
        end = size;
    if (start > end)
        start = end;
    return Py_BuildValue("(y#Iy#IkkBy#)", data + addr, addr_len,
                         u16(data + tcp), data + addr + addr_len, addr_len,
                         u16(data + tcp + 2), u32(data + tcp + 4), u32(data + tcp + 8),
                         data[tcp + 13], data + start, end - start);
}

/* the Python tcp_segment (configure) */
static PyObject *fallback = NULL;

static PyObject *
parse(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "parse(linktype, data: bytes)");
        return NULL;
    }
    long linktype = PyLong_AsLong(args[0]);
    if (linktype == -1 && PyErr_Occurred())
        return NULL;
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(args[1]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[1]);

    if (linktype == ETHERNET && size >= 54 && data[12] == 0x08 && data[13] == 0x00
        && data[14] == 0x45 && data[23] == 6 && !(data[20] & 0x3F || data[21])) {
        /* tcp_segment's own fast path: Ethernet, IPv4 without options, TCP */
        Py_ssize_t hlen = (data[46] >> 4) * 4;
        if (hlen >= 20)
            return build(data, size, 26, 4, 34, 34 + hlen, 14 + (Py_ssize_t)u16(data + 16));
    }
    Py_ssize_t off;
    unsigned int etype = 0;
    int has_etype = 1;
    switch (linktype) {
    case ETHERNET:
        if (size < 14)
            Py_RETURN_NONE;
        etype = u16(data + 12);
        off = 14;
        break;
    case RAW:
    case RAW_12:
    case RAW_14:
    case IPV4_ONLY:
    case IPV6_ONLY:
        off = 0;
        has_etype = 0;
        break;
    case NULL_LOOP:
    case LOOP:
        off = 4;
        has_etype = 0;
        break;
    case SLL:
        if (size < 16)
            Py_RETURN_NONE;
        etype = u16(data + 14);
        off = 16;
        break;
    case SLL2:
        if (size < 20)
            Py_RETURN_NONE;
        etype = u16(data);
        off = 20;
        break;
    default:
        Py_RETURN_NONE;
    }
    if (has_etype && etype != 0x0800 && etype != 0x86DD)
        Py_RETURN_NONE; /* VLAN tags and the rest: the Python path */
    if (size <= off)
        Py_RETURN_NONE;
    unsigned int version = data[off] >> 4;
    Py_ssize_t t, end, addr, addr_len;
    if (version == 4) {
        Py_ssize_t ihl = (data[off] & 0x0F) * 4;
        if (ihl < 20 || size < off + ihl || data[off + 9] != 6)
            Py_RETURN_NONE;
        if (u16(data + off + 6) & 0x3FFF)
            Py_RETURN_NONE; /* a fragment */
        Py_ssize_t total = (Py_ssize_t)u16(data + off + 2);
        end = total >= ihl ? off + total : size;
        t = off + ihl;
        addr = off + 12;
        addr_len = 4;
    }
    else if (version == 6) {
        if (size < off + 40 || data[off + 6] != 6)
            Py_RETURN_NONE; /* extension headers: the Python path */
        Py_ssize_t plen = (Py_ssize_t)u16(data + off + 4);
        t = off + 40;
        end = plen ? t + plen : size;
        addr = off + 8;
        addr_len = 16;
    }
    else
        Py_RETURN_NONE;
    if (size < t + 20)
        Py_RETURN_NONE;
    Py_ssize_t hlen = (data[t + 12] >> 4) * 4;
    if (hlen < 20)
        Py_RETURN_NONE;
    return build(data, size, addr, addr_len, t, t + hlen, end);
}

static PyObject *
segment(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyBytes_Check(args[1]))
        goto python;
    PyObject *found = parse(module, args, nargs);
    if (found != Py_None)
        return found;
    Py_DECREF(found);
python:
    if (fallback == NULL)
        Py_RETURN_NONE;
    return PyObject_Vectorcall(fallback, args, (size_t)nargs, NULL);
}

static PyObject *
configure(PyObject *module, PyObject *func)
{
    if (!PyCallable_Check(func)) {
        PyErr_SetString(PyExc_TypeError, "configure(tcp_segment)");
        return NULL;
    }
    Py_XSETREF(fallback, Py_NewRef(func));
    Py_RETURN_NONE;
}

static PyMethodDef net_methods[] = {
    {"parse", (PyCFunction)(void (*)(void))parse, METH_FASTCALL,
     "parse(linktype, data): tcp_segment's tuple for a common packet, else None."},
    {"segment", (PyCFunction)(void (*)(void))segment, METH_FASTCALL,
     "segment(linktype, data): tcp_segment(linktype, data), common packets parsed in C."},
    {"configure", (PyCFunction)configure, METH_O,
     "configure(tcp_segment): the Python function for the packets parse leaves."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef net_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "wsproto_tools.capture._net",
    .m_doc = "Common TCP/IP packets, parsed in C.",
    .m_size = -1,
    .m_methods = net_methods,
};

PyMODINIT_FUNC
PyInit__net(void)
{
    return PyModule_Create(&net_module);
}
