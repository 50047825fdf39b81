/* netwatch._deep: the compiled part of the deep parsers (issue 13: the Python cost per
 * payload handed back by the fast loop).
 *
 * What it does: client_hello_body() reads a complete TLS ClientHello body (legacy_version
 * onwards) exactly as netwatch/deep/tls.py's _parse_body_py does: the same checks in the
 * same order, the same answer (None where the Python answers None), first extension of a
 * kind wins, GREASE (RFC 8701) left out of the versions and the cipher count. It returns
 * the raw bytes of the first host_name entry of server_name (the Python decodes and
 * normalises them, as before), the versions, the ALPN names (decoded as ASCII with
 * backslashreplace, as the Python does) and the cipher count. tests/deep/test_tls_differential.py
 * and tests/deep/test_tls.py compare it with the Python body reader and the reference copy
 * on every captured hello, cut and bit-flipped copies and generated ones.
 *
 * It reads only inside the bytes object it was given: every offset is checked against the
 * body's length before it is read. Config read: none. Known limits: none beyond the
 * Python's (this is the same reader).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#define EXT_SERVER_NAME 0
#define EXT_ALPN 16
#define EXT_SUPPORTED_VERSIONS 43
#define SNI_HOST_NAME 0
#define MAX_ALPN 16

static inline size_t u16(const uint8_t *p) { return ((size_t)p[0] << 8) | p[1]; }

/* A GREASE value (0x0A0A, 0x1A1A ... 0xFAFA): two equal bytes ending in 0xA, so the test
 * holds in either byte order. */
static inline int grease(const uint8_t *p) { return p[0] == p[1] && (p[0] & 0x0F) == 0x0A; }

/* One extension's bytes: found (start, length), or not. */
typedef struct {
    int found;
    size_t start;
    size_t len;
} ext_span;

/* _server_name: the first host_name entry's raw bytes, or None. */
static PyObject *server_name(const uint8_t *b, const ext_span *e)
{
    if (!e->found || e->len < 2)
        Py_RETURN_NONE;
    const uint8_t *ext = b + e->start;
    size_t end = 2 + u16(ext);
    if (end > e->len)
        Py_RETURN_NONE;
    size_t pos = 2;
    while (pos + 3 <= end) {
        size_t start = pos + 3;
        size_t stop = start + u16(ext + pos + 1);
        if (stop > end)
            Py_RETURN_NONE;
        if (ext[pos] == SNI_HOST_NAME)
            return PyBytes_FromStringAndSize((const char *)ext + start,
                                             (Py_ssize_t)(stop - start));
        pos = stop;
    }
    Py_RETURN_NONE;
}

/* _alpn: the protocol names up to a cut one, at most MAX_ALPN. */
static PyObject *alpn(const uint8_t *b, const ext_span *e)
{
    if (!e->found || e->len < 2)
        return PyTuple_New(0);
    const uint8_t *ext = b + e->start;
    size_t end = 2 + u16(ext);
    if (end > e->len)
        return PyTuple_New(0);
    PyObject *names[MAX_ALPN];
    Py_ssize_t n = 0;
    size_t pos = 2;
    while (pos < end && n < MAX_ALPN) {
        size_t stop = pos + 1 + ext[pos];
        if (stop > end)
            break;
        PyObject *name = PyUnicode_DecodeASCII((const char *)ext + pos + 1,
                                               (Py_ssize_t)(stop - pos - 1), "backslashreplace");
        if (name == NULL) {
            while (n > 0)
                Py_DECREF(names[--n]);
            return NULL;
        }
        names[n++] = name;
        pos = stop;
    }
    PyObject *out = PyTuple_New(n);
    if (out == NULL) {
        while (n > 0)
            Py_DECREF(names[--n]);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        PyTuple_SET_ITEM(out, i, names[i]);
    return out;
}

/* _supported_versions, or (legacy_version,) when it lists none. */
static PyObject *versions(const uint8_t *b, const ext_span *e, size_t legacy)
{
    Py_ssize_t n = 0;
    const uint8_t *ext = b + e->start;
    size_t count = 0;
    if (e->found && e->len > 0 && 1 + (size_t)ext[0] <= e->len) {
        count = ext[0] / 2u;
        for (size_t i = 0; i < count; i++)
            if (!grease(ext + 1 + 2 * i))
                n++;
    }
    if (n == 0)
        return Py_BuildValue("(n)", (Py_ssize_t)legacy);
    PyObject *out = PyTuple_New(n);
    if (out == NULL)
        return NULL;
    Py_ssize_t k = 0;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *v = ext + 1 + 2 * i;
        if (grease(v))
            continue;
        PyObject *item = PyLong_FromSize_t(u16(v));
        if (item == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, k++, item);
    }
    return out;
}

