/* netwatch._mmdb: the search-tree walk of a MaxMind DB file, in C.
 *
 * What it does: Tree(buffer, node_count, record_size, ip_version) holds a read-only view of
 * a MaxMind DB file's bytes (an mmap or bytes: anything with the buffer protocol) and
 * answers, for a packed IPv4 (4 bytes) or IPv6 (16 bytes) address, where its record is in
 * the data section: Tree.find gives (data section offset or None, prefix length), and
 * Tree.offset the offset alone (-1 when the address is in no network), for callers that
 * only key a cache by it. Decoding the record is left to Python (netwatch.enrich.geo).
 *
 * The format (MaxMind DB spec v2.0): the tree is node_count nodes, each two records of
 * record_size bits (24: two 3-byte big-endian values; 28: two 3-byte values whose top four
 * bits are the high and low nibble of the middle byte; 32: two 4-byte values), then 16
 * zero bytes, then the data section. Walking the address bit by bit from its most
 * significant bit, 0 takes the left record and 1 the right; a record below node_count is
 * the next node, equal to it means "no data", above it points into the data section at
 * (record - node_count - 16). In an IPv6 tree an IPv4 address is looked up from the node
 * reached by 96 left turns from the root (the ::/96 subtree), found once when the Tree is
 * made; its prefix length then counts IPv4 bits, as maxminddb's does.
 *
 * Bounds: the tree (node_count * node bytes + 16) must fit in the buffer, checked once;
 * a node is only read when its number is below node_count, so every read is inside the
 * tree. A walk reads at most 128 nodes (one per address bit), so no loop in a hostile file
 * can keep it going; running out of bits on a node, or a data record that points into the
 * separator or past the end of the buffer, raises ValueError ("corrupt search tree"). The
 * Tree holds the buffer (an mmap cannot be closed under it) until close() or deallocation.
 *
 * Config read: none. Known limits: the metadata (node_count, record_size, ip_version) is
 * read by the caller (maxminddb); the walk holds the GIL (it takes about 100 ns).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <stdint.h>

#define MM_SEPARATOR 16u  /* zero bytes between the tree and the data section */
#define MM_IPV4_DEPTH 96u /* left turns from the root of an IPv6 tree to ::/96 */

typedef struct {
    PyObject_HEAD
    Py_buffer view;      /* held from __init__ to close() */
    int open;            /* 1 while view is held */
    uint32_t node_count;
    uint32_t node_bytes; /* 6, 7 or 8 */
    int record_size;     /* 24, 28 or 32 */
    int ip_version;      /* 4 or 6 */
    uint64_t tree_size;  /* node_count * node_bytes */
    uint64_t ipv4_start; /* the node (or record) of ::/96; 0 in an IPv4 tree */
    int ipv4_depth;      /* how many of the 96 left turns were taken to reach it */
} mm_tree;

