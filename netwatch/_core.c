/* netwatch._core: the compiled per-packet core (first step of issue 13).
 *
 * What it does: walks the records of a classic pcap buffer (a memory-mapped file, or the
 * pcap records the TPACKET_V3 ring reader builds) and decodes each frame's common shape
 * (Ethernet, at most two 802.1Q/802.1ad tags, IPv4 without options or fragments, IPv6
 * without extension headers, TCP, UDP that cannot carry a tunnel) into one fixed-size
 * record per packet (see CoreRecord in netwatch/core.py for the layout). A frame of any
 * other shape gets kind 0 ("odd"): Python's general decoder takes it. The fields of a
 * common-shape record are exactly those of netwatch/decode/frames.py's Decoded tuple for
 * the same frame (tests/test_core.py checks that on every capture and the fuzz inputs).
 *
 * The walk runs with the GIL released; it reads only inside the buffer it was given
 * (every offset is checked against the record's captured length before it is read) and
 * never fails on packet bytes.
 *
 * FastLoop (below) is the fused loop's fast branch over the same walk and decode: for a
 * packet of a flow already in Python's flow table (a dict of netwatch.flow.table.Flow) it
 * updates that Flow and its TCP Endpoint in place through their __slots__, exactly as
 * netwatch/corefeed.py's Python would, and hands every other packet back to Python. It
 * holds the GIL. Every value it reads is type- and range-checked first; anything unexpected
 * hands the packet back with nothing changed.
 *
 * Config read: none. Known limits: ICMP, tunnels, fragments, IP options, IPv6 extension
 * headers, VN-Tag and other link types are all "odd" here; the flow table (creation, end,
 * timers, TCP states) stays Python.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <stdint.h>
#include <string.h>

#define NW_MAX_CAPLEN (256u * 1024u) /* netwatch.capture.pcap.MAX_CAPLEN */
#define NW_RECORD_HEADER 16u
#define NW_MAX_TAGS 2u
#define NW_IPV6_HEADER 40u
#define NW_TEREDO_MIN 40u

enum nw_kind { NW_ODD = 0, NW_IPV4 = 4, NW_IPV6 = 6 };
/* Why a walk returned: the buffer ended (at its end or inside a record), the batch is
 * full, or a captured length above NW_MAX_CAPLEN lost the framing. */
enum nw_status { NW_END = 0, NW_FULL = 1, NW_CAPLEN = 2 };

/* One packet; naturally aligned, 88 bytes, no padding: Python reads it with the struct
 * format "=QIIIIIIIIIHHHhBBBx16s16s". */
typedef struct {
    uint64_t frame_off;   /* the frame's first byte in the buffer */
    uint32_t sec;         /* record timestamp: seconds */
    uint32_t frac;        /* record timestamp: micro- or nanoseconds (the file's tick) */
    uint32_t caplen;
    uint32_t wirelen;
    uint32_t ip_len;      /* Decoded[5] */
    uint32_t seq;         /* Decoded[7] */
    uint32_t ack;         /* Decoded[8] */
    uint32_t payload_off; /* Decoded[10], from the frame's first byte */
    uint32_t payload_len; /* Decoded[11] */
    uint16_t sport;
    uint16_t dport;
    uint16_t win;
    int16_t vlan;         /* -1: untagged */
    uint8_t kind;         /* enum nw_kind */
    uint8_t proto;
    uint8_t tcp_flags;
    uint8_t pad;
    uint8_t src[16];      /* IPv4: the first 4 bytes */
    uint8_t dst[16];
} nw_record;

_Static_assert(sizeof(nw_record) == 88, "nw_record layout");

static inline uint16_t be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }

static inline uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint32_t le32(const uint8_t *p)
{
    return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}

static inline int is_vlan_tpid(uint16_t t)
{
    return t == 0x8100 || t == 0x88A8 || t == 0x9100 || t == 0x9200;
}

/* netwatch.decode.tunnels.TUNNEL_UDP_PORTS */
static inline int is_tunnel_port(uint16_t p)
{
    switch (p) {
    case 4789: case 8472: case 6081: case 3544: case 5072: case 2152: case 2123: case 4754:
        return 1;
    default:
        return 0;
    }
}

static inline int teredo_lead(uint8_t b) { return b == 0 || (b >> 4) == 6; }

/* netwatch.decode.tunnels.teredo_detected; the caller checked end - off >= 40. */
static int teredo_detected(const uint8_t *f, uint64_t off, uint64_t end)
{
    static const uint8_t prefix[4] = {0x20, 0x01, 0x00, 0x00};
    uint8_t first = f[off];
    if ((first >> 4) == 6
        && (memcmp(f + off + 8, prefix, 4) == 0 || memcmp(f + off + 24, prefix, 4) == 0))
        return 1;
    if ((first >> 4) != 6 && first != 0)
        return 0;
    unsigned tag = f[off + 1];
    if (tag == 1) {
        uint64_t skip = 13u + f[off + 2] + f[off + 3];
        if (end - off < skip + NW_IPV6_HEADER)
            return 0;
        off += skip;
        tag = be16(f + off);
    }
    if (tag != 0)
        return 0;
    off += 8;
    return end >= off + NW_IPV6_HEADER && (f[off] >> 4) == 6;
}

