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
 * FlowBase and EndpointBase hold the attributes of netwatch.flow.table.Flow and
 * netwatch.flow.tcpstate.Endpoint (those are subclasses of them when this module is loaded):
 * the counters the fast loop writes are C int64/double fields, each read back as the int,
 * float or object Python stored.
 *
 * FastLoop (below) is the fused loop's fast branch over the same walk and decode: for a
 * packet of a flow already in Python's flow table (a dict of Flow) it updates that Flow and
 * its TCP Endpoint in place, exactly as netwatch/corefeed.py's Python would, allocating
 * nothing; it also applies five TCP segments as netwatch/flow/tcpstate.py would, history
 * letters included (the SYN-ACK answering a SYN: syn_ack; a direction's first bare ACK:
 * first_ack; an endpoint's first FIN, and the FIN that completes a close: first_fin; a
 * RST: reset; for a close or a RST it pushes the removal timer by calling the table's
 * closed_at: close_flow), makes a new TCP/UDP flow (an originator's bare SYN or a UDP
 * datagram) and registers it in the table as FlowTable.first_packet would (new_flow: the
 * table's uid source, heaps, tiebreak counter and heappush, called), and hands
 * every other packet back to Python, counting
 * why (reasons(), and conds() for failed conditions). A cache on the raw 5-tuple finds a
 * live flow without a dict lookup. It holds the GIL. Every value it reads is type- and
 * range-checked first (the counter cells of a Flow or Endpoint once per NW_FRESH packets of
 * it, and again after any write from Python: flow_fresh); anything unexpected hands the
 * packet back with nothing changed.
 *
 * flow_record (at the end of this file) builds an ended flow's flow-log record from a C Flow
 * and the enrichment values Python passes in: the same keys, order, types and values as
 * netwatch/flow/record.py's reference_record (Community ID with SHA-1 and base64 here, TCP
 * state and history as netwatch/flow/tcpstate.py has them); a flow not of exactly the
 * table's types gives None and Python builds the record. json_plain is the flow log's
 * record check. A FlowBase can also be made with all of a new flow's fields in one call.
 *
 * Config read: none. Known limits: ICMP, tunnels, fragments, IP options, IPv6 extension
 * headers, VN-Tag and other link types are all "odd" here; the flow table (creation but
 * new_flow's, on_start, end, timers but the close's push and a new flow's, the other TCP state changes: SYNs but the answering
 * SYN-ACK, RSTs after a close or with payload, payload out of order) stays Python. This file is large (walk, flow types, fast loop, record): splitting the
 * record builder into its own extension with a shared header is a next step.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <float.h>
#include <math.h>
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

/* Inlined at every call, whatever the compiler's size heuristics (the per-packet helpers:
 * a call and its spills cost more than their bodies). */
#if defined(__GNUC__) || defined(__clang__)
#define NW_HOT static inline __attribute__((always_inline))
#else
#define NW_HOT static inline
#endif

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
    if (p < 2123 || p > 8472) /* outside the lowest and highest of them (most ports): one test */
        return 0;
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
NW_HOT int may_tunnel(const uint8_t *f, uint64_t off, uint64_t end, uint16_t sp, uint16_t dp)
{
    if (is_tunnel_port(sp) || is_tunnel_port(dp))
        return 1;
    if (end - off >= NW_TEREDO_MIN && teredo_lead(f[off]) && teredo_detected(f, off, end))
        return 1;
    return end - off >= 3 && f[off + 1] == 0x52 && f[off + 2] == 0x11;
}

/* Decode one Ethernet frame f[0:flen] into r; r->kind stays NW_ODD for any other shape. */
NW_HOT void decode_ether(const uint8_t *f, uint32_t flen, uint32_t wirelen, nw_record *r)
{
    if (flen < 14)
        return;
    uint32_t off = 14;
    uint16_t etype = be16(f + 12);
    int vlan = -1;
    unsigned tags = 0;
    /* the common ethertypes tested first: an IPv4 or IPv6 frame (tagged or not: the tag's
     * inner type) then takes two comparisons, not the four of the tag types as well */
    while (etype != 0x0800 && etype != 0x86DD && is_vlan_tpid(etype)) {
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

NW_HOT int next_record(const uint8_t *buf, uint64_t off, uint64_t end, int little, nw_rechdr *h)
{
    if (end < NW_RECORD_HEADER || off > end - NW_RECORD_HEADER)
        return NW_STEP_END;
    const uint8_t *p = buf + off;
    if (little) {
        h->sec = le32(p);
        h->frac = le32(p + 4);
        h->caplen = le32(p + 8);
        h->wirelen = le32(p + 12);
    } else {
        h->sec = be32(p);
        h->frac = be32(p + 4);
        h->caplen = be32(p + 8);
        h->wirelen = be32(p + 12);
    }
    h->start = off + NW_RECORD_HEADER;
    if (h->caplen > NW_MAX_CAPLEN)
        return NW_STEP_CAPLEN;
    if (h->caplen == 0)
        return NW_STEP_EMPTY;
    if (h->start + h->caplen > end)
        return NW_STEP_END; /* the record continues past the end of the buffer */
    return NW_STEP_RECORD;
}

/* Read-ahead for the record walks. A walk chases record headers through the buffer (the
 * next header's offset is in the current one), so on a capture larger than the caches every
 * header is a memory load the CPU cannot start early: ~0.12 us per packet on the site
 * capture. Asking for every cache line of the next NW_AHEAD bytes (addresses the walk is
 * about to read, all inside the buffer) turns that into a stream the memory system runs
 * ahead on: 0.128 -> 0.095 CPU-s per 1,000,000 site packets (bench/bench_core.py's walk,
 * 3 rounds). A prefetch is a hint: it reads nothing, cannot fault and changes no result. */
#define NW_AHEAD 8192u
#define NW_LINE 64u

static inline void read_ahead(const uint8_t *buf, uint64_t *next, uint64_t off, uint64_t end)
{
#if defined(__GNUC__) || defined(__clang__)
    uint64_t want = end - off > NW_AHEAD ? off + NW_AHEAD : end;
    uint64_t at = *next > off ? *next : off;
    /* the same prefetches, in the same order, four lines per step of the loop (the loop's
     * compare and branch per line cost more instructions than the prefetches themselves);
     * below `four`, the step's four lines are all before `want` */
    uint64_t four = at < want && want - at > 3 * NW_LINE ? want - 3 * NW_LINE : at;
    for (; at < four; at += 4 * NW_LINE) {
        __builtin_prefetch(buf + at);
        __builtin_prefetch(buf + at + NW_LINE);
        __builtin_prefetch(buf + at + 2 * NW_LINE);
        __builtin_prefetch(buf + at + 3 * NW_LINE);
    }
    for (; at < want; at += NW_LINE)
        __builtin_prefetch(buf + at);
    *next = at;
#else
    (void)buf, (void)next, (void)off, (void)end;
#endif
}

/* The record of one packet: its header fields, and the common-shape decode. */
NW_HOT void fill_record(const uint8_t *buf, const nw_rechdr *h, int ethernet, nw_record *r)
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
    uint64_t off = w->off, n = 0, empty = 0, ahead = 0;
    nw_rechdr h;
    w->status = NW_END;
    for (;;) {
        if (off < w->end)
            read_ahead(w->buf, &ahead, off, w->end);
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
    NW_HAND_DEEP = 10,  /* counted here; only the deep parsers' step is Python's (run's deep) */
    NW_HAND_STARTED = 11, /* a new flow made here (run's new_flows): on_start, deep Python's */
    NW_FAST_REASONS = 12
};

/* Why the fast branch's conditions failed (NW_HAND_COND), first that applies in this order;
 * netwatch.core.CondReason. */
enum nw_cond {
    NW_COND_UDP_DEEP = 0, /* UDP payload the deep parsers still want */
    NW_COND_SYN = 1,      /* a SYN (with or without other flags) */
    NW_COND_FIN = 2,      /* a FIN (no SYN) */
    NW_COND_RST = 3,      /* a RST (no SYN, no FIN) */
    NW_COND_ZERO_WIN = 4, /* a zero window */
    NW_COND_NO_NXT = 5,   /* the sender's endpoint needs bookkeeping (nxt < 0) */
    NW_COND_SEQ = 6,      /* not the next in-order sequence number */
    NW_COND_TCP_DEEP = 7, /* TCP payload the deep parsers still want */
    NW_COND_ACK = 8,      /* the ACK acknowledges beyond the peer's delivered data */
    NW_COND_CUT = 9,      /* payload cut by the snap length */
    NW_COND_FIRST_A = 10, /* the direction's first bare ACK (history letter A/a) */
    NW_COND_FIRST_D = 11, /* the direction's first payload (history letter D/d) */
    NW_CONDS = 12
};

#define NW_TCP_FLAGS_SFR 0x07u /* SYN, FIN, RST */
#define NW_TCP_ACK 0x10u
#define NW_BIT_H (1 << 1)
#define NW_BIT_R (1 << 5)
#define NW_BIT_A (1 << 2) /* history bits of 'A' and 'D' (netwatch.flow.tcpstate) */
#define NW_BIT_D (1 << 3)
#define NW_BIT_F (1 << 4)
#define NW_MASK32 0xFFFFFFFFLL
#define NW_HALF_1 0x7FFFFFFFLL
/* Integers read from a Flow or Endpoint must lie within +-NW_SAFE: the loop then adds at
 * most 2**32 to them, or subtracts them from a 32-bit value, without overflow. */
#define NW_SAFE (1LL << 61)


/* ---- Flow and Endpoint as C types ------------------------------------------------------
 *
 * FlowBase and EndpointBase hold the attributes of netwatch.flow.table.Flow and
 * netwatch.flow.tcpstate.Endpoint (the pure-Python reference classes, whose __slots__ they
 * mirror name for name); the Python subclasses there add the reference's methods and pickle
 * support. An attribute the fast loop writes is a "cell": a C int64 or double with the
 * Python type it was given (an exact int that fits 64 bits, an exact float), or else the
 * object itself (a bigger int, a bool, None, anything), or unset; reading it gives an int,
 * a float or that object, so Python sees exactly what it stored (int vs float included).
 * Every other attribute is a plain object member (T_OBJECT_EX: what __slots__ gives).
 * Both types take part in the cyclic GC (flows can be in cycles through their evidence). */

enum nw_tag { NW_UNSET = 0, NW_INT = 1, NW_FLOAT = 2, NW_OBJ = 3 };

/* A cell's value; its tag (enum nw_tag) is kept apart, one byte each (a Flow's seven
 * cells take 64 bytes). */
typedef union {
    long long i;
    double d;
    PyObject *o; /* strong reference (NW_OBJ) */
} nw_val;

/* Flow's object members and cells (the reference's __slots__, split in two). */
enum nw_flow_obj {
    FO_APP, FO_DEEP_O, FO_DEEP_R, FO_EV, FO_FIRST, FO_HIST, FO_KEEP, FO_KEY, FO_NAME,
    FO_ODIR, FO_ORIG_H, FO_ORIG_MAC, FO_ORIG_P, FO_PROTO, FO_RESP_H, FO_RESP_MAC, FO_RESP_P,
    FO_STATE, FO_STOP, FO_TCP, FO_UID, FO_VLAN, FO_COUNT
};
enum nw_flow_cell { FC_LAST, FC_O_PKTS, FC_O_IPB, FC_O_BYTES, FC_R_PKTS, FC_R_IPB, FC_R_BYTES,
                    FC_COUNT };

/* fresh (Flow and Endpoint): how many more packets the fast loop may count into the cells
 * without checking them again (see flow_fresh); 0 after any write from Python. */
typedef struct {
    PyObject_HEAD
    PyObject *obj[FO_COUNT];
    nw_val val[FC_COUNT];
    uint8_t tag[FC_COUNT];
    uint32_t fresh;
} nw_flow;

enum nw_end_obj {
    EO_ACKED, EO_BASE, EO_BITS, EO_BLOCKS, EO_DELIV, EO_FIN, EO_GAPS, EO_LAST_CTL, EO_LETTERS,
    EO_MISSED, EO_PREV, EO_RETX, EO_STATE, EO_ZWIN, EO_COUNT
};
enum nw_end_cell { EC_DACK, EC_NXT, EC_SEQMAX, EC_COUNT };

typedef struct {
    PyObject_HEAD
    PyObject *obj[EO_COUNT];
    nw_val val[EC_COUNT];
    uint8_t tag[EC_COUNT];
    uint32_t fresh;
} nw_endpoint;

#define FLOW_OBJ(name, i) \
    {name, T_OBJECT_EX, (Py_ssize_t)(offsetof(nw_flow, obj) + (i) * sizeof(PyObject *)), 0, NULL}
static PyMemberDef flow_members[] = {
    FLOW_OBJ("app", FO_APP), FLOW_OBJ("deep_o", FO_DEEP_O), FLOW_OBJ("deep_r", FO_DEEP_R),
    FLOW_OBJ("ev", FO_EV), FLOW_OBJ("first", FO_FIRST), FLOW_OBJ("hist", FO_HIST),
    FLOW_OBJ("keep", FO_KEEP), FLOW_OBJ("key", FO_KEY), FLOW_OBJ("name", FO_NAME),
    FLOW_OBJ("odir", FO_ODIR), FLOW_OBJ("orig_h", FO_ORIG_H), FLOW_OBJ("orig_mac", FO_ORIG_MAC),
    FLOW_OBJ("orig_p", FO_ORIG_P), FLOW_OBJ("proto", FO_PROTO), FLOW_OBJ("resp_h", FO_RESP_H),
    FLOW_OBJ("resp_mac", FO_RESP_MAC), FLOW_OBJ("resp_p", FO_RESP_P),
    FLOW_OBJ("state", FO_STATE), FLOW_OBJ("stop", FO_STOP), FLOW_OBJ("tcp", FO_TCP),
    FLOW_OBJ("uid", FO_UID), FLOW_OBJ("vlan", FO_VLAN),
    {NULL, 0, 0, 0, NULL},
};
#undef FLOW_OBJ

#define END_OBJ(name, i) \
    {name, T_OBJECT_EX, (Py_ssize_t)(offsetof(nw_endpoint, obj) + (i) * sizeof(PyObject *)), 0, \
     NULL}
static PyMemberDef end_members[] = {
    END_OBJ("acked", EO_ACKED), END_OBJ("base", EO_BASE), END_OBJ("bits", EO_BITS),
    END_OBJ("blocks", EO_BLOCKS), END_OBJ("deliv", EO_DELIV), END_OBJ("fin", EO_FIN),
    END_OBJ("gaps", EO_GAPS), END_OBJ("last_ctl", EO_LAST_CTL), END_OBJ("letters", EO_LETTERS),
    END_OBJ("missed", EO_MISSED), END_OBJ("prev", EO_PREV), END_OBJ("retx", EO_RETX),
    END_OBJ("state", EO_STATE), END_OBJ("zwin", EO_ZWIN),
    {NULL, 0, 0, 0, NULL},
};
#undef END_OBJ

/* A cell attribute: its name (for AttributeError) and the offsets of its value and tag, and
 * of its object's `fresh`. */
typedef struct {
    const char *name;
    Py_ssize_t val, tag, fresh;
} nw_cell_info;

#define FLOW_CELL(name, i) \
    {name, (Py_ssize_t)(offsetof(nw_flow, val) + (i) * sizeof(nw_val)), \
     (Py_ssize_t)(offsetof(nw_flow, tag) + (i)), (Py_ssize_t)offsetof(nw_flow, fresh)}
static nw_cell_info flow_cells[FC_COUNT] = {
    FLOW_CELL("last", FC_LAST),       FLOW_CELL("o_pkts", FC_O_PKTS),
    FLOW_CELL("o_ipb", FC_O_IPB),     FLOW_CELL("o_bytes", FC_O_BYTES),
    FLOW_CELL("r_pkts", FC_R_PKTS),   FLOW_CELL("r_ipb", FC_R_IPB),
    FLOW_CELL("r_bytes", FC_R_BYTES),
};
#undef FLOW_CELL
#define END_CELL(name, i) \
    {name, (Py_ssize_t)(offsetof(nw_endpoint, val) + (i) * sizeof(nw_val)), \
     (Py_ssize_t)(offsetof(nw_endpoint, tag) + (i)), (Py_ssize_t)offsetof(nw_endpoint, fresh)}
static nw_cell_info end_cells[EC_COUNT] = {
    END_CELL("dack", EC_DACK), END_CELL("nxt", EC_NXT), END_CELL("seqmax", EC_SEQMAX),
};
#undef END_CELL

static inline nw_val *val_at(PyObject *self, const nw_cell_info *ci)
{
    return (nw_val *)((char *)self + ci->val);
}

static inline uint8_t *tag_at(PyObject *self, const nw_cell_info *ci)
{
    return (uint8_t *)self + ci->tag;
}

static PyObject *cell_get(PyObject *self, void *closure)
{
    const nw_cell_info *ci = closure;
    nw_val *v = val_at(self, ci);
    switch (*tag_at(self, ci)) {
    case NW_INT:
        return PyLong_FromLongLong(v->i);
    case NW_FLOAT:
        return PyFloat_FromDouble(v->d);
    case NW_OBJ:
        Py_INCREF(v->o);
        return v->o;
    default:
        PyErr_Format(PyExc_AttributeError, "'%.200s' object has no attribute '%s'",
                     Py_TYPE(self)->tp_name, ci->name);
        return NULL;
    }
}

/* Store value in a cell (NULL: unset it); the old object, if any, is released last. */
static int cell_store(nw_val *v, uint8_t *tag, PyObject *value)
{
    PyObject *old = *tag == NW_OBJ ? v->o : NULL;
    if (value == NULL) {
        v->i = 0;
        *tag = NW_UNSET;
    } else if (PyLong_CheckExact(value)) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (x == -1 && PyErr_Occurred())
            return -1;
        if (overflow) {
            Py_INCREF(value);
            v->o = value;
            *tag = NW_OBJ;
        } else {
            v->i = x;
            *tag = NW_INT;
        }
    } else if (PyFloat_CheckExact(value)) {
        v->d = PyFloat_AS_DOUBLE(value);
        *tag = NW_FLOAT;
    } else {
        Py_INCREF(value);
        v->o = value;
        *tag = NW_OBJ;
    }
    Py_XDECREF(old);
    return 0;
}

static int cell_set(PyObject *self, PyObject *value, void *closure)
{
    const nw_cell_info *ci = closure;
    uint8_t *tag = tag_at(self, ci);
    if (value == NULL && *tag == NW_UNSET) {
        PyErr_Format(PyExc_AttributeError, "'%.200s' object has no attribute '%s'",
                     Py_TYPE(self)->tp_name, ci->name);
        return -1;
    }
    *(uint32_t *)((char *)self + ci->fresh) = 0; /* a write from Python: checked again */
    return cell_store(val_at(self, ci), tag, value);
}

/* Cell i of vals/tags := the int x (an object it held released). */
static void cell_int(nw_val *vals, uint8_t *tags, int i, long long x)
{
    cell_store(&vals[i], &tags[i], NULL); /* cannot fail */
    vals[i].i = x;
    tags[i] = NW_INT;
}

static int cells_traverse(nw_val *vals, uint8_t *tags, int n, visitproc visit, void *arg)
{
    for (int i = 0; i < n; i++)
        if (tags[i] == NW_OBJ)
            Py_VISIT(vals[i].o);
    return 0;
}

static void cells_clear(nw_val *vals, uint8_t *tags, int n)
{
    for (int i = 0; i < n; i++) {
        if (tags[i] == NW_OBJ) {
            PyObject *o = vals[i].o;
            vals[i].i = 0;
            tags[i] = NW_UNSET;
            Py_DECREF(o);
        }
    }
}

static int objs_traverse(PyObject **objs, int n, visitproc visit, void *arg)
{
    for (int i = 0; i < n; i++)
        Py_VISIT(objs[i]);
    return 0;
}

static void objs_clear(PyObject **objs, int n)
{
    for (int i = 0; i < n; i++)
        Py_CLEAR(objs[i]);
}

/* obj[i] = value (a new reference taken); the old one released. */
static void obj_set(PyObject **objs, int i, PyObject *value)
{
    Py_INCREF(value);
    Py_XSETREF(objs[i], value);
}

/* obj[i] = a new int (stolen); -1 when it could not be made. */
static int obj_set_long(PyObject **objs, int i, long v)
{
    PyObject *o = PyLong_FromLong(v);
    if (o == NULL)
        return -1;
    Py_XSETREF(objs[i], o);
    return 0;
}

static int flow_traverse(nw_flow *self, visitproc visit, void *arg)
{
    int rc = objs_traverse(self->obj, FO_COUNT, visit, arg);
    return rc ? rc : cells_traverse(self->val, self->tag, FC_COUNT, visit, arg);
}

static int flow_clear(nw_flow *self)
{
    self->fresh = 0;
    objs_clear(self->obj, FO_COUNT);
    cells_clear(self->val, self->tag, FC_COUNT);
    return 0;
}

static void flow_dealloc(nw_flow *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Py_TRASHCAN_BEGIN(self, flow_dealloc)
    flow_clear(self);
    tp->tp_free((PyObject *)self);
    Py_TRASHCAN_END
}

/* frame[start + add : start + add + 6], by the objects' own operations (what Python does for
 * frame[mac_off + add : mac_off + add + 6] whatever frame and mac_off are). */
static PyObject *slice_any(PyObject *frame, PyObject *start, long add)
{
    PyObject *a = PyLong_FromLong(add), *b = PyLong_FromLong(add + 6);
    PyObject *lo = NULL, *hi = NULL, *sl = NULL, *out = NULL;
    if (a != NULL && b != NULL && (lo = PyNumber_Add(start, a)) != NULL
        && (hi = PyNumber_Add(start, b)) != NULL && (sl = PySlice_New(lo, hi, NULL)) != NULL)
        out = PyObject_GetItem(frame, sl);
    Py_XDECREF(a);
    Py_XDECREF(b);
    Py_XDECREF(lo);
    Py_XDECREF(hi);
    Py_XDECREF(sl);
    return out;
}

/* The two MACs of a new flow: *resp = frame[mac_off:mac_off + 6], *orig the next six when
 * mac_off >= 0, else both left NULL. An exact int within the bytes' range is copied
 * directly; anything else (a short frame, a huge or odd mac_off, not bytes) goes through
 * Python's comparison and slicing. -1 on error (nothing set). */
static int new_macs(PyObject *frame, PyObject *mac_off, PyObject **resp, PyObject **orig)
{
    *resp = *orig = NULL;
    if (PyLong_CheckExact(mac_off)) {
        int overflow;
        long long off = PyLong_AsLongLongAndOverflow(mac_off, &overflow);
        if (off == -1 && PyErr_Occurred())
            return -1;
        if (!overflow && off < 0)
            return 0;
        if (!overflow && PyBytes_CheckExact(frame) && off <= PyBytes_GET_SIZE(frame) - 12) {
            const char *p = PyBytes_AS_STRING(frame) + off;
            *resp = PyBytes_FromStringAndSize(p, 6);
            *orig = *resp == NULL ? NULL : PyBytes_FromStringAndSize(p + 6, 6);
            goto done;
        }
    }
    PyObject *zero = PyLong_FromLong(0);
    if (zero == NULL)
        return -1;
    int ge = PyObject_RichCompareBool(mac_off, zero, Py_GE);
    Py_DECREF(zero);
    if (ge <= 0)
        return ge;
    *resp = slice_any(frame, mac_off, 0);
    *orig = *resp == NULL ? NULL : slice_any(frame, mac_off, 6);
done:
    if (*orig == NULL) {
        Py_CLEAR(*resp);
        return -1;
    }
    return 0;
}

static int flow_init_plain(nw_flow *self, PyObject *key, PyObject *uid, PyObject *ts,
                           PyObject *proto);

/* Flow(key, uid, ts, proto, odir, orig_h, resp_h, orig_p, resp_p, frame, mac_off, vlan,
 * budget): the table's new flow in one call, what Flow(key, uid, ts, proto) followed by
 * FlowTable._new's writes gives: odir, the ends and ports as given, the MACs sliced from
 * the frame when mac_off >= 0 (resp_mac = frame[mac_off:mac_off + 6], orig_mac the next
 * six), vlan, deep_o = deep_r = budget. */
static int flow_init_full(nw_flow *self, PyObject *args)
{
    PyObject **a = &PyTuple_GET_ITEM(args, 0);
    if (flow_init_plain(self, a[0], a[1], a[2], a[3]) < 0)
        return -1;
    PyObject *resp, *orig;
    if (new_macs(a[9], a[10], &resp, &orig) < 0)
        return -1;
    PyObject **o = self->obj;
    if (resp != NULL) {
        Py_XSETREF(o[FO_RESP_MAC], resp);
        Py_XSETREF(o[FO_ORIG_MAC], orig);
    }
    obj_set(o, FO_ODIR, a[4]);
    obj_set(o, FO_ORIG_H, a[5]);
    obj_set(o, FO_RESP_H, a[6]);
    obj_set(o, FO_ORIG_P, a[7]);
    obj_set(o, FO_RESP_P, a[8]);
    obj_set(o, FO_VLAN, a[11]);
    obj_set(o, FO_DEEP_O, a[12]);
    obj_set(o, FO_DEEP_R, a[12]);
    return 0;
}

/* Flow(key, uid, ts, proto): the reference's __init__, attribute by attribute. */
static int flow_init(nw_flow *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"key", "uid", "ts", "proto", NULL};
    PyObject *key, *uid, *ts, *proto;
    if (kwds == NULL && PyTuple_GET_SIZE(args) == 13) /* the table's new flow, whole */
        return flow_init_full(self, args);
    if (kwds == NULL && PyTuple_GET_SIZE(args) == 4) { /* the table's call: no parsing */
        key = PyTuple_GET_ITEM(args, 0);
        uid = PyTuple_GET_ITEM(args, 1);
        ts = PyTuple_GET_ITEM(args, 2);
        proto = PyTuple_GET_ITEM(args, 3);
    } else if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOO:Flow", kwlist, &key, &uid, &ts,
                                            &proto)) {
        return -1;
    }
    return flow_init_plain(self, key, uid, ts, proto);
}

