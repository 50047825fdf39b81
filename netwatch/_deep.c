/* netwatch._deep: the compiled part of the deep parsers (issue 13: the Python cost per
 * payload handed back by the fast loop).
 *
 * What it does: dns_scan() walks one DNS message as netwatch/deep/dns.py's _parse_py does
 * (the question, then the class-IN A, AAAA and CNAME answers, names decoded as
 * netwatch/deep/dnsname.py's read_name decodes them: the same pointer, length and UTF-8
 * rules), leaving the names' normalisation to the Python; dns_message() gives, in one call
 * per message, what netwatch/deep/dns.py's DnsParser takes from it (dns._summary_py: the QR
 * bit, the first question's name normalised as dns.normalize_name does, QDCOUNT, and
 * dns._chain of the kept answers with the addresses packed, the passive DNS cache's key),
 * each distinct name of a message normalised once; client_hello_body() reads a complete TLS ClientHello body (legacy_version
 * onwards) exactly as netwatch/deep/tls.py's _parse_body_py does: the same checks in the
 * same order, the same answer (None where the Python answers None), first extension of a
 * kind wins, GREASE (RFC 8701) left out of the versions and the cipher count. It returns
 * the raw bytes of the first host_name entry of server_name (the Python decodes and
 * normalises them, as before), the versions, the ALPN names (decoded as ASCII with
 * backslashreplace, as the Python does) and the cipher count. tests/deep/test_tls_differential.py
 * and tests/deep/test_tls.py compare it with the Python body reader and the reference copy
 * on every captured hello, cut and bit-flipped copies and generated ones;
 * tests/deep/test_dns_differential.py does the same for dns_scan and dns_message.
 * payload_first() is the payload signatures' scan without its regexes
 * (netwatch/signatures/match.py's _Conditions.hit over a row of candidates: offset checks,
 * masked offset checks, substrings in the first `limit` bytes), compared with the Python
 * scan by tests/signatures/test_match.py.
 *
 * It reads only inside the bytes object it was given: every offset is checked against the
 * body's or message's length before it is read; a compression pointer must point before
 * the name part it is in, so every walk of a name ends. Config read: none. Known limits: none beyond the
 * Python's (this is the same reader).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

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


/* ---- DNS: netwatch/deep/dns.py's message walk ------------------------------------------ */

#define DNS_HEADER 12
#define DNS_MAX_QUESTIONS 64 /* dns.MAX_QUESTIONS */
#define DNS_MAX_ANSWERS 64   /* dns.MAX_ANSWERS */
#define DNS_MAX_NAME 255     /* dnsname.MAX_NAME_BYTES */
#define DNS_A 1
#define DNS_CNAME 5
#define DNS_AAAA 28
#define DNS_IN 1

/* netwatch.deep.dnsname.read_name's walk: the name at off with its labels joined by '.'
 * into text (at most DNS_MAX_NAME - 1 bytes: labels and dots add up to at most 255), its
 * length in *n and the offset just past it in *next; -1 where the Python answers None for
 * a reason other than the bytes not being UTF-8. */
static int name_bytes(const uint8_t *buf, size_t size, size_t off, char *text, size_t *n,
                      size_t *next)
{
    size_t len = 0, total = 0, end = 0, start = off;
    int first = 1;
    for (;;) {
        if (off >= size)
            return -1;
        size_t length = buf[off];
        if (length == 0)
            break;
        if (length < 0x40) {
            off++;
            total += length + 1;
            if (total > DNS_MAX_NAME)
                return -1;
            /* a label may run past the end: Python's slice takes what is there, and the
             * next read then finds off >= size */
            size_t have = off < size ? size - off : 0;
            size_t take = length < have ? length : have;
            if (!first)
                text[len++] = '.';
            memcpy(text + len, buf + off, take);
            len += take;
            first = 0;
            off += length;
        } else if (length >= 0xC0) {
            if (off + 1 >= size)
                return -1;
            size_t pointer = ((length & 0x3F) << 8) | buf[off + 1];
            if (pointer >= start)
                return -1;
            if (!end)
                end = off + 2;
            start = off = pointer;
        } else {
            return -1;
        }
    }
    *n = len;
    *next = end ? end : off + 1;
    return 0;
}

/* netwatch.deep.dnsname.read_name: the name at off as a str (a new reference) and *next
 * just past it; Py_None (a new reference) where the Python answers None; NULL on an error
 * other than a UnicodeDecodeError. */