/* netwatch.decode.tunnels.tunnel_kind is not None: a UDP payload f[off:end] that the
 * general walk would look into for a tunnel. */
static int may_tunnel(const uint8_t *f, uint64_t off, uint64_t end, uint16_t sp, uint16_t dp)
{
    if (is_tunnel_port(sp) || is_tunnel_port(dp))
        return 1;
    if (end - off >= NW_TEREDO_MIN && teredo_lead(f[off]) && teredo_detected(f, off, end))
        return 1;
    return end - off >= 3 && f[off + 1] == 0x52 && f[off + 2] == 0x11;
}

/* Decode one Ethernet frame f[0:flen] into r; r->kind stays NW_ODD for any other shape. */
static void decode_ether(const uint8_t *f, uint32_t flen, uint32_t wirelen, nw_record *r)
{
    if (flen < 14)
        return;
    uint32_t off = 14;
    uint16_t etype = be16(f + 12);
    int vlan = -1;
    unsigned tags = 0;
    while (is_vlan_tpid(etype)) {
        if (tags == NW_MAX_TAGS || flen < off + 4)
            return;
        vlan = be16(f + off) & 0x0FFF;
        etype = be16(f + off + 2);
        off += 4;
        tags++;
    }
    int64_t tot, pay;
    uint32_t l4;
    uint8_t proto, kind;
    const uint8_t *ip = f + off;
    if (etype == 0x0800) {
        if (flen < off + 20 || ip[0] != 0x45 || (be16(ip + 6) & 0x3FFF))
            return;
        int64_t limit = (int64_t)wirelen - off;
        tot = be16(ip + 2);
        if (tot == 0 || tot > limit)
            tot = limit;
        if (tot < 20)
            return;
        proto = ip[9];
        l4 = off + 20;
        pay = tot - 20;
        kind = NW_IPV4;
    } else if (etype == 0x86DD) {
        if (flen < off + NW_IPV6_HEADER || (ip[0] >> 4) != 6)
            return;
        int64_t limit = (int64_t)wirelen - off - NW_IPV6_HEADER;
        pay = be16(ip + 4);
        if (pay == 0 || pay > limit)
            pay = limit > 0 ? limit : 0;
        tot = pay + NW_IPV6_HEADER;
        proto = ip[6];
        l4 = off + NW_IPV6_HEADER;
        kind = NW_IPV6;
    } else {
        return;
    }
    const uint8_t *t = f + l4;
    if (proto == 6) {
        if (flen < l4 + 20)
            return;
        uint32_t thl = (uint32_t)(t[12] >> 4) << 2;
        if (thl < 20 || thl > pay)
            return;
        r->seq = be32(t + 4);
        r->ack = be32(t + 8);
        r->tcp_flags = t[13];
        r->win = be16(t + 14);
        r->payload_off = l4 + thl;
        r->payload_len = (uint32_t)(pay - thl);
    } else if (proto == 17) {
        if (flen < l4 + 8 || pay < 8)
            return;
        uint64_t end = (uint64_t)l4 + (uint64_t)pay;
        if (end > flen)
            end = flen;
        if (may_tunnel(f, l4 + 8, end, be16(t), be16(t + 2)))
            return;
        r->payload_off = l4 + 8;
        r->payload_len = (uint32_t)(pay - 8);
    } else {
        return;
    }
    r->sport = be16(t);
    r->dport = be16(t + 2);
    r->ip_len = (uint32_t)tot;
    r->vlan = (int16_t)vlan;
    r->proto = proto;
    if (kind == NW_IPV4) {
        memcpy(r->src, ip + 12, 4);
        memcpy(r->dst, ip + 16, 4);
    } else {
        memcpy(r->src, ip + 8, 16);
        memcpy(r->dst, ip + 24, 16);
    }
    r->kind = kind;
}

/* One record header of the walk (netwatch.capture.pcap.walk_pcap's framing). */
typedef struct {
    uint32_t sec, frac, caplen, wirelen;
    uint64_t start; /* the frame's first byte */
} nw_rechdr;

/* What is at an offset of the record area: a record with captured bytes, an empty record
 * (skipped and counted), the end (or a record cut by it), or a captured length above
 * NW_MAX_CAPLEN (the framing is lost). */
enum nw_step { NW_STEP_RECORD, NW_STEP_EMPTY, NW_STEP_END, NW_STEP_CAPLEN };

static int next_record(const uint8_t *buf, uint64_t off, uint64_t end, int little, nw_rechdr *h)
{
    if (end < NW_RECORD_HEADER || off > end - NW_RECORD_HEADER)
        return NW_STEP_END;
    const uint8_t *p = buf + off;
    uint32_t v[4];
    for (int i = 0; i < 4; i++)
        v[i] = little ? le32(p + 4 * i) : be32(p + 4 * i);
    h->sec = v[0];
    h->frac = v[1];
    h->caplen = v[2];
    h->wirelen = v[3];
    h->start = off + NW_RECORD_HEADER;
    if (h->caplen > NW_MAX_CAPLEN)
        return NW_STEP_CAPLEN;
    if (h->caplen == 0)
        return NW_STEP_EMPTY;
    if (h->start + h->caplen > end)
        return NW_STEP_END; /* the record continues past the end of the buffer */
    return NW_STEP_RECORD;
}