static int flow_init_plain(nw_flow *self, PyObject *key, PyObject *uid, PyObject *ts,
                           PyObject *proto)
{
    PyObject *stop = PyFloat_FromDouble(-1.0), *empty = PyBytes_FromStringAndSize(NULL, 0);
    if (stop == NULL || empty == NULL) {
        Py_XDECREF(stop);
        Py_XDECREF(empty);
        return -1;
    }
    PyObject **o = self->obj;
    self->fresh = 0; /* the cells are (re)set from Python's values below */
    obj_set(o, FO_KEY, key);
    obj_set(o, FO_UID, uid);
    obj_set(o, FO_FIRST, ts);
    int rc = cell_store(&self->val[FC_LAST], &self->tag[FC_LAST], ts);
    obj_set(o, FO_PROTO, proto);
    for (int i = FC_O_PKTS; i < FC_COUNT; i++)
        cell_int(self->val, self->tag, i, 0);
    obj_set(o, FO_TCP, Py_None);
    obj_set(o, FO_HIST, Py_None);
    rc |= obj_set_long(o, FO_STATE, 0);
    Py_XSETREF(o[FO_STOP], stop);
    obj_set(o, FO_APP, Py_None);
    obj_set(o, FO_NAME, Py_None);
    obj_set(o, FO_ODIR, Py_True);
    obj_set(o, FO_ORIG_H, empty);
    Py_XSETREF(o[FO_RESP_H], empty);
    rc |= obj_set_long(o, FO_ORIG_P, 0);
    rc |= obj_set_long(o, FO_RESP_P, 0);
    obj_set(o, FO_ORIG_MAC, Py_None);
    obj_set(o, FO_RESP_MAC, Py_None);
    rc |= obj_set_long(o, FO_VLAN, -1);
    rc |= obj_set_long(o, FO_DEEP_O, 0);
    rc |= obj_set_long(o, FO_DEEP_R, 0);
    rc |= obj_set_long(o, FO_KEEP, 0);
    obj_set(o, FO_EV, Py_None);
    return rc ? -1 : 0;
}

static int end_traverse(nw_endpoint *self, visitproc visit, void *arg)
{
    int rc = objs_traverse(self->obj, EO_COUNT, visit, arg);
    return rc ? rc : cells_traverse(self->val, self->tag, EC_COUNT, visit, arg);
}

static int end_clear(nw_endpoint *self)
{
    self->fresh = 0;
    objs_clear(self->obj, EO_COUNT);
    cells_clear(self->val, self->tag, EC_COUNT);
    return 0;
}

static void end_dealloc(nw_endpoint *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Py_TRASHCAN_BEGIN(self, end_dealloc)
    end_clear(self);
    tp->tp_free((PyObject *)self);
    Py_TRASHCAN_END
}

static int end_init_plain(nw_endpoint *self, PyObject *letters);

/* Endpoint(letters, seq): an originator after its bare SYN with sequence number seq, as
 * FlowTable._tcp_first writes it (what tcp_packet makes of a fresh endpoint): bits = 1 (S),
 * last_ctl = [seq, -1, -1], base = seqmax = deliv = seq + 1, state = SYN_SENT (prev stays
 * INACTIVE), dack = (seq + 1) & 0xFFFFFFFF; seq + 1 and the mask by Python's arithmetic. */
static int end_init_syn(nw_endpoint *self, PyObject *letters, PyObject *seq)
{
    if (end_init_plain(self, letters) < 0)
        return -1;
    PyObject *one = PyLong_FromLong(1), *mask = PyLong_FromUnsignedLong(0xFFFFFFFFUL);
    PyObject *minus = PyLong_FromLong(-1), *next = NULL, *dack = NULL, *ctl = NULL;
    int rc = -1;
    if (one == NULL || mask == NULL || minus == NULL)
        goto out;
    if ((next = PyNumber_Add(seq, one)) == NULL || (dack = PyNumber_And(next, mask)) == NULL
        || (ctl = PyList_New(3)) == NULL)
        goto out;
    Py_INCREF(seq);
    PyList_SET_ITEM(ctl, 0, seq);
    Py_INCREF(minus);
    PyList_SET_ITEM(ctl, 1, minus);
    Py_INCREF(minus);
    PyList_SET_ITEM(ctl, 2, minus);
    PyObject **o = self->obj;
    if (obj_set_long(o, EO_BITS, 1) < 0)
        goto out;
    Py_XSETREF(o[EO_LAST_CTL], ctl);
    ctl = NULL;
    obj_set(o, EO_BASE, next);
    if (cell_store(&self->val[EC_SEQMAX], &self->tag[EC_SEQMAX], next) < 0)
        goto out;
    obj_set(o, EO_DELIV, next);
    if (obj_set_long(o, EO_STATE, 1) < 0) /* TcpState.SYN_SENT */
        goto out;
    if (cell_store(&self->val[EC_DACK], &self->tag[EC_DACK], dack) < 0)
        goto out;
    rc = 0;
out:
    Py_XDECREF(one);
    Py_XDECREF(mask);
    Py_XDECREF(minus);
    Py_XDECREF(next);
    Py_XDECREF(dack);
    Py_XDECREF(ctl);
    return rc;
}

/* Endpoint(letters): the reference's __init__. */
static int end_init(nw_endpoint *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"letters", NULL};
    PyObject *letters;
    if (kwds == NULL && PyTuple_GET_SIZE(args) == 2) /* the table's originator after a SYN */
        return end_init_syn(self, PyTuple_GET_ITEM(args, 0), PyTuple_GET_ITEM(args, 1));
    if (kwds == NULL && PyTuple_GET_SIZE(args) == 1) /* the table's call: no parsing */
        letters = PyTuple_GET_ITEM(args, 0);
    else if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:Endpoint", kwlist, &letters))
        return -1;
    return end_init_plain(self, letters);
}

static int end_init_plain(nw_endpoint *self, PyObject *letters)
{
    PyObject **o = self->obj;
    int rc = 0;
    self->fresh = 0; /* the cells are (re)set here (and by end_init_syn, after this) */
    rc |= obj_set_long(o, EO_STATE, 0);
    rc |= obj_set_long(o, EO_PREV, 0);
    rc |= obj_set_long(o, EO_BASE, -1);
    for (int i = 0; i < EC_COUNT; i++)
        cell_int(self->val, self->tag, i, -1);
    rc |= obj_set_long(o, EO_DELIV, -1);
    rc |= obj_set_long(o, EO_ACKED, -1);
    rc |= obj_set_long(o, EO_FIN, -1);
    obj_set(o, EO_BLOCKS, Py_None);
    obj_set(o, EO_LAST_CTL, Py_None);
    rc |= obj_set_long(o, EO_BITS, 0);
    rc |= obj_set_long(o, EO_RETX, 0);
    rc |= obj_set_long(o, EO_GAPS, 0);
    rc |= obj_set_long(o, EO_ZWIN, 0);
    rc |= obj_set_long(o, EO_MISSED, 0);
    obj_set(o, EO_LETTERS, letters);
    return rc ? -1 : 0;
}

#define NW_FLOW_GETSETS (FC_COUNT + 1)
static PyGetSetDef flow_getset[NW_FLOW_GETSETS];
static PyGetSetDef end_getset[EC_COUNT + 1];

PyDoc_STRVAR(flowbase_doc,
"FlowBase(key, uid, ts, proto)\n"
"FlowBase(key, uid, ts, proto, odir, orig_h, resp_h, orig_p, resp_p, frame, mac_off, vlan,\n"
"         budget)\n\n"
"The second form (positional only) also sets odir, the ends, ports, MACs (sliced from frame\n"
"at mac_off when mac_off >= 0), vlan and both payload budgets, as FlowTable._new did.\n\n"
"The attributes of netwatch.flow.table.Flow in C (the subclass there adds its methods):\n"
"the counters the fast loop writes are C int64/double fields that read back as the int,\n"
"float or object stored; every other attribute is a plain slot.");

static PyTypeObject FlowBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "netwatch._core.FlowBase",
    .tp_basicsize = sizeof(nw_flow),
    .tp_dealloc = (destructor)flow_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = flowbase_doc,
    .tp_traverse = (traverseproc)flow_traverse,
    .tp_clear = (inquiry)flow_clear,
    .tp_members = flow_members,
    .tp_getset = flow_getset,
    .tp_init = (initproc)flow_init,
    .tp_new = PyType_GenericNew,
};

PyDoc_STRVAR(endbase_doc,
"EndpointBase(letters)\n"
"EndpointBase(letters, seq)\n\n"
"The second form (positional only): an originator after its bare SYN with sequence number\n"
"seq, as FlowTable._tcp_first writes it.\n\n"
"The attributes of netwatch.flow.tcpstate.Endpoint in C (the subclass there adds its\n"
"methods): nxt, dack and seqmax are C int64 fields that read back as the int or object\n"
"stored; every other attribute is a plain slot.");

static PyTypeObject EndpointBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "netwatch._core.EndpointBase",
    .tp_basicsize = sizeof(nw_endpoint),
    .tp_dealloc = (destructor)end_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = endbase_doc,
    .tp_traverse = (traverseproc)end_traverse,
    .tp_clear = (inquiry)end_clear,
    .tp_members = end_members,
    .tp_getset = end_getset,
    .tp_init = (initproc)end_init,
    .tp_new = PyType_GenericNew,
};

static void fill_getsets(PyGetSetDef *out, nw_cell_info *cells, int n)
{
    for (int i = 0; i < n; i++) {
        out[i].name = cells[i].name;
        out[i].get = cell_get;
        out[i].set = cell_set;
        out[i].doc = NULL;
        out[i].closure = &cells[i];
    }
    memset(&out[n], 0, sizeof out[n]);
}

/* ---- The fused loop's fast branch over FlowBase/EndpointBase --------------------------- */

/* A flow key in canonical order as bytes: address length, protocol, the two ports (big
 * endian), the two addresses (zero-padded to 16 bytes each), two zero bytes (whole 8-byte
 * words for the hash). */
#define NW_RAW_KEY 40
/* The flow cache: direct-mapped, NW_KEY_CACHE entries (a power of two), on the raw key.
 * Each entry holds a tuple equal to the flow key its raw bytes describe (the flow table's
 * own key object where it could be had: a dict lookup with an equal key finds the same flow,
 * so the key never goes stale) and the Flow last found under it in the dict `flows` (strong
 * references both). The flow is taken without a dict lookup only while it is live: the flow
 * table ends a flow (netwatch.flow.table.FlowTable._end, the one place a flow leaves the
 * dict) by setting its state to 2 first, and every cached flow belongs to `flows` (a run
 * over another dict drops them all). So it keeps at most NW_KEY_CACHE keys and flows alive,
 * and the last dict. */
#define NW_KEY_BITS 12
#define NW_KEY_CACHE (1u << NW_KEY_BITS)

typedef struct {
    uint8_t raw[NW_RAW_KEY];
    PyObject *key;  /* strong reference, or NULL: empty */
    PyObject *flow; /* strong reference, or NULL: look the key up */
} nw_key_entry;

typedef struct {
    PyObject_HEAD
    nw_key_entry *keys; /* NW_KEY_CACHE entries */
    PyObject *flows;    /* the dict the cached flows were found in (strong), or NULL */
    unsigned long long key_hits, flow_hits;
    PyTypeObject *flow_type;
    PyTypeObject *end_type;
    unsigned long long reasons[NW_FAST_REASONS]; /* returns by status, since construction */
    unsigned long long fast;                      /* packets done here */
    unsigned long long conds[NW_CONDS];           /* NW_HAND_COND returns by enum nw_cond */
    unsigned long long first_acks;                /* first bare ACKs applied here */
    unsigned long long first_fins;                /* first FINs applied here */
    unsigned long long syn_acks;                  /* SYN-ACKs answering a SYN applied here */
    unsigned long long closes;                    /* FINs completing a close applied here */
    unsigned long long resets;                    /* RSTs applied here */
    unsigned long long deeps;                     /* NW_HAND_DEEP returns (UDP, TCP) */
    unsigned long long deep_tcp;                  /* of which TCP segments */
    unsigned long long first_datas;               /* first payloads (D/d) applied here */
    unsigned long long starts;                    /* new flows made here (NW_HAND_STARTED) */
    /* during run() only: the table's closed-flow push (borrowed; NULL: none given, a FIN
     * that completes a close is handed back) and the next sweep as the loop knows it */
    PyObject *closed;
    double next_sweep;
    int deep; /* run()'s deep: a payload the deep parsers want is counted here (NW_HAND_DEEP) */
    PyObject *start; /* run()'s new_flows (borrowed), or NULL: a new flow is handed back */
} nw_fastloop;

/* A subclass of base that adds no storage, and whose attributes named like base's
 * members and getsets are base's own (so writes reach the C fields). */
static int plain_subclass(PyTypeObject *type, PyTypeObject *base)
{
    if (!PyType_IsSubtype(type, base) || type->tp_basicsize != base->tp_basicsize
        || type->tp_dictoffset != 0 || type->tp_weaklistoffset != 0
        || type->tp_setattro != PyObject_GenericSetAttr
        || type->tp_getattro != PyObject_GenericGetAttr) {
        PyErr_Format(PyExc_TypeError, "FastLoop: %s is not a plain subclass of %s",
                     type->tp_name, base->tp_name);
        return -1;
    }
    for (PyMemberDef *m = base->tp_members; m->name != NULL; m++) {
        PyObject *mine = PyDict_GetItemString(base->tp_dict, m->name);
        if (mine == NULL || _PyType_Lookup(type, PyDescr_NAME(mine)) != mine)
            goto shadowed;
    }
    for (PyGetSetDef *g = base->tp_getset; g->name != NULL; g++) {
        PyObject *mine = PyDict_GetItemString(base->tp_dict, g->name);
        if (mine == NULL || _PyType_Lookup(type, PyDescr_NAME(mine)) != mine)
            goto shadowed;
    }
    return 0;
shadowed:
    PyErr_Format(PyExc_TypeError, "FastLoop: %s redefines an attribute of %s", type->tp_name,
                 base->tp_name);
    return -1;
}