static PyObject *read_name(const uint8_t *buf, size_t size, size_t off, size_t *next)
{
    char text[DNS_MAX_NAME + 1];
    size_t n = 0, after = 0;
    if (name_bytes(buf, size, off, text, &n, &after) < 0)
        Py_RETURN_NONE;
    PyObject *name = PyUnicode_DecodeUTF8(text, (Py_ssize_t)n, NULL);
    if (name == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
            return NULL;
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    *next = after;
    return name;
}

/* dns._skip_name: the offset just past the name at off, without decoding it; -1 if cut. */
static Py_ssize_t skip_name(const uint8_t *buf, size_t size, size_t off)
{
    while (off < size) {
        size_t length = buf[off];
        if (length == 0)
            return (Py_ssize_t)(off + 1);
        if (length >= 0xC0)
            return off + 2 <= size ? (Py_ssize_t)(off + 2) : -1;
        if (length > 63)
            return -1;
        off += 1 + length;
    }
    return -1;
}

/* What dns_scan and dns_message read first, as dns._parse does: the payload (bytes, else a
 * TypeError), its header's fields, how many questions and answer records to walk (at most
 * DNS_MAX_QUESTIONS and DNS_MAX_ANSWERS; no answers when the questions are more: the answer
 * section cannot be located without every question). */
typedef struct {
    const uint8_t *buf;
    size_t size, txid, flags, qdcount, questions, answers;
} dns_head;

/* 1 with *h filled; 0 for a payload shorter than the header (the message is None); -1 with
 * a TypeError naming fn when arg is not bytes. */
static int dns_header(PyObject *arg, const char *fn, dns_head *h)
{
    if (!PyBytes_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "%s() takes bytes", fn);
        return -1;
    }
    h->buf = (const uint8_t *)PyBytes_AS_STRING(arg);
    h->size = (size_t)PyBytes_GET_SIZE(arg);
    if (h->size < DNS_HEADER)
        return 0;
    size_t ancount = u16(h->buf + 6);
    h->txid = u16(h->buf);
    h->flags = u16(h->buf + 2);
    h->qdcount = u16(h->buf + 4);
    h->questions = h->qdcount < DNS_MAX_QUESTIONS ? h->qdcount : DNS_MAX_QUESTIONS;
    if (h->qdcount > DNS_MAX_QUESTIONS)
        ancount = 0;
    h->answers = ancount < DNS_MAX_ANSWERS ? ancount : DNS_MAX_ANSWERS;
    return 1;
}

/* One resource record's fixed part, as dns._parse's answer loop reads it. */
typedef struct {
    size_t name_off; /* the owner name */
    size_t data;     /* RDATA's first byte */
    size_t rdlen;
    unsigned rtype, rclass;
    unsigned long ttl;
} dns_rr;

/* The record at *off: 1 with *rr filled and *off just past its RDATA; 0 when it is cut (the
 * walk stops there). */
static int dns_record(const uint8_t *buf, size_t size, size_t *off, dns_rr *rr)
{
    size_t at = *off;
    Py_ssize_t after = skip_name(buf, size, at);
    if (after < 0 || (size_t)after + 10 > size)
        return 0;
    rr->name_off = at;
    at = (size_t)after;
    rr->rtype = (unsigned)u16(buf + at);
    rr->rclass = (unsigned)u16(buf + at + 2);
    rr->ttl = ((unsigned long)buf[at + 4] << 24) | ((unsigned long)buf[at + 5] << 16)
              | ((unsigned long)buf[at + 6] << 8) | buf[at + 7];
    rr->rdlen = u16(buf + at + 8);
    rr->data = at + 10;
    if (rr->data + rr->rdlen > size)
        return 0;
    *off = rr->data + rr->rdlen;
    return 1;
}

/* A record both walks keep: A, AAAA or CNAME of class IN (mDNS's cache-flush bit aside). */
static inline int dns_kept(const dns_rr *rr)
{
    return (rr->rtype == DNS_A || rr->rtype == DNS_AAAA || rr->rtype == DNS_CNAME)
           && (rr->rclass & 0x7FFF) == DNS_IN;
}

/* One kept answer before normalisation: (owner, rtype, value, ttl); value is the CNAME's
 * target name or the address as inet_ntop writes it. Py_None where dns._make_record
 * answers None for reasons other than a name's normalisation; NULL on an error. */