/* The record of one packet: its header fields, and the common-shape decode. */
static void fill_record(const uint8_t *buf, const nw_rechdr *h, int ethernet, nw_record *r)
{
    memset(r, 0, sizeof *r);
    r->frame_off = h->start;
    r->sec = h->sec;
    r->frac = h->frac;
    r->caplen = h->caplen;
    r->wirelen = h->wirelen;
    r->vlan = -1;
    if (ethernet)
        decode_ether(buf + h->start, h->caplen, h->wirelen, r);
}

typedef struct {
    const uint8_t *buf;
    uint64_t off;      /* in: first record; out: where the walk stopped */
    uint64_t end;
    int little;        /* the file's byte order */
    int ethernet;      /* the file's link type is Ethernet: decode, else all odd */
    nw_record *out;
    uint64_t limit;    /* records at most */
    uint64_t count;    /* out */
    uint64_t empty;    /* out: records with no captured bytes (skipped) */
    int status;        /* out: enum nw_status */
} nw_walk;

/* The record walk of netwatch.capture.pcap.walk_pcap, decoding as it goes. */
static void walk_pcap(nw_walk *w)
{
    uint64_t off = w->off, n = 0, empty = 0;
    nw_rechdr h;
    w->status = NW_END;
    for (;;) {
        int step = next_record(w->buf, off, w->end, w->little, &h);
        if (step == NW_STEP_END)
            break;
        if (step == NW_STEP_CAPLEN) {
            w->status = NW_CAPLEN;
            break;
        }
        if (step == NW_STEP_EMPTY) {
            empty++;
            off = h.start;
            continue;
        }
        if (n == w->limit) {
            w->status = NW_FULL;
            break;
        }
        fill_record(w->buf, &h, w->ethernet, &w->out[n++]);
        off = h.start + h.caplen;
    }
    w->off = off;
    w->count = n;
    w->empty = empty;
}

PyDoc_STRVAR(walk_pcap_doc,
"walk_pcap(buffer, start, end, little, ethernet, limit) -> (records, next, status, empty)\n\n"
"Walk the classic pcap records of buffer[start:end] (file byte order little-endian when\n"
"little is true), decoding the common shapes when ethernet is true. At most limit records\n"
"are produced. records is a bytearray of 88-byte records; next is the offset where the walk\n"
"stopped; status is 0 (buffer ended), 1 (limit reached) or 2 (a captured length above the\n"
"maximum); empty counts the records with no captured bytes that were skipped.");

static PyObject *core_walk_pcap(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer view;
    Py_ssize_t start, end, limit;
    int little, ethernet;
    if (!PyArg_ParseTuple(args, "y*nnppn", &view, &start, &end, &little, &ethernet, &limit))
        return NULL;
    if (start < 0 || end < start || end > view.len || limit < 0
        || limit > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(nw_record)) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "walk_pcap: bad start, end or limit");
        return NULL;
    }
    PyObject *out = PyByteArray_FromStringAndSize(NULL, limit * (Py_ssize_t)sizeof(nw_record));
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    nw_walk w = {
        .buf = (const uint8_t *)view.buf,
        .off = (uint64_t)start,
        .end = (uint64_t)end,
        .little = little,
        .ethernet = ethernet,
        .out = (nw_record *)PyByteArray_AS_STRING(out),
        .limit = (uint64_t)limit,
    };
    Py_BEGIN_ALLOW_THREADS
    walk_pcap(&w);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (PyByteArray_Resize(out, (Py_ssize_t)(w.count * sizeof(nw_record))) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return Py_BuildValue("NKiK", out, (unsigned long long)w.off, w.status,
                         (unsigned long long)w.empty);
}

/* ---- The fused loop's fast branch (netwatch/corefeed.py) -------------------------------
 *
 * FastLoop walks the records like walk_pcap, decodes each one, looks its flow up in the
 * Python flow table (a dict of netwatch.flow.table.Flow keyed on the canonical 5-tuple) and,
 * when the fused loop's fast branch applies, updates that Flow (and its tcpstate Endpoint)
 * in place through their __slots__, exactly as corefeed's Python would. At the first packet
 * that needs Python it stops and hands that packet's record back. It holds the GIL (it
 * reads and writes Python objects); it returns at most every `limit` records. */