static int fastloop_init(nw_fastloop *self, PyObject *args, PyObject *kwds)
{
    PyTypeObject *flow, *end;
    static char *kwlist[] = {"flow_type", "endpoint_type", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!:FastLoop", kwlist, &PyType_Type, &flow,
                                     &PyType_Type, &end))
        return -1;
    if (plain_subclass(flow, &FlowBaseType) < 0 || plain_subclass(end, &EndpointBaseType) < 0)
        return -1;
    if (self->keys == NULL) {
        self->keys = PyMem_Calloc(NW_KEY_CACHE, sizeof(nw_key_entry));
        if (self->keys == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    Py_INCREF(flow);
    Py_XSETREF(self->flow_type, flow);
    Py_INCREF(end);
    Py_XSETREF(self->end_type, end);
    return 0;
}

/* Forget every cached flow (the keys stay: they are valid for any table). */
static void drop_flows(nw_fastloop *self)
{
    for (size_t i = 0; i < NW_KEY_CACHE; i++)
        Py_CLEAR(self->keys[i].flow);
    Py_CLEAR(self->flows);
}

static void fastloop_dealloc(nw_fastloop *self)
{
    if (self->keys != NULL) {
        drop_flows(self);
        for (size_t i = 0; i < NW_KEY_CACHE; i++)
            Py_XDECREF(self->keys[i].key);
        PyMem_Free(self->keys);
    }
    Py_XDECREF(self->flows);
    Py_XDECREF(self->flow_type);
    Py_XDECREF(self->end_type);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *int_zero; /* PyLong_FromLong(0), held from the module's exec */

/* An exact int within +-NW_SAFE (false: anything else, nothing raised). Called about four
 * times per packet: the shared int 0 CPython hands out (most of what is read per packet:
 * keep, deep budgets, state) is known by identity; before CPython 3.12, an int of at most
 * two digits (|x| < 2**60, within NW_SAFE whatever the digit size) is read from its digits
 * here, where the sign is Py_SIZE's (that layout, cpython/longintrepr.h, changed in 3.12:
 * there and for bigger ints, the public conversion with its overflow flag). */
NW_HOT int small_int(PyObject *v, long long *out)
{
    if (v == int_zero && v != NULL) { /* most of the ints read per packet (keep, deep, state) */
        *out = 0;
        return 1;
    }
    if (v == NULL || !PyLong_CheckExact(v))
        return 0;
#if PY_VERSION_HEX < 0x030C0000
    Py_ssize_t size = Py_SIZE(v);
    if (-2 <= size && size <= 2) {
        const digit *d = ((PyLongObject *)v)->ob_digit;
        long long x = size == 0 ? 0 : (long long)d[0];
        if (size == 2 || size == -2)
            x |= (long long)d[1] << PyLong_SHIFT;
        *out = size < 0 ? -x : x;
        return 1;
    }
#endif
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || x < -NW_SAFE || x > NW_SAFE)
        return 0;
    *out = x;
    return 1;
}

/* Cell i of vals/tags holds an int within +-NW_SAFE. */
static inline int safe_cell(const nw_val *vals, const uint8_t *tags, int i)
{
    return tags[i] == NW_INT && vals[i].i >= -NW_SAFE && vals[i].i <= NW_SAFE;
}

/* The cells' check, once per NW_FRESH packets of an object instead of per packet: when an
 * object's `fresh` is 0, every cell the fast branch reads of it is checked (a Flow: `last` a
 * float, the six counters safe_cell; an Endpoint: its three cells safe_cell); if they pass,
 * the next NW_FRESH packets that find the object (this one included) skip the per-cell checks.
 * What keeps that the per-packet check's guarantee: Python writes a cell only through
 * cell_set or the constructors, and each sets `fresh` to 0 (so a value from Python is always
 * checked before the loop uses it; tp_clear too); the loop writes only ints of the same tags,
 * each at most 2**33 above a value checked within NW_SAFE (the counters add at most 2**32 per
 * packet; the TCP branches store values from checked cells and ints plus a payload length),
 * so after NW_FRESH = 2**20 packets a cell is still within 2**61 + 2**53, far from int64's
 * overflow, and then checked again. An object whose cells fail the check gets the per-cell
 * checks on every packet, as before (fresh stays 0). */
#define NW_FRESH (1u << 20)

static int flow_cells_safe(const nw_flow *f)
{
    if (f->tag[FC_LAST] != NW_FLOAT)
        return 0;
    for (int i = FC_O_PKTS; i < FC_COUNT; i++)
        if (!safe_cell(f->val, f->tag, i))
            return 0;
    return 1;
}

static int end_cells_safe(const nw_endpoint *e)
{
    for (int i = 0; i < EC_COUNT; i++)
        if (!safe_cell(e->val, e->tag, i))
            return 0;
    return 1;
}

/* True: the flow's cells are checked for this packet (see NW_FRESH); false: check each. */
static inline int flow_fresh(nw_flow *f)
{
    if (f->fresh == 0) {
        if (!flow_cells_safe(f))
            return 0;
        f->fresh = NW_FRESH;
    }
    f->fresh--;
    return 1;
}

static inline int end_fresh(nw_endpoint *e)
{
    if (e->fresh == 0) {
        if (!end_cells_safe(e))
            return 0;
        e->fresh = NW_FRESH;
    }
    e->fresh--;
    return 1;
}

/* memcmp's sign for two addresses of n (4 or 16) bytes, from big-endian words (in line:
 * once per packet, where a library call cost more than the comparison). */
NW_HOT int addr_order(const uint8_t *a, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i += 4) {
        uint32_t x = be32(a + i), y = be32(b + i);
        if (x != y)
            return x < y ? -1 : 1;
    }
    return 0;
}

/* The flow key of a common-shape record as netwatch.flow.table builds it, (src, dst,
 * sport, dport, proto) with the lower address (then port) first, in raw form; *fwd: the
 * packet's direction is the key's. */
