/* netwatch._mmdb: the search-tree walk of a MaxMind DB file, a GeoIP lookup over two, and
 * address-space pieces, in C.
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
 * Lazily filled buffers: Tree(..., fill, block_size) is for a buffer whose blocks are
 * unpacked on demand (the built-in GeoIP data): before a walk first reads a node lying in a
 * block, fill(block) is called (a Python callable that writes that block into the memory
 * the buffer maps, or raises: the walk then raises the same); a byte per block says which
 * are done. A fill() that closes the Tree makes the walk raise ValueError.
 *
 * Bounds: the tree (node_count * node bytes + 16) must fit in the buffer, checked once;
 * a node is only read when its number is below node_count, so every read is inside the
 * tree. A walk reads at most 128 nodes (one per address bit), so no loop in a hostile file
 * can keep it going; running out of bits on a node, or a data record that points into the
 * separator or past the end of the buffer, raises ValueError ("corrupt search tree"). The
 * Tree holds the buffer (an mmap cannot be closed under it) until close() or deallocation.
 *
 * Pair(first, second, answers, missing, failed) is a whole GeoIP lookup in the usual two
 * files (country, then ASN) for callers that keep answers per pair of record offsets:
 * Pair.lookup(address) walks both Trees and returns answers[(first offset, second
 * offset)] (-1 for no record) from the dict `answers`, calling back into Python only when
 * the dict has no such entry (missing(key, address)) or when a walk raised an Exception
 * (failed(address)), so the answer for an address whose records were seen before costs no
 * Python frame at all.
 *
 * Pieces(starts4, values4, starts16, values16) answers "which piece of the address space is
 * this address in" for address classes (netwatch.enrich.addrclass): each family's space
 * is cut into pieces given by their first addresses (big-endian, ascending from 0, checked
 * once), and Pieces.get(address) is the value of the address's piece, found by binary
 * search (at most ~8 compares for a few hundred pieces, no allocation).
 *
 * AddressCache(is_local, fetch4, fetch6, none, max_entries) is the per-address cache in
 * front of a GeoIP lookup (netwatch.enrich.geo.CachedGeo): lookup(address) answers from a
 * dict, else `none` for an address is_local() calls non-public, else fetch4(address) for
 * a 4-byte address or fetch6(address) for any other, kept in the dict and in a ring of at
 * most max_entries addresses (the oldest dropped when full); it counts lookups, hits,
 * skipped, misses and evictions as CachedGeo's Python form does, so a flow end's GeoIP
 * answer costs one C call (a call into the Pair when fetch4 is its lookup).
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
    PyObject *fill;      /* fill(block): makes a block of the buffer readable; NULL: all are */
    uint64_t block_size; /* bytes per block when fill is set */
    uint8_t *filled;     /* one byte per block: 1 once fill(block) returned */
    uint64_t blocks;     /* how many blocks the buffer has */
    uint64_t unfilled;   /* how many of them fill() has not been called for: at 0, fill goes */
    int block_shift;     /* log2(block_size) when it is a power of two, else -1 */
    uint64_t generation; /* counts releases: a fill() that closed or re-made the Tree shows */
} mm_tree;

/* Makes the node `node` readable: with a fill callable, each block the node's bytes lie in
 * that is not filled yet is passed to fill() first. 0 on success, -1 with an exception. */
static int ensure_node(mm_tree *t, uint32_t node)
{
    if (t->fill == NULL)
        return 0;
    uint64_t start = (uint64_t)node * t->node_bytes; /* node < node_count: inside the tree */
    uint64_t end = start + t->node_bytes - 1;
    uint64_t first, last;
    if (t->block_shift >= 0) { /* the usual case: no division per node read */
        first = start >> t->block_shift;
        last = end >> t->block_shift;
    } else {
        first = start / t->block_size;
        last = end / t->block_size;
    }
    if (t->filled[first] && t->filled[last]) /* last < blocks: the node is in the buffer */
        return 0;
    for (uint64_t block = first; block <= last && block < t->blocks; block++) {
        if (t->filled[block])
            continue;
        uint64_t generation = t->generation;
        PyObject *done = PyObject_CallFunction(t->fill, "K", (unsigned long long)block);
        if (done == NULL)
            return -1;
        Py_DECREF(done);
        if (t->generation != generation || t->filled == NULL) { /* fill() closed the Tree */
            PyErr_SetString(PyExc_ValueError, "the Tree was closed while a block was filled");
            return -1;
        }
        t->filled[block] = 1;
        if (--t->unfilled == 0) { /* every block is there: walks need not ask again */
            Py_CLEAR(t->fill);
            break;
        }
    }
    return 0;
}

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

