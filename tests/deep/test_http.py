"""Tests for netwatch.deep.http: requests, responses, SSDP, truncation, never-raise properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.deep.http import (
    MAX_HEAD_BYTES,
    MAX_HEADERS,
    HttpRequest,
    HttpResponse,
    _cut_head,
    normalize_host,
    parse_head,
    parse_http_request,
    parse_http_response,
)
from tests.conftest import corpus_file
from tests.deep.test_dns import l4_payloads, mutate
from tests.profile import examples

SOAP_POST = (
    b"POST /ctl/IPConn HTTP/1.1\r\n"
    b"Host: 192.168.1.1:5431\r\n"
    b"User-Agent: Linux/3.10 UPnP/1.0 IPCam/1.0\r\n"
    b'SOAPAction: "urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping"\r\n'
    b"Content-Type: text/xml\r\n"
    b"Content-Length: 900\r\n"
    b"\r\n"
    b'<?xml version="1.0"?><s:Envelope'
)


def test_request_with_host_port_and_truncated_body() -> None:
    request = parse_http_request(SOAP_POST)
    assert request is not None
    assert (request.method, request.uri, request.host) == ("POST", "/ctl/IPConn", "192.168.1.1")
    assert request.user_agent == "Linux/3.10 UPnP/1.0 IPCam/1.0"
    assert ("content-length", "900") in request.headers
    assert request.headers[2][0] == "soapaction"


def test_host_normalisation() -> None:
    assert normalize_host("API.Hik-Connect.COM.:443") == "api.hik-connect.com"
    assert normalize_host("[2001:DB8::1]:8080") == "2001:db8::1"
    assert normalize_host("2001:db8::1") == "2001:db8::1"
    assert normalize_host("") is None
    assert normalize_host("bad\x00host") is None
    assert normalize_host("a" * 300) is None
    assert normalize_host(None) is None


def test_headers_cut_mid_line_keep_the_complete_ones() -> None:
    request = parse_http_request(b"GET /cgi-bin/x HTTP/1.1\r\nHost: cam.local\r\nUser-Agent: Moz")
    assert request is not None
    assert request.host == "cam.local"
    assert request.user_agent is None  # the cut final line is dropped
    bare = parse_http_request(b"GET / HTTP/1.0")
    assert bare is not None
    assert (bare.method, bare.uri, bare.headers) == ("GET", "/", ())


def test_lf_only_obs_fold_and_junk_lines() -> None:
    data = (
        b"HTTP/1.0 401 Unauthorized\n"
        b"Server: Boa/0.94\n"
        b'WWW-Authenticate: Digest realm="IP Camera",\n'
        b'  nonce="abc"\n'
        b"this line has no colon\n"
        b"bad name: x\n"
        b"\n"
        b"<html>\r\n\r\n</html>"
    )
    response = parse_http_response(data)
    assert response is not None
    assert (response.status, response.reason, response.server) == (401, "Unauthorized", "Boa/0.94")
    assert response.www_authenticate == 'Digest realm="IP Camera", nonce="abc"'
    assert [name for name, _ in response.headers] == ["server", "www-authenticate"]
    head = parse_head(data)
    assert head is not None
    assert head.body == b"<html>\r\n\r\n</html>"


def test_header_count_is_capped() -> None:
    data = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(200)) + b"\r\n"
    request = parse_http_request(data)
    assert request is not None
    assert len(request.headers) == MAX_HEADERS


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n\r\n",
        b"1FOO / HTTP/1.1\r\n\r\n",
        b"G(ET / HTTP/1.1\r\n\r\n",
        b"GET / RTSP/1.0\r\n\r\n",
        b"GET /\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00",
    ],
)
def test_not_a_request_is_none(data: bytes) -> None:
    assert parse_http_request(data) is None


def test_any_token_method_is_a_request() -> None:
    """Zeek's HTTP analyzer takes any method token (RFC 9110 lets servers define more)."""
    req = parse_http_request(b"QUERY /users HTTP/1.1\r\nHost: a\r\n\r\n")
    assert req is not None and (req.method, req.host) == ("QUERY", "a")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"HTTP/1.1 abc OK\r\n",
        b"RTSP/1.0 200 OK\r\n",
        b"HTTP/1.1 099 x\r\n",
        b"GET / HTTP/1.1\r\n",
    ],
)
def test_not_a_response_is_none(data: bytes) -> None:
    assert parse_http_response(data) is None