static PyObject *answer(const uint8_t *buf, size_t size, size_t name_off, size_t off,
                        size_t rdlen, unsigned rtype, unsigned long ttl)
{
    size_t unused;
    PyObject *owner = read_name(buf, size, name_off, &unused);
    if (owner == NULL || owner == Py_None)
        return owner;
    PyObject *value;
    if (rtype == DNS_CNAME) {
        size_t next = 0;
        value = read_name(buf, size, off, &next);
        if (value != NULL && value != Py_None && next > off + rdlen) {
            Py_DECREF(value);
            value = Py_NewRef(Py_None);
        }
    } else {
        size_t want = rtype == DNS_A ? 4 : 16;
        if (rdlen != want) {
            value = Py_NewRef(Py_None);
        } else {
            char text[INET6_ADDRSTRLEN];
            if (inet_ntop(rtype == DNS_A ? AF_INET : AF_INET6, buf + off, text, sizeof text)
                == NULL) {
                Py_DECREF(owner);
                return PyErr_SetFromErrno(PyExc_OSError);
            }
            value = PyUnicode_FromString(text);
        }
    }
    if (value == NULL || value == Py_None) {
        Py_DECREF(owner);
        return value;
    }
    return Py_BuildValue("NINk", owner, rtype, value, ttl);
}

PyDoc_STRVAR(dns_scan_doc,
"dns_scan(payload, /) -> (txid, is_response, qname, qtype, rcode, answers) | None\n"
"\n"
"Walk one DNS message as netwatch.deep.dns._parse does, before names are normalised:\n"
"None where it answers None; qname is the first question's name as decoded (None when\n"
"there is no question or it is not UTF-8 ...), answers the class-IN A, AAAA and CNAME\n"
"records (owner, rtype, value, ttl) whose names decode, value being the CNAME target or\n"
"the address text.");

static PyObject *dns_scan(PyObject *module, PyObject *arg)
{
    (void)module;
    dns_head h;
    int rc = dns_header(arg, "dns_scan", &h);
    if (rc <= 0)
        return rc < 0 ? NULL : Py_NewRef(Py_None);
    const uint8_t *buf = h.buf;
    size_t size = h.size;
    PyObject *qname = Py_NewRef(Py_None), *qtype = Py_NewRef(Py_None);
    size_t off = DNS_HEADER;
    for (size_t index = 0; index < h.questions; index++) {
        size_t next = 0;
        PyObject *name = read_name(buf, size, off, &next);
        if (name == NULL || name == Py_None || next + 4 > size) {
            Py_DECREF(qname);
            Py_DECREF(qtype);
            if (name == NULL)
                return NULL;
            Py_DECREF(name);
            Py_RETURN_NONE;
        }
        off = next;
        if (index == 0) {
            Py_SETREF(qname, name);
            Py_SETREF(qtype, PyLong_FromSize_t(u16(buf + off)));
            if (qtype == NULL) {
                Py_DECREF(qname);
                return NULL;
            }
        } else {
            Py_DECREF(name);
        }
        off += 4;
    }
    PyObject *answers = PyList_New(0);
    if (answers == NULL)
        goto fail;
    dns_rr rr;
    for (size_t i = 0; i < h.answers && dns_record(buf, size, &off, &rr); i++) {
        if (dns_kept(&rr)) {
            PyObject *kept = answer(buf, size, rr.name_off, rr.data, rr.rdlen, rr.rtype, rr.ttl);
            if (kept == NULL)
                goto fail;
            rc = kept == Py_None ? 0 : PyList_Append(answers, kept);
            Py_DECREF(kept);
            if (rc < 0)
                goto fail;
        }
    }
    return Py_BuildValue("nONNnN", (Py_ssize_t)h.txid, (h.flags & 0x8000) ? Py_True : Py_False,
                         qname, qtype, (Py_ssize_t)(h.flags & 0xF), answers);
fail:
    Py_DECREF(qname);
    Py_DECREF(qtype);
    Py_XDECREF(answers);
    return NULL;
}

/* ---- DNS: one call per message for DnsParser (dns._summary_py) ------------------------- */

#define DNS_MAX_NAME_CHARS 253 /* dns.MAX_NAME_CHARS */
#define DNS_MAX_CHAIN_STEPS 16 /* dns.MAX_CHAIN_STEPS */
#define DNS_POOL 16            /* distinct names remembered per message */