/* The result of one walk: 1 data (offset set), 0 no data, -1 corrupt or a block that could
 * not be filled (exception set). */
static int walk(mm_tree *t, const uint8_t *addr, unsigned bits, uint64_t *offset, int *prefix)
{
    uint64_t node = bits == 32 && t->ip_version == 6 ? t->ipv4_start : 0;
    unsigned i = 0;
    for (; i < bits && node < t->node_count; i++) {
        unsigned bit = (addr[i >> 3] >> (7u - (i & 7u))) & 1u;
        if (ensure_node(t, (uint32_t)node) < 0)
            return -1;
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
    t->generation++;
    if (t->open) {
        t->open = 0;
        PyBuffer_Release(&t->view);
    }
    PyMem_Free(t->filled);
    t->filled = NULL;
    t->blocks = 0;
    Py_CLEAR(t->fill);
}

/* The four types here take positional arguments only: 0, or -1 with a TypeError naming the
 * type when keywords were given. */
static int positional_only(PyObject *kwds, const char *type)
{
    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_Format(PyExc_TypeError, "%s takes positional arguments only", type);
        return -1;
    }
    return 0;
}

/* The four types share their shape: made by PyType_GenericNew, then prefix_init; in the
 * cyclic GC (prefix_traverse, prefix_clear, prefix_dealloc); prefix_methods and prefix_doc;
 * any other slot given after the prefix. */
#define MM_TYPE(var, name, ctype, prefix, ...)                                                  \
    static PyTypeObject var = {                                                              \
        PyVarObject_HEAD_INIT(NULL, 0).tp_name = "netwatch._mmdb." name,                     \
        .tp_basicsize = sizeof(ctype),                                                       \
        .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,                                 \
        .tp_doc = prefix##_doc,                                                              \
        .tp_new = PyType_GenericNew,                                                         \
        .tp_init = prefix##_init,                                                            \
        .tp_traverse = prefix##_traverse,                                                    \
        .tp_clear = prefix##_clear,                                                          \
        .tp_dealloc = prefix##_dealloc,                                                      \
        .tp_methods = prefix##_methods,                                                      \
        __VA_ARGS__}

static int tree_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    mm_tree *t = (mm_tree *)self;
    PyObject *buffer, *fill = Py_None;
    unsigned long long node_count, block_size = 0;
    int record_size, ip_version;
    if (positional_only(kwds, "Tree") < 0)
        return -1;
    if (!PyArg_ParseTuple(args, "OKii|OK:Tree", &buffer, &node_count, &record_size, &ip_version,
                          &fill, &block_size))
        return -1;
    tree_release(t); /* __init__ called again */
    if (fill != Py_None && (!PyCallable_Check(fill) || block_size == 0)) {
        PyErr_SetString(PyExc_ValueError, "fill must be callable, with a block size above 0");
        return -1;
    }
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
    if (fill != Py_None) {
        t->block_size = block_size;
        uint64_t len = (uint64_t)t->view.len; /* at least 16: the separator fits */
        t->blocks = len / block_size + (len % block_size != 0);
        t->unfilled = t->blocks;
        t->block_shift = -1;
        if ((block_size & (block_size - 1)) == 0) {
            t->block_shift = 0;
            while ((1ull << t->block_shift) < block_size)
                t->block_shift++;
        }
        t->filled = PyMem_Calloc((size_t)t->blocks, 1);
        if (t->filled == NULL) {
            tree_release(t);
            PyErr_NoMemory();
            return -1;
        }
        t->fill = Py_NewRef(fill);
    }
    uint64_t node = 0;
    unsigned depth = 0;
    if (ip_version == 6) {
        for (; depth < MM_IPV4_DEPTH && node < node_count; depth++) {
            if (ensure_node(t, (uint32_t)node) < 0) {
                tree_release(t);
                return -1;
            }
            node = read_record(t, (uint32_t)node, 0);
        }
    }
    t->ipv4_start = node;
    t->ipv4_depth = (int)depth;
    return 0;
}