/* The record on side `bit` (0 left, 1 right) of node `node`; node < node_count. */
static inline uint32_t read_record(const mm_tree *t, uint32_t node, unsigned bit)
{
    const uint8_t *p = (const uint8_t *)t->view.buf + (uint64_t)node * t->node_bytes;
    switch (t->record_size) {
    case 24:
        p += bit * 3u;
        return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
    case 28:
        if (bit == 0)
            return (uint32_t)(p[3] & 0xF0u) << 20 | (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8
                   | p[2];
        return (uint32_t)(p[3] & 0x0Fu) << 24 | (uint32_t)p[4] << 16 | (uint32_t)p[5] << 8
               | p[6];
    default: /* 32 */
        p += bit * 4u;
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    }
}

/* The result of one walk: 1 data (offset set), 0 no data, -1 corrupt (exception set). */
static int walk(const mm_tree *t, const uint8_t *addr, unsigned bits, uint64_t *offset,
                int *prefix)
{
    uint64_t node = bits == 32 && t->ip_version == 6 ? t->ipv4_start : 0;
    unsigned i = 0;
    for (; i < bits && node < t->node_count; i++) {
        unsigned bit = (addr[i >> 3] >> (7u - (i & 7u))) & 1u;
        node = read_record(t, (uint32_t)node, bit);
    }
    *prefix = (int)i;
    if (node == t->node_count)
        return 0;
    if (node < t->node_count) {
        PyErr_Format(PyExc_ValueError,
                     "corrupt search tree: the walk ran out of address bits on node %llu",
                     (unsigned long long)node);
        return -1;
    }
    uint64_t rel = node - t->node_count; /* from the start of the separator */
    if (rel < MM_SEPARATOR || t->tree_size + rel >= (uint64_t)t->view.len) {
        PyErr_Format(PyExc_ValueError,
                     "corrupt search tree: record %llu points outside the data section",
                     (unsigned long long)node);
        return -1;
    }
    *offset = rel - MM_SEPARATOR;
    return 1;
}

/* Shared by find and offset: checks the Tree and the address, then walks. */
static int tree_walk(mm_tree *t, PyObject *arg, uint64_t *offset, int *prefix)
{
    if (!t->open) {
        PyErr_SetString(PyExc_ValueError, "the Tree is closed");
        return -1;
    }
    if (!PyBytes_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "a packed address must be bytes, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return -1;
    }
    Py_ssize_t len = PyBytes_GET_SIZE(arg);
    if (len != 4 && !(len == 16 && t->ip_version == 6)) {
        PyErr_Format(PyExc_ValueError,
                     "a packed address is 4 bytes%s, not %zd",
                     t->ip_version == 6 ? " or 16" : " in an IPv4 tree", len);
        return -1;
    }
    return walk(t, (const uint8_t *)PyBytes_AS_STRING(arg), (unsigned)len * 8u, offset, prefix);
}

static void tree_release(mm_tree *t)
{
    if (t->open) {
        t->open = 0;
        PyBuffer_Release(&t->view);
    }
}

static int tree_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    mm_tree *t = (mm_tree *)self;
    PyObject *buffer;
    unsigned long long node_count;
    int record_size, ip_version;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_SetString(PyExc_TypeError, "Tree takes positional arguments only");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "OKii:Tree", &buffer, &node_count, &record_size, &ip_version))
        return -1;
    tree_release(t); /* __init__ called again */
    if (record_size != 24 && record_size != 28 && record_size != 32) {
        PyErr_Format(PyExc_ValueError, "record size %d is not 24, 28 or 32", record_size);
        return -1;
    }
    if (ip_version != 4 && ip_version != 6) {
        PyErr_Format(PyExc_ValueError, "IP version %d is not 4 or 6", ip_version);
        return -1;
    }
    if (node_count == 0 || node_count > UINT32_MAX >> (32 - record_size)) {
        PyErr_Format(PyExc_ValueError, "node count %llu does not fit %d-bit records",
                     node_count, record_size);
        return -1;
    }
    if (PyObject_GetBuffer(buffer, &t->view, PyBUF_SIMPLE) < 0)
        return -1;
    uint32_t node_bytes = (uint32_t)record_size / 4u; /* two records per node */
    uint64_t tree_size = node_count * node_bytes;      /* below 2^32 * 8: no overflow */
    if (tree_size + MM_SEPARATOR > (uint64_t)t->view.len) {
        PyBuffer_Release(&t->view);
        PyErr_Format(PyExc_ValueError,
                     "corrupt search tree: %llu nodes of %u bytes do not fit in %zd bytes",
                     node_count, node_bytes, t->view.len);
        return -1;
    }
    t->open = 1;
    t->node_count = (uint32_t)node_count;
    t->node_bytes = node_bytes;
    t->record_size = record_size;
    t->ip_version = ip_version;
    t->tree_size = tree_size;
    uint64_t node = 0;
    unsigned depth = 0;
    if (ip_version == 6) {
        for (; depth < MM_IPV4_DEPTH && node < node_count; depth++)
            node = read_record(t, (uint32_t)node, 0);
    }
    t->ipv4_start = node;
    t->ipv4_depth = (int)depth;
    return 0;
}