/* The names of one message already decoded and normalised, by their decoded bytes: a
 * message names the same few names over and over (the question, then each answer's owner),
 * so each is normalised once and the records share one str (compared by identity first). */
typedef struct {
    size_t count;
    size_t len[DNS_POOL];
    char raw[DNS_POOL][DNS_MAX_NAME];
    PyObject *norm[DNS_POOL]; /* normalize_name's answer: a str or Py_None */
} name_pool;

static void pool_clear(name_pool *pool)
{
    for (size_t i = 0; i < pool->count; i++)
        Py_DECREF(pool->norm[i]);
    pool->count = 0;
}

/* dns.normalize_name of the name whose UTF-8 bytes are text[:n] (a new reference: the
 * lowercased str, or Py_None); NULL with UnicodeDecodeError when they are not UTF-8
 * (read_name's None), NULL on another error. */
static PyObject *normalized(const char *text, size_t n)
{
    size_t i = 0;
    while (i < n && !((unsigned char)text[i] & 0x80))
        i++;
    if (i == n) { /* ASCII: the checks and the lowercasing on the bytes */
        if (n > 0 && text[n - 1] == '.')
            n--;
        if (n == 0 || n > DNS_MAX_NAME_CHARS)
            Py_RETURN_NONE;
        for (i = 0; i < n; i++)
            if ((unsigned char)text[i] < 0x20 || text[i] == 0x7F)
                Py_RETURN_NONE;
        PyObject *out = PyUnicode_New((Py_ssize_t)n, 127);
        if (out == NULL)
            return NULL;
        Py_UCS1 *data = PyUnicode_1BYTE_DATA(out);
        for (i = 0; i < n; i++) {
            unsigned char c = (unsigned char)text[i];
            data[i] = c >= 'A' && c <= 'Z' ? (Py_UCS1)(c + 32) : c;
        }
        return out;
    }
    PyObject *name = PyUnicode_DecodeUTF8(text, (Py_ssize_t)n, NULL);
    if (name == NULL)
        return NULL;
    Py_ssize_t chars = PyUnicode_GET_LENGTH(name);
    if (chars > 0 && PyUnicode_READ_CHAR(name, chars - 1) == '.')
        chars--;
    int bad = chars == 0 || chars > DNS_MAX_NAME_CHARS;
    for (Py_ssize_t k = 0; !bad && k < chars; k++) {
        Py_UCS4 c = PyUnicode_READ_CHAR(name, k);
        bad = c <= 0x1F || (c >= 0x7F && c <= 0x9F);
    }
    if (bad) {
        Py_DECREF(name);
        Py_RETURN_NONE;
    }
    PyObject *cut = PyUnicode_Substring(name, 0, chars);
    Py_DECREF(name);
    if (cut == NULL)
        return NULL;
    PyObject *lower = PyObject_CallMethod(cut, "lower", NULL); /* Unicode rules, as Python's */
    Py_DECREF(cut);
    return lower;
}

/* The normalised name at off (a new reference: str, or Py_None when normalize_name answers
 * None) and *next just past it; 0 when read_name answers None (cut, malformed, not UTF-8);
 * -1 with an exception set on another error. */