/* Why FastLoop.run returned; from NW_HAND_ODD on, with a record to hand to Python. */
enum nw_fast_status {
    NW_FAST_END = 0,    /* the buffer ended (at its end, or inside a record) */
    NW_FAST_FULL = 1,   /* `limit` records done */
    NW_FAST_CAPLEN = 2, /* a captured length above NW_MAX_CAPLEN */
    NW_HAND_ODD = 3,    /* not a common shape: the general decoder */
    NW_HAND_SWEEP = 4,  /* ts >= next_sweep: timers first */
    NW_HAND_NEW = 5,    /* no flow with this key in the table */
    NW_HAND_VALUE = 6,  /* a field of an unexpected type or range */
    NW_HAND_KEEP = 7,   /* the flow keeps evidence frames (Flow.keep != 0) */
    NW_HAND_NO_TCP = 8, /* a TCP packet of a flow without endpoints (Flow.tcp is None) */
    NW_HAND_COND = 9,   /* the fast branch's conditions do not hold */
    NW_FAST_REASONS = 10
};

#define NW_TCP_FLAGS_SFR 0x07u /* SYN, FIN, RST */
#define NW_TCP_ACK 0x10u
#define NW_BIT_A (1 << 2) /* history bits of 'A' and 'D' (netwatch.flow.tcpstate) */
#define NW_BIT_D (1 << 3)
#define NW_MASK32 0xFFFFFFFFLL
#define NW_HALF_1 0x7FFFFFFFLL
/* Integers read from a Flow or Endpoint must lie within +-NW_SAFE: the loop then adds at
 * most 2**32 to them, or subtracts them from a 32-bit value, without overflow. */
#define NW_SAFE (1LL << 61)

enum nw_flow_slot {
    F_ODIR, F_DEEP_O, F_DEEP_R, F_LAST, F_O_PKTS, F_O_IPB, F_O_BYTES,
    F_R_PKTS, F_R_IPB, F_R_BYTES, F_KEEP, F_TCP, F_KEY, F_COUNT
};
static const char *const nw_flow_names[F_COUNT] = {
    "odir", "deep_o", "deep_r", "last", "o_pkts", "o_ipb", "o_bytes",
    "r_pkts", "r_ipb", "r_bytes", "keep", "tcp", "key",
};
enum nw_end_slot { E_NXT, E_DACK, E_SEQMAX, E_BITS, E_COUNT };
static const char *const nw_end_names[E_COUNT] = {"nxt", "dack", "seqmax", "bits"};

/* A flow key in canonical order as bytes: address length, protocol, the two ports (big
 * endian), the two addresses (zero-padded to 16 bytes each), two zero bytes (whole 8-byte
 * words for the hash). */
#define NW_RAW_KEY 40
/* The key cache: direct-mapped, NW_KEY_CACHE entries (a power of two). Each entry holds a
 * tuple equal to the flow key its raw bytes describe (the flow table's own key object where
 * it could be had), so a packet of a known flow builds no key objects; a dict lookup with
 * an equal key finds the same flow, so an entry never goes stale (and one FastLoop serves
 * any number of flow tables). It keeps at most NW_KEY_CACHE key tuples alive (~1 MB). */
#define NW_KEY_CACHE 4096

typedef struct {
    uint8_t raw[NW_RAW_KEY];
    PyObject *key; /* strong reference, or NULL: empty */
} nw_key_entry;

typedef struct {
    PyObject_HEAD
    nw_key_entry *keys; /* NW_KEY_CACHE entries */
    unsigned long long key_hits;
    PyTypeObject *flow_type;
    PyTypeObject *end_type;
    Py_ssize_t flow_off[F_COUNT];
    Py_ssize_t end_off[E_COUNT];
    unsigned long long reasons[NW_FAST_REASONS]; /* returns by status, since construction */
    unsigned long long fast;                      /* packets done here */
} nw_fastloop;

/* The offset of the __slots__ member `name` of `type`: a writable object slot (T_OBJECT_EX)
 * defined by `type` itself; -1 with an exception otherwise. */
static Py_ssize_t slot_offset(PyTypeObject *type, const char *name)
{
    PyObject *d = PyObject_GetAttrString((PyObject *)type, name);
    if (d == NULL)
        return -1;
    Py_ssize_t off = -1;
    if (Py_IS_TYPE(d, &PyMemberDescr_Type) && PyDescr_TYPE(d) == type) {
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type == T_OBJECT_EX && !(m->flags & READONLY) && m->offset > 0
            && (size_t)m->offset + sizeof(PyObject *) <= (size_t)type->tp_basicsize)
            off = m->offset;
    }
    Py_DECREF(d);
    if (off < 0)
        PyErr_Format(PyExc_TypeError, "FastLoop: %s.%s is not a writable __slots__ member",
                     type->tp_name, name);
    return off;
}