static int tree_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(((mm_tree *)self)->fill);
    return 0;
}

static int tree_clear(PyObject *self)
{
    Py_CLEAR(((mm_tree *)self)->fill);
    return 0;
}

static void tree_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
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

PyDoc_STRVAR(tree_doc, "Tree(buffer, node_count, record_size, ip_version, fill=None, block_size=0, /)"
                       "\n--\n\n"
                       "The search tree of a MaxMind DB file held in `buffer` (its bytes),\n"
                       "with the metadata's node count, record size and IP version. With\n"
                       "`fill`, the buffer is filled lazily in blocks of `block_size` bytes:\n"
                       "fill(block) is called (once, until it returns) before a walk first\n"
                       "reads a node in that block.");

MM_TYPE(tree_type, "Tree", mm_tree, tree, .tp_members = tree_members);

/* ---- Pair: the two walks of a GeoIP lookup and the answer kept for their offsets ---- */

typedef struct {
    PyObject_HEAD
    PyObject *first;   /* Tree: the country file */
    PyObject *second;  /* Tree: the ASN file */
    PyObject *answers; /* dict: (first offset, second offset) -> answer */
    PyObject *missing; /* missing(key, address): the answer when the dict has none */
    PyObject *failed;  /* failed(address): the answer when a walk raised */
} mm_pair;

static int pair_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    mm_pair *p = (mm_pair *)self;
    PyObject *first, *second, *answers, *missing, *failed;
    if (positional_only(kwds, "Pair") < 0)
        return -1;
    if (!PyArg_ParseTuple(args, "O!O!O!OO:Pair", &tree_type, &first, &tree_type, &second,
                          &PyDict_Type, &answers, &missing, &failed))
        return -1;
    if (!PyCallable_Check(missing) || !PyCallable_Check(failed)) {
        PyErr_SetString(PyExc_TypeError, "Pair: missing and failed must be callable");
        return -1;
    }
    Py_XSETREF(p->first, Py_NewRef(first));
    Py_XSETREF(p->second, Py_NewRef(second));
    Py_XSETREF(p->answers, Py_NewRef(answers));
    Py_XSETREF(p->missing, Py_NewRef(missing));
    Py_XSETREF(p->failed, Py_NewRef(failed));
    return 0;
}

static int pair_traverse(PyObject *self, visitproc visit, void *arg)
{
    mm_pair *p = (mm_pair *)self;
    Py_VISIT(p->first);
    Py_VISIT(p->second);
    Py_VISIT(p->answers);
    Py_VISIT(p->missing);
    Py_VISIT(p->failed);
    return 0;
}

static int pair_clear(PyObject *self)
{
    mm_pair *p = (mm_pair *)self;
    Py_CLEAR(p->first);
    Py_CLEAR(p->second);
    Py_CLEAR(p->answers);
    Py_CLEAR(p->missing);
    Py_CLEAR(p->failed);
    return 0;
}

static void pair_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    pair_clear(self);
    Py_TYPE(self)->tp_free(self);
}

/* The offset of one walk as the key part Python uses: the offset, or -1 for none. */
static PyObject *key_part(int found, uint64_t offset)
{
    return found ? PyLong_FromUnsignedLongLong(offset) : PyLong_FromLong(-1);
}

static PyObject *pair_lookup(PyObject *self, PyObject *arg)
{
    mm_pair *p = (mm_pair *)self;
    if (p->answers == NULL) {
        PyErr_SetString(PyExc_ValueError, "the Pair is not initialised");
        return NULL;
    }
    uint64_t first_offset = 0, second_offset = 0;
    int prefix = 0;
    int first = tree_walk((mm_tree *)p->first, arg, &first_offset, &prefix);
    int second = first < 0 ? -1 : tree_walk((mm_tree *)p->second, arg, &second_offset, &prefix);
    if (second < 0) { /* a corrupt tree, a closed one, an address it cannot take */
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return NULL;
        PyErr_Clear();
        return PyObject_CallOneArg(p->failed, arg);
    }
    PyObject *key = PyTuple_New(2);
    if (key == NULL)
        return NULL;
    PyObject *a = key_part(first, first_offset);
    PyObject *b = a == NULL ? NULL : key_part(second, second_offset);
    if (b == NULL) {
        Py_XDECREF(a);
        Py_DECREF(key);
        return NULL;
    }
    PyTuple_SET_ITEM(key, 0, a);
    PyTuple_SET_ITEM(key, 1, b);
    PyObject *answer = PyDict_GetItemWithError(p->answers, key); /* borrowed */
    if (answer != NULL) {
        Py_DECREF(key);
        return Py_NewRef(answer);
    }
    if (PyErr_Occurred()) {
        Py_DECREF(key);
        return NULL;
    }
    answer = PyObject_CallFunctionObjArgs(p->missing, key, arg, NULL);
    Py_DECREF(key);
    return answer;
}