static int pooled_name(name_pool *pool, const uint8_t *buf, size_t size, size_t off,
                       size_t *next, PyObject **out)
{
    char text[DNS_MAX_NAME];
    size_t n = 0;
    if (name_bytes(buf, size, off, text, &n, next) < 0)
        return 0;
    for (size_t i = 0; i < pool->count; i++)
        if (pool->len[i] == n && memcmp(pool->raw[i], text, n) == 0) {
            *out = Py_NewRef(pool->norm[i]);
            return 1;
        }
    PyObject *norm = normalized(text, n);
    if (norm == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    if (pool->count < DNS_POOL) {
        size_t i = pool->count++;
        pool->len[i] = n;
        memcpy(pool->raw[i], text, n);
        pool->norm[i] = Py_NewRef(norm);
    }
    *out = norm;
    return 1;
}

/* One kept answer, its names normalised: the owner, and the CNAME target or the address
 * bytes (within the message). */
typedef struct {
    PyObject *name;   /* owned */
    PyObject *target; /* owned; NULL for an address */
    const uint8_t *addr;
    size_t addr_len;
    unsigned long ttl;
} kept_answer;

static inline int same_name(PyObject *a, PyObject *b)
{
    return a == b || (a != Py_None && b != Py_None && PyUnicode_Compare(a, b) == 0);
}

/* dns._chain over the kept answers, the addresses packed: [(address, asked name, ttl)] in
 * the order of each address's first A/AAAA record. */
static PyObject *chain(const kept_answer *rec, size_t count, PyObject *qname)
{
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < count; i++) {
        if (rec[i].target != NULL)
            continue;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = rec[j].target == NULL && rec[j].addr_len == rec[i].addr_len
                   && memcmp(rec[j].addr, rec[i].addr, rec[i].addr_len) == 0;
        if (seen)
            continue;
        PyObject *name = rec[i].name;
        unsigned long ttl = rec[i].ttl;
        for (int step = 0; step < DNS_MAX_CHAIN_STEPS; step++) {
            if (same_name(name, qname))
                break;
            const kept_answer *parent = NULL; /* the first CNAME whose target is name */
            for (size_t j = 0; j < count && parent == NULL; j++)
                if (rec[j].target != NULL && same_name(rec[j].target, name))
                    parent = &rec[j];
            if (parent == NULL)
                break;
            name = parent->name;
            ttl = parent->ttl < ttl ? parent->ttl : ttl;
        }
        PyObject *item = Py_BuildValue("y#Ok", (const char *)rec[i].addr,
                                       (Py_ssize_t)rec[i].addr_len, name, ttl);
        if (item == NULL || PyList_Append(out, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(item);
    }
    return out;
}

PyDoc_STRVAR(dns_message_doc,
"dns_message(payload, /) -> (is_response, qname, questions, chain) | None\n"
"\n"
"What netwatch.deep.dns.DnsParser takes from one DNS message, as dns._summary_py gives\n"
"it: None where dns._parse answers None; else the QR bit, the first question's name\n"
"normalised (None when absent or rejected), QDCOUNT, and dns._chain of the kept answers\n"
"as a list of (packed address, asked name, ttl) in the order of first appearance.");

static PyObject *dns_message(PyObject *module, PyObject *arg)
{
    (void)module;
    dns_head h;
    int hrc = dns_header(arg, "dns_message", &h);
    if (hrc <= 0)
        return hrc < 0 ? NULL : Py_NewRef(Py_None);
    const uint8_t *buf = h.buf;
    size_t size = h.size;
    name_pool pool;
    pool.count = 0;
    kept_answer rec[DNS_MAX_ANSWERS];
    size_t kept = 0;
    PyObject *qname = Py_NewRef(Py_None), *result = NULL;
    size_t off = DNS_HEADER;
    for (size_t index = 0; index < h.questions; index++) {
        size_t next = 0;
        PyObject *name = NULL;
        int rc = pooled_name(&pool, buf, size, off, &next, &name);
        if (rc < 0)
            goto done;
        if (rc == 0 || next + 4 > size) {
            Py_XDECREF(name);
            result = Py_NewRef(Py_None);
            goto done;
        }
        if (index == 0)
            Py_SETREF(qname, name);
        else
            Py_DECREF(name);
        off = next + 4;
    }
    dns_rr rr;
    for (size_t i = 0; i < h.answers && dns_record(buf, size, &off, &rr); i++) {
        if (!dns_kept(&rr))
            continue;
        size_t name_off = rr.name_off, data = rr.data, rdlen = rr.rdlen;
        unsigned rtype = rr.rtype;
        size_t unused = 0, end = 0;
        PyObject *owner = NULL, *target = NULL;
        int rc = pooled_name(&pool, buf, size, name_off, &unused, &owner);
        if (rc < 0)
            goto done;
        if (rc == 0 || owner == Py_None) {
            Py_XDECREF(owner);
            continue;
        }
        if (rtype == DNS_CNAME) {
            rc = pooled_name(&pool, buf, size, data, &end, &target);
            if (rc < 0) {
                Py_DECREF(owner);
                goto done;
            }
            if (rc == 0 || target == Py_None || end > data + rdlen) {
                Py_XDECREF(target);
                Py_DECREF(owner);
                continue;
            }
        } else if (rdlen != (rtype == DNS_A ? 4u : 16u)) {
            Py_DECREF(owner);
            continue;
        }
        rec[kept].name = owner;
        rec[kept].target = target;
        rec[kept].addr = buf + data;
        rec[kept].addr_len = rdlen;
        rec[kept].ttl = rr.ttl;
        kept++;
    }
    PyObject *answers = chain(rec, kept, qname);
    if (answers != NULL)
        result = Py_BuildValue("OOnN", (h.flags & 0x8000) ? Py_True : Py_False, qname,
                               (Py_ssize_t)h.qdcount, answers);
done:
    for (size_t i = 0; i < kept; i++) {
        Py_DECREF(rec[i].name);
        Py_XDECREF(rec[i].target);
    }
    pool_clear(&pool);
    Py_DECREF(qname);
    return result;
}


/* ---- payload signatures: the first candidate whose offset checks and substrings hold ---- */

/* One condition of a payload signature, as netwatch/signatures/match.py's _Conditions.hit
 * reads it: `fixed` (offset, bytes) pairs are payload.startswith(value, offset); `masked`
 * (offset, mask bytes, wanted bytes) triples, the two byte strings of one length, are the
 * payload's bytes at offset, all present, each ANDed with the mask byte equal to the wanted
 * byte; `needles` are substrings looked for in the first `limit` bytes. */
static int fixed_hold(const uint8_t *p, Py_ssize_t n, PyObject *fixed)
{
    Py_ssize_t count = PyTuple_GET_SIZE(fixed);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = PyTuple_GET_ITEM(fixed, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 ||
            !PyLong_Check(PyTuple_GET_ITEM(pair, 0)) || !PyBytes_Check(PyTuple_GET_ITEM(pair, 1))) {
            PyErr_SetString(PyExc_TypeError, "fixed: (int, bytes) pairs expected");
            return -1;
        }
        Py_ssize_t off = PyLong_AsSsize_t(PyTuple_GET_ITEM(pair, 0));
        if (off < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "fixed: negative offset");
            return -1;
        }
        PyObject *value = PyTuple_GET_ITEM(pair, 1);
        Py_ssize_t size = PyBytes_GET_SIZE(value);
        /* payload.startswith(value, off): False once off is past the end, even for b"" */
        if (off > n || size > n - off || memcmp(p + off, PyBytes_AS_STRING(value), (size_t)size))
            return 0;
    }
    return 1;
}