PyDoc_STRVAR(client_hello_body_doc,
"client_hello_body(body, /) -> (sni bytes | None, versions, alpn, cipher_count) | None\n"
"\n"
"Read a complete ClientHello body (legacy_version onwards) as netwatch.deep.tls does:\n"
"None when it is malformed; else the raw bytes of the first host_name entry of\n"
"server_name (None without one), the offered versions without GREASE (else the\n"
"legacy_version alone), the ALPN names and the number of non-GREASE cipher suites.\n"
"IndexError when the body is shorter than 35 bytes (the caller passes at least 38).");

static PyObject *client_hello_body(PyObject *module, PyObject *arg)
{
    (void)module;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "client_hello_body() takes bytes");
        return NULL;
    }
    const uint8_t *b = (const uint8_t *)PyBytes_AS_STRING(arg);
    size_t size = (size_t)PyBytes_GET_SIZE(arg);
    if (size < 35) {
        PyErr_SetString(PyExc_IndexError, "index out of range");
        return NULL;
    }
    size_t session_len = b[34];
    if (b[0] != 3 || session_len > 32)
        Py_RETURN_NONE;
    size_t off = 35 + session_len; /* cipher suites: 2-byte length, 2 bytes each */
    if (off + 2 > size)
        Py_RETURN_NONE;
    size_t end = off + 2 + u16(b + off);
    if (end > size || (end - off) % 2)
        Py_RETURN_NONE;
    size_t suites = (end - off - 2) / 2, kept = 0;
    for (size_t i = 0; i < suites; i++)
        if (!grease(b + off + 2 + 2 * i))
            kept++;
    if (end >= size || end + 1 + b[end] > size)
        Py_RETURN_NONE; /* compression methods missing or cut */
    off = end + 1 + b[end];
    ext_span sni = {0, 0, 0}, alpn_ext = {0, 0, 0}, sv = {0, 0, 0};
    if (off != size) { /* the extension block (absent in an old hello) */
        if (off + 2 > size)
            Py_RETURN_NONE;
        end = off + 2 + u16(b + off);
        if (end > size)
            Py_RETURN_NONE;
        size_t pos = off + 2;
        while (pos + 4 <= end) {
            size_t type = u16(b + pos), len = u16(b + pos + 2);
            pos += 4 + len;
            if (pos > end)
                Py_RETURN_NONE;
            ext_span *e = type == EXT_SERVER_NAME ? &sni
                        : type == EXT_ALPN ? &alpn_ext
                        : type == EXT_SUPPORTED_VERSIONS ? &sv
                        : NULL;
            if (e != NULL && !e->found) {
                e->found = 1;
                e->start = pos - len;
                e->len = len;
            }
        }
        if (pos != end)
            Py_RETURN_NONE;
    }
    PyObject *host = server_name(b, &sni);
    if (host == NULL)
        return NULL;
    PyObject *offered = versions(b, &sv, u16(b));
    if (offered == NULL) {
        Py_DECREF(host);
        return NULL;
    }
    PyObject *names = alpn(b, &alpn_ext);
    if (names == NULL) {
        Py_DECREF(host);
        Py_DECREF(offered);
        return NULL;
    }
    return Py_BuildValue("NNNn", host, offered, names, (Py_ssize_t)kept);
}

static PyMethodDef deep_methods[] = {
    {"client_hello_body", client_hello_body, METH_O, client_hello_body_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef deep_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "netwatch._deep",
    .m_doc = "The compiled part of the deep parsers: the TLS ClientHello body reader "
             "(see netwatch/deep/tls.py).",
    .m_size = 0,
    .m_methods = deep_methods,
};

PyMODINIT_FUNC PyInit__deep(void) { return PyModuleDef_Init(&deep_module); }