PyDoc_STRVAR(pair_lookup_doc,
             "lookup(address, /)\n--\n\n"
             "Walks both trees for a packed address and returns answers[(first offset,\n"
             "second offset)] (-1 for no record); missing(key, address) when there is no\n"
             "such entry; failed(address) when either walk raised an Exception.");

static PyMethodDef pair_methods[] = {
    {"lookup", pair_lookup, METH_O, pair_lookup_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(pair_doc,
             "Pair(first, second, answers, missing, failed, /)\n--\n\n"
             "A GeoIP lookup in two files (two Trees, country then ASN) with the answers\n"
             "kept per pair of data offsets in the dict `answers`; see lookup.");

MM_TYPE(pair_type, "Pair", mm_pair, pair);

/* ---- Pieces: the answer for an address from the piece of the address space it is in ---- */

typedef struct {
    PyObject_HEAD
    uint32_t *starts4;  /* ascending, starts4[0] == 0 */
    Py_ssize_t count4;
    uint64_t *starts16; /* (high, low) pairs, ascending, the first (0, 0) */
    Py_ssize_t count16;
    PyObject *values4;  /* tuple of count4 answers */
    PyObject *values16; /* tuple of count16 answers */
} mm_pieces;

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* Reads `size`-byte piece starts from `buffer` (bytes) checking that they ascend from 0
 * and that `values` is a tuple with one answer each; 0 on success. */
static int read_starts(PyObject *buffer, PyObject *values, Py_ssize_t size, const char *what,
                       void **out, Py_ssize_t *count)
{
    Py_ssize_t len = PyBytes_GET_SIZE(buffer);
    const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(buffer);
    if (len == 0 || len % size != 0 || PyTuple_GET_SIZE(values) != len / size) {
        PyErr_Format(PyExc_ValueError,
                     "Pieces: %s starts must be %zd bytes each, one per value (got %zd bytes "
                     "for %zd values)", what, size, len, PyTuple_GET_SIZE(values));
        return -1;
    }
    Py_ssize_t n = len / size;
    uint64_t *wide = NULL;
    uint32_t *narrow = NULL;
    if (size == 4)
        narrow = PyMem_Malloc((size_t)n * sizeof(uint32_t));
    else
        wide = PyMem_Malloc((size_t)n * 2 * sizeof(uint64_t));
    if (narrow == NULL && wide == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const uint8_t *q = p + i * size;
        int ascending;
        if (size == 4) {
            narrow[i] = be32(q);
            ascending = i == 0 ? narrow[0] == 0 : narrow[i] > narrow[i - 1];
        } else {
            wide[2 * i] = be64(q);
            wide[2 * i + 1] = be64(q + 8);
            ascending = i == 0 ? (wide[0] | wide[1]) == 0
                               : wide[2 * i] > wide[2 * i - 2]
                                     || (wide[2 * i] == wide[2 * i - 2]
                                         && wide[2 * i + 1] > wide[2 * i - 1]);
        }
        if (!ascending) {
            PyMem_Free(narrow);
            PyMem_Free(wide);
            PyErr_Format(PyExc_ValueError,
                         "Pieces: %s starts must ascend from 0 (piece %zd does not)", what, i);
            return -1;
        }
    }
    *out = size == 4 ? (void *)narrow : (void *)wide;
    *count = n;
    return 0;
}

static int pieces_clear(PyObject *self)
{
    mm_pieces *t = (mm_pieces *)self;
    Py_CLEAR(t->values4);
    Py_CLEAR(t->values16);
    return 0;
}

static void pieces_free_starts(mm_pieces *t)
{
    PyMem_Free(t->starts4);
    PyMem_Free(t->starts16);
    t->starts4 = NULL;
    t->starts16 = NULL;
    t->count4 = t->count16 = 0;
}

static int pieces_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    mm_pieces *t = (mm_pieces *)self;
    PyObject *starts4, *values4, *starts16, *values16;
    if (positional_only(kwds, "Pieces") < 0)
        return -1;
    if (!PyArg_ParseTuple(args, "SO!SO!:Pieces", &starts4, &PyTuple_Type, &values4, &starts16,
                          &PyTuple_Type, &values16))
        return -1;
    void *narrow = NULL, *wide = NULL;
    Py_ssize_t count4 = 0, count16 = 0;
    if (read_starts(starts4, values4, 4, "IPv4", &narrow, &count4) < 0)
        return -1;
    if (read_starts(starts16, values16, 16, "IPv6", &wide, &count16) < 0) {
        PyMem_Free(narrow);
        return -1;
    }
    pieces_free_starts(t); /* __init__ called again */
    t->starts4 = narrow;
    t->count4 = count4;
    t->starts16 = wide;
    t->count16 = count16;
    Py_XSETREF(t->values4, Py_NewRef(values4));
    Py_XSETREF(t->values16, Py_NewRef(values16));
    return 0;
}

static int pieces_traverse(PyObject *self, visitproc visit, void *arg)
{
    mm_pieces *t = (mm_pieces *)self;
    Py_VISIT(t->values4);
    Py_VISIT(t->values16);
    return 0;
}

static void pieces_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    pieces_clear(self);
    pieces_free_starts((mm_pieces *)self);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *pieces_get(PyObject *self, PyObject *arg)
{
    mm_pieces *t = (mm_pieces *)self;
    if (!PyBytes_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "a packed address must be bytes, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    if (t->values4 == NULL || t->values16 == NULL) {
        PyErr_SetString(PyExc_ValueError, "the Pieces are not initialised");
        return NULL;
    }
    Py_ssize_t len = PyBytes_GET_SIZE(arg);
    const uint8_t *addr = (const uint8_t *)PyBytes_AS_STRING(arg);
    Py_ssize_t lo = 0, hi; /* the answer is the last piece whose start is <= the address */
    if (len == 4) {
        uint32_t value = be32(addr);
        hi = t->count4; /* invariant: starts4[lo] <= value, and value < starts4[hi] if any */
        while (hi - lo > 1) {
            Py_ssize_t mid = lo + (hi - lo) / 2;
            if (t->starts4[mid] <= value)
                lo = mid;
            else
                hi = mid;
        }
        return Py_NewRef(PyTuple_GET_ITEM(t->values4, lo));
    }
    if (len == 16) {
        uint64_t high = be64(addr), low = be64(addr + 8);
        hi = t->count16;
        while (hi - lo > 1) {
            Py_ssize_t mid = lo + (hi - lo) / 2;
            uint64_t mid_high = t->starts16[2 * mid], mid_low = t->starts16[2 * mid + 1];
            if (mid_high < high || (mid_high == high && mid_low <= low))
                lo = mid;
            else
                hi = mid;
        }
        return Py_NewRef(PyTuple_GET_ITEM(t->values16, lo));
    }
    PyErr_Format(PyExc_ValueError, "packed IP address must be 4 or 16 bytes, got %zd", len);
    return NULL;
}

PyDoc_STRVAR(pieces_get_doc,
             "get(address, /)\n--\n\n"
             "The value of the piece a packed 4- or 16-byte address is in (ValueError for\n"
             "any other length).");

static PyMethodDef pieces_methods[] = {
    {"get", pieces_get, METH_O, pieces_get_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(pieces_doc,
             "Pieces(starts4, values4, starts16, values16, /)\n--\n\n"
             "The IPv4 and IPv6 address spaces cut into pieces: starts4 holds the first\n"
             "address of each IPv4 piece (4 bytes each, big-endian, ascending from 0),\n"
             "values4 the answer for each (a tuple); starts16/values16 the same for IPv6.");

MM_TYPE(pieces_type, "Pieces", mm_pieces, pieces);

/* ---- AddressCache: a bounded per-address cache of GeoIP answers, with its counters ---- */

typedef struct {
    PyObject_HEAD
    PyObject *cache;     /* dict: packed address -> answer */
    PyObject **ring;     /* the cached addresses, oldest first from head (circular) */
    Py_ssize_t capacity; /* at most this many addresses kept (>= 1) */
    Py_ssize_t head;     /* ring index of the oldest address */
    Py_ssize_t count;    /* addresses in the ring (== len(cache)) */
    PyObject *is_local;  /* is_local(address): true -> the `none` answer, nothing asked */
    PyObject *fetch4;    /* fetch4(address): the answer for a 4-byte address not cached */
    PyObject *fetch6;    /* fetch6(address): the same for any other address */
    PyObject *none;      /* the answer for a non-public address */
    Py_ssize_t lookups, hits, misses, skipped, evictions;
} mm_cache;

static void cache_drop_ring(mm_cache *c)
{
    if (c->ring != NULL) {
        for (Py_ssize_t i = 0; i < c->count; i++)
            Py_CLEAR(c->ring[(c->head + i) % c->capacity]);
    }
    c->head = 0;
    c->count = 0;
}

static int cache_clear(PyObject *self)
{
    mm_cache *c = (mm_cache *)self;
    cache_drop_ring(c);
    Py_CLEAR(c->cache);
    Py_CLEAR(c->is_local);
    Py_CLEAR(c->fetch4);
    Py_CLEAR(c->fetch6);
    Py_CLEAR(c->none);
    return 0;
}

static int cache_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    mm_cache *c = (mm_cache *)self;
    PyObject *is_local, *fetch4, *fetch6, *none;
    Py_ssize_t capacity;
    if (positional_only(kwds, "AddressCache") < 0)
        return -1;
    if (!PyArg_ParseTuple(args, "OOOOn:AddressCache", &is_local, &fetch4, &fetch6, &none,
                          &capacity))
        return -1;
    if (!PyCallable_Check(is_local) || !PyCallable_Check(fetch4) || !PyCallable_Check(fetch6)) {
        PyErr_SetString(PyExc_TypeError, "AddressCache: is_local, fetch4, fetch6 must be callable");
        return -1;
    }
    if (capacity < 1 || capacity > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(PyObject *)) {
        PyErr_SetString(PyExc_ValueError, "AddressCache: max_entries must be at least 1");
        return -1;
    }
    PyObject *cache = PyDict_New();
    if (cache == NULL)
        return -1;
    PyObject **ring = PyMem_Calloc((size_t)capacity, sizeof(PyObject *));
    if (ring == NULL) {
        Py_DECREF(cache);
        PyErr_NoMemory();
        return -1;
    }
    cache_clear(self); /* a second __init__ starts afresh */
    PyMem_Free(c->ring);
    c->ring = ring;
    c->capacity = capacity;
    c->cache = cache;
    c->is_local = Py_NewRef(is_local);
    c->fetch4 = Py_NewRef(fetch4);
    c->fetch6 = Py_NewRef(fetch6);
    c->none = Py_NewRef(none);
    c->lookups = c->hits = c->misses = c->skipped = c->evictions = 0;
    return 0;
}

static int cache_traverse(PyObject *self, visitproc visit, void *arg)
{
    mm_cache *c = (mm_cache *)self;
    Py_VISIT(c->cache);
    Py_VISIT(c->is_local);
    Py_VISIT(c->fetch4);
    Py_VISIT(c->fetch6);
    Py_VISIT(c->none);
    return 0;
}

static void cache_dealloc(PyObject *self)
{
    mm_cache *c = (mm_cache *)self;
    PyObject_GC_UnTrack(self);
    cache_clear(self);
    PyMem_Free(c->ring);
    c->ring = NULL;
    Py_TYPE(self)->tp_free(self);
}

static PyObject *cache_lookup(PyObject *self, PyObject *addr)
{
    mm_cache *c = (mm_cache *)self;
    if (c->cache == NULL || c->ring == NULL) {
        PyErr_SetString(PyExc_ValueError, "the AddressCache is not initialised");
        return NULL;
    }
    c->lookups++;
    PyObject *answer = PyDict_GetItemWithError(c->cache, addr); /* borrowed */
    if (answer != NULL) {
        c->hits++;
        return Py_NewRef(answer);
    }
    if (PyErr_Occurred())
        return NULL;
    PyObject *local = PyObject_CallOneArg(c->is_local, addr);
    if (local == NULL)
        return NULL;
    int is_local = PyObject_IsTrue(local);
    Py_DECREF(local);
    if (is_local < 0)
        return NULL;
    if (is_local) {
        c->skipped++;
        return Py_NewRef(c->none);
    }
    c->misses++;
    PyObject *fetch = PyBytes_Check(addr) && PyBytes_GET_SIZE(addr) == 4 ? c->fetch4 : c->fetch6;
    Py_INCREF(fetch); /* the callback may replace it */
    answer = PyObject_CallOneArg(fetch, addr);
    Py_DECREF(fetch);
    if (answer == NULL)
        return NULL;
    if (c->cache == NULL || c->ring == NULL) /* cleared by a callback */
        return answer;
    int known = PyDict_Contains(c->cache, addr); /* added by a callback that looked it up */
    if (known < 0) {
        Py_DECREF(answer);
        return NULL;
    }
    if (known)
        return answer;
    if (c->count >= c->capacity) { /* the oldest out (an address is never added twice) */
        PyObject *oldest = c->ring[c->head];
        c->ring[c->head] = NULL;
        c->head = (c->head + 1) % c->capacity;
        c->count--;
        c->evictions++;
        int gone = oldest == NULL ? 0 : PyDict_DelItem(c->cache, oldest);
        Py_XDECREF(oldest);
        if (gone < 0) {
            Py_DECREF(answer);
            return NULL;
        }
    }
    if (PyDict_SetItem(c->cache, addr, answer) < 0) {
        Py_DECREF(answer);
        return NULL;
    }
    c->ring[(c->head + c->count) % c->capacity] = Py_NewRef(addr);
    c->count++;
    return answer;
}

static Py_ssize_t cache_length(PyObject *self)
{
    return ((mm_cache *)self)->count;
}

PyDoc_STRVAR(cache_lookup_doc,
             "lookup(address, /)\n--\n\n"
             "The cached answer for an address; else `none` when is_local(address) is true;\n"
             "else fetch4(address) (4 bytes) or fetch6(address), kept (the oldest address\n"
             "dropped when full). Counts lookups, hits, skipped, misses, evictions.");

static PyMethodDef cache_methods[] = {
    {"lookup", cache_lookup, METH_O, cache_lookup_doc},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef cache_members[] = {
    {"fetch4", T_OBJECT_EX, offsetof(mm_cache, fetch4), 0, "fetch4(address): a 4-byte miss"},
    {"fetch6", T_OBJECT_EX, offsetof(mm_cache, fetch6), 0, "fetch6(address): any other miss"},
    {"lookups", T_PYSSIZET, offsetof(mm_cache, lookups), READONLY, "lookup calls"},
    {"hits", T_PYSSIZET, offsetof(mm_cache, hits), READONLY, "answered from the cache"},
    {"misses", T_PYSSIZET, offsetof(mm_cache, misses), READONLY, "passed to fetch4/fetch6"},
    {"skipped", T_PYSSIZET, offsetof(mm_cache, skipped), READONLY, "non-public: not asked"},
    {"evictions", T_PYSSIZET, offsetof(mm_cache, evictions), READONLY, "oldest dropped"},
    {NULL, 0, 0, 0, NULL},
};

static PySequenceMethods cache_as_sequence = {
    .sq_length = cache_length,
};

PyDoc_STRVAR(cache_doc,
             "AddressCache(is_local, fetch4, fetch6, none, max_entries, /)\n--\n\n"
             "A bounded per-address cache of GeoIP answers (netwatch.enrich.geo.CachedGeo's):\n"
             "see lookup. len() is the number of addresses kept.");

MM_TYPE(cache_type, "AddressCache", mm_cache, cache, .tp_members = cache_members,
        .tp_as_sequence = &cache_as_sequence);

static struct PyModuleDef mmdb_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "netwatch._mmdb",
    .m_doc = "The search-tree walk of a MaxMind DB file, the two-file GeoIP lookup over it and\n"
             "address-space pieces, and a per-address answer cache (netwatch/_mmdb.c).",
    .m_size = 0,
};

PyMODINIT_FUNC PyInit__mmdb(void)
{
    if (PyType_Ready(&tree_type) < 0 || PyType_Ready(&pair_type) < 0
        || PyType_Ready(&pieces_type) < 0 || PyType_Ready(&cache_type) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&mmdb_module);
    if (module == NULL)
        return NULL;
    if (PyModule_AddType(module, &tree_type) < 0 || PyModule_AddType(module, &pair_type) < 0
        || PyModule_AddType(module, &pieces_type) < 0
        || PyModule_AddType(module, &cache_type) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
