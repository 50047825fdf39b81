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
 * Config read: none. Known limits: ICMP, tunnels, fragments, IP options, IPv6 extension
 * headers, VN-Tag and other link types are all "odd" here; the flow table stays Python.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

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
    const uint8_t *buf = w->buf;
    uint64_t off = w->off, end = w->end, n = 0, empty = 0;
    w->status = NW_END;
    while (end >= NW_RECORD_HEADER && off <= end - NW_RECORD_HEADER) {
        const uint8_t *h = buf + off;
        uint32_t v[4];
        for (int i = 0; i < 4; i++)
            v[i] = w->little ? le32(h + 4 * i) : be32(h + 4 * i);
        uint32_t caplen = v[2];
        uint64_t start = off + NW_RECORD_HEADER;
        if (caplen > NW_MAX_CAPLEN) {
            w->status = NW_CAPLEN;
            break;
        }
        if (caplen == 0) {
            empty++;
            off = start;
            continue;
        }
        if (start + caplen > end)
            break; /* the record continues past the end of the buffer */
        if (n == w->limit) {
            w->status = NW_FULL;
            break;
        }
        nw_record *r = &w->out[n++];
        memset(r, 0, sizeof *r);
        r->frame_off = start;
        r->sec = v[0];
        r->frac = v[1];
        r->caplen = caplen;
        r->wirelen = v[3];
        r->vlan = -1;
        if (w->ethernet)
            decode_ether(buf + start, caplen, v[3], r);
        off = start + caplen;
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

static PyMethodDef core_methods[] = {
    {"walk_pcap", core_walk_pcap, METH_VARARGS, walk_pcap_doc},
    {NULL, NULL, 0, NULL},
};

static int core_exec(PyObject *m)
{
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