static int masked_hold(const uint8_t *p, Py_ssize_t n, PyObject *masked)
{
    Py_ssize_t count = PyTuple_GET_SIZE(masked);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *triple = PyTuple_GET_ITEM(masked, i);
        if (!PyTuple_Check(triple) || PyTuple_GET_SIZE(triple) != 3 ||
            !PyLong_Check(PyTuple_GET_ITEM(triple, 0)) ||
            !PyBytes_Check(PyTuple_GET_ITEM(triple, 1)) ||
            !PyBytes_Check(PyTuple_GET_ITEM(triple, 2)) ||
            PyBytes_GET_SIZE(PyTuple_GET_ITEM(triple, 1)) !=
                PyBytes_GET_SIZE(PyTuple_GET_ITEM(triple, 2))) {
            PyErr_SetString(PyExc_TypeError, "masked: (int, bytes, bytes) of one length expected");
            return -1;
        }
        Py_ssize_t off = PyLong_AsSsize_t(PyTuple_GET_ITEM(triple, 0));
        if (off < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "masked: negative offset");
            return -1;
        }
        const uint8_t *mask = (const uint8_t *)PyBytes_AS_STRING(PyTuple_GET_ITEM(triple, 1));
        const uint8_t *want = (const uint8_t *)PyBytes_AS_STRING(PyTuple_GET_ITEM(triple, 2));
        Py_ssize_t size = PyBytes_GET_SIZE(PyTuple_GET_ITEM(triple, 1));
        if (size > 0 && (off > n || size > n - off))
            return 0; /* the chunk is cut: len(chunk) != size (an empty one never is) */
        for (Py_ssize_t k = 0; k < size; k++)
            if ((p[off + k] & mask[k]) != want[k])
                return 0;
    }
    return 1;
}

/* Whether `needle` occurs in p[0:n] (an empty needle always does, as bytes.find says). */
static int contains(const uint8_t *p, Py_ssize_t n, const uint8_t *needle, Py_ssize_t size)
{
    if (size == 0)
        return 1;
    if (size > n)
        return 0;
    const uint8_t *last = p + (n - size); /* the last place the needle can start */
    const uint8_t *at = p;
    while (at <= last) {
        at = memchr(at, needle[0], (size_t)(last - at) + 1);
        if (at == NULL)
            return 0;
        if (memcmp(at, needle, (size_t)size) == 0)
            return 1;
        at++;
    }
    return 0;
}