static void raw_key(const nw_record *r, uint8_t raw[NW_RAW_KEY], int *fwd)
{
    size_t n = r->kind == NW_IPV4 ? 4 : 16;
    /* a constant size each way: IPv4's order is one comparison of two words */
    int c = n == 4 ? addr_order(r->src, r->dst, 4) : addr_order(r->src, r->dst, 16);
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
    if (n == 4) { /* constant sizes: copied in line, not through a library call */
        memcpy(raw + 6, a, 4);
        memcpy(raw + 22, b, 4);
    } else {
        memcpy(raw + 6, a, 16);
        memcpy(raw + 22, b, 16);
    }
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

/* The cache entry of a raw key: multiply-shift hashing, its five 8-byte words each times its
 * own odd constant, the products xored, the top bits taken (each depends on every bit of
 * every word; the five multiplies are independent: no chain through the words). */
NW_HOT size_t key_slot(const uint8_t raw[NW_RAW_KEY])
{
    static const uint64_t mult[NW_RAW_KEY / 8] = {
        0x9E3779B97F4A7C15ull, 0xC2B2AE3D27D4EB4Full, 0x165667B19E3779F9ull,
        0xD6E8FEB86659FD93ull, 0xFF51AFD7ED558CCDull,
    };
    uint64_t h = 0;
    for (size_t i = 0; i < NW_RAW_KEY / 8; i++) {
        uint64_t w;
        memcpy(&w, raw + 8 * i, 8);
        h ^= w * mult[i];
    }
    return (size_t)(h >> (64 - NW_KEY_BITS));
}

/* Two raw keys are equal: their five 8-byte words compared in line (a memcmp call per
 * packet cost more than the comparison). */
static inline int raw_equal(const uint8_t a[NW_RAW_KEY], const uint8_t b[NW_RAW_KEY])
{
    uint64_t diff = 0;
    for (size_t i = 0; i < NW_RAW_KEY; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        diff |= x ^ y;
    }
    return diff == 0;
}

/* Remember the key of a flow found in the table: the table's own key object when it is an
 * exact tuple equal to ours (the dict then matches it by identity), else ours. */
static int cache_key(nw_key_entry *entry, const uint8_t raw[NW_RAW_KEY], PyObject *key,
                     nw_flow *f)
{
    PyObject *own = f->obj[FO_KEY];
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

/* The flow is in the table: its state (an exact int) is not 2 (ended). */
NW_HOT int live(const nw_flow *f)
{
    long long state;
    return small_int(f->obj[FO_STATE], &state) && state != 2;
}

/* NW_HAND_COND, counted by its sub-reason. */
static inline int cond(nw_fastloop *self, enum nw_cond why)
{
    self->conds[why]++;
    return NW_HAND_COND;
}

/* tcpstate's endpoint states (netwatch.flow.tcpstate.TcpState) */
#define NW_TCP_INACTIVE 0
#define NW_TCP_SYN_SENT 1
#define NW_TCP_SYN_ACK_SENT 2
#define NW_TCP_PARTIAL 3
#define NW_TCP_ESTABLISHED 4
#define NW_TCP_CLOSED 5
#define NW_TCP_RESET 6
#define NW_HALF 0x80000000LL
/* What close_flow does after a segment (fast_packet's closes) */
#define NW_CLOSE_PUSH 1 /* the removal scheduled through run()'s closed */
#define NW_CLOSE_STOP 2 /* both ends closed or reset: Flow.stop set unless set before */

/* The 32-bit position tcpstate's tcp_packet gives Endpoint.nxt: d when the endpoint has
 * delivered all it sent (d == seqmax >= 0) and its state needs no bookkeeping, else -1. */
static inline long long nxt_of(long long d, long long seqmax, long long state)
{
    return d == seqmax && seqmax >= 0 && NW_TCP_PARTIAL <= state && state <= NW_TCP_CLOSED
               ? d & NW_MASK32
               : -1;
}

/* The values every TCP branch below (first_ack, first_data, first_fin, reset, syn_ack) reads
 * first, checked as the Python loop gives them: two distinct endpoints, the flow's history an
 * exact list, the sender's letters an exact str of at least letters_min characters, both
 * endpoints' states and the sender's base small ints, the peer's nxt and seqmax cells safe.
 * 1 when all hold (*es, *ps and *base set), else 0: the caller hands the packet back. */
static int tcp_values(const nw_flow *f, nw_endpoint *e, nw_endpoint *p, Py_ssize_t letters_min,
                      long long *es, long long *ps, long long *base)
{
    PyObject *hist = f->obj[FO_HIST], *letters = e->obj[EO_LETTERS];
    return e != p && hist != NULL && PyList_CheckExact(hist) && letters != NULL
           && PyUnicode_CheckExact(letters) && PyUnicode_GET_LENGTH(letters) >= letters_min
           && small_int(e->obj[EO_STATE], es) && small_int(p->obj[EO_STATE], ps)
           && safe_cell(p->val, p->tag, EC_NXT) && safe_cell(p->val, p->tag, EC_SEQMAX)
           && small_int(e->obj[EO_BASE], base);
}

/* The TCP branches below make every new object they need before they change anything, and
 * change first the one thing that can fail (Flow.hist), so that a failed allocation changes
 * nothing: made[0..n) holds the new objects, NULL where one is not needed (NW_LEN(made)). */
#define NW_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* All needed objects made: needed of made[0..n) are not NULL (else an allocation failed). */
static int all_made(PyObject *const *made, size_t n, size_t needed)
{
    size_t have = 0;
    for (size_t k = 0; k < n; k++)
        have += made[k] != NULL;
    return have == needed;
}

/* Releases made[0..n) (an allocation or Flow.hist's change failed): -1, for the branch to
 * return. */
static int release_made(PyObject **made, size_t n)
{
    for (size_t k = 0; k < n; k++)
        Py_CLEAR(made[k]);
    return -1;
}

/* The letters of the list add appended to Flow.hist, all or none: 0, or -1 (an exception
 * set, hist unchanged). */
static int append_all(PyObject *hist, PyObject *add)
{
    Py_ssize_t end = PyList_GET_SIZE(hist);
    return PyList_SetSlice(hist, end, end, add);
}

/* A FIN's or a RST's control letter (first_fin: letters[4], last_ctl[1]; reset: letters[5],
 * last_ctl[2]) as tcpstate's _control adds it: once per direction (first: its history bit
 * not set yet), then again when the last one of its kind had another sequence number (prev:
 * last_ctl[slot], -1 for none); last_ctl, made [-1, -1, -1] when the endpoint had None, then
 * holds seq in that slot. */
typedef struct {
    PyObject *add;  /* the letters for Flow.hist: a list of 0, 1 or 2 */
    PyObject *seq;  /* seq, for last_ctl[slot] */
    PyObject *last; /* the endpoint's new last_ctl when it had None, else NULL */
} nw_ctl;

/* last_ctl as first_fin and reset read it: None (*prev left as it is, -1), or an exact list
 * of three whose item slot is a small int (*prev). 0 for anything else. */
static int ctl_prev(PyObject *last, Py_ssize_t slot, long long *prev)
{
    return last != NULL
           && (last == Py_None
               || (PyList_CheckExact(last) && PyList_GET_SIZE(last) == 3
                   && small_int(PyList_GET_ITEM(last, slot), prev)));
}

/* The new objects of a control letter into c->add, c->seq and c->last (the first objects of
 * the branch's made[], in that order); the count of them it needs (a NULL last is not). */
static size_t ctl_new(nw_ctl *c, PyObject *letters, Py_ssize_t at, int first, long long prev,
                      long long seq, PyObject *last)
{
    Py_ssize_t count = first + (prev != -1 && prev != seq);
    PyObject *letter = PySequence_GetItem(letters, at);
    c->add = letter != NULL ? PyList_New(count) : NULL;
    for (Py_ssize_t k = 0; c->add != NULL && k < count; k++) {
        Py_INCREF(letter);
        PyList_SET_ITEM(c->add, k, letter);
    }
    Py_XDECREF(letter);
    c->seq = PyLong_FromLongLong(seq);
    c->last = last == Py_None ? Py_BuildValue("[iii]", -1, -1, -1) : NULL;
    return 2 + (last == Py_None);
}

/* After the letters were appended: the endpoint's last_ctl (c->last when made) holds seq in
 * slot; takes c's references. */
static void ctl_commit(nw_ctl *c, nw_endpoint *e, PyObject *last, Py_ssize_t slot)
{
    Py_DECREF(c->add);
    if (c->last != NULL) {
        Py_XSETREF(e->obj[EO_LAST_CTL], c->last);
        last = c->last;
    }
    PyList_SetItem(last, slot, c->seq); /* steals seq; an exact list of 3: cannot fail */
}

/* What first_ack and first_data both write once they have decided to apply a packet: the
 * sender's letter (letters[index], 'A'/'a' or 'D'/'d') appended to Flow.hist, its history
 * bits (new_bits), its delivered data (e_deliv) and, when the peer's nxt >= 0, the peer's
 * (p_deliv). The new objects first: 0 when applied, -1 on an error raised (nothing
 * changed). */
static int first_letter(nw_flow *f, nw_endpoint *e, nw_endpoint *p, Py_ssize_t index,
                        long long new_bits_value, long long e_deliv, long long p_deliv)
{
    int pd_new = p->val[EC_NXT].i >= 0;
    PyObject *letter = PySequence_GetItem(e->obj[EO_LETTERS], index);
    PyObject *new_bits = PyLong_FromLongLong(new_bits_value);
    PyObject *new_ed = PyLong_FromLongLong(e_deliv);
    PyObject *new_pd = pd_new ? PyLong_FromLongLong(p_deliv) : NULL;
    PyObject *made[] = {letter, new_bits, new_ed, new_pd};
    if (!all_made(made, NW_LEN(made), 3 + pd_new) || PyList_Append(f->obj[FO_HIST], letter) < 0)
        return release_made(made, NW_LEN(made));
    Py_DECREF(letter);
    Py_XSETREF(e->obj[EO_BITS], new_bits);
    Py_XSETREF(e->obj[EO_DELIV], new_ed);
    if (new_pd != NULL)
        Py_XSETREF(p->obj[EO_DELIV], new_pd);
    return 0;
}

/* A bare ACK that passed every fast-branch test but the history bit: the direction's first
 * one ('A'/'a'), e.g. the third packet of a handshake. Applies what FlowTable.packet and
 * tcpstate.tcp_packet do with it (no SYN, FIN or RST, no payload, a non-zero window, seq
 * == e.nxt): e.deliv = e.seqmax and, when peer.nxt >= 0, peer.deliv = peer.seqmax; the
 * letter appended to Flow.hist and its bit set; seqmax moved to an empty segment beyond
 * it; the peer's dack; both endpoints' nxt and the sender's dack recomputed. It hands the
 * packet back (NW_HAND_COND / NW_HAND_VALUE, nothing changed) whenever Python would do
 * more: a flip after a lone SYN-ACK, an inactive sender (_wake), an acknowledgement that
 * advances the peer's delivered data (_ack_received), or any value of another type or
 * range. Returns 0 when applied, -1 on an error raised (nothing changed). */
static int first_ack(nw_fastloop *self, nw_flow *f, nw_endpoint *e, nw_endpoint *p, int is_orig,
                     long long bits, long long seq, long long ack)
{
    nw_val *ev = e->val, *pv = p->val;
    long long es, ps, pdeliv, base;
    if (!tcp_values(f, e, p, 3, &es, &ps, &base))
        return NW_HAND_VALUE;
    if (base < 0) /* tcp_packet's _control */
        return cond(self, NW_COND_FIRST_A);
    long long os = is_orig ? es : ps, rs = is_orig ? ps : es;
    if (os == NW_TCP_SYN_ACK_SENT && rs == 0) /* after a lone SYN-ACK: Zeek flips */
        return cond(self, NW_COND_FIRST_A);
    if (es == NW_TCP_INACTIVE) /* the sender's first segment: _wake */
        return cond(self, NW_COND_FIRST_A);
    /* tcp_packet: e.nxt >= 0 here (it equals seq), so e.deliv = e.seqmax */
    long long ed = ev[EC_SEQMAX].i, eseq = ed;
    if (pv[EC_NXT].i >= 0)
        pdeliv = pv[EC_SEQMAX].i;
    else if (!small_int(p->obj[EO_DELIV], &pdeliv))
        return NW_HAND_VALUE;
    long long rel = (seq - eseq) & NW_MASK32;
    if (0 < rel && rel < NW_HALF) /* an empty segment beyond what was seen */
        eseq += rel;
    if (pdeliv >= 0) {
        long long adv = (ack - pdeliv) & NW_MASK32;
        if (0 < adv && adv < NW_HALF) /* _ack_received: Python's */
            return cond(self, NW_COND_FIRST_A);
    }
    if (first_letter(f, e, p, 2, bits | NW_BIT_A, ed, pdeliv) < 0)
        return -1;
    ev[EC_SEQMAX].i = eseq;
    if (pdeliv >= 0)
        pv[EC_DACK].i = pdeliv & NW_MASK32;
    ev[EC_DACK].i = ed >= 0 ? ed & NW_MASK32 : -1;
    ev[EC_NXT].i = nxt_of(ed, eseq, es);
    pv[EC_NXT].i = nxt_of(pdeliv, pv[EC_SEQMAX].i, ps);
    self->first_acks++;
    return 0;
}

/* A payload that passed every fast-branch test but the history bit: the direction's first
 * ('D'/'d'), e.g. a TLS ClientHello or ServerHello (no SYN, FIN or RST, a non-zero window,
 * seq == e.nxt, captured in full, the acknowledgement not beyond the peer's delivered
 * data). Applies what FlowTable.packet and tcpstate.tcp_packet do with it: e.deliv =
 * e.seqmax and, when peer.nxt >= 0, peer.deliv = peer.seqmax (the prologue); the letter
 * appended to Flow.hist and its bit set; the in-order payload delivered (e.deliv and
 * e.seqmax both moved by its length); with the ACK flag, the peer's dack; both endpoints'
 * nxt and the sender's dack recomputed. Like first_ack it hands the packet back (nothing
 * changed) whenever Python would do more: the endpoint's first segment (base < 0), a flip
 * after a lone SYN-ACK, an inactive sender (_wake), an acknowledgement that advances the
 * peer's delivered data (_ack_received), a sequence number not at seqmax, or a value of
 * another type or range. Returns 0 when applied, -1 on an error raised (nothing
 * changed). */
static int first_data(nw_fastloop *self, nw_flow *f, nw_endpoint *e, nw_endpoint *p,
                      int is_orig, long long bits, long long seq, long long ack, int has_ack,
                      long long plen)
{
    nw_val *ev = e->val, *pv = p->val;
    long long es, ps, pdeliv, base;
    if (!tcp_values(f, e, p, 4, &es, &ps, &base))
        return NW_HAND_VALUE;
    if (base < 0) /* tcp_packet's _control */
        return cond(self, NW_COND_FIRST_D);
    long long os = is_orig ? es : ps, rs = is_orig ? ps : es;
    if (os == NW_TCP_SYN_ACK_SENT && rs == 0) /* after a lone SYN-ACK: Zeek flips */
        return cond(self, NW_COND_FIRST_D);
    if (es == NW_TCP_INACTIVE) /* the sender's first segment: _wake */
        return cond(self, NW_COND_FIRST_D);
    /* tcp_packet: e.nxt >= 0 here (it equals seq), so e.deliv = e.seqmax */
    long long ed = ev[EC_SEQMAX].i;
    if (((seq - ed) & NW_MASK32) != 0) /* not at seqmax: _out_of_order is Python's */
        return cond(self, NW_COND_FIRST_D);
    if (pv[EC_NXT].i >= 0)
        pdeliv = pv[EC_SEQMAX].i;
    else if (!small_int(p->obj[EO_DELIV], &pdeliv))
        return NW_HAND_VALUE;
    if (has_ack && pdeliv >= 0) {
        long long adv = (ack - pdeliv) & NW_MASK32;
        if (0 < adv && adv < NW_HALF) /* _ack_received: Python's */
            return cond(self, NW_COND_FIRST_D);
    }
    long long end = ed + plen; /* the payload delivered in order: deliv == seqmax == end */
    if (first_letter(f, e, p, 3, bits | NW_BIT_D, end, pdeliv) < 0)
        return -1;
    ev[EC_SEQMAX].i = end;
    if (has_ack && pdeliv >= 0)
        pv[EC_DACK].i = pdeliv & NW_MASK32;
    ev[EC_DACK].i = end & NW_MASK32;
    ev[EC_NXT].i = nxt_of(end, end, es);
    pv[EC_NXT].i = nxt_of(pdeliv, pv[EC_SEQMAX].i, ps);
    self->first_datas++;
    return 0;
}

/* An endpoint's first FIN, alone (no SYN or RST, no payload), in order, with a non-zero
 * window, while the sender is partial or established and its peer partial, established
 * or closed: applies what tcpstate's tcp_packet/_control do with it: deliv as in
 * first_ack, the letter F (once per direction, and again through last_ctl when the
 * sequence number changed), the sender's state CLOSED (prev kept), seqmax moved to the
 * segment, the FIN's position (fin) with its octet in sequence space and delivered, the
 * acknowledgement of the peer's data, dack and nxt recomputed. While the peer is partial
 * or established no timer is due (FlowTable._closing schedules nothing: the connection is
 * not closed, and the sender's state before was not inactive). A peer already closed
 * (its FIN came first) makes this the FIN that completes the close: taken only when run()
 * was given the table's push (self->closed), the flow is open (state 0) and its stop an
 * exact float; *closes is then set (NW_CLOSE_PUSH | NW_CLOSE_STOP) and fast_packet
 * finishes _closing's part after the packet is counted (close_flow). Hands the packet back (nothing changed) in every other
 * case. 0 when applied, -1 on an error. */
static int first_fin(nw_fastloop *self, nw_endpoint *e, nw_endpoint *p, nw_flow *f,
                     long long bits, long long seq, long long ack, int acks, int *closes)
{
    nw_val *ev = e->val, *pv = p->val;
    PyObject *hist = f->obj[FO_HIST], *letters = e->obj[EO_LETTERS], *last = e->obj[EO_LAST_CTL];
    long long es, ps, pdeliv, base, fin, prev_fin = -1;
    if (!tcp_values(f, e, p, 5, &es, &ps, &base) || !small_int(e->obj[EO_FIN], &fin)
        || !ctl_prev(last, 1, &prev_fin))
        return NW_HAND_VALUE;
    if (base < 0 || fin >= 0 || es < NW_TCP_PARTIAL || es > NW_TCP_ESTABLISHED
        || ps < NW_TCP_PARTIAL || ps > NW_TCP_CLOSED)
        return cond(self, NW_COND_FIN);
    int closing = ps == NW_TCP_CLOSED;
    if (closing) { /* _closing will schedule the flow's removal */
        long long fstate;
        if (self->closed == NULL)
            return cond(self, NW_COND_FIN);
        if (!small_int(f->obj[FO_STATE], &fstate) || f->obj[FO_STOP] == NULL
            || !PyFloat_CheckExact(f->obj[FO_STOP]))
            return NW_HAND_VALUE;
        if (fstate != 0)
            return cond(self, NW_COND_FIN);
    }
    long long ed = ev[EC_SEQMAX].i, eseq = ed; /* e.nxt >= 0: e.deliv = e.seqmax */
    if (pv[EC_NXT].i >= 0)
        pdeliv = pv[EC_SEQMAX].i;
    else if (!small_int(p->obj[EO_DELIV], &pdeliv))
        return NW_HAND_VALUE;
    long long rel = (seq - eseq) & NW_MASK32;
    if (0 < rel && rel < NW_HALF) /* a FIN beyond data not seen */
        eseq += rel;
    rel = (seq - eseq) & NW_MASK32; /* the FIN octet's position, unwrapped near seqmax */
    fin = rel < NW_HALF ? eseq + rel : eseq + rel - (NW_MASK32 + 1);
    if (fin >= eseq)
        eseq = fin + 1;
    if (ed == fin && fin >= 0) /* _fin_reached */
        ed += 1;
    if (acks && pdeliv >= 0) {
        long long adv = (ack - pdeliv) & NW_MASK32;
        if (0 < adv && adv < NW_HALF) /* _ack_received: Python's */
            return cond(self, NW_COND_FIN);
    }
    /* the letters: F once per direction, then again if the last F had another seq */
    nw_ctl ctl;
    size_t needed = ctl_new(&ctl, letters, 4, (bits & NW_BIT_F) == 0, prev_fin, seq, last);
    int pd_new = pv[EC_NXT].i >= 0;
    PyObject *new_bits = PyLong_FromLongLong(bits | NW_BIT_F);
    PyObject *new_ed = PyLong_FromLongLong(ed), *new_fin = PyLong_FromLongLong(fin);
    PyObject *new_prev = PyLong_FromLongLong(es), *new_state = PyLong_FromLong(NW_TCP_CLOSED);
    PyObject *new_pd = pd_new ? PyLong_FromLongLong(pdeliv) : NULL;
    PyObject *made[] = {ctl.add, ctl.seq, ctl.last, new_bits, new_ed, new_fin, new_prev,
                        new_state, new_pd};
    if (!all_made(made, NW_LEN(made), needed + 5 + pd_new) || append_all(hist, ctl.add) < 0)
        return release_made(made, NW_LEN(made));
    ctl_commit(&ctl, e, last, 1);
    Py_XSETREF(e->obj[EO_BITS], new_bits);
    Py_XSETREF(e->obj[EO_DELIV], new_ed);
    Py_XSETREF(e->obj[EO_FIN], new_fin);
    Py_XSETREF(e->obj[EO_PREV], new_prev);
    Py_XSETREF(e->obj[EO_STATE], new_state);
    if (new_pd != NULL)
        Py_XSETREF(p->obj[EO_DELIV], new_pd);
    ev[EC_SEQMAX].i = eseq;
    if (acks && pdeliv >= 0)
        pv[EC_DACK].i = pdeliv & NW_MASK32;
    ev[EC_DACK].i = ed >= 0 ? ed & NW_MASK32 : -1;
    ev[EC_NXT].i = nxt_of(ed, eseq, NW_TCP_CLOSED);
    pv[EC_NXT].i = nxt_of(pdeliv, pv[EC_SEQMAX].i, ps);
    self->first_fins++;
    if (closing) {
        self->closes++;
        *closes = NW_CLOSE_PUSH | NW_CLOSE_STOP;
    }
    return 0;
}

/* FlowTable._closing after a segment that closed the connection (first_fin with the peer
 * closed, or reset; the packet counted and Flow.last set; closes: NW_CLOSE_* bits): when
 * both ends are closed or reset (NW_CLOSE_STOP) the clock stops at Flow.last unless it
 * stopped before (stop < 0), and the removal is scheduled through the table's push
 * (FlowTable.closed_at(flow, ts): Flow.state 1, the closed heap with the table's
 * tiebreak counter, the next sweep), which returns the next sweep (a float; else every
 * later packet is handed back). 0, or -1 on an error raised: the run stops there (the
 * exception reaches the caller; the endpoints were already updated). */
static int close_flow(nw_fastloop *self, nw_flow *f, double ts, int closes)
{
    if ((closes & NW_CLOSE_STOP) && PyFloat_AS_DOUBLE(f->obj[FO_STOP]) < 0) { /* exact float */
        PyObject *stop = PyFloat_FromDouble(f->val[FC_LAST].d);
        if (stop == NULL)
            return -1;
        Py_XSETREF(f->obj[FO_STOP], stop);
    }
    PyObject *t = PyFloat_FromDouble(ts);
    if (t == NULL)
        return -1;
    PyObject *args[2] = {(PyObject *)f, t};
    PyObject *next = PyObject_Vectorcall(self->closed, args, 2, NULL);
    Py_DECREF(t);
    if (next == NULL)
        return -1;
    self->next_sweep = PyFloat_CheckExact(next) ? PyFloat_AS_DOUBLE(next) : -Py_HUGE_VAL;
    Py_DECREF(next);
    return 0;
}

/* A RST alone (no SYN or FIN; any ACK, window and sequence number) without payload from an
 * endpoint partial or established whose peer is partial, established or closed, in an
 * open flow (state 0, stop an exact float) while run() was given the table's push: applies
 * what tcp_packet/_control do with it: deliv as in first_ack (both ends), the letter R
 * (once per direction, and again through last_ctl[2] when the sequence number changed),
 * the sender's state RESET (prev kept), nothing in sequence space (a RST's seq and
 * payload are not data), the acknowledgement of the peer's data when the ACK flag is set
 * (one that advances it is Python's: _ack_received), dack and nxt recomputed; then
 * *closes for FlowTable._closing (is_closed: a reset connection is closed; the clock
 * stops when the peer had closed too). Hands the packet back (nothing changed) in every
 * other case. 0 when applied, -1 on an error (nothing changed). */
static int reset(nw_fastloop *self, nw_flow *f, nw_endpoint *e, nw_endpoint *p, long long bits,
                 long long seq, long long ack, int acks, int *closes)
{
    nw_val *ev = e->val, *pv = p->val;
    PyObject *hist = f->obj[FO_HIST], *letters = e->obj[EO_LETTERS], *last = e->obj[EO_LAST_CTL];
    long long es, ps, edeliv, pdeliv, base, fstate, prev_rst = -1;
    if (!tcp_values(f, e, p, 6, &es, &ps, &base) || !small_int(f->obj[FO_STATE], &fstate)
        || f->obj[FO_STOP] == NULL || !PyFloat_CheckExact(f->obj[FO_STOP])
        || !ctl_prev(last, 2, &prev_rst))
        return NW_HAND_VALUE;
    if (self->closed == NULL || fstate != 0 || base < 0 || es < NW_TCP_PARTIAL
        || es > NW_TCP_ESTABLISHED || ps < NW_TCP_PARTIAL || ps > NW_TCP_CLOSED)
        return cond(self, NW_COND_RST);
    if (ev[EC_NXT].i >= 0) /* tcp_packet's prologue, both ends */
        edeliv = ev[EC_SEQMAX].i;
    else if (!small_int(e->obj[EO_DELIV], &edeliv))
        return NW_HAND_VALUE;
    if (pv[EC_NXT].i >= 0)
        pdeliv = pv[EC_SEQMAX].i;
    else if (!small_int(p->obj[EO_DELIV], &pdeliv))
        return NW_HAND_VALUE;
    if (acks && pdeliv >= 0) {
        long long adv = (ack - pdeliv) & NW_MASK32;
        if (0 < adv && adv < NW_HALF) /* _ack_received: Python's */
            return cond(self, NW_COND_RST);
    }
    /* the letters: R once per direction, then again if the last R had another seq */
    nw_ctl ctl;
    size_t needed = ctl_new(&ctl, letters, 5, (bits & NW_BIT_R) == 0, prev_rst, seq, last);
    int ed_new = ev[EC_NXT].i >= 0, pd_new = pv[EC_NXT].i >= 0;
    PyObject *new_bits = PyLong_FromLongLong(bits | NW_BIT_R);
    PyObject *new_prev = PyLong_FromLongLong(es), *new_state = PyLong_FromLong(NW_TCP_RESET);
    PyObject *new_ed = ed_new ? PyLong_FromLongLong(edeliv) : NULL;
    PyObject *new_pd = pd_new ? PyLong_FromLongLong(pdeliv) : NULL;
    PyObject *made[] = {ctl.add, ctl.seq, ctl.last, new_bits, new_prev, new_state, new_ed, new_pd};
    if (!all_made(made, NW_LEN(made), needed + 3 + ed_new + pd_new)
        || append_all(hist, ctl.add) < 0)
        return release_made(made, NW_LEN(made));
    ctl_commit(&ctl, e, last, 2);
    Py_XSETREF(e->obj[EO_BITS], new_bits);
    Py_XSETREF(e->obj[EO_PREV], new_prev);
    Py_XSETREF(e->obj[EO_STATE], new_state);
    if (new_ed != NULL)
        Py_XSETREF(e->obj[EO_DELIV], new_ed);
    if (new_pd != NULL)
        Py_XSETREF(p->obj[EO_DELIV], new_pd);
    if (acks && pdeliv >= 0)
        pv[EC_DACK].i = pdeliv & NW_MASK32;
    ev[EC_DACK].i = edeliv >= 0 ? edeliv & NW_MASK32 : -1;
    ev[EC_NXT].i = -1; /* RESET: tcpstate's bookkeeping */
    pv[EC_NXT].i = nxt_of(pdeliv, pv[EC_SEQMAX].i, ps);
    self->resets++;
    *closes = NW_CLOSE_PUSH | (ps == NW_TCP_CLOSED ? NW_CLOSE_STOP : 0);
    return 0;
}

/* A SYN-ACK (SYN and ACK, no FIN or RST, no payload, a non-zero window) from the
 * responder of a flow whose originator sent a SYN (state SYN_SENT; so FlowTable.packet
 * finds no reuse (is_reuse: a SYN-ACK with the originator active) and no reversal (not a
 * pure SYN), and _closing is not called), the responder not heard before (inactive, base
 * -1, no last_ctl, letters not the originator's): applies what tcp_packet and _control do
 * with it: the letter h (once per direction; last_ctl made as [seq, -1, -1]), the
 * responder's base, seqmax and deliv at seq + 1, both ends established (Zeek takes both
 * as established: prev INACTIVE and SYN_SENT), the originator's dack (deliv as in
 * first_ack), both dack and nxt recomputed. An acknowledgement that advances the
 * originator's delivered data (_ack_received) is Python's. Hands the packet back (nothing
 * changed) in every other case. 0 when applied, -1 on an error (nothing changed). */
static int syn_ack(nw_fastloop *self, nw_flow *f, nw_endpoint *e, nw_endpoint *p, int is_orig,
                   long long bits, long long seq, long long ack)
{
    nw_val *ev = e->val, *pv = p->val;
    PyObject *hist = f->obj[FO_HIST], *letters = e->obj[EO_LETTERS];
    long long es, ps, pdeliv, base;
    if (!tcp_values(f, e, p, 2, &es, &ps, &base) || e->obj[EO_LAST_CTL] != Py_None)
        return NW_HAND_VALUE;
    if (is_orig || ps != NW_TCP_SYN_SENT || es != NW_TCP_INACTIVE || base >= 0
        || PyUnicode_READ_CHAR(letters, 0) == 'S')
        return cond(self, NW_COND_SYN);
    if (pv[EC_NXT].i >= 0) /* tcp_packet's prologue */
        pdeliv = pv[EC_SEQMAX].i;
    else if (!small_int(p->obj[EO_DELIV], &pdeliv))
        return NW_HAND_VALUE;
    if (pdeliv >= 0) {
        long long adv = (ack - pdeliv) & NW_MASK32;
        if (0 < adv && adv < NW_HALF) /* _ack_received: Python's */
            return cond(self, NW_COND_SYN);
    }
    long long first = seq + 1; /* _start: the SYN octet is before the data */
    int fresh = (bits & NW_BIT_H) == 0;
    PyObject *letter = fresh ? PySequence_GetItem(letters, 1) : NULL;
    PyObject *new_bits = PyLong_FromLongLong(bits | NW_BIT_H);
    PyObject *new_first = PyLong_FromLongLong(first);
    PyObject *new_last = Py_BuildValue("[Lii]", seq, -1, -1);
    PyObject *new_est = PyLong_FromLong(NW_TCP_ESTABLISHED);
    PyObject *new_inactive = PyLong_FromLong(NW_TCP_INACTIVE);
    PyObject *new_syn_sent = PyLong_FromLong(NW_TCP_SYN_SENT);
    int pd_new = pv[EC_NXT].i >= 0;
    PyObject *new_pd = pd_new ? PyLong_FromLongLong(pdeliv) : NULL;
    PyObject *made[] = {letter, new_bits, new_first, new_last, new_est, new_inactive,
                        new_syn_sent, new_pd};
    if (!all_made(made, NW_LEN(made), fresh + 6 + pd_new)
        || (fresh && PyList_Append(hist, letter) < 0))
        return release_made(made, NW_LEN(made));
    Py_XDECREF(letter);
    Py_XSETREF(e->obj[EO_BITS], new_bits);
    Py_XSETREF(e->obj[EO_LAST_CTL], new_last);
    Py_INCREF(new_first);
    Py_XSETREF(e->obj[EO_BASE], new_first);
    Py_XSETREF(e->obj[EO_DELIV], new_first);
    Py_XSETREF(e->obj[EO_PREV], new_inactive);
    Py_INCREF(new_est);
    Py_XSETREF(e->obj[EO_STATE], new_est);
    Py_XSETREF(p->obj[EO_PREV], new_syn_sent);
    Py_XSETREF(p->obj[EO_STATE], new_est);
    if (new_pd != NULL)
        Py_XSETREF(p->obj[EO_DELIV], new_pd);
    ev[EC_SEQMAX].i = first;
    if (pdeliv >= 0)
        pv[EC_DACK].i = pdeliv & NW_MASK32;
    ev[EC_DACK].i = first & NW_MASK32;
    ev[EC_NXT].i = nxt_of(first, first, NW_TCP_ESTABLISHED);
    pv[EC_NXT].i = nxt_of(pdeliv, pv[EC_SEQMAX].i, NW_TCP_ESTABLISHED);
    self->syn_acks++;
    return 0;
}


/* The fast branch for one common-shape packet of flow f: 0 when done (f updated),
 * NW_HAND_* when Python must take the packet (nothing changed), -1 on an error raised
 * (nothing changed). It allocates nothing but for a direction's first bare ACK
 * (first_ack: the new bits and deliv ints). */
static int fast_packet(nw_fastloop *self, nw_flow *f, int fwd, const nw_record *r, double ts)
{
    PyObject *odir = f->obj[FO_ODIR];
    if (odir != Py_True && odir != Py_False)
        return NW_HAND_VALUE;
    int is_orig = fwd == (odir == Py_True);
    long long keep, deep;
    int pkts = is_orig ? FC_O_PKTS : FC_R_PKTS, ipb = is_orig ? FC_O_IPB : FC_R_IPB;
    nw_val *fv = f->val;
    int fresh = flow_fresh(f); /* else the cells this packet reads checked one by one */
    if (!small_int(f->obj[FO_KEEP], &keep)
        || (!fresh && f->tag[FC_LAST] != NW_FLOAT)
        || !small_int(f->obj[is_orig ? FO_DEEP_O : FO_DEEP_R], &deep)
        || (!fresh && (!safe_cell(fv, f->tag, pkts) || !safe_cell(fv, f->tag, ipb))))
        return NW_HAND_VALUE;
    if (keep != 0)
        return NW_HAND_KEEP;
    long long plen = r->payload_len, seq = r->seq, ack = r->ack, flags = r->tcp_flags;
    int bytes = is_orig ? FC_O_BYTES : FC_R_BYTES;
    nw_val *ev = NULL; /* the sender's endpoint's cells (TCP) */
    int closes = 0;    /* NW_CLOSE_* (first_fin, reset): close_flow after the counting */
    int handed = 0;    /* NW_HAND_DEEP: counted here, the payload to Python's deep step */
    if (r->proto == 17) {
        if (!fresh && !safe_cell(fv, f->tag, bytes))
            return NW_HAND_VALUE;
        if (!(plen == 0 || deep == 0)) {
            if (!self->deep)
                return cond(self, NW_COND_UDP_DEEP);
            handed = NW_HAND_DEEP; /* counted below, then the deep parsers' step in Python */
        }
    } else {
        PyObject *tcp = f->obj[FO_TCP];
        if (tcp == Py_None)
            return NW_HAND_NO_TCP;
        if (tcp == NULL || !PyTuple_CheckExact(tcp) || PyTuple_GET_SIZE(tcp) != 2
            || !Py_IS_TYPE(PyTuple_GET_ITEM(tcp, 0), self->end_type)
            || !Py_IS_TYPE(PyTuple_GET_ITEM(tcp, 1), self->end_type))
            return NW_HAND_VALUE;
        nw_endpoint *e = (nw_endpoint *)PyTuple_GET_ITEM(tcp, is_orig ? 0 : 1);
        nw_endpoint *p = (nw_endpoint *)PyTuple_GET_ITEM(tcp, is_orig ? 1 : 0);
        long long bits;
        ev = e->val;
        int efresh = end_fresh(e), pfresh = end_fresh(p);
        if ((!efresh && !safe_cell(ev, e->tag, EC_NXT))
            || (!pfresh && !safe_cell(p->val, p->tag, EC_DACK))
            || (!efresh && (!safe_cell(ev, e->tag, EC_SEQMAX) || !safe_cell(ev, e->tag, EC_DACK)))
            || !small_int(e->obj[EO_BITS], &bits))
            return NW_HAND_VALUE;
        long long pd = p->val[EC_DACK].i;
        int ack_ok = ack == pd || (0 < pd - ack && pd - ack <= NW_HALF_1)
                     || ((ack - pd - 1) & NW_MASK32) >= NW_HALF_1 || pd < 0
                     || !(flags & NW_TCP_ACK);
        if ((flags & NW_TCP_FLAGS_SFR) == 0x01u && plen == 0 && r->win != 0
            && seq == ev[EC_NXT].i && ack_ok) {
            int rc = first_fin(self, e, p, f, bits, seq, ack, (flags & NW_TCP_ACK) != 0,
                               &closes);
            if (rc != 0)
                return rc;
            goto counted; /* no payload: nothing else for the sender's endpoint */
        }
        if ((flags & NW_TCP_FLAGS_SFR) == 0x04u && plen == 0) {
            int rc = reset(self, f, e, p, bits, seq, ack, (flags & NW_TCP_ACK) != 0, &closes);
            if (rc != 0)
                return rc;
            goto counted;
        }
        if ((flags & NW_TCP_FLAGS_SFR) == 0x02u && (flags & NW_TCP_ACK) && plen == 0
            && r->win != 0) {
            int rc = syn_ack(self, f, e, p, is_orig, bits, seq, ack);
            if (rc != 0)
                return rc;
            goto counted;
        }
        if (flags & NW_TCP_FLAGS_SFR)
            return cond(self, (flags & 0x02u)   ? NW_COND_SYN
                              : (flags & 0x01u) ? NW_COND_FIN
                                                : NW_COND_RST);
        if (r->win == 0)
            return cond(self, NW_COND_ZERO_WIN);
        if (seq != ev[EC_NXT].i)
            return cond(self, ev[EC_NXT].i < 0 ? NW_COND_NO_NXT : NW_COND_SEQ);
        if (!(plen == 0 || deep == 0)) {
            if (!self->deep)
                return cond(self, NW_COND_TCP_DEEP);
            handed = NW_HAND_DEEP; /* unless a later test fails: then COND as before */
        }
        if (!ack_ok)
            return cond(self, NW_COND_ACK);
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
        if (!fits)
            return cond(self, NW_COND_CUT);
        if ((bits & bit) != bit) {
            if (plen) {
                /* tcp_packet's whole (the payload inside the captured frame) */
                if ((uint64_t)r->caplen < (uint64_t)r->payload_off + (uint64_t)plen)
                    return cond(self, NW_COND_FIRST_D);
                int rc = first_data(self, f, e, p, is_orig, bits, seq, ack,
                                    (flags & NW_TCP_ACK) != 0, plen);
                if (rc != 0)
                    return rc;
                goto counted; /* the sender's endpoint done */
            }
            int rc = first_ack(self, f, e, p, is_orig, bits, seq, ack);
            if (rc != 0)
                return rc;
        }
    }
    /* every check passed: the writes (ints and a double, in place) */
    if (ev == NULL) {
        fv[bytes].i += plen;
    } else if (plen) {
        ev[EC_SEQMAX].i += plen; /* the payload bytes of TCP are counted in sequence space */
        ev[EC_NXT].i = ev[EC_DACK].i = (seq + plen) & NW_MASK32;
    }
counted:
    if (ts > fv[FC_LAST].d)
        fv[FC_LAST].d = ts;
    fv[pkts].i += 1;
    fv[ipb].i += (long long)r->ip_len;
    if (handed) { /* a payload never goes with a close (first_fin, reset: no payload) */
        self->deeps++;
        if (ev != NULL)
            self->deep_tcp++;
        return handed;
    }
    return closes ? close_flow(self, f, ts, closes) : 0;
}

/* The flow of a raw key: from the flow cache while it is live, else from the dict (through
 * the cached key tuple when there is one); a new reference, NULL with *rc set: NW_HAND_NEW
 * (not in the dict; *new_key then holds the key tuple looked up, a new reference),
 * NW_HAND_VALUE (not a flow_type) or -1 (an error raised). */
static nw_flow *find_flow(nw_fastloop *self, PyObject *flows, const uint8_t raw[NW_RAW_KEY],
                          int *rc, PyObject **new_key)
{
    nw_key_entry *entry = &self->keys[key_slot(raw)];
    int cached = entry->key != NULL && raw_equal(entry->raw, raw);
    if (cached && entry->flow != NULL) {
        nw_flow *f = (nw_flow *)entry->flow;
        if (Py_IS_TYPE(f, self->flow_type) && live(f)) {
            self->key_hits++;
            self->flow_hits++;
            Py_INCREF(f);
            return f;
        }
        Py_CLEAR(entry->flow);
    }
    PyObject *key = cached ? entry->key : key_tuple(raw);
    if (key == NULL) {
        *rc = -1;
        return NULL;
    }
    if (cached) {
        Py_INCREF(key);
        self->key_hits++;
    }
    PyObject *found = PyDict_GetItemWithError(flows, key);
    if (found == NULL) {
        *rc = PyErr_Occurred() ? -1 : NW_HAND_NEW;
        if (*rc == NW_HAND_NEW)
            *new_key = key;
        else
            Py_DECREF(key);
        return NULL;
    }
    if (!Py_IS_TYPE(found, self->flow_type)) { /* no field of it may be read */
        Py_DECREF(key);
        *rc = NW_HAND_VALUE;
        return NULL;
    }
    nw_flow *f = (nw_flow *)found;
    Py_INCREF(f);
    if (!cached) /* a new key for this entry: its flow was another key's */
        Py_CLEAR(entry->flow);
    if (!cached && cache_key(entry, raw, key, f) < 0) {
        Py_DECREF(key);
        Py_DECREF(f);
        *rc = -1;
        return NULL;
    }
    Py_DECREF(key);
    if (live(f)) {
        Py_INCREF(f);
        Py_XSETREF(entry->flow, (PyObject *)f);
    }
    return f;
}

/* ---- New flows made here (run()'s new_flows) ----------------------------------------
 *
 * A TCP originator's bare SYN or a UDP datagram of no flow in the table, before the next
 * sweep, becomes a new flow here exactly as netwatch.flow.table.FlowTable.first_packet makes
 * it: the same uid (the table's uid source, called), the same fields (what the one-call
 * Flow constructor and the first packet's counters give; for TCP the originator after its
 * SYN and a fresh responder, history "S"), Zeek's flip for UDP (a bare SYN is never
 * flipped), the DNS check, the dict entry, the idle-heap entry and the attempt timer with
 * the table's own tiebreak counter and heapq.heappush, the next sweep and the table's
 * `created`. run() then returns NW_HAND_STARTED with the flow: Python runs on_start and,
 * for a payload, the deep parsers' step. new_flows is the tuple FlowTable.core_new_flows gives
 * (items: enum nw_start); any item not of the type expected, a full table, a protocol
 * whose idle heap the table has not cached yet, and any other first segment hand the packet
 * back (NW_HAND_NEW, nothing changed). Every object is made before anything is registered;
 * an error while registering takes the flow out of the dict again and marks it ended
 * (state 2: the timers skip an entry already pushed) before the error is raised. */

enum nw_start {
    NS_TABLE, NS_FLOW_TYPE, NS_END_TYPE, NS_UID, NS_TIE, NS_HEAPPUSH, NS_IDLE_HEAP, NS_CHECKS,
    NS_DNS_KIND, NS_DNS_IDLE, NS_ATTEMPTS, NS_ATTEMPT_KIND, NS_ATTEMPT_S, NS_MAX_FLOWS,
    NS_BUDGET, NS_ORIG_LETTERS, NS_RESP_LETTERS, NS_ROLES, NS_FLOWS, NS_COUNT
};
/* The ports' roles (FlowTable._port_roles: one byte per port) */
#define NW_ROLE_UDP_SERVER 2 /* LIKELY_SERVER_UDP */
#define NW_ROLE_DNS 4        /* DNS_UDP_PORTS */
#define NW_PORTS 65536

static PyObject *str_created, *str_next_sweep; /* interned attribute names */

/* A delay the table adds to a packet time: an exact float, or an exact int that converts
 * exactly (what Python's float + int then gives). 0: anything else. */
static int seconds_of(PyObject *v, double *out)
{
    long long i;
    if (v != NULL && PyFloat_CheckExact(v)) {
        *out = PyFloat_AS_DOUBLE(v);
        return 1;
    }
    if (!small_int(v, &i) || i < -(1LL << 53) || i > (1LL << 53))
        return 0;
    *out = (double)i;
    return 1;
}

/* run()'s new_flows, checked (for the table whose dict is flows): 1 with *items set, 0 when
 * it cannot be used (hand back). */
static int start_items(nw_fastloop *self, PyObject *flows, PyObject ***items,
                       double *dns_idle, double *attempt_s, long long *max_flows)
{
    PyObject *t = self->start;
    if (!PyTuple_CheckExact(t) || PyTuple_GET_SIZE(t) != NS_COUNT)
        return 0;
    PyObject **it = &PyTuple_GET_ITEM(t, 0);
    PyTypeObject *ft = self->flow_type, *et = self->end_type;
    *items = it;
    return it[NS_FLOWS] == flows && it[NS_FLOW_TYPE] == (PyObject *)ft
           && it[NS_END_TYPE] == (PyObject *)et
           && ft->tp_new == FlowBaseType.tp_new && ft->tp_init == FlowBaseType.tp_init
           && et->tp_new == EndpointBaseType.tp_new && et->tp_init == EndpointBaseType.tp_init
           && PyCallable_Check(it[NS_UID]) && PyIter_Check(it[NS_TIE])
           && PyCallable_Check(it[NS_HEAPPUSH]) && PyDict_CheckExact(it[NS_IDLE_HEAP])
           && PyList_CheckExact(it[NS_CHECKS]) && PyList_CheckExact(it[NS_ATTEMPTS])
           && seconds_of(it[NS_DNS_IDLE], dns_idle) && seconds_of(it[NS_ATTEMPT_S], attempt_s)
           && small_int(it[NS_MAX_FLOWS], max_flows) && PyBytes_CheckExact(it[NS_ROLES])
           && PyBytes_GET_SIZE(it[NS_ROLES]) == NW_PORTS;
}

/* Zeek's flip of a UDP flow's first datagram (netwatch.flow.ports.flip_first): the source
 * port a likely server port, the destination port not, and the destination not the limited
 * broadcast or a multicast address. */
static int udp_flip(const nw_record *r, const uint8_t *roles)
{
    if (!(roles[r->sport] & NW_ROLE_UDP_SERVER) || (roles[r->dport] & NW_ROLE_UDP_SERVER))
        return 0;
    if (r->kind == NW_IPV4)
        return !((r->dst[0] == 0xFF && r->dst[1] == 0xFF && r->dst[2] == 0xFF
                  && r->dst[3] == 0xFF)
                 || (r->dst[0] >= 224 && r->dst[0] < 240));
    return r->dst[0] != 0xFF;
}

/* next(tie) as Python calls it (StopIteration when it ends). */
static PyObject *next_tie(PyObject *tie)
{
    PyObject *n = PyIter_Next(tie);
    if (n == NULL && !PyErr_Occurred())
        PyErr_SetNone(PyExc_StopIteration);
    return n;
}

/* A heap entry (when, tie, flow[, kind]) with a tie drawn from the counter; NULL on error. */
static PyObject *heap_entry(PyObject *tie, PyObject *when, PyObject *flow, PyObject *kind)
{
    PyObject *n = next_tie(tie);
    if (n == NULL)
        return NULL;
    PyObject *e = kind == NULL ? PyTuple_Pack(3, when, n, flow)
                               : PyTuple_Pack(4, when, n, flow, kind);
    Py_DECREF(n);
    return e;
}

/* heappush(heap, entry); -1 on error. */
static int push_entry(PyObject *heappush, PyObject *heap, PyObject *entry)
{
    PyObject *args[2] = {heap, entry};
    PyObject *out = PyObject_Vectorcall(heappush, args, 2, NULL);
    Py_XDECREF(out);
    return out == NULL ? -1 : 0;
}

/* A new instance of a plain subclass of FlowBase or EndpointBase, its __init__ not yet run. */
static PyObject *bare(PyTypeObject *type) { return type->tp_alloc(type, 0); }

/* The flow of a new TCP/UDP packet with all of first_packet's fields and counters, or NULL
 * (an error raised). ends: (orig_h, resp_h, orig_p, resp_p) after the flip. */
static nw_flow *made_flow(nw_fastloop *self, PyObject **it, const uint8_t *frame,
                          const nw_record *r, PyObject *key, PyObject *ts, PyObject **ends,
                          int odir, int is_orig, int flip)
{
    nw_flow *f = (nw_flow *)bare(self->flow_type);
    if (f == NULL)
        return NULL;
    PyObject *proto = PyLong_FromLong((long)r->proto), *vlan = PyLong_FromLong((long)r->vlan);
    PyObject *dmac = PyBytes_FromStringAndSize((const char *)frame, 6);
    PyObject *smac = PyBytes_FromStringAndSize((const char *)frame + 6, 6);
    PyObject *hist = NULL, *tcp = NULL;
    int rc = proto == NULL || vlan == NULL || dmac == NULL || smac == NULL ? -1 : 0;
    if (rc == 0 && (flip || r->proto == 6)) { /* '^' (UDP flipped) or 'S' (the SYN) */
        PyObject *letter = PyUnicode_FromString(flip ? "^" : "S");
        hist = letter == NULL ? NULL : PyList_New(1);
        if (hist != NULL)
            PyList_SET_ITEM(hist, 0, letter);
        else
            Py_XDECREF(letter);
        rc = hist == NULL ? -1 : 0;
    }
    if (rc == 0 && r->proto == 6) { /* the originator after its SYN, a fresh responder */
        PyObject *seq = PyLong_FromUnsignedLong(r->seq);
        PyObject *o = bare(self->end_type), *p = bare(self->end_type);
        if (seq == NULL || o == NULL || p == NULL
            || end_init_syn((nw_endpoint *)o, it[NS_ORIG_LETTERS], seq) < 0
            || end_init_plain((nw_endpoint *)p, it[NS_RESP_LETTERS]) < 0
            || (tcp = PyTuple_Pack(2, o, p)) == NULL)
            rc = -1;
        Py_XDECREF(seq);
        Py_XDECREF(o);
        Py_XDECREF(p);
    }
    if (rc == 0)
        rc = flow_init_plain(f, key, Py_None, ts, proto);
    if (rc == 0) {
        PyObject **o = f->obj;
        obj_set(o, FO_ODIR, odir ? Py_True : Py_False);
        obj_set(o, FO_ORIG_H, ends[0]);
        obj_set(o, FO_RESP_H, ends[1]);
        obj_set(o, FO_ORIG_P, ends[2]);
        obj_set(o, FO_RESP_P, ends[3]);
        obj_set(o, FO_RESP_MAC, flip ? smac : dmac);
        obj_set(o, FO_ORIG_MAC, flip ? dmac : smac);
        obj_set(o, FO_VLAN, vlan);
        obj_set(o, FO_DEEP_O, it[NS_BUDGET]);
        obj_set(o, FO_DEEP_R, it[NS_BUDGET]);
        if (hist != NULL)
            obj_set(o, FO_HIST, hist);
        if (tcp != NULL)
            obj_set(o, FO_TCP, tcp);
        /* the first packet counted: a new flow's counters are 0, the values written as is */
        cell_int(f->val, f->tag, is_orig ? FC_O_PKTS : FC_R_PKTS, 1);
        cell_int(f->val, f->tag, is_orig ? FC_O_IPB : FC_R_IPB, (long long)r->ip_len);
        if (r->proto == 17)
            cell_int(f->val, f->tag, is_orig ? FC_O_BYTES : FC_R_BYTES,
                     (long long)r->payload_len);
    }
    Py_XDECREF(proto);
    Py_XDECREF(vlan);
    Py_XDECREF(dmac);
    Py_XDECREF(smac);
    Py_XDECREF(hist);
    Py_XDECREF(tcp);
    if (rc < 0) {
        Py_DECREF(f);
        return NULL;
    }
    return f;
}

/* table.<name> += 1 */
static int add_one(PyObject *table, PyObject *name)
{
    PyObject *v = PyObject_GetAttr(table, name), *one = PyLong_FromLong(1), *sum = NULL;
    if (v != NULL && one != NULL)
        sum = PyNumber_Add(v, one);
    int rc = sum == NULL ? -1 : PyObject_SetAttr(table, name, sum);
    Py_XDECREF(v);
    Py_XDECREF(one);
    Py_XDECREF(sum);
    return rc;
}

/* table.next_sweep = when (and the loop's copy) when when is earlier; -1 on error. */
static int earlier_sweep(nw_fastloop *self, PyObject *table, double when)
{
    if (!(when < self->next_sweep))
        return 0;
    PyObject *v = PyFloat_FromDouble(when);
    int rc = v == NULL ? -1 : PyObject_SetAttr(table, str_next_sweep, v);
    Py_XDECREF(v);
    if (rc == 0)
        self->next_sweep = when;
    return rc;
}

/* The flow into the table (FlowTable._register's steps, and _tcp_first's attempt timer):
 * entries made first (ties drawn in the table's order: DNS check, idle heap, attempt), then
 * the dict, the pushes, the next sweep, created. 0, or -1 on an error raised (the flow taken
 * out of the dict again and marked ended when it was put in). */
static int register_flow(nw_fastloop *self, PyObject **it, PyObject *flows, PyObject *key,
                         nw_flow *f, PyObject *ts, double t, PyObject *heap, double idle,
                         int dns, double dns_idle, double attempt_s)
{
    PyObject *dns_at = NULL, *att_at = NULL, *dns_e = NULL, *idle_e = NULL, *att_e = NULL;
    PyObject *tie = it[NS_TIE], *push = it[NS_HEAPPUSH], *table = it[NS_TABLE];
    int tcp = f->obj[FO_TCP] != Py_None, in = 0, rc = -1;
    if (dns && ((dns_at = PyFloat_FromDouble(t + dns_idle)) == NULL
                || (dns_e = heap_entry(tie, dns_at, (PyObject *)f, it[NS_DNS_KIND])) == NULL))
        goto out;
    if ((idle_e = heap_entry(tie, ts, (PyObject *)f, NULL)) == NULL)
        goto out;
    if (tcp && ((att_at = PyFloat_FromDouble(t + attempt_s)) == NULL
                || (att_e = heap_entry(tie, att_at, (PyObject *)f, it[NS_ATTEMPT_KIND])) == NULL))
        goto out;
    if (PyDict_SetItem(flows, key, (PyObject *)f) < 0)
        goto out;
    in = 1;
    if ((dns_e != NULL && push_entry(push, it[NS_CHECKS], dns_e) < 0)
        || (dns_e != NULL && earlier_sweep(self, table, t + dns_idle) < 0)
        || push_entry(push, heap, idle_e) < 0 || earlier_sweep(self, table, t + idle) < 0
        || (att_e != NULL && push_entry(push, it[NS_ATTEMPTS], att_e) < 0)
        || add_one(table, str_created) < 0)
        goto out;
    rc = 0;
out:
    if (rc < 0 && in) { /* never half registered: out of the dict, and ended for the timers */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (PyDict_DelItem(flows, key) < 0)
            PyErr_Clear();
        if (obj_set_long(f->obj, FO_STATE, 2) < 0)
            PyErr_Clear();
        PyErr_Restore(type, value, tb);
    }
    Py_XDECREF(dns_at);
    Py_XDECREF(att_at);
    Py_XDECREF(dns_e);
    Py_XDECREF(idle_e);
    Py_XDECREF(att_e);
    return rc;
}

/* The new flow into the flow cache (the next packet of it takes no key and no lookup). */
static void cache_new(nw_fastloop *self, const uint8_t raw[NW_RAW_KEY], PyObject *key,
                      nw_flow *f)
{
    nw_key_entry *entry = &self->keys[key_slot(raw)];
    if (entry->key != key) {
        Py_INCREF(key);
        Py_XSETREF(entry->key, key);
        memcpy(entry->raw, raw, NW_RAW_KEY);
    }
    Py_INCREF(f);
    Py_XSETREF(entry->flow, (PyObject *)f);
}

/* A packet of no flow (key: the key tuple looked up, borrowed; fwd: the packet's direction is
 * the key's; the frame at buf + r->frame_off): a new flow made and registered here when
 * first_packet would make it without anything but what C does (see above): NW_HAND_STARTED
 * with *made (a new reference) and *is_orig; NW_HAND_NEW (nothing changed); -1 (an error
 * raised). */
static int new_flow(nw_fastloop *self, PyObject *flows, const uint8_t *buf, const nw_record *r,
                    double ts, const uint8_t raw[NW_RAW_KEY], PyObject *key, int fwd,
                    PyObject **made, int *is_orig)
{
    PyObject **it;
    double dns_idle, attempt_s, idle;
    long long max_flows;
    if (!start_items(self, flows, &it, &dns_idle, &attempt_s, &max_flows))
        return NW_HAND_NEW;
    if (r->proto == 6 && !((r->tcp_flags & 0x17u) == 0x02u && r->payload_len == 0 && r->win != 0))
        return NW_HAND_NEW; /* only an originator's bare SYN: other first segments are Python's */
    if (r->proto != 6 && r->proto != 17)
        return NW_HAND_NEW;
    if (PyDict_GET_SIZE(flows) >= max_flows) /* full: the eviction is Python's */
        return NW_HAND_NEW;
    if (r->caplen < 12) /* the MACs (the decoder's frames have them) */
        return NW_HAND_NEW;
    /* the key tuple's items are the new flow's ends: exact bytes and ints as the decoder's */
    if (!PyTuple_CheckExact(key) || PyTuple_GET_SIZE(key) != 5)
        return NW_HAND_NEW;
    PyObject **k = &PyTuple_GET_ITEM(key, 0);
    if (!PyBytes_CheckExact(k[0]) || !PyBytes_CheckExact(k[1]) || !PyLong_CheckExact(k[2])
        || !PyLong_CheckExact(k[3]))
        return NW_HAND_NEW;
    PyObject *proto = PyLong_FromLong((long)r->proto);
    if (proto == NULL)
        return -1;
    PyObject *pair = PyDict_GetItemWithError(it[NS_IDLE_HEAP], proto); /* borrowed */
    Py_DECREF(proto);
    if (pair == NULL)
        return PyErr_Occurred() ? -1 : NW_HAND_NEW; /* the protocol's first flow: Python's */
    if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2
        || !seconds_of(PyTuple_GET_ITEM(pair, 0), &idle)
        || !PyList_CheckExact(PyTuple_GET_ITEM(pair, 1)))
        return NW_HAND_NEW;
    Py_INCREF(pair); /* Python code runs below (uid, next, heappush) */
    const uint8_t *roles = (const uint8_t *)PyBytes_AS_STRING(it[NS_ROLES]);
    int flip = r->proto == 17 && udp_flip(r, roles); /* a bare SYN is never flipped */
    int odir = flip ? !fwd : fwd;
    PyObject *src = fwd ? k[0] : k[1], *dst = fwd ? k[1] : k[0];
    PyObject *sport = fwd ? k[2] : k[3], *dport = fwd ? k[3] : k[2];
    PyObject *ends[4] = {flip ? dst : src, flip ? src : dst, flip ? dport : sport,
                         flip ? sport : dport};
    uint16_t resp_p = flip ? r->sport : r->dport;
    int dns = r->proto == 17 && (roles[resp_p] & NW_ROLE_DNS);
    int rc = -1;
    PyObject *t = PyFloat_FromDouble(ts), *uid = NULL;
    nw_flow *f = NULL;
    if (t == NULL)
        goto out;
    f = made_flow(self, it, buf + r->frame_off, r, key, t, ends, odir, !flip, flip);
    if (f == NULL || (uid = PyObject_CallNoArgs(it[NS_UID])) == NULL)
        goto out;
    obj_set(f->obj, FO_UID, uid);
    if (register_flow(self, it, flows, key, f, t, ts, PyTuple_GET_ITEM(pair, 1), idle, dns,
                      dns_idle, attempt_s) < 0)
        goto out;
    cache_new(self, raw, key, f);
    self->starts++;
    *is_orig = !flip;
    *made = (PyObject *)f;
    f = NULL;
    rc = NW_HAND_STARTED;
out:
    Py_DECREF(pair);
    Py_XDECREF(t);
    Py_XDECREF(uid);
    Py_XDECREF(f);
    return rc;
}

/* One common-shape packet (its frame at buf + r->frame_off): its flow found (through the
 * flow cache), then the fast branch; a packet of no flow is made a new flow here when run()
 * was given new_flows (new_flow). For NW_HAND_DEEP and NW_HAND_STARTED, *deep_flow is the flow
 * (a new reference) and *is_orig the packet's direction. */
static int fast_record(nw_fastloop *self, PyObject *flows, const uint8_t *buf,
                       const nw_record *r, double ts, PyObject **deep_flow, int *is_orig)
{
    int fwd, rc = 0;
    uint8_t raw[NW_RAW_KEY];
    PyObject *key = NULL;
    raw_key(r, raw, &fwd);
    nw_flow *f = find_flow(self, flows, raw, &rc, &key);
    if (f == NULL) {
        if (rc == NW_HAND_NEW) {
            if (self->start != NULL)
                rc = new_flow(self, flows, buf, r, ts, raw, key, fwd, deep_flow, is_orig);
            Py_DECREF(key);
        }
        return rc;
    }
    rc = fast_packet(self, f, fwd, r, ts);
    if (rc == NW_HAND_DEEP) {
        *is_orig = fwd == (f->obj[FO_ODIR] == Py_True); /* fast_packet checked it a bool */
        *deep_flow = (PyObject *)f;
        return rc;
    }
    Py_DECREF(f);
    return rc;
}

/* A new tuple of items[0..n), taking their references; NULL when one is NULL (an allocation
 * failed: an exception set) or the tuple cannot be made, all of them released then. What
 * Py_BuildValue does, without parsing a format for every packet handed back. */
static PyObject *tuple_of(PyObject **items, Py_ssize_t n)
{
    PyObject *out = NULL;
    Py_ssize_t i = 0;
    while (i < n && items[i] != NULL)
        i++;
    if (i == n)
        out = PyTuple_New(n);
    for (i = 0; i < n; i++) {
        if (out != NULL)
            PyTuple_SET_ITEM(out, i, items[i]);
        else
            Py_XDECREF(items[i]);
    }
    return out;
}

/* A payload counted here, for the deep parsers' step in Python: (ts, wire length, frame,
 * (flow, is_orig, payload offset, payload length)); it steals flow's reference (also on
 * failure: NULL, an exception set). */
static PyObject *deep_packet(const uint8_t *buf, const nw_rechdr *h, const nw_record *r,
                             double ts, PyObject *flow, int is_orig)
{
    PyObject *frame = PyBytes_FromStringAndSize((const char *)buf + h->start,
                                                (Py_ssize_t)h->caplen);
    if (frame == NULL) {
        Py_DECREF(flow);
        return NULL;
    }
    PyObject *out = Py_BuildValue("(dkN(NOII))", ts, (unsigned long)h->wirelen, frame, flow,
                                  is_orig ? Py_True : Py_False, r->payload_off,
                                  r->payload_len);
    return out;
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

/* A packet handed to Python, in the shapes Python takes it: (ts, wirelen, frame, decoded),
 * ts computed as the loop computed it, frame the captured bytes, decoded the decoder's
 * tuple (netwatch.core.as_decoded of the record: the frame itself at [12], MAC offset 0)
 * or None for an odd frame. NULL (an exception set) when an object cannot be made. */
static PyObject *handed_packet(const uint8_t *buf, const nw_rechdr *h, const nw_record *r,
                               double ts)
{
    PyObject *frame = PyBytes_FromStringAndSize((const char *)buf + h->start,
                                                (Py_ssize_t)h->caplen);
    if (frame == NULL)
        return NULL;
    PyObject *d;
    if (r->kind == NW_ODD) {
        d = Py_NewRef(Py_None);
    } else {
        Py_ssize_t n = r->kind == NW_IPV4 ? 4 : 16;
        PyObject *items[] = {/* the decoder's types: bytes, ints, the frame */
            PyBytes_FromStringAndSize((const char *)r->src, n),
            PyBytes_FromStringAndSize((const char *)r->dst, n), PyLong_FromLong(r->proto),
            PyLong_FromLong(r->sport), PyLong_FromLong(r->dport),
            PyLong_FromUnsignedLong(r->ip_len), PyLong_FromLong(r->tcp_flags),
            PyLong_FromUnsignedLong(r->seq), PyLong_FromUnsignedLong(r->ack),
            PyLong_FromLong(r->win), PyLong_FromUnsignedLong(r->payload_off),
            PyLong_FromUnsignedLong(r->payload_len), Py_NewRef(frame), PyLong_FromLong(0),
            PyLong_FromLong(r->vlan)};
        d = tuple_of(items, (Py_ssize_t)NW_LEN(items));
        if (d == NULL) {
            Py_DECREF(frame);
            return NULL;
        }
    }
    PyObject *out = PyTuple_New(4);
    PyObject *t = PyFloat_FromDouble(ts), *w = PyLong_FromUnsignedLong(h->wirelen);
    if (out == NULL || t == NULL || w == NULL) {
        Py_XDECREF(out);
        Py_XDECREF(t);
        Py_XDECREF(w);
        Py_DECREF(frame);
        Py_DECREF(d);
        return NULL;
    }
    PyTuple_SET_ITEM(out, 0, t);
    PyTuple_SET_ITEM(out, 1, w);
    PyTuple_SET_ITEM(out, 2, frame);
    PyTuple_SET_ITEM(out, 3, d);
    return out;
}

PyDoc_STRVAR(fastloop_run_doc,
"run(flows, buffer, start, end, little, tick, next_sweep, limit, closed=None, deep=False,\n"
"    new_flows=None)\n"
"    -> (next, packets, wire_bytes, empty, status, record)\n\n"
"Walk the classic pcap records of buffer[start:end] (an Ethernet capture; little: the\n"
"file is little-endian; tick: seconds per fraction unit) and apply the fused loop's fast\n"
"branch to each packet of an existing flow of the dict flows, in place. Returns at the first\n"
"packet Python must take (status 3 and up: the reason; record: (ts, wire length, frame,\n"
"the decoder's tuple or None for an odd frame), next: the offset after it), after limit\n"
"records (status 1), at the end of the buffer or a record\n"
"cut by it (0) or at a captured length above the maximum (2; next: that record). packets\n"
"and wire_bytes count the packets done here, empty the empty records skipped. closed: the\n"
"flow table's closed_at(flow, ts) -> next sweep, called for a FIN that completes a close\n"
"or a RST taken here (None: such segments are handed back). deep: a packet whose only\n"
"reason to go to Python is that the deep parsers want its payload (UDP, or TCP that the\n"
"fast branch would otherwise take) is counted here, its flow updated as for the fast\n"
"branch, and returned with status 10 (DEEP) and record (ts, wire length, frame, (flow,\n"
"is_orig, payload offset, payload length)): Python then runs only the deep parsers' step\n"
"(false: handed back as status 9, COND). new_flows: the flow table's core_new_flows() (None:\n"
"every packet of no flow is handed back, status 5, NEW): a TCP originator's bare SYN or a\n"
"UDP datagram of no flow is made a new flow here as FlowTable.first_packet makes it (uid,\n"
"fields, counters, endpoints, history, Zeek's flip, the DNS check, the dict entry, the idle\n"
"heap and attempt timer, the next sweep, the table's created) and returned with status 11\n"
"(STARTED) and record (ts, wire length, frame, (flow, is_orig, payload offset, payload\n"
"length)): Python then runs on_start and the deep parsers' step.");

static PyObject *fastloop_run(nw_fastloop *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 8 || nargs > 11) {
        PyErr_SetString(PyExc_TypeError, "FastLoop.run takes 8 to 11 arguments");
        return NULL;
    }
    PyObject *closed = nargs >= 9 && args[8] != Py_None ? args[8] : NULL;
    PyObject *starter = nargs == 11 && args[10] != Py_None ? args[10] : NULL;
    int deep = nargs >= 10 ? PyObject_IsTrue(args[9]) : 0;
    if (deep < 0)
        return NULL;
    if (closed != NULL && !PyCallable_Check(closed)) {
        PyErr_SetString(PyExc_TypeError, "FastLoop.run: closed must be callable or None");
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
    if (flows != self->flows) { /* the cached flows are another table's */
        drop_flows(self);
        Py_INCREF(flows);
        self->flows = flows;
    }
    Py_INCREF(flows);
    /* close_flow may move the next sweep (a push through closed); a nested run() (from
     * closed) finds its caller's values restored */
    PyObject *outer_closed = self->closed;
    double outer_sweep = self->next_sweep;
    int outer_deep = self->deep;
    PyObject *outer_start = self->start;
    Py_XINCREF(closed);
    Py_XINCREF(starter);
    self->closed = closed;
    self->start = starter;
    self->next_sweep = next_sweep;
    self->deep = deep;
    const uint8_t *buf = (const uint8_t *)view.buf;
    uint64_t off = (uint64_t)start, done = 0, nbytes = 0, empty = 0, seen = 0, ahead = 0;
    int status = NW_FAST_END;
    nw_record r;
    nw_rechdr h;
    PyObject *handed = NULL, *deep_flow = NULL;
    int deep_orig = 0;
    for (;;) {
        if (off < (uint64_t)end)
            read_ahead(buf, &ahead, off, (uint64_t)end);
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
        else if (!(ts < self->next_sweep))
            rc = NW_HAND_SWEEP;
        else
            rc = fast_record(self, flows, buf, &r, ts, &deep_flow, &deep_orig);
        if (rc < 0) {
            status = -1;
            break;
        }
        if (rc == NW_HAND_DEEP || rc == NW_HAND_STARTED) {
            status = rc;
            handed = deep_packet(buf, &h, &r, ts, deep_flow, deep_orig);
            if (handed == NULL)
                status = -1;
            break;
        }
        if (rc > 0) {
            status = rc;
            handed = handed_packet(buf, &h, &r, ts);
            if (handed == NULL)
                status = -1;
            break;
        }
        done++;
        nbytes += h.wirelen;
    }
    PyBuffer_Release(&view);
    Py_DECREF(flows);
    Py_XDECREF(closed);
    Py_XDECREF(starter);
    self->closed = outer_closed;
    self->start = outer_start;
    self->next_sweep = outer_sweep;
    self->deep = outer_deep;
    if (status < 0)
        return NULL;
    self->reasons[status]++;
    self->fast += done;
    if (handed == NULL) {
        Py_INCREF(Py_None);
        handed = Py_None;
    }
    PyObject *items[] = {PyLong_FromUnsignedLongLong((unsigned long long)off),
                         PyLong_FromUnsignedLongLong((unsigned long long)done),
                         PyLong_FromUnsignedLongLong((unsigned long long)nbytes),
                         PyLong_FromUnsignedLongLong((unsigned long long)empty),
                         PyLong_FromLong(status), handed};
    return tuple_of(items, (Py_ssize_t)NW_LEN(items));
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

PyDoc_STRVAR(fastloop_conds_doc,
"conds() -> tuple: how many packets were handed back with status COND, by why the fast\n"
"branch's conditions failed (index: netwatch.core.CondReason), since construction.");

static PyObject *fastloop_conds(nw_fastloop *self, PyObject *unused)
{
    (void)unused;
    PyObject *out = PyTuple_New(NW_CONDS);
    if (out == NULL)
        return NULL;
    for (int i = 0; i < NW_CONDS; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(self->conds[i]);
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
    {"conds", (PyCFunction)fastloop_conds, METH_NOARGS, fastloop_conds_doc},
    {NULL, NULL, 0, NULL},
};

static PyObject *fastloop_get_key_hits(nw_fastloop *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->key_hits);
}

static PyObject *fastloop_get_flow_hits(nw_fastloop *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->flow_hits);
}

static PyObject *fastloop_get_first_acks(nw_fastloop *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->first_acks);
}

static PyObject *fastloop_get_syn_acks(nw_fastloop *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->syn_acks);
}

