/* netwatch._ring: one TPACKET_V3 ring block laid out as classic pcap records, in C.
 *
 * What it does: block_records(ring, base, size) walks the tpacket3_hdr list of the block
 * that starts at byte `base` of the ring mapping and is `size` bytes long, and writes one
 * little-endian classic pcap record (sec, nsec, caplen, wirelen, frame) per frame into one
 * new bytes object, putting back the VLAN tag the kernel stripped (TP_STATUS_VLAN_VALID,
 * with the TPID when TP_STATUS_VLAN_TPID_VALID, else 0x8100) after the two MAC addresses,
 * as libpcap does. It is the C twin of netwatch.capture.afpacket.block_records_py (the
 * reference, and the fallback without a compiler); tests/test_ring.py requires
 * identical output from both on synthetic, corrupt and real blocks.
 *
 * Bounds: nothing outside [base, base + size) is read, whatever the block holds. The walk
 * stops (and returns the frames before) at the first frame whose header or data does not
 * fit in the block, or whose tp_next_offset does not move past its data and header (the
 * kernel's frames never overlap); so a corrupt block yields at most size / 38 + 1 frames
 * and an output below 1.6 x size. One pass: the output is allocated at that bound (tighter
 * with the block's frame count) and shrunk after, so each frame header is read once. The
 * copy runs with the GIL released (the ring's buffer is held, so it cannot be unmapped
 * meanwhile); the caller gives the block back.
 *
 * Config read: none. Known limits: little-endian hosts only (the ring is in host order and
 * the records are written little-endian; netwatch runs on x86_64 and aarch64).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "netwatch._ring writes host-order ring fields as little-endian pcap records"
#endif

#define RG_BLOCK_NUM_PKTS 12u  /* tpacket_block_desc: hdr.bh1.num_pkts */
#define RG_BLOCK_FIRST 16u     /* hdr.bh1.offset_to_first_pkt */
#define RG_BLOCK_HEADER 20u    /* what is read of the block descriptor */
#define RG_HDR3 38u            /* tpacket3_hdr up to tp_vlan_tpid, as the Python reads it */
#define RG_RECORD 16u          /* classic pcap record header */
#define RG_VLAN 4u             /* a re-inserted 802.1Q tag */
#define RG_MACS 12u            /* destination and source MAC: the tag goes after them */
#define RG_STATUS_VLAN_VALID (1u << 4)
#define RG_STATUS_VLAN_TPID_VALID (1u << 6)
#define RG_TPID_8021Q 0x8100u

/* The fields of one tpacket3_hdr the conversion uses. */
typedef struct {
    uint32_t next;
    uint32_t sec;
    uint32_t nsec;
    uint32_t snap;
    uint32_t wirelen;
    uint32_t status;
    uint16_t mac;
    uint32_t tci;
    uint16_t tpid;
} rg_frame;

/* The walk over one block: input bounds, then what was found. */
typedef struct {
    const uint8_t *buf;
    uint64_t base;
    uint64_t end;   /* base + size */
    uint64_t count; /* frames that fit */
    uint64_t bytes; /* their records' total size */
    uint32_t sec;   /* the last frame's stamp */
    uint32_t nsec;
} rg_walk;

static uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint16_t rd16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, sizeof v); }

static void read_frame(const uint8_t *p, rg_frame *f)
{
    f->next = rd32(p);
    f->sec = rd32(p + 4);
    f->nsec = rd32(p + 8);
    f->snap = rd32(p + 12);
    f->wirelen = rd32(p + 16);
    f->status = rd32(p + 20);
    f->mac = rd16(p + 24);
    f->tci = rd32(p + 32);
    f->tpid = rd16(p + 36);
}

static int has_tag(const rg_frame *f)
{
    return (f->status & RG_STATUS_VLAN_VALID)
           && (f->tci != 0 || (f->status & RG_STATUS_VLAN_TPID_VALID));
}

/* Room for the records of any block of `size` bytes whose descriptor says `num` frames:
 * the frames the walk accepts lie one after the other inside the block (each next header
 * past the previous frame's data), so their data sum to at most `size`, and there are at
 * most min(num, size / 38 + 1) of them, each adding a record header and maybe a tag. */
static uint64_t output_bound(uint64_t size, uint32_t num)
{
    uint64_t most = size / RG_HDR3 + 1;
    if (num < most)
        most = num;
    return size + most * (RG_RECORD + RG_VLAN);
}

/* One pass over the block, writing the records into out, at most cap bytes (the bound
 * above: never reached by a block that stays as it was while read). */