static int fastloop_init(nw_fastloop *self, PyObject *args, PyObject *kwds)
{
    PyTypeObject *flow, *end;
    static char *kwlist[] = {"flow_type", "endpoint_type", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!:FastLoop", kwlist, &PyType_Type, &flow,
                                     &PyType_Type, &end))
        return -1;
    /* Slots are written directly: neither type may intercept attribute writes. */
    if (flow->tp_setattro != PyObject_GenericSetAttr
        || end->tp_setattro != PyObject_GenericSetAttr) {
        PyErr_SetString(PyExc_TypeError, "FastLoop: the types must use plain attribute writes");
        return -1;
    }
    Py_ssize_t flow_off[F_COUNT], end_off[E_COUNT];
    for (int i = 0; i < F_COUNT; i++)
        if ((flow_off[i] = slot_offset(flow, nw_flow_names[i])) < 0)
            return -1;
    for (int i = 0; i < E_COUNT; i++)
        if ((end_off[i] = slot_offset(end, nw_end_names[i])) < 0)
            return -1;
    if (self->keys == NULL) {
        self->keys = PyMem_Calloc(NW_KEY_CACHE, sizeof(nw_key_entry));
        if (self->keys == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    memcpy(self->flow_off, flow_off, sizeof flow_off);
    memcpy(self->end_off, end_off, sizeof end_off);
    Py_INCREF(flow);
    Py_XSETREF(self->flow_type, flow);
    Py_INCREF(end);
    Py_XSETREF(self->end_type, end);
    return 0;
}

static void fastloop_dealloc(nw_fastloop *self)
{
    if (self->keys != NULL) {
        for (size_t i = 0; i < NW_KEY_CACHE; i++)
            Py_XDECREF(self->keys[i].key);
        PyMem_Free(self->keys);
    }
    Py_XDECREF(self->flow_type);
    Py_XDECREF(self->end_type);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static inline PyObject **slot(PyObject *obj, Py_ssize_t off)
{
    return (PyObject **)((char *)obj + off);
}

/* An exact int within +-NW_SAFE (false: anything else, nothing raised). */
static int small_int(PyObject *v, long long *out)
{
    if (v == NULL || !PyLong_CheckExact(v))
        return 0;
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || x < -NW_SAFE || x > NW_SAFE)
        return 0;
    *out = x;
    return 1;
}

/* The slot writes of one packet (at most 6: seqmax, nxt, dack, last, pkts, ipb), made all
 * at once after every new value exists. */
#define NW_MAX_WRITES 6
typedef struct {
    PyObject **at[NW_MAX_WRITES];
    PyObject *value[NW_MAX_WRITES];
    int n;
} nw_writes;

static int add_write(nw_writes *w, PyObject **at, PyObject *value)
{
    if (value == NULL)
        return -1;
    if (w->n == NW_MAX_WRITES) {
        Py_DECREF(value);
        PyErr_SetString(PyExc_SystemError, "FastLoop: too many writes for one packet");
        return -1;
    }
    w->at[w->n] = at;
    w->value[w->n++] = value;
    return 0;
}

static int add_int(nw_writes *w, PyObject **at, long long value)
{
    return add_write(w, at, PyLong_FromLongLong(value));
}

static void drop_writes(nw_writes *w)
{
    for (int i = 0; i < w->n; i++)
        Py_DECREF(w->value[i]);
    w->n = 0;
}

/* The old values are exact ints and floats (checked): releasing them runs no Python code. */
static void commit_writes(nw_writes *w)
{
    for (int i = 0; i < w->n; i++) {
        PyObject *old = *w->at[i];
        *w->at[i] = w->value[i];
        Py_XDECREF(old);
    }
    w->n = 0;
}

/* The flow key of a common-shape record as netwatch.flow.table builds it, (src, dst,
 * sport, dport, proto) with the lower address (then port) first, in raw form; *fwd: the
 * packet's direction is the key's. */
static void raw_key(const nw_record *r, uint8_t raw[NW_RAW_KEY], int *fwd)
{
    size_t n = r->kind == NW_IPV4 ? 4 : 16;
    int c = memcmp(r->src, r->dst, n);
    *fwd = c < 0 || (c == 0 && r->sport <= r->dport);
    const uint8_t *a = *fwd ? r->src : r->dst, *b = *fwd ? r->dst : r->src;
    uint16_t pa = *fwd ? r->sport : r->dport, pb = *fwd ? r->dport : r->sport;
    memset(raw, 0, NW_RAW_KEY);
    raw[0] = (uint8_t)n;
    raw[1] = r->proto;
    raw[2] = (uint8_t)(pa >> 8);
    raw[3] = (uint8_t)pa;
    raw[4] = (uint8_t)(pb >> 8);
    raw[5] = (uint8_t)pb;
    memcpy(raw + 6, a, n);
    memcpy(raw + 22, b, n);
}

/* The key tuple of a raw key (a new reference). */
static PyObject *key_tuple(const uint8_t raw[NW_RAW_KEY])
{
    Py_ssize_t n = raw[0];
    PyObject *key = PyTuple_New(5);
    if (key == NULL)
        return NULL;
    PyObject *items[5] = {
        PyBytes_FromStringAndSize((const char *)raw + 6, n),
        PyBytes_FromStringAndSize((const char *)raw + 22, n),
        PyLong_FromLong((long)be16(raw + 2)),
        PyLong_FromLong((long)be16(raw + 4)),
        PyLong_FromLong((long)raw[1]),
    };
    for (int i = 0; i < 5; i++) {
        if (items[i] == NULL) {
            for (int j = 0; j < 5; j++)
                Py_XDECREF(items[j]);
            Py_DECREF(key);
            return NULL;
        }
        PyTuple_SET_ITEM(key, i, items[i]);
    }
    return key;
}

/* The cache entry of a raw key: a multiply-xorshift hash of its five 8-byte words. */
static size_t key_slot(const uint8_t raw[NW_RAW_KEY])
{
    uint64_t h = 0;
    for (size_t i = 0; i < NW_RAW_KEY; i += 8) {
        uint64_t w;
        memcpy(&w, raw + i, 8);
        h = (h ^ w) * 0x9E3779B97F4A7C15ull;
        h ^= h >> 29;
    }
    return (size_t)(h >> 20) & (NW_KEY_CACHE - 1);
}

/* Remember the key of a flow found in the table: the table's own key object when it is an
 * exact tuple equal to ours (the dict then matches it by identity), else ours. */
static int cache_key(nw_fastloop *self, nw_key_entry *entry, const uint8_t raw[NW_RAW_KEY],
                     PyObject *key, PyObject *f)
{
    PyObject *own = *slot(f, self->flow_off[F_KEY]);
    if (own != NULL && PyTuple_CheckExact(own) && own != key) {
        int eq = PyObject_RichCompareBool(own, key, Py_EQ);
        if (eq < 0)
            return -1;
        if (eq)
            key = own;
    }
    Py_INCREF(key);
    Py_XSETREF(entry->key, key);
    memcpy(entry->raw, raw, NW_RAW_KEY);
    return 0;
}

/* The fast branch for one common-shape packet of flow f: 0 when done (f updated),
 * NW_HAND_* when Python must take the packet (nothing changed), -1 on an error (raised). */
static int fast_packet(nw_fastloop *self, PyObject *f, int fwd, const nw_record *r, double ts)
{
    const Py_ssize_t *fo = self->flow_off, *eo = self->end_off;
    PyObject *odir = *slot(f, fo[F_ODIR]);
    if (odir != Py_True && odir != Py_False)
        return NW_HAND_VALUE;
    int is_orig = fwd == (odir == Py_True);
    long long keep, deep, pkts, ipb, bytes = 0;
    PyObject *last = *slot(f, fo[F_LAST]);
    if (!small_int(*slot(f, fo[F_KEEP]), &keep) || last == NULL || !PyFloat_CheckExact(last)
        || !small_int(*slot(f, fo[is_orig ? F_DEEP_O : F_DEEP_R]), &deep)
        || !small_int(*slot(f, fo[is_orig ? F_O_PKTS : F_R_PKTS]), &pkts)
        || !small_int(*slot(f, fo[is_orig ? F_O_IPB : F_R_IPB]), &ipb))
        return NW_HAND_VALUE;
    if (keep != 0)
        return NW_HAND_KEEP;
    long long plen = r->payload_len, seq = r->seq, ack = r->ack, flags = r->tcp_flags;
    PyObject *e = NULL;
    if (r->proto == 17) {
        if (!small_int(*slot(f, fo[is_orig ? F_O_BYTES : F_R_BYTES]), &bytes))
            return NW_HAND_VALUE;
        if (!(plen == 0 || deep == 0))
            return NW_HAND_COND;
    } else {
        PyObject *tcp = *slot(f, fo[F_TCP]);
        if (tcp == Py_None)
            return NW_HAND_NO_TCP;
        if (tcp == NULL || !PyTuple_CheckExact(tcp) || PyTuple_GET_SIZE(tcp) != 2
            || !Py_IS_TYPE(PyTuple_GET_ITEM(tcp, 0), self->end_type)
            || !Py_IS_TYPE(PyTuple_GET_ITEM(tcp, 1), self->end_type))
            return NW_HAND_VALUE;
        e = PyTuple_GET_ITEM(tcp, is_orig ? 0 : 1);
        PyObject *p = PyTuple_GET_ITEM(tcp, is_orig ? 1 : 0);
        long long nxt, pd, bits, seqmax;
        if (!small_int(*slot(e, eo[E_NXT]), &nxt) || !small_int(*slot(p, eo[E_DACK]), &pd)
            || !small_int(*slot(e, eo[E_BITS]), &bits)
            || !small_int(*slot(e, eo[E_SEQMAX]), &seqmax))
            return NW_HAND_VALUE;
        int ack_ok = ack == pd || (0 < pd - ack && pd - ack <= NW_HALF_1)
                     || ((ack - pd - 1) & NW_MASK32) >= NW_HALF_1 || pd < 0
                     || !(flags & NW_TCP_ACK);
        if ((flags & NW_TCP_FLAGS_SFR) || r->win == 0 || seq != nxt || !(plen == 0 || deep == 0)
            || !ack_ok)
            return NW_HAND_COND;
        long long bit;
        int fits;
        if (plen) {
            bit = NW_BIT_D;
            fits = r->caplen == r->wirelen
                   || (uint64_t)r->caplen >= (uint64_t)r->payload_off + (uint64_t)plen;
        } else {
            bit = (flags & NW_TCP_ACK) ? NW_BIT_A : 0;
            fits = 1;
        }
        if (!fits || (bits & bit) != bit)
            return NW_HAND_COND;
        bytes = seqmax; /* the payload bytes of TCP are counted in sequence space */
    }
    nw_writes w = {.n = 0};
    int fail = 0;
    if (r->proto == 17) {
        fail |= add_int(&w, slot(f, fo[is_orig ? F_O_BYTES : F_R_BYTES]), bytes + plen);
    } else if (plen) {
        fail |= add_int(&w, slot(e, eo[E_SEQMAX]), bytes + plen);
        PyObject *nxt = PyLong_FromLongLong((seq + plen) & NW_MASK32);
        if (nxt != NULL) {
            Py_INCREF(nxt);
            fail |= add_write(&w, slot(e, eo[E_NXT]), nxt);
            fail |= add_write(&w, slot(e, eo[E_DACK]), nxt);
        } else {
            fail = -1;
        }
    }
    if (ts > PyFloat_AS_DOUBLE(last))
        fail |= add_write(&w, slot(f, fo[F_LAST]), PyFloat_FromDouble(ts));
    fail |= add_int(&w, slot(f, fo[is_orig ? F_O_PKTS : F_R_PKTS]), pkts + 1);
    fail |= add_int(&w, slot(f, fo[is_orig ? F_O_IPB : F_R_IPB]), ipb + (long long)r->ip_len);
    if (fail) {
        drop_writes(&w);
        return -1;
    }
    commit_writes(&w);
    return 0;
}

/* One common-shape packet: its flow looked up (through the key cache), then the fast
 * branch. */
static int fast_record(nw_fastloop *self, PyObject *flows, const nw_record *r, double ts)
{
    int fwd;
    uint8_t raw[NW_RAW_KEY];
    raw_key(r, raw, &fwd);
    nw_key_entry *entry = &self->keys[key_slot(raw)];
    int cached = entry->key != NULL && memcmp(entry->raw, raw, NW_RAW_KEY) == 0;
    PyObject *key = cached ? entry->key : key_tuple(raw);
    if (key == NULL)
        return -1;
    if (cached) {
        Py_INCREF(key);
        self->key_hits++;
    }
    PyObject *f = PyDict_GetItemWithError(flows, key);
    if (f == NULL) {
        Py_DECREF(key);
        return PyErr_Occurred() ? -1 : NW_HAND_NEW;
    }
    if (!Py_IS_TYPE(f, self->flow_type)) { /* no slot of it may be read */
        Py_DECREF(key);
        return NW_HAND_VALUE;
    }
    Py_INCREF(f);
    int rc = cached ? 0 : cache_key(self, entry, raw, key, f);
    Py_DECREF(key);
    if (rc == 0)
        rc = fast_packet(self, f, fwd, r, ts);
    Py_DECREF(f);
    return rc;
}

/* Argument i of a vectorcall as a Py_ssize_t >= 0. */
static int arg_index(PyObject *const *args, int i, Py_ssize_t *out)
{
    *out = PyLong_AsSsize_t(args[i]);
    if (*out == -1 && PyErr_Occurred())
        return -1;
    if (*out < 0) {
        PyErr_SetString(PyExc_ValueError, "FastLoop.run: negative offset or limit");
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(fastloop_run_doc,
"run(flows, buffer, start, end, little, tick, next_sweep, limit)\n"
"    -> (next, packets, wire_bytes, empty, status, record)\n\n"
"Walk the classic pcap records of buffer[start:end] (an Ethernet capture; little: the\n"
"file is little-endian; tick: seconds per fraction unit) and apply the fused loop's fast\n"
"branch to each packet of an existing flow of the dict flows, in place. Returns at the first\n"
"packet Python must take (status 3 and up: the reason; record: its 88-byte record, next:\n"
"the offset after it), after limit records (status 1), at the end of the buffer or a record\n"
"cut by it (0) or at a captured length above the maximum (2; next: that record). packets\n"
"and wire_bytes count the packets done here, empty the empty records skipped.");

static PyObject *fastloop_run(nw_fastloop *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "FastLoop.run takes 8 arguments");
        return NULL;
    }
    PyObject *flows = args[0];
    if (!PyDict_CheckExact(flows)) {
        PyErr_SetString(PyExc_TypeError, "FastLoop.run: flows must be a dict");
        return NULL;
    }
    Py_ssize_t start, end, limit;
    if (arg_index(args, 2, &start) < 0 || arg_index(args, 3, &end) < 0
        || arg_index(args, 7, &limit) < 0)
        return NULL;
    int little = PyObject_IsTrue(args[4]);
    double tick = PyFloat_AsDouble(args[5]);
    if (little < 0 || (tick == -1.0 && PyErr_Occurred()))
        return NULL;
    /* next_sweep: a float as the flow table keeps it; anything else hands every packet
     * over (the comparison below must be Python's). */
    double next_sweep = PyFloat_CheckExact(args[6]) ? PyFloat_AS_DOUBLE(args[6]) : -Py_HUGE_VAL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (end < start || end > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "FastLoop.run: bad start or end");
        return NULL;
    }
    Py_INCREF(flows);
    const uint8_t *buf = (const uint8_t *)view.buf;
    uint64_t off = (uint64_t)start, done = 0, nbytes = 0, empty = 0, seen = 0;
    int status = NW_FAST_END;
    nw_record r;
    nw_rechdr h;
    PyObject *handed = NULL;
    for (;;) {
        int step = next_record(buf, off, (uint64_t)end, little, &h);
        if (step == NW_STEP_END)
            break;
        if (step == NW_STEP_CAPLEN) {
            status = NW_FAST_CAPLEN;
            break;
        }
        if (step == NW_STEP_EMPTY) {
            empty++;
            off = h.start;
            continue;
        }
        if (seen == (uint64_t)limit) {
            status = NW_FAST_FULL;
            break;
        }
        seen++;
        fill_record(buf, &h, 1, &r);
        off = h.start + h.caplen;
        /* the timestamp as Python computes it: sec + frac * tick, rounded after the
         * product and after the sum (setup.py builds with -ffp-contract=off: no FMA) */
        double ts = (double)h.sec + (double)h.frac * tick;
        int rc;
        if (r.kind == NW_ODD)
            rc = NW_HAND_ODD;
        else if (!(ts < next_sweep))
            rc = NW_HAND_SWEEP;
        else
            rc = fast_record(self, flows, &r, ts);
        if (rc < 0) {
            status = -1;
            break;
        }
        if (rc > 0) {
            status = rc;
            handed = PyBytes_FromStringAndSize((const char *)&r, sizeof r);
            if (handed == NULL)
                status = -1;
            break;
        }
        done++;
        nbytes += h.wirelen;
    }
    PyBuffer_Release(&view);
    Py_DECREF(flows);
    if (status < 0)
        return NULL;
    self->reasons[status]++;
    self->fast += done;
    if (handed == NULL) {
        Py_INCREF(Py_None);
        handed = Py_None;
    }
    return Py_BuildValue("KKKKiN", (unsigned long long)off, (unsigned long long)done,
                         (unsigned long long)nbytes, (unsigned long long)empty, status, handed);
}