static PyObject *fastloop_get_resets(nw_fastloop *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->resets);
}

static PyObject *fastloop_get_deeps(nw_fastloop *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->deeps);
}

static PyObject *fastloop_get_deep_tcp(nw_fastloop *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->deep_tcp);
}

static PyObject *fastloop_get_first_datas(nw_fastloop *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->first_datas);
}

static PyObject *fastloop_get_closes(nw_fastloop *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->closes);
}

static PyObject *fastloop_get_starts(nw_fastloop *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->starts);
}

static PyObject *fastloop_get_first_fins(nw_fastloop *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->first_fins);
}

static PyGetSetDef fastloop_getset[] = {
    {"starts", (getter)fastloop_get_starts, NULL,
     "new flows made here (run's new_flows; status STARTED)", NULL},
    {"first_datas", (getter)fastloop_get_first_datas, NULL,
     "payloads taken here that were their direction's first (history letter D/d)", NULL},
    {"deeps", (getter)fastloop_get_deeps, NULL,
     "payloads counted here and handed to the deep parsers' step (status DEEP)", NULL},
    {"deep_tcp", (getter)fastloop_get_deep_tcp, NULL,
     "of deeps, the TCP segments (in order, history letter D/d set)", NULL},
    {"first_fins", (getter)fastloop_get_first_fins, NULL,
     "FINs taken here that were their endpoint's first (closes included)", NULL},
    {"closes", (getter)fastloop_get_closes, NULL,
     "FINs taken here that completed a close (the removal pushed through closed)", NULL},
    {"resets", (getter)fastloop_get_resets, NULL,
     "RSTs taken here (the removal pushed through closed)", NULL},
    {"syn_acks", (getter)fastloop_get_syn_acks, NULL,
     "SYN-ACKs taken here answering the originator's SYN", NULL},
    {"first_acks", (getter)fastloop_get_first_acks, NULL,
     "bare ACKs taken here that were their direction's first (history letter A/a)", NULL},
    {"fast", (getter)fastloop_get_fast, NULL, "packets done by the fast branch here", NULL},
    {"key_hits", (getter)fastloop_get_key_hits, NULL,
     "flow lookups made with a cached key (of NW_KEY_CACHE entries at most)", NULL},
    {"flow_hits", (getter)fastloop_get_flow_hits, NULL,
     "packets whose flow came from the flow cache (no dict lookup; counted in key_hits too)",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};


PyDoc_STRVAR(fastloop_doc,
"FastLoop(flow_type, endpoint_type)\n\n"
"The fused loop's fast branch in C over Python's flow table: see run(). flow_type and\n"
"endpoint_type are netwatch.flow.table.Flow and netwatch.flow.tcpstate.Endpoint: plain\n"
"subclasses of FlowBase and EndpointBase (no storage or attribute of their own).");

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

/* ---- An ended flow's record (netwatch.flow.record.flow_record_ends) --------------------
 *
 * flow_record(flow, tcp_summary, <16 enrichment values>) builds the flow-log record of an
 * ended FlowBase: the 38 keys in the reference's order, each value of the type and value
 * the reference's dict literal gives (times rounded as float.__round__ does, address
 * texts by libc's inet_ntop as socket.inet_ntop, MAC texts as bytes.hex(":"), the UDP/ICMP
 * state and history, TCP's sizes, conn_state and history as netwatch/flow/tcpstate.py's
 * Endpoint.size and conn_state, the Community ID with SHA-1 and base64 done here); the
 * enrichment values are put in as given. A flow whose fields are not of the shape the flow
 * table makes (its Flow and Endpoint types exactly, exact floats for the times, exact ints
 * for protocol, ports, VLAN and endpoint fields, 4- or 16-byte addresses of one family,
 * MACs bytes or None, counters ints or floats, the history a list of str) gives None: the
 * reference builder takes it, so this never answers differently, it only answers less. */

#define NW_REC_KEYS 38
enum nw_rec_key {
    RK_TS, RK_UID, RK_ORIG_H, RK_ORIG_P, RK_RESP_H, RK_RESP_P, RK_PROTO, RK_IP_PROTO,
    RK_SERVICE, RK_DURATION, RK_ORIG_BYTES, RK_RESP_BYTES, RK_CONN_STATE, RK_HISTORY,
    RK_LOCAL_ORIG, RK_LOCAL_RESP, RK_MISSED, RK_ORIG_PKTS, RK_ORIG_IPB, RK_RESP_PKTS,
    RK_RESP_IPB, RK_COMMUNITY_ID, RK_ORIG_L2, RK_RESP_L2, RK_VLAN, RK_RESP_CC, RK_RESP_ASN,
    RK_RESP_ORG, RK_ORIG_CC, RK_RESP_NAME, RK_ORIG_DEVICE, RK_RESP_DEVICE, RK_VENDOR,
    RK_SERVER_NAME, RK_HTTP_HOST, RK_USER_AGENT, RK_SERVER, RK_DNS_QUERY
};
static const char *const rec_key_names[NW_REC_KEYS] = {
    "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "ip_proto",
    "service", "duration", "orig_bytes", "resp_bytes", "conn_state", "history",
    "local_orig", "local_resp", "missed_bytes", "orig_pkts", "orig_ip_bytes", "resp_pkts",
    "resp_ip_bytes", "community_id", "orig_l2_addr", "resp_l2_addr", "vlan", "resp_cc",
    "resp_asn", "resp_org", "orig_cc", "resp_name", "orig_device", "resp_device", "vendor",
    "server_name", "http_host", "user_agent", "server", "dns_query",
};
/* The arguments after (flow, tcp_summary), in order, and the key each goes to. */
#define NW_REC_ENRICH 16
static const int rec_enrich_keys[NW_REC_ENRICH] = {
    RK_SERVICE, RK_LOCAL_ORIG, RK_LOCAL_RESP, RK_RESP_CC, RK_RESP_ASN, RK_RESP_ORG,
    RK_ORIG_CC, RK_RESP_NAME, RK_ORIG_DEVICE, RK_RESP_DEVICE, RK_VENDOR, RK_SERVER_NAME,
    RK_HTTP_HOST, RK_USER_AGENT, RK_SERVER, RK_DNS_QUERY,
};

/* Interned texts made once (core_exec): the keys, the protocol names and the UDP/ICMP
 * states and histories; float.__round__ and the int 6 for the times. */
static PyObject *rec_keys[NW_REC_KEYS];
enum nw_rec_text { RT_TCP, RT_UDP, RT_ICMP, RT_UNKNOWN, RT_SF, RT_S0, RT_SHR, RT_OTH, RT_EMPTY,
                   RT_D, RT_d, RT_Dd, RT_FLIP, RT_FLIP_D, RT_FLIP_d, RT_FLIP_dD, RT_COUNT };
static const char *const rec_text_names[RT_COUNT] = {
    "tcp", "udp", "icmp", "unknown_transport", "SF", "S0", "SHR", "OTH", "", "D", "d", "Dd",
    "^", "^D", "^d", "^dD",
};
static PyObject *rec_texts[RT_COUNT];
/* The 38 keys in order, each with the value None: a record starts as a copy of it (the
 * keys table copied whole) and only the values that are not None are put in. */
static PyObject *rec_template;
static PyObject *float_round; /* float.__round__ (a method descriptor) */
static PyObject *int_six;

enum nw_conn_state { CS_REJ, CS_RSTRH, CS_RSTR, CS_RSTOS0, CS_OTH, CS_RSTO, CS_SF, CS_SH, CS_S2,
                     CS_SHR, CS_S3, CS_S0, CS_S1, CS_COUNT };
static const char *const conn_state_names[CS_COUNT] = {
    "REJ", "RSTRH", "RSTR", "RSTOS0", "OTH", "RSTO", "SF", "SH", "S2", "SHR", "S3", "S0", "S1",
};
static PyObject *conn_states[CS_COUNT];

static int record_init(void)
{
    if (float_round != NULL)
        return 0;
    for (int i = 0; i < NW_REC_KEYS; i++)
        if ((rec_keys[i] = PyUnicode_InternFromString(rec_key_names[i])) == NULL)
            return -1;
    for (int i = 0; i < RT_COUNT; i++)
        if ((rec_texts[i] = PyUnicode_InternFromString(rec_text_names[i])) == NULL)
            return -1;
    for (int i = 0; i < CS_COUNT; i++)
        if ((conn_states[i] = PyUnicode_InternFromString(conn_state_names[i])) == NULL)
            return -1;
    if ((rec_template = PyDict_New()) == NULL)
        return -1;
    for (int i = 0; i < NW_REC_KEYS; i++)
        if (PyDict_SetItem(rec_template, rec_keys[i], Py_None) < 0)
            return -1;
    if ((int_six = PyLong_FromLong(6)) == NULL)
        return -1;
    float_round = PyObject_GetAttrString((PyObject *)&PyFloat_Type, "__round__");
    return float_round == NULL ? -1 : 0;
}

/* SHA-1 (FIPS 180-4, section 6.1) of one message; tests/test_core.py checks it against
 * hashlib on lengths 0..300. */
static inline uint32_t rol32(uint32_t x, unsigned n) { return (x << n) | (x >> (32u - n)); }

/* One 64-byte block: the 80 rounds as four loops of 20 (each its own f and k, no test of the
 * round number per round), the message schedule kept as a ring of 16 words (w[i & 15]). */
#define SHA1_ROUND(f, k)                                                                      \
    do {                                                                                      \
        uint32_t t_ = rol32(a, 5) + (f) + e + (k) + w[i & 15];                                \
        e = d;                                                                                \
        d = c;                                                                                \
        c = rol32(b, 30);                                                                     \
        b = a;                                                                                \
        a = t_;                                                                               \
    } while (0)
#define SHA1_NEXT_W(i)                                                                        \
    (w[(i) & 15] = rol32(w[((i) - 3) & 15] ^ w[((i) - 8) & 15] ^ w[((i) - 14) & 15] ^          \
                             w[(i) & 15],                                                     \
                         1))

static void sha1_block(uint32_t h[5], const uint8_t *blk)
{
    uint32_t w[16];
    for (int i = 0; i < 16; i++)
        w[i] = be32(blk + 4 * i);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    int i = 0;
    /* unrolled: the ring's indexes become constants (about half the instructions) */
#pragma GCC unroll 16
    for (; i < 16; i++)
        SHA1_ROUND(d ^ (b & (c ^ d)), 0x5A827999u); /* (b & c) | (~b & d) */
#pragma GCC unroll 4
    for (; i < 20; i++) {
        SHA1_NEXT_W(i);
        SHA1_ROUND(d ^ (b & (c ^ d)), 0x5A827999u);
    }
#pragma GCC unroll 20
    for (; i < 40; i++) {
        SHA1_NEXT_W(i);
        SHA1_ROUND(b ^ c ^ d, 0x6ED9EBA1u);
    }
#pragma GCC unroll 20
    for (; i < 60; i++) {
        SHA1_NEXT_W(i);
        SHA1_ROUND((b & c) | (d & (b | c)), 0x8F1BBCDCu); /* majority */
    }
#pragma GCC unroll 20
    for (; i < 80; i++) {
        SHA1_NEXT_W(i);
        SHA1_ROUND(b ^ c ^ d, 0xCA62C1D6u);
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}
#undef SHA1_NEXT_W
#undef SHA1_ROUND

static void sha1(const uint8_t *msg, size_t len, uint8_t out[20])
{
    uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
    size_t done = 0;
    for (; len - done >= 64; done += 64)
        sha1_block(h, msg + done);
    uint8_t tail[128];
    size_t rest = len - done;
    memset(tail, 0, sizeof tail);
    if (rest)
        memcpy(tail, msg + done, rest);
    tail[rest] = 0x80;
    size_t blocks = rest + 1 + 8 <= 64 ? 1 : 2;
    uint64_t bits = (uint64_t)len * 8u;
    for (int i = 0; i < 8; i++)
        tail[blocks * 64 - 1 - (size_t)i] = (uint8_t)(bits >> (8 * i));
    for (size_t i = 0; i < blocks; i++)
        sha1_block(h, tail + 64 * i);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
}

/* The Community ID spec's ICMP/ICMPv6 type -> counterpart type (-1: a one-way type), as
 * netwatch/flow/ids.py's _ICMP4_PAIRS/_ICMP6_PAIRS. */
static long icmp_peer(long proto, long type)
{
    static const int v4[][2] = {{8, 0}, {0, 8}, {13, 14}, {14, 13}, {15, 16},
                                {16, 15}, {17, 18}, {18, 17}, {10, 9}, {9, 10}};
    static const int v6[][2] = {{128, 129}, {129, 128}, {133, 134}, {134, 133}, {135, 136},
                                {136, 135}, {130, 131}, {131, 130}, {144, 145}, {145, 144}};
    const int(*pairs)[2] = proto == 1 ? v4 : v6;
    for (int i = 0; i < 10; i++)
        if (pairs[i][0] == type)
            return pairs[i][1];
    return -1;
}

/* Community ID v1 (seed 0) of two addresses of alen (4 or 16) bytes, protocol 0..255 and
 * ports 0..65535, as netwatch.flow.ids.community_id: "1:" + base64(SHA-1(seed, ordered
 * addresses, protocol, a zero byte, ordered ports)). */
static PyObject *community_id_text(const uint8_t *sa, const uint8_t *da, size_t alen,
                                   long proto, long sport, long dport)
{
    int order = 1; /* the ends are ordered (the ICMP one-way case keeps them as seen) */
    if (proto == 1 || proto == 58) {
        long peer = icmp_peer(proto, sport);
        if (peer < 0)
            order = 0;
        else
            dport = peer;
    }
    if (order) {
        int c = memcmp(sa, da, alen);
        if (c > 0 || (c == 0 && sport > dport)) {
            const uint8_t *ta = sa;
            sa = da;
            da = ta;
            long tp = sport;
            sport = dport;
            dport = tp;
        }
    }
    uint8_t data[2 + 16 + 16 + 6], digest[20];
    size_t n = 0;
    data[n++] = 0; /* seed 0, 16 bits */
    data[n++] = 0;
    memcpy(data + n, sa, alen);
    n += alen;
    memcpy(data + n, da, alen);
    n += alen;
    data[n++] = (uint8_t)proto;
    data[n++] = 0;
    data[n++] = (uint8_t)(sport >> 8);
    data[n++] = (uint8_t)sport;
    data[n++] = (uint8_t)(dport >> 8);
    data[n++] = (uint8_t)dport;
    sha1(data, n, digest);
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    PyObject *text = PyUnicode_New(30, 127);
    if (text == NULL)
        return NULL;
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(text);
    *out++ = '1';
    *out++ = ':';
    for (int i = 0; i < 18; i += 3) { /* 6 whole groups, then 2 bytes and one pad */
        uint32_t g = (uint32_t)digest[i] << 16 | (uint32_t)digest[i + 1] << 8 | digest[i + 2];
        *out++ = (Py_UCS1)b64[g >> 18];
        *out++ = (Py_UCS1)b64[(g >> 12) & 63];
        *out++ = (Py_UCS1)b64[(g >> 6) & 63];
        *out++ = (Py_UCS1)b64[g & 63];
    }
    uint32_t g = (uint32_t)digest[18] << 16 | (uint32_t)digest[19] << 8;
    *out++ = (Py_UCS1)b64[g >> 18];
    *out++ = (Py_UCS1)b64[(g >> 12) & 63];
    *out++ = (Py_UCS1)b64[(g >> 6) & 63];
    *out = '=';
    return text;
}

/* An address's text as socket.inet_ntop gives it: IPv6 by libc's inet_ntop (which Python
 * calls too), IPv4 as the four bytes in decimal without leading zeros, joined by dots
 * (what inet_ntop's "%u.%u.%u.%u" writes, without printf). */
static PyObject *address_text(const uint8_t *a, size_t alen)
{
    char buf[INET6_ADDRSTRLEN];
    if (alen == 4) {
        char *p = buf;
        for (int i = 0; i < 4; i++) {
            unsigned v = a[i];
            if (v >= 100) {
                *p++ = (char)('0' + v / 100);
                v %= 100;
                *p++ = (char)('0' + v / 10);
            } else if (v >= 10) {
                *p++ = (char)('0' + v / 10);
            }
            *p++ = (char)('0' + v % 10);
            if (i < 3)
                *p++ = '.';
        }
        return PyUnicode_DecodeASCII(buf, p - buf, NULL);
    }
    if (inet_ntop(AF_INET6, a, buf, sizeof buf) == NULL)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyUnicode_DecodeASCII(buf, (Py_ssize_t)strlen(buf), NULL);
}

/* mac.hex(":") for non-empty bytes, None for None or b"" (the reference's `if mac`). */
static PyObject *mac_text(PyObject *mac)
{
    Py_ssize_t n = PyBytes_GET_SIZE(mac);
    if (n == 0)
        Py_RETURN_NONE;
    if (n > PY_SSIZE_T_MAX / 3)
        return PyErr_NoMemory();
    static const char hex[] = "0123456789abcdef";
    const uint8_t *b = (const uint8_t *)PyBytes_AS_STRING(mac);
    PyObject *text = PyUnicode_New(3 * n - 1, 127);
    if (text == NULL)
        return NULL;
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(text);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i)
            *out++ = ':';
        *out++ = (Py_UCS1)hex[b[i] >> 4];
        *out++ = (Py_UCS1)hex[b[i] & 15];
    }
    return text;
}