static void tree_dealloc(PyObject *self)
{
    tree_release((mm_tree *)self);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *tree_find(PyObject *self, PyObject *arg)
{
    uint64_t offset = 0;
    int prefix = 0;
    int found = tree_walk((mm_tree *)self, arg, &offset, &prefix);
    if (found < 0)
        return NULL;
    if (found == 0)
        return Py_BuildValue("(Oi)", Py_None, prefix);
    return Py_BuildValue("(Ki)", (unsigned long long)offset, prefix);
}

static PyObject *tree_offset(PyObject *self, PyObject *arg)
{
    uint64_t offset = 0;
    int prefix = 0;
    int found = tree_walk((mm_tree *)self, arg, &offset, &prefix);
    if (found < 0)
        return NULL;
    if (found == 0)
        return PyLong_FromLong(-1);
    return PyLong_FromUnsignedLongLong(offset);
}

static PyObject *tree_close(PyObject *self, PyObject *unused)
{
    (void)unused;
    tree_release((mm_tree *)self);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(find_doc, "find(address, /)\n--\n\n"
                       "(data section offset, prefix length) of a packed address's record;\n"
                       "the offset is None when the address is in no network. ValueError\n"
                       "for a corrupt tree, a closed Tree or a wrong-sized address.");
PyDoc_STRVAR(offset_doc, "offset(address, /)\n--\n\n"
                         "The data section offset of a packed address's record, or -1 when\n"
                         "the address is in no network; raises as find does.");
PyDoc_STRVAR(close_doc, "close()\n--\n\n"
                        "Let go of the buffer (an mmap can then be closed); lookups raise.");

static PyMethodDef tree_methods[] = {
    {"find", tree_find, METH_O, find_doc},
    {"offset", tree_offset, METH_O, offset_doc},
    {"close", tree_close, METH_NOARGS, close_doc},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef tree_members[] = {
    {"node_count", T_UINT, offsetof(mm_tree, node_count), READONLY, "nodes in the tree"},
    {"record_size", T_INT, offsetof(mm_tree, record_size), READONLY, "bits per record"},
    {"ip_version", T_INT, offsetof(mm_tree, ip_version), READONLY, "4 or 6"},
    {"ipv4_depth", T_INT, offsetof(mm_tree, ipv4_depth), READONLY,
     "left turns taken from the root to the IPv4 subtree (96 when it is a node)"},
    {NULL, 0, 0, 0, NULL},
};

PyDoc_STRVAR(tree_doc, "Tree(buffer, node_count, record_size, ip_version, /)\n--\n\n"
                       "The search tree of a MaxMind DB file held in `buffer` (its bytes),\n"
                       "with the metadata's node count, record size and IP version.");

static PyTypeObject tree_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "netwatch._mmdb.Tree",
    .tp_basicsize = sizeof(mm_tree),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = tree_doc,
    .tp_new = PyType_GenericNew,
    .tp_init = tree_init,
    .tp_dealloc = tree_dealloc,
    .tp_methods = tree_methods,
    .tp_members = tree_members,
};

static struct PyModuleDef mmdb_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "netwatch._mmdb",
    .m_doc = "The search-tree walk of a MaxMind DB file (netwatch/_mmdb.c).",
    .m_size = 0,
};

PyMODINIT_FUNC PyInit__mmdb(void)
{
    if (PyType_Ready(&tree_type) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&mmdb_module);
    if (module == NULL)
        return NULL;
    Py_INCREF(&tree_type);
    if (PyModule_AddObject(module, "Tree", (PyObject *)&tree_type) < 0) {
        Py_DECREF(&tree_type);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