def test_response_without_reason() -> None:
    response = parse_http_response(b"HTTP/1.1 204\r\n\r\n")
    assert response == HttpResponse(204, "", None, None, ())


# ---- real captures -----------------------------------------------------------------------


def test_vlan_capture_request_and_response() -> None:
    segments = list(l4_payloads(corpus_file("pcaps", "encapsulation", "zeek_http-vlan-0.pcap")))
    request = parse_http_request(segments[0].payload)
    assert request == HttpRequest(
        method="GET",
        uri="/download/CHANGES.bro-aux.txt",
        host="bro.org",
        user_agent="Wget/1.14 (darwin12.2.0)",
        headers=(
            ("user-agent", "Wget/1.14 (darwin12.2.0)"),
            ("accept", "*/*"),
            ("host", "bro.org"),
            ("connection", "Keep-Alive"),
        ),
    )
    response = parse_http_response(segments[1].payload)
    assert response is not None
    assert (response.status, response.server) == (200, "Apache/2.4.3 (Fedora)")
    assert parse_http_request(segments[2].payload) is None  # body continuation


def test_ssdp_notify_and_m_search_captures() -> None:
    (notify,) = [
        parse_http_request(seg.payload)
        for seg in l4_payloads(corpus_file("pcaps", "protocols", "sv_ssdp.pcap"))
    ]
    assert notify is not None
    assert (notify.method, notify.uri, notify.host) == ("NOTIFY", "*", "239.255.255.250")
    assert ("location", "http://192.168.1.1:7406/rootDesc.xml") in notify.headers  # "lOCATION"
    searches = [
        parse_http_request(seg.payload)
        for seg in l4_payloads(corpus_file("pcaps", "protocols", "ndpi_ssdp-m-search-ua.pcap"))
    ]
    assert {s.method for s in searches if s is not None} == {"M-SEARCH"}
    assert searches[0] is not None
    assert searches[0].user_agent == "Google Chrome/99.0.4844.74 Mac OS X"


# ---- properties --------------------------------------------------------------------------


@settings(max_examples=examples(2000), deadline=None)
@given(st.binary(max_size=400), st.sampled_from([b"", b"GET / HTTP/1.1\r\n", b"HTTP/1.1 200 "]))
def test_random_bytes_never_raise(data: bytes, prefix: bytes) -> None:
    request = parse_http_request(prefix + data)
    response = parse_http_response(prefix + data)
    assert request is None or isinstance(request, HttpRequest)
    assert response is None or isinstance(response, HttpResponse)


@settings(max_examples=examples(2000), deadline=None)
@given(st.binary(max_size=10))
def test_truncated_or_bit_flipped_messages_never_raise(noise: bytes) -> None:
    payload = mutate(SOAP_POST, noise)
    request = parse_http_request(payload)
    assert request is None or request.host is None or request.host == request.host.lower()
    assert parse_http_response(payload) is None or b"HTTP/" in payload


def _cut_head_reference(data: bytes) -> tuple[bytes, bytes | None]:
    """``_cut_head`` as it was written before (the earliest blank line of either kind, by a
    list of both finds and ``min``): the reference for the two-find version."""
    found = [
        (end, len(separator))
        for separator in (b"\r\n\r\n", b"\n\n")
        if (end := data.find(separator, 0, MAX_HEAD_BYTES)) >= 0
    ]
    if found:
        end, size = min(found)
        return data[:end], data[end + size :]
    last_newline = data.rfind(b"\n", 0, MAX_HEAD_BYTES)
    if last_newline >= 0:
        return data[:last_newline], None
    return data[:MAX_HEAD_BYTES], None


_HEAD_PIECES = st.sampled_from([b"\r", b"\n", b"\r\n", b"\n\n", b"\r\n\r\n", b"a", b": ", b" "])


@settings(max_examples=examples(3000), deadline=None)
@given(st.lists(_HEAD_PIECES, max_size=24).map(b"".join), st.integers(0, 3))
def test_cut_head_matches_the_reference(data: bytes, where: int) -> None:
    """Both blank-line kinds, in either order, nested in each other, and straddling the
    ``MAX_HEAD_BYTES`` bound (the data placed just before it)."""
    pad = (b"", b"x" * (MAX_HEAD_BYTES - 3), b"x" * (MAX_HEAD_BYTES - 1), b"x" * MAX_HEAD_BYTES)
    data = pad[where] + data
    assert _cut_head(data) == _cut_head_reference(data)