/* An exact int in [lo, hi] into *out; 0 when o is anything else. */
static int int_in(PyObject *o, long lo, long hi, long *out)
{
    if (!PyLong_CheckExact(o))
        return 0;
    int overflow;
    long v = PyLong_AsLongAndOverflow(o, &overflow);
    if (overflow || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

/* A counter cell the builder can read: an int or float kept in C, or an exact int held as
 * an object (beyond 64 bits) or a bool; its truth value in *truth. 0: anything else. */
static int counter_ok(const nw_flow *f, int i, int *truth)
{
    switch (f->tag[i]) {
    case NW_INT:
        *truth = f->val[i].i != 0;
        return 1;
    case NW_FLOAT:
        *truth = f->val[i].d != 0.0; /* NaN is true, as in Python */
        return 1;
    case NW_OBJ: {
        PyObject *o = f->val[i].o;
        if (PyBool_Check(o))
            *truth = o == Py_True;
        else if (PyLong_CheckExact(o))
            *truth = Py_SIZE(o) != 0;
        else
            return 0;
        return 1;
    }
    default:
        return 0;
    }
}

/* x rounded as round(x, 6) (x an exact float).
 *
 * Shortcut, exact: when |x| < 2**33 and x is the double nearest to N / 10**6 for the
 * integer N nearest to x * 10**6 (checked: N / 1e6, both exact doubles, is the correctly
 * rounded quotient), round(x, 6) is x. Proof: x is then within half an ulp of N / 10**6,
 * and an ulp below 2**33 is at most 2**-20 < 10**-6, so x's exact value is strictly less
 * than half a unit of the sixth decimal from N / 10**6: rounding it to six decimals gives
 * N / 10**6 exactly (no tie), and float.__round__ returns the double nearest to that, x
 * (its sign too: -0.0 stays -0.0, as it does here). Any other x (most differences of two
 * times) goes to float.__round__ itself. */
static PyObject *round6(PyObject *x)
{
    double v = PyFloat_AS_DOUBLE(x);
    if (fabs(v) < 8589934592.0) { /* 2**33; NaN fails this test */
        double n = nearbyint(v * 1e6);
        if (n / 1e6 == v) {
            Py_INCREF(x);
            return x;
        }
    }
    PyObject *args[2] = {x, int_six};
    return PyObject_Vectorcall(float_round, args, 2, NULL);
}

/* Put value under key (the record, a copy of rec_template, has None there already). */
static inline int rec_set(PyObject *rec, int key, PyObject *value)
{
    return value == Py_None ? 0 : PyDict_SetItem(rec, rec_keys[key], value);
}

/* Put a new reference (stolen; NULL: an error already set) into the record. */
static int rec_put(PyObject *rec, int key, PyObject *value)
{
    if (value == NULL)
        return -1;
    int rc = rec_set(rec, key, value);
    Py_DECREF(value);
    return rc;
}

/* The flow table's Flow and Endpoint (strong references; record_types sets them): the
 * builder takes flows and endpoints of exactly these types, and nothing else. */
static PyTypeObject *record_flow_type, *record_end_type;

static PyObject *core_record_types(PyObject *self, PyObject *args)
{
    (void)self;
    PyTypeObject *flow, *end;
    if (!PyArg_ParseTuple(args, "O!O!:record_types", &PyType_Type, &flow, &PyType_Type, &end))
        return NULL;
    if (plain_subclass(flow, &FlowBaseType) < 0 || plain_subclass(end, &EndpointBaseType) < 0)
        return NULL;
    Py_INCREF(flow);
    Py_XSETREF(record_flow_type, flow);
    Py_INCREF(end);
    Py_XSETREF(record_end_type, end);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(record_types_doc,
"record_types(flow_type, endpoint_type, /)\n\n"
"The flow table's Flow and Endpoint (plain subclasses of FlowBase and EndpointBase, whose\n"
"Endpoint.size is the reference's): flow_record builds the record of flows of exactly\n"
"flow_type, with TCP endpoints of exactly endpoint_type.");

/* An endpoint's field as a C integer within +-2**61 (no sum or difference below can
 * overflow); 0 for anything else (the reference then answers). */
static int end_int(const nw_endpoint *e, int i, long long *out)
{
    PyObject *v = e->obj[i];
    if (v == NULL || !PyLong_CheckExact(v))
        return 0;
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || x <= -NW_SAFE || x >= NW_SAFE)
        return 0;
    *out = x;
    return 1;
}

/* The fields of an endpoint the summary reads (netwatch/flow/tcpstate.py). */
typedef struct {
    long long state, prev, base, acked, fin, missed, seqmax;
} nw_end_view;


static int end_view(PyObject *e, nw_end_view *v)
{
    if (Py_TYPE(e) != record_end_type)
        return 0;
    const nw_endpoint *p = (const nw_endpoint *)e;
    if (p->tag[EC_SEQMAX] != NW_INT || p->val[EC_SEQMAX].i <= -NW_SAFE
        || p->val[EC_SEQMAX].i >= NW_SAFE)
        return 0;
    v->seqmax = p->val[EC_SEQMAX].i;
    return end_int(p, EO_STATE, &v->state) && end_int(p, EO_PREV, &v->prev)
           && end_int(p, EO_BASE, &v->base) && end_int(p, EO_ACKED, &v->acked)
           && end_int(p, EO_FIN, &v->fin) && end_int(p, EO_MISSED, &v->missed);
}

/* Endpoint.size (tcpstate.py): payload bytes in sequence space, seen or acknowledged. */
static long long end_size(const nw_end_view *e, const nw_end_view *peer)
{
    if (e->base < 0)
        return 0;
    if (e->state == NW_TCP_RESET && e->prev == NW_TCP_SYN_SENT && peer->state == NW_TCP_INACTIVE
        && e->acked > e->base)
        return 0; /* a half-open connection aborted by the SYN sender */
    long long top = e->seqmax > e->acked ? e->seqmax : e->acked;
    if (0 <= e->fin && e->fin < top)
        top -= 1; /* the FIN octet is not data */
    return top - e->base > 0 ? top - e->base : 0;
}

/* tcpstate._RSTOS0.fullmatch(history): "^"?, "S", letters none of HAFGIQ, "R", anything. */
static int rstos0(PyObject *history)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(history), i = 0;
    int kind = PyUnicode_KIND(history);
    const void *data = PyUnicode_DATA(history);
    if (i < n && PyUnicode_READ(kind, data, i) == '^')
        i++;
    if (i >= n || PyUnicode_READ(kind, data, i) != 'S')
        return 0;
    for (i++; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c == 'R')
            return 1;
        if (c == 'H' || c == 'A' || c == 'F' || c == 'G' || c == 'I' || c == 'Q')
            return 0;
    }
    return 0;
}