static void walk_block(rg_walk *w, uint8_t *out, uint64_t cap)
{
    const uint8_t *b = w->buf + w->base;
    uint64_t size = w->end - w->base;
    w->count = w->bytes = 0;
    w->sec = w->nsec = 0;
    if (size < RG_BLOCK_HEADER)
        return;
    uint32_t num = rd32(b + RG_BLOCK_NUM_PKTS);
    uint64_t off = rd32(b + RG_BLOCK_FIRST); /* relative to the block */
    for (uint32_t i = 0; i < num; i++) {
        if (off > size || size - off < RG_HDR3)
            break;
        rg_frame f;
        read_frame(b + off, &f);
        uint64_t start = off + f.mac;
        if (start > size || size - start < f.snap)
            break;
        int tag = has_tag(&f);
        uint32_t caplen = f.snap + (tag ? RG_VLAN : 0u);
        if (cap - w->bytes < RG_RECORD + (uint64_t)caplen)
            break;
        uint8_t *o = out + w->bytes;
        wr32(o, f.sec);
        wr32(o + 4, f.nsec);
        wr32(o + 8, caplen);
        wr32(o + 12, f.wirelen + (tag ? RG_VLAN : 0u)); /* wraps like the Python's mask */
        o += RG_RECORD;
        const uint8_t *src = b + start;
        if (tag) {
            uint32_t head = f.snap < RG_MACS ? f.snap : RG_MACS;
            uint16_t tpid = (f.status & RG_STATUS_VLAN_TPID_VALID) ? f.tpid
                                                                   : (uint16_t)RG_TPID_8021Q;
            memcpy(o, src, head);
            o[head] = (uint8_t)(tpid >> 8);
            o[head + 1] = (uint8_t)tpid;
            o[head + 2] = (uint8_t)(f.tci >> 8);
            o[head + 3] = (uint8_t)f.tci;
            memcpy(o + head + RG_VLAN, src + head, f.snap - head);
        } else {
            memcpy(o, src, f.snap);
        }
        w->bytes += RG_RECORD + (uint64_t)caplen;
        w->count++;
        w->sec = f.sec;
        w->nsec = f.nsec;
        /* the next header must lie past this one and past this frame's data */
        uint64_t need = (uint64_t)f.mac + f.snap;
        if (need < RG_HDR3)
            need = RG_HDR3;
        if (f.next < need)
            break;
        off += f.next;
    }
}

PyDoc_STRVAR(block_records_doc,
"block_records(ring, base, size, /) -> (records, count, last_ts)\n--\n\n"
"The frames of the TPACKET_V3 block at ring[base:base + size] as little-endian classic\n"
"pcap records (nanosecond stamps, stripped VLAN tags put back): records is a bytes object,\n"
"count the frames in it, last_ts the last frame's stamp in seconds (0.0 without frames).\n"
"Stops at the first frame that does not fit in the block. Does not give the block back.");

static PyObject *ring_block_records(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer view;
    Py_ssize_t base, size;
    if (!PyArg_ParseTuple(args, "y*nn", &view, &base, &size))
        return NULL;
    if (base < 0 || size < 0 || base > view.len || size > view.len - base
        || (uint64_t)size > UINT32_MAX) { /* tp_block_size is 32 bits */
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "block_records: the block is not inside the ring");
        return NULL;
    }
    rg_walk w = {
        .buf = (const uint8_t *)view.buf,
        .base = (uint64_t)base,
        .end = (uint64_t)base + (uint64_t)size,
    };
    uint32_t num = size < RG_BLOCK_HEADER ? 0u : rd32(w.buf + base + RG_BLOCK_NUM_PKTS);
    uint64_t cap = output_bound((uint64_t)size, num); /* below 1.6 x size: fits */
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)cap);
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    walk_block(&w, (uint8_t *)PyBytes_AS_STRING(out), cap);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (w.bytes != cap && _PyBytes_Resize(&out, (Py_ssize_t)w.bytes) < 0)
        return NULL;
    double last = (double)w.sec + (double)w.nsec * 1e-9;
    return Py_BuildValue("NKd", out, (unsigned long long)w.count, last);
}

static PyMethodDef ring_methods[] = {
    {"block_records", ring_block_records, METH_VARARGS, block_records_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef ring_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "netwatch._ring",
    .m_doc = "A TPACKET_V3 ring block as classic pcap records (netwatch/_ring.c).",
    .m_size = 0,
    .m_methods = ring_methods,
};

PyMODINIT_FUNC PyInit__ring(void) { return PyModule_Create(&ring_module); }