PyDoc_STRVAR(fastloop_reasons_doc,
"reasons() -> tuple: how many run() calls returned with each status (index: the status),\n"
"since construction.");

static PyObject *fastloop_reasons(nw_fastloop *self, PyObject *unused)
{
    (void)unused;
    PyObject *out = PyTuple_New(NW_FAST_REASONS);
    if (out == NULL)
        return NULL;
    for (int i = 0; i < NW_FAST_REASONS; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(self->reasons[i]);
        if (v == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, v);
    }
    return out;
}

static PyObject *fastloop_get_fast(nw_fastloop *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->fast);
}

static PyMethodDef fastloop_methods[] = {
    {"run", (PyCFunction)(void (*)(void))fastloop_run, METH_FASTCALL, fastloop_run_doc},
    {"reasons", (PyCFunction)fastloop_reasons, METH_NOARGS, fastloop_reasons_doc},
    {NULL, NULL, 0, NULL},
};

static PyObject *fastloop_get_key_hits(nw_fastloop *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->key_hits);
}

static PyGetSetDef fastloop_getset[] = {
    {"fast", (getter)fastloop_get_fast, NULL, "packets done by the fast branch here", NULL},
    {"key_hits", (getter)fastloop_get_key_hits, NULL,
     "flow lookups made with a cached key (of NW_KEY_CACHE entries at most)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(fastloop_doc,
"FastLoop(flow_type, endpoint_type)\n\n"
"The fused loop's fast branch in C over Python's flow table: see run(). flow_type and\n"
"endpoint_type are netwatch.flow.table.Flow and netwatch.flow.tcpstate.Endpoint; the slots\n"
"it reads and writes are found from their member descriptors.");

static PyTypeObject FastLoopType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "netwatch._core.FastLoop",
    .tp_basicsize = sizeof(nw_fastloop),
    .tp_dealloc = (destructor)fastloop_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = fastloop_doc,
    .tp_methods = fastloop_methods,
    .tp_getset = fastloop_getset,
    .tp_init = (initproc)fastloop_init,
    .tp_new = PyType_GenericNew,
};

static PyMethodDef core_methods[] = {
    {"walk_pcap", core_walk_pcap, METH_VARARGS, walk_pcap_doc},
    {NULL, NULL, 0, NULL},
};

static int core_exec(PyObject *m)
{
    if (PyType_Ready(&FastLoopType) < 0 || PyModule_AddType(m, &FastLoopType) < 0)
        return -1;
    if (PyModule_AddIntConstant(m, "RECORD_SIZE", (long)sizeof(nw_record)) < 0)
        return -1;
    return PyModule_AddIntConstant(m, "MAX_CAPLEN", (long)NW_MAX_CAPLEN);
}

static PyModuleDef_Slot core_slots[] = {
    {Py_mod_exec, core_exec},
    {0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "netwatch._core",
    .m_doc = "netwatch's compiled per-packet core: pcap record walk and common-shape decode.",
    .m_size = 0,
    .m_methods = core_methods,
    .m_slots = core_slots,
};

PyMODINIT_FUNC PyInit__core(void) { return PyModuleDef_Init(&core_module); }