/* tcpstate.conn_state: Zeek's conn_state of a TCP connection from its two endpoints. */
static int conn_state_of(const nw_end_view *o, const nw_end_view *r, PyObject *history)
{
    long long os = o->state, rs = r->state;
    int o_inactive = os == NW_TCP_INACTIVE || os == NW_TCP_PARTIAL;
    int r_inactive = rs == NW_TCP_INACTIVE || rs == NW_TCP_PARTIAL;
    if (rs == NW_TCP_RESET) {
        if (os == NW_TCP_SYN_SENT || os == NW_TCP_SYN_ACK_SENT
            || (os == NW_TCP_RESET && end_size(o, r) == 0 && end_size(r, o) == 0))
            return CS_REJ;
        return o_inactive ? CS_RSTRH : CS_RSTR;
    }
    if (os == NW_TCP_RESET) {
        if (r_inactive)
            return rstos0(history) ? CS_RSTOS0 : CS_OTH;
        return CS_RSTO;
    }
    if (rs == NW_TCP_CLOSED && os == NW_TCP_CLOSED)
        return CS_SF;
    if (os == NW_TCP_CLOSED)
        return r_inactive ? CS_SH : CS_S2;
    if (rs == NW_TCP_CLOSED)
        return o_inactive ? CS_SHR : CS_S3;
    if (os == NW_TCP_SYN_SENT && rs == NW_TCP_INACTIVE)
        return CS_S0;
    if (os == NW_TCP_ESTABLISHED && rs == NW_TCP_ESTABLISHED)
        return CS_S1;
    return CS_OTH;
}