static int needles_hold(const uint8_t *p, Py_ssize_t window, PyObject *needles)
{
    Py_ssize_t count = PyTuple_GET_SIZE(needles);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *needle = PyTuple_GET_ITEM(needles, i);
        if (!PyBytes_Check(needle)) {
            PyErr_SetString(PyExc_TypeError, "needles: bytes expected");
            return -1;
        }
        if (!contains(p, window, (const uint8_t *)PyBytes_AS_STRING(needle),
                      PyBytes_GET_SIZE(needle)))
            return 0;
    }
    return 1;
}

PyDoc_STRVAR(payload_first_doc,
             "payload_first(payload, limit, conditions, start, /) -> int\n\n"
             "The index (from start) of the first of conditions, each a (fixed, masked, "
             "needles) tuple, that payload meets: every (offset, bytes) of fixed at its "
             "offset, every (offset, mask, wanted) of masked (payload[offset:offset+len] & "
             "mask == wanted, byte by byte, the chunk whole), every needle within the first "
             "limit bytes; -1 when none does. Regexes are the caller's.");

static PyObject *payload_first(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "payload_first expects 4 arguments");
        return NULL;
    }
    PyObject *conds = args[2];
    if (!PyTuple_Check(conds)) {
        PyErr_SetString(PyExc_TypeError, "conditions: a tuple expected");
        return NULL;
    }
    Py_ssize_t limit = PyLong_AsSsize_t(args[1]);
    if (limit == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t start = PyLong_AsSsize_t(args[3]);
    if (start == -1 && PyErr_Occurred())
        return NULL;
    if (start < 0) {
        PyErr_SetString(PyExc_ValueError, "start must not be negative");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const uint8_t *p = (const uint8_t *)view.buf;
    Py_ssize_t n = view.len;
    /* payload.find(needle, 0, limit): the window is the first limit bytes (none if < 0) */
    Py_ssize_t window = limit < 0 ? 0 : (limit < n ? limit : n);
    Py_ssize_t found = -1, count = PyTuple_GET_SIZE(conds);
    for (Py_ssize_t i = start; i < count; i++) {
        PyObject *c = PyTuple_GET_ITEM(conds, i);
        if (!PyTuple_Check(c) || PyTuple_GET_SIZE(c) != 3 || !PyTuple_Check(PyTuple_GET_ITEM(c, 0)) ||
            !PyTuple_Check(PyTuple_GET_ITEM(c, 1)) || !PyTuple_Check(PyTuple_GET_ITEM(c, 2))) {
            PyErr_SetString(PyExc_TypeError, "conditions: (fixed, masked, needles) tuples expected");
            found = -2;
            break;
        }
        int ok = fixed_hold(p, n, PyTuple_GET_ITEM(c, 0));
        if (ok == 1)
            ok = masked_hold(p, n, PyTuple_GET_ITEM(c, 1));
        if (ok == 1)
            ok = needles_hold(p, window, PyTuple_GET_ITEM(c, 2));
        if (ok < 0) {
            found = -2;
            break;
        }
        if (ok) {
            found = i;
            break;
        }
    }
    PyBuffer_Release(&view);
    if (found == -2)
        return NULL;
    return PyLong_FromSsize_t(found);
}

static PyMethodDef deep_methods[] = {
    {"client_hello_body", client_hello_body, METH_O, client_hello_body_doc},
    {"dns_scan", dns_scan, METH_O, dns_scan_doc},
    {"dns_message", dns_message, METH_O, dns_message_doc},
    {"payload_first", (PyCFunction)(void (*)(void))payload_first, METH_FASTCALL, payload_first_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef deep_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "netwatch._deep",
    .m_doc = "The compiled part of the deep parsers: the DNS message walk, the TLS "
             "ClientHello body reader and the payload signatures' scan (see "
             "netwatch/deep/dns.py, netwatch/deep/tls.py, netwatch/signatures/match.py).",
    .m_size = 0,
    .m_methods = deep_methods,
};

PyMODINIT_FUNC PyInit__deep(void) { return PyModuleDef_Init(&deep_module); }