/* transport_summary of a TCP flow (tcpstate.py's sizes and conn_state, the history joined)
 * into new references; 0 when its endpoints or history are not of the table's shape. */
static int tcp_summary(const nw_flow *f, PyObject **ob, PyObject **rb, PyObject **missed,
                       PyObject **state, PyObject **history)
{
    PyObject *tcp = f->obj[FO_TCP], *hist = f->obj[FO_HIST];
    nw_end_view o, r;
    if (!PyTuple_CheckExact(tcp) || PyTuple_GET_SIZE(tcp) != 2
        || !end_view(PyTuple_GET_ITEM(tcp, 0), &o) || !end_view(PyTuple_GET_ITEM(tcp, 1), &r))
        return 0;
    PyObject *h;
    if (hist == Py_None) {
        h = Py_NewRef(rec_texts[RT_EMPTY]);
    } else if (PyList_CheckExact(hist)) {
        Py_ssize_t n = PyList_GET_SIZE(hist);
        for (Py_ssize_t i = 0; i < n; i++)
            if (!PyUnicode_CheckExact(PyList_GET_ITEM(hist, i)))
                return 0;
        h = n == 0 ? Py_NewRef(rec_texts[RT_EMPTY]) : PyUnicode_Join(rec_texts[RT_EMPTY], hist);
        if (h == NULL)
            return -1;
    } else {
        return 0;
    }
    *ob = PyLong_FromLongLong(end_size(&o, &r));
    *rb = PyLong_FromLongLong(end_size(&r, &o));
    *missed = PyLong_FromLongLong(o.missed + r.missed);
    *state = Py_NewRef(conn_states[conn_state_of(&o, &r, h)]);
    *history = h;
    if (*ob == NULL || *rb == NULL || *missed == NULL) {
        Py_XDECREF(*ob);
        Py_XDECREF(*rb);
        Py_XDECREF(*missed);
        Py_DECREF(*state);
        Py_DECREF(h);
        return -1;
    }
    return 1;
}

static PyObject *core_flow_record(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2 + NW_REC_ENRICH) {
        PyErr_Format(PyExc_TypeError, "flow_record takes %d arguments (%zd given)",
                     2 + NW_REC_ENRICH, nargs);
        return NULL;
    }
    PyObject *flow = args[0], *summary = args[1];
    if (record_flow_type == NULL || Py_TYPE(flow) != record_flow_type)
        Py_RETURN_NONE; /* not the flow table's Flow (record_types) */
    nw_flow *f = (nw_flow *)flow;
    PyObject **o = f->obj;
    for (int i = 0; i < FO_COUNT; i++)
        if (o[i] == NULL) /* an attribute deleted: the reference raises its AttributeError */
            Py_RETURN_NONE;
    /* the shape the flow table makes; anything else goes to the reference builder */
    long proto, sport, dport, vlan_lo;
    PyObject *oh = o[FO_ORIG_H], *rh = o[FO_RESP_H], *om = o[FO_ORIG_MAC], *rm = o[FO_RESP_MAC];
    PyObject *first = o[FO_FIRST], *stop = o[FO_STOP], *vlan = o[FO_VLAN];
    if (!int_in(o[FO_PROTO], 0, 255, &proto) || !int_in(o[FO_ORIG_P], 0, 65535, &sport)
        || !int_in(o[FO_RESP_P], 0, 65535, &dport) || !PyBytes_CheckExact(oh)
        || !PyBytes_CheckExact(rh) || PyBytes_GET_SIZE(oh) != PyBytes_GET_SIZE(rh)
        || (PyBytes_GET_SIZE(oh) != 4 && PyBytes_GET_SIZE(oh) != 16)
        || (om != Py_None && !PyBytes_CheckExact(om)) || (rm != Py_None && !PyBytes_CheckExact(rm))
        || !PyFloat_CheckExact(first) || !PyFloat_CheckExact(stop) || f->tag[FC_LAST] != NW_FLOAT
        || !PyLong_CheckExact(vlan))
        Py_RETURN_NONE;
    int o_pkts, r_pkts, unused;
    int tcp = o[FO_TCP] != Py_None;
    for (int i = FC_O_PKTS; i < FC_COUNT; i++)
        if (!counter_ok(f, i, &unused))
            Py_RETURN_NONE;
    counter_ok(f, FC_O_PKTS, &o_pkts);
    counter_ok(f, FC_R_PKTS, &r_pkts);
    int given = tcp && PyTuple_CheckExact(summary) && PyTuple_GET_SIZE(summary) == 5;
    PyObject *state, *history, *ob_bytes, *rb_bytes, *missed;
    if (tcp && !given) { /* worked out here, or the reference's transport_summary */
        int ok = tcp_summary(f, &ob_bytes, &rb_bytes, &missed, &state, &history);
        if (ok <= 0)
            return ok < 0 ? NULL : Py_NewRef(Py_None);
    }
    int flipped = 0;
    if (!tcp && proto == 17) {
        PyObject *hist = o[FO_HIST];
        if (hist == Py_None)
            flipped = 0;
        else if (PyList_CheckExact(hist))
            flipped = PyList_GET_SIZE(hist) != 0;
        else if (PyUnicode_CheckExact(hist))
            flipped = PyUnicode_GET_LENGTH(hist) != 0;
        else
            Py_RETURN_NONE;
    }
    {
        int overflow;
        vlan_lo = PyLong_AsLongAndOverflow(vlan, &overflow);
        if (overflow)
            vlan_lo = overflow; /* only its sign matters */
    }

    PyObject *rec = PyDict_Copy(rec_template);
    if (rec == NULL) {
        if (tcp && !given) {
            Py_DECREF(ob_bytes);
            Py_DECREF(rb_bytes);
            Py_DECREF(missed);
            Py_DECREF(state);
            Py_DECREF(history);
        }
        return NULL;
    }
    double t0 = PyFloat_AS_DOUBLE(first), t1 = PyFloat_AS_DOUBLE(stop);
    if (!(t1 >= 0))
        t1 = f->val[FC_LAST].d;
    double dur = t1 - t0;
    const uint8_t *ob = (const uint8_t *)PyBytes_AS_STRING(oh);
    const uint8_t *rb = (const uint8_t *)PyBytes_AS_STRING(rh);
    size_t alen = (size_t)PyBytes_GET_SIZE(oh);
    PyObject *const *enrich = args + 2;
    if (given) {
        ob_bytes = Py_NewRef(PyTuple_GET_ITEM(summary, 0));
        rb_bytes = Py_NewRef(PyTuple_GET_ITEM(summary, 1));
        missed = Py_NewRef(PyTuple_GET_ITEM(summary, 2));
        state = Py_NewRef(PyTuple_GET_ITEM(summary, 3));
        history = Py_NewRef(PyTuple_GET_ITEM(summary, 4));
    } else if (tcp) {
        /* tcp_summary's, above */
    } else {
        if (proto == 17) {
            int st, hi;
            if (o_pkts && !flipped) {
                st = r_pkts ? RT_SF : RT_S0;
                hi = r_pkts ? RT_Dd : RT_D;
            } else {
                st = o_pkts ? (r_pkts ? RT_SF : RT_S0) : (r_pkts ? RT_SHR : RT_OTH);
                if (flipped)
                    hi = r_pkts ? (o_pkts ? RT_FLIP_dD : RT_FLIP_d) : (o_pkts ? RT_FLIP_D : RT_FLIP);
                else
                    hi = r_pkts ? RT_d : RT_EMPTY; /* o_pkts is 0 here */
            }
            state = Py_NewRef(rec_texts[st]);
            history = Py_NewRef(rec_texts[hi]);
        } else {
            state = Py_NewRef(rec_texts[RT_OTH]);
            history = Py_NewRef(rec_texts[RT_EMPTY]);
        }
        if (proto == 17 || proto == 1 || proto == 58) {
            ob_bytes = cell_get(flow, &flow_cells[FC_O_BYTES]);
            rb_bytes = cell_get(flow, &flow_cells[FC_R_BYTES]);
        } else { /* other IP protocols: Zeek does not size their payload */
            ob_bytes = PyLong_FromLong(0);
            rb_bytes = PyLong_FromLong(0);
        }
        missed = PyLong_FromLong(0);
    }
    int text = proto == 6 ? RT_TCP : proto == 17 ? RT_UDP
             : (proto == 1 || proto == 58) ? RT_ICMP : RT_UNKNOWN;
    int rc = 0;
    rc |= rec_put(rec, RK_TS, round6(first));
    rc |= rec_set(rec, RK_UID, o[FO_UID]);
    rc |= rec_put(rec, RK_ORIG_H, address_text(ob, alen));
    rc |= rec_set(rec, RK_ORIG_P, o[FO_ORIG_P]);
    rc |= rec_put(rec, RK_RESP_H, address_text(rb, alen));
    rc |= rec_set(rec, RK_RESP_P, o[FO_RESP_P]);
    rc |= rec_set(rec, RK_PROTO, rec_texts[text]);
    rc |= rec_set(rec, RK_IP_PROTO, o[FO_PROTO]);
    rc |= rec_set(rec, RK_SERVICE, enrich[0]);
    if (dur != 0.0) { /* 0.0 (and -0.0) stay what they are: round() is not called */
        PyObject *d = PyFloat_FromDouble(dur);
        rc |= rec_put(rec, RK_DURATION, d == NULL ? NULL : round6(d));
        Py_XDECREF(d);
    } else {
        rc |= rec_put(rec, RK_DURATION, PyFloat_FromDouble(dur));
    }
    rc |= rec_put(rec, RK_ORIG_BYTES, ob_bytes);
    rc |= rec_put(rec, RK_RESP_BYTES, rb_bytes);
    rc |= rec_put(rec, RK_CONN_STATE, state);
    rc |= rec_put(rec, RK_HISTORY, history);
    rc |= rec_set(rec, RK_LOCAL_ORIG, enrich[1]);
    rc |= rec_set(rec, RK_LOCAL_RESP, enrich[2]);
    rc |= rec_put(rec, RK_MISSED, missed);
    rc |= rec_put(rec, RK_ORIG_PKTS, cell_get(flow, &flow_cells[FC_O_PKTS]));
    rc |= rec_put(rec, RK_ORIG_IPB, cell_get(flow, &flow_cells[FC_O_IPB]));
    rc |= rec_put(rec, RK_RESP_PKTS, cell_get(flow, &flow_cells[FC_R_PKTS]));
    rc |= rec_put(rec, RK_RESP_IPB, cell_get(flow, &flow_cells[FC_R_IPB]));
    rc |= rec_put(rec, RK_COMMUNITY_ID, community_id_text(ob, rb, alen, proto, sport, dport));
    rc |= rec_put(rec, RK_ORIG_L2, om == Py_None ? Py_NewRef(Py_None) : mac_text(om));
    rc |= rec_put(rec, RK_RESP_L2, rm == Py_None ? Py_NewRef(Py_None) : mac_text(rm));
    rc |= rec_set(rec, RK_VLAN, vlan_lo >= 0 ? vlan : Py_None);
    for (int i = 3; i < NW_REC_ENRICH; i++)
        rc |= rec_set(rec, rec_enrich_keys[i], enrich[i]);
    if (rc) {
        Py_DECREF(rec);
        return NULL;
    }
    return rec;
}

PyDoc_STRVAR(flow_record_doc,
"flow_record(flow, tcp_summary, service, local_orig, local_resp, resp_cc, resp_asn,\n"
"            resp_org, orig_cc, resp_name, orig_device, resp_device, vendor, server_name,\n"
"            http_host, user_agent, server, dns_query, /)\n\n"
"The flow-log record of an ended flow, as netwatch.flow.record.reference_record builds it:\n"
"tcp_summary is transport_summary(flow) for a TCP flow, or None (then worked out here from\n"
"the endpoints); the rest are put in under their keys. None when the flow is not of the\n"
"types (record_types) and shape the flow table makes (the reference builder takes it).");

static PyObject *core_community_id(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer sa, da;
    long proto, sport, dport;
    if (!PyArg_ParseTuple(args, "y*y*lll:community_id", &sa, &da, &proto, &sport, &dport))
        return NULL;
    PyObject *res;
    if (sa.len != da.len || (sa.len != 4 && sa.len != 16) || proto < 0 || proto > 255
        || sport < 0 || sport > 65535 || dport < 0 || dport > 65535) {
        PyErr_SetString(PyExc_ValueError, "community_id: 4- or 16-byte addresses, "
                                          "protocol 0..255, ports 0..65535");
        res = NULL;
    } else {
        res = community_id_text(sa.buf, da.buf, (size_t)sa.len, proto, sport, dport);
    }
    PyBuffer_Release(&sa);
    PyBuffer_Release(&da);
    return res;
}

PyDoc_STRVAR(community_id_doc,
"community_id(saddr, daddr, proto, sport, dport, /)\n\n"
"Community ID v1 (seed 0) as flow_record computes it: what netwatch.flow.ids.community_id\n"
"gives for two 4- or 16-byte addresses, protocol 0..255 and ports 0..65535.");

static PyObject *core_sha1(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
        return NULL;
    uint8_t digest[20];
    sha1(b.buf, (size_t)b.len, digest);
    PyBuffer_Release(&b);
    return PyBytes_FromStringAndSize((const char *)digest, 20);
}

PyDoc_STRVAR(sha1_doc, "sha1(data, /)\n\nThe SHA-1 digest flow_record's Community ID uses "
                       "(for the tests: hashlib.sha1(data).digest()).");

/* ---- The flow log's per-record check (netwatch.output.flowlog.encode_line) -------------
 *
 * json_plain(record): for an exact dict, 2 when a value is not of the types orjson writes
 * as the standard encoder does (exactly str, int, float, bool or None), else 1 when a float
 * is neither zero nor of a magnitude from 1e-4 to the largest finite float (NaN included),
 * else 0; None for anything but an exact dict (the Python check takes it). The same answer
 * as encode_line's type scan and float test, in one C call. */
static PyObject *core_json_plain(PyObject *self, PyObject *record)
{
    (void)self;
    if (!PyDict_CheckExact(record))
        Py_RETURN_NONE;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    long answer = 0;
    while (PyDict_Next(record, &pos, &key, &value)) {
        PyTypeObject *t = Py_TYPE(value);
        if (t == &PyFloat_Type) {
            double x = PyFloat_AS_DOUBLE(value), ax = fabs(x);
            if (x != 0.0 && !(ax >= 1e-4 && ax <= DBL_MAX))
                answer = 1;
        } else if (t != &PyUnicode_Type && t != &PyLong_Type && t != &PyBool_Type
                   && value != Py_None) {
            return PyLong_FromLong(2);
        }
    }
    return PyLong_FromLong(answer);
}

PyDoc_STRVAR(json_plain_doc,
"json_plain(record, /)\n\n"
"The flow log's check of a record (an exact dict; None for anything else): 0 when orjson\n"
"writes it as the standard encoder does, 1 when a float needs writing as its repr, 2 when\n"
"a value is not a plain str, int, float, bool or None.");

static PyMethodDef core_methods[] = {
    {"json_plain", core_json_plain, METH_O, json_plain_doc},
    {"walk_pcap", core_walk_pcap, METH_VARARGS, walk_pcap_doc},
    {"flow_record", (PyCFunction)(void (*)(void))core_flow_record, METH_FASTCALL, flow_record_doc},
    {"record_types", core_record_types, METH_VARARGS, record_types_doc},
    {"community_id", core_community_id, METH_VARARGS, community_id_doc},
    {"sha1", core_sha1, METH_O, sha1_doc},
    {NULL, NULL, 0, NULL},
};

static int core_exec(PyObject *m)
{
    fill_getsets(flow_getset, flow_cells, FC_COUNT);
    fill_getsets(end_getset, end_cells, EC_COUNT);
    if (record_init() < 0)
        return -1;
    if ((int_zero = PyLong_FromLong(0)) == NULL
        || (str_created = PyUnicode_InternFromString("created")) == NULL
        || (str_next_sweep = PyUnicode_InternFromString("next_sweep")) == NULL)
        return -1;
    if (PyType_Ready(&FlowBaseType) < 0 || PyModule_AddType(m, &FlowBaseType) < 0
        || PyType_Ready(&EndpointBaseType) < 0 || PyModule_AddType(m, &EndpointBaseType) < 0
        || PyType_Ready(&FastLoopType) < 0 || PyModule_AddType(m, &FastLoopType) < 0)
        return -1;
    if (PyModule_AddIntConstant(m, "RECORD_SIZE", (long)sizeof(nw_record)) < 0
        || PyModule_AddIntConstant(m, "FRESH_PACKETS", (long)NW_FRESH) < 0)
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
    .m_doc = "netwatch's compiled per-packet core: pcap record walk, common-shape decode, the "
             "fused loop's fast branch and the C fields of flows and TCP endpoints.",
    .m_size = 0,
    .m_methods = core_methods,
    .m_slots = core_slots,
};

PyMODINIT_FUNC PyInit__core(void) { return PyModuleDef_Init(&core_module); }
