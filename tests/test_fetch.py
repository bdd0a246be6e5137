"""zoomreel.net (image download, URL and address rules) against real HTTP(S) servers
on loopback."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st
from loopback import LOOPBACK_FORMS, LoopbackServer, Route, free_port, send

from zoomreel.errors import (
    FetchError,
    ImageTooLargeError,
    InputError,
    TransientFetchError,
    URLRefusedError,
)
from zoomreel.net import addresses, check_url, client, fetch_url, is_forbidden_address, urls

pytestmark = pytest.mark.unit

BODY = bytes(range(256)) * 40  # 10 KiB, not text: bytes must come back unchanged

def ok(handler: BaseHTTPRequestHandler) -> None:
    send(handler, 200, BODY, Content_Type="image/jpeg")


def chunked(total: int) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        sent = 0
        while sent < total:
            piece = b"x" * min(4096, total - sent)
            try:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            except OSError:  # the client stopped reading, as it should
                return
            sent += len(piece)
        handler.wfile.write(b"0\r\n\r\n")

    return route


def close_delimited(total: int) -> Route:
    """An HTTP/1.0-style body: no Content-Length, ends when the connection closes."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True
        handler.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: image/png\r\n\r\n")
        try:
            handler.wfile.write(b"y" * total)
        except OSError:
            pass

    return route


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    s = LoopbackServer()
    s.routes["/img"] = ok
    yield s
    s.close()


# -- downloads ---------------------------------------------------------------------


def test_downloads_bytes_from_loopback_when_allowed(server: LoopbackServer) -> None:
    assert fetch_url(server.url("/img"), allow_private=True) == BODY
    method, path, headers, _ = server.requests[0]
    assert (method, path) == ("GET", "/img")
    assert headers["Host"] == f"127.0.0.1:{server.port}"


def test_path_and_query_are_sent_quoted(server: LoopbackServer) -> None:
    server.routes["/a b/é"] = ok
    server.routes["/a%20b/%C3%A9"] = ok
    fetch_url(server.url("/a b/é?x=1 2"), allow_private=True)
    assert server.requests[0].path == "/a%20b/%C3%A9?x=1%202"


def test_content_length_over_the_cap_is_refused_before_reading(server: LoopbackServer) -> None:
    with pytest.raises(ImageTooLargeError, match="larger than the limit of 1000 bytes"):
        fetch_url(server.url("/img"), allow_private=True, max_bytes=1000)


def test_body_exactly_at_the_cap_is_accepted(server: LoopbackServer) -> None:
    assert fetch_url(server.url("/img"), allow_private=True, max_bytes=len(BODY)) == BODY


@pytest.mark.parametrize("route", [chunked, close_delimited])
def test_streamed_body_over_the_cap_is_cut_off(server: LoopbackServer, route: Callable) -> None:
    server.routes["/stream"] = route(5_000_000)
    with pytest.raises(ImageTooLargeError):
        fetch_url(server.url("/stream"), allow_private=True, max_bytes=100_000)


@pytest.mark.parametrize("route", [chunked, close_delimited])
def test_streamed_body_under_the_cap_arrives_whole(server: LoopbackServer, route: Callable) -> None:
    server.routes["/stream"] = route(20_000)
    assert fetch_url(server.url("/stream"), allow_private=True) == (
        b"x" * 20_000 if route is chunked else b"y" * 20_000
    )


def test_truncated_body_is_transient(server: LoopbackServer) -> None:
    def truncated(handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        handler.wfile.write(b"z" * 10)

    server.routes["/cut"] = truncated
    with pytest.raises(TransientFetchError, match="closed before the whole body"):
        fetch_url(server.url("/cut"), allow_private=True)


def test_404_is_a_permanent_fetch_error(server: LoopbackServer) -> None:
    with pytest.raises(FetchError, match="image_url answered HTTP 404") as info:
        fetch_url(server.url("/missing"), allow_private=True)
    assert not isinstance(info.value, TransientFetchError)


@pytest.mark.parametrize("status", [500, 502, 503, 429, 408])
def test_5xx_and_throttling_are_transient(server: LoopbackServer, status: int) -> None:
    server.routes["/fail"] = lambda h: send(h, status, b"no")
    with pytest.raises(TransientFetchError, match=f"HTTP {status}"):
        fetch_url(server.url("/fail"), allow_private=True)


def test_connection_refused_is_transient() -> None:
    with pytest.raises(TransientFetchError, match="refused the connection"):
        fetch_url(f"http://127.0.0.1:{free_port()}/img", allow_private=True)


def test_read_timeout_is_transient(server: LoopbackServer) -> None:
    server.routes["/slow"] = lambda h: (server.release.wait(10), ok(h))
    with pytest.raises(TransientFetchError, match="timed out"):
        fetch_url(server.url("/slow"), allow_private=True, read_timeout=0.2)


def test_not_http_is_a_permanent_error() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def garbage() -> None:
            conn, _ = listener.accept()
            conn.recv(1000)
            conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
            conn.close()

        threading.Thread(target=garbage, daemon=True).start()
        port = listener.getsockname()[1]
        with pytest.raises(FetchError, match="did not answer valid HTTP"):
            fetch_url(f"http://127.0.0.1:{port}/", allow_private=True)


# -- redirects --------------------------------------------------------------------


def redirect_chain(server: LoopbackServer, length: int, status: int = 302) -> str:
    """/r<length> -> ... -> /r1 -> /img, alternating absolute and relative Locations."""
    for i in range(1, length + 1):
        target = "/img" if i == 1 else f"/r{i - 1}"
        location = server.url(target) if i % 2 else target
        server.routes[f"/r{i}"] = lambda h, loc=location: send(h, status, Location=loc)
    return server.url(f"/r{length}")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_within_the_limit_are_followed(server: LoopbackServer, status: int) -> None:
    assert fetch_url(redirect_chain(server, 3, status), allow_private=True) == BODY
    assert [r[1] for r in server.requests] == ["/r3", "/r2", "/r1", "/img"]


def test_redirects_over_the_limit_are_refused(server: LoopbackServer) -> None:
    with pytest.raises(FetchError, match="redirected more than 3 times"):
        fetch_url(redirect_chain(server, 4), allow_private=True)
    assert "/img" not in [r[1] for r in server.requests]


def test_max_redirects_zero_follows_none(server: LoopbackServer) -> None:
    with pytest.raises(FetchError, match="redirected more than 0 times"):
        fetch_url(redirect_chain(server, 1), allow_private=True, max_redirects=0)
    assert len(server.requests) == 1


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://example.com/x"])
def test_redirect_to_another_scheme_is_refused(server: LoopbackServer, location: str) -> None:
    server.routes["/r"] = lambda h: send(h, 302, Location=location)
    with pytest.raises(URLRefusedError, match="http or https"):
        fetch_url(server.url("/r"), allow_private=True)


def test_redirect_without_location_is_an_error(server: LoopbackServer) -> None:
    server.routes["/r"] = lambda h: send(h, 302)
    with pytest.raises(FetchError, match="without a Location"):
        fetch_url(server.url("/r"), allow_private=True)


# -- the address rule, end to end -------------------------------------------------



@pytest.mark.parametrize("host", LOOPBACK_FORMS)
def test_every_loopback_form_is_refused_and_never_reached(
    server: LoopbackServer, host: str
) -> None:
    url = server.url("/img", host=host)
    with pytest.raises(URLRefusedError) as info:
        fetch_url(url)
    assert isinstance(info.value, InputError)
    with pytest.raises(URLRefusedError):
        check_url(url)
    with pytest.raises(URLRefusedError):
        fetch_url(url.replace("http:", "https:"))
    assert server.requests == []


def test_the_same_server_is_reached_when_private_urls_are_allowed(server: LoopbackServer) -> None:
    # The control for the test above: the refusals are the rule's, not a dead server's.
    fetch_url(server.url("/img", host="localhost"), allow_private=True)
    assert len(server.requests) == 1


@pytest.fixture
def allowed_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    """A server on 127.0.0.2 that the address rule treats as public (test only).

    The connection still goes over real loopback HTTP; only the classification of this
    one address is changed, so every other loopback address stays forbidden.
    """
    real = urls.is_forbidden_address
    allowed = ipaddress.ip_address("127.0.0.2")
    monkeypatch.setattr(
        urls, "is_forbidden_address", lambda ip: None if ip == allowed else real(ip)
    )
    s = LoopbackServer(host="127.0.0.2")
    s.routes["/img"] = ok
    yield s
    s.close()


def test_redirect_from_an_allowed_host_to_loopback_is_refused(
    allowed_server: LoopbackServer, server: LoopbackServer
) -> None:
    for path, target in [
        ("/to-ip", server.url("/img")),
        ("/to-name", server.url("/img", "localhost")),
    ]:
        allowed_server.routes[path] = lambda h, t=target: send(h, 302, Location=t)
        with pytest.raises(URLRefusedError, match="loopback"):
            fetch_url(allowed_server.url(path, host="127.0.0.2"))
    assert [r[1] for r in allowed_server.requests] == ["/to-ip", "/to-name"]
    assert server.requests == []


def test_redirect_between_allowed_addresses_is_followed(allowed_server: LoopbackServer) -> None:
    allowed_server.routes["/r"] = lambda h: send(h, 302, Location="/img")
    assert fetch_url(allowed_server.url("/r", host="127.0.0.2")) == BODY


def test_connection_goes_to_the_checked_address_not_a_second_lookup(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[str] = []

    def resolve(host: str, port: int) -> list[addresses.IPAddress]:
        lookups.append(host)
        return [ipaddress.ip_address("127.0.0.1")]

    # If anything resolved the name itself, "pinned.invalid" would fail: it has no DNS.
    monkeypatch.setattr(urls, "_resolve", resolve)
    assert fetch_url(server.url("/img", host="pinned.invalid"), allow_private=True) == BODY
    assert lookups == ["pinned.invalid"]
    assert server.requests[0].headers["Host"] == f"pinned.invalid:{server.port}"


def test_a_name_with_one_forbidden_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        urls,
        "_resolve",
        lambda host, port: [
            ipaddress.ip_address("93.184.215.14"),
            ipaddress.ip_address("10.0.0.7"),
        ],
    )
    with pytest.raises(URLRefusedError, match=r"resolves to 10\.0\.0\.7.*private"):
        check_url("http://mixed.invalid/")


# -- https: SNI and certificate checks against the name, connection to the address ------


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for img.test (made in process, as ``openssl req -x509``
    would), and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "img.test")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("img.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    d = tmp_path_factory.mktemp("tls")
    crt, key_file = d / "cert.pem", d / "key.pem"
    crt.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return crt, key_file


@pytest.fixture
def tls_server(cert: tuple[Path, Path]) -> Iterator[tuple[LoopbackServer, list[str | None]]]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert)
    names: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment,func-returns-value]
    s = LoopbackServer(tls=context)
    s.routes["/img"] = ok
    yield s, names
    s.close()


@pytest.fixture
def trusting_test_names(cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every host name resolves to 127.0.0.1, and the test certificate's CA is trusted."""
    monkeypatch.setattr(urls, "_resolve", lambda host, port: [ipaddress.ip_address("127.0.0.1")])
    monkeypatch.setattr(
        client, "_ssl_context", lambda: ssl.create_default_context(cafile=str(cert[0]))
    )


@pytest.mark.usefixtures("trusting_test_names")
def test_https_verifies_the_name_and_connects_to_the_checked_address(
    tls_server: tuple[LoopbackServer, list[str | None]],
) -> None:
    server, sni = tls_server
    url = server.url("/img", host="img.test", scheme="https")
    assert fetch_url(url, allow_private=True) == BODY
    assert sni == ["img.test"]
    assert server.requests[0].headers["Host"] == f"img.test:{server.port}"


@pytest.mark.usefixtures("trusting_test_names")
def test_https_with_a_certificate_for_another_name_fails_for_good(
    tls_server: tuple[LoopbackServer, list[str | None]],
) -> None:
    server, _ = tls_server
    with pytest.raises(FetchError, match="failed verification") as info:
        fetch_url(server.url("/img", host="other.test", scheme="https"), allow_private=True)
    assert not isinstance(info.value, TransientFetchError)
    assert server.requests == []


def test_https_with_an_untrusted_certificate_fails(
    tls_server: tuple[LoopbackServer, list[str | None]],
) -> None:
    server, _ = tls_server
    with pytest.raises(FetchError, match="failed verification"):
        fetch_url(server.url("/img", scheme="https"), allow_private=True)
    assert server.requests == []


# -- URL rules at submit time ---------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "http or https"),
        ("ftp://example.com/a.jpg", "http or https"),
        ("gopher://example.com/", "http or https"),
        ("javascript:alert(1)", "http or https"),
        ("example.com/a.jpg", "scheme was none"),
        ("http://user:pass@93.184.215.14/a.jpg", "credentials"),
        ("http://user@93.184.215.14/a.jpg", "credentials"),
        ("http:///a.jpg", "no host"),
        ("http://93.184.215.14:99999/", "not a valid URL"),
        ("http://exa mple.com/", "invalid host name"),
        ("http://a..b/", "invalid host name"),
        ("http://[fe80::1%25eth0]/", "zone id"),
        ("http://2130706433/", "numeric host form"),
        ("http://0x7f.1/", "numeric host form"),
        ("http://0177.0.0.1/", "numeric host form"),
        ("http://127.1/", "numeric host form"),
        ("http://8.8.8.8./", "numeric host form"),
        ("http://example.0x10/", "numeric host form"),
        ("http://10.1.2.3/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://100.64.0.1/", "CGNAT"),
        ("http://[fd12::1]/", "private"),
        ("http://[::ffff:10.0.0.1]/", "IPv4-mapped"),
        ("http://nonexistent.invalid/a.jpg", "could not resolve host 'nonexistent.invalid'"),
    ],
)
def test_check_url_refuses(url: str, message: str) -> None:
    with pytest.raises(URLRefusedError, match=message) as info:
        check_url(url, label="image_url")
    assert str(info.value).startswith("image_url")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    ["http://93.184.215.14/a.jpg", "HTTPS://93.184.215.14:8443/x?y=1#z", "http://[2606:4700::1]/"],
)
def test_check_url_accepts_public_addresses(url: str) -> None:
    check_url(url)  # IP literals: no lookup, no connection


def test_check_url_allow_private_lifts_only_the_address_rule() -> None:
    check_url("http://127.0.0.1:8080/a.jpg", allow_private=True)
    check_url("http://localhost/a.jpg", allow_private=True)
    for url in ["http://127.1/", "file:///etc/passwd", "http://u:p@127.0.0.1/"]:
        with pytest.raises(URLRefusedError):
            check_url(url, allow_private=True)


# -- address classification: pure, no connections -----------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("10.255.255.255", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fdff:ffff::1", "private"),
        ("169.254.0.1", "link-local"),
        ("169.254.169.254", "cloud metadata"),
        ("fe80::1", "link-local"),
        ("febf::1", "link-local"),
        ("100.64.0.0", "CGNAT"),
        ("100.127.255.255", "CGNAT"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("0.1.2.3", "this network"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("192.0.0.8", "reserved"),
        ("192.0.2.1", "documentation"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
        ("2001:db8::1", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("198.19.255.255", "benchmarking"),
        ("::ffff:127.0.0.1", "IPv4-mapped (loopback"),
        ("::ffff:169.254.169.254", "IPv4-mapped (link-local (cloud metadata)"),
        ("::ffff:8.8.8.8", "IPv4-mapped"),
        ("2002:7f00:1::", "6to4 (loopback"),
        ("2002:a00:1::1", "6to4 (private"),
        ("2002:808:808::1", "6to4"),
        ("64:ff9b::7f00:1", "NAT64 (loopback"),
        ("64:ff9b::a9fe:a9fe", "NAT64 (link-local (cloud metadata)"),
        ("64:ff9b:1::1", "local-use NAT64"),
        ("2001::1", "Teredo"),
        ("100::1", "discard-only"),
        ("::127.0.0.1", "reserved"),
        ("fec0::1", "site-local"),
    ],
)
def test_forbidden_addresses(address: str, reason: str) -> None:
    result = is_forbidden_address(ipaddress.ip_address(address))
    assert result is not None and reason in result


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.215.14",
        "100.63.255.255",  # just below CGNAT
        "100.128.0.0",  # just above
        "172.15.255.255",
        "172.32.0.0",
        "169.253.255.255",
        "11.0.0.1",
        "223.255.255.255",
        "2606:4700:4700::1111",
        "2a00:1450:4001::1",
        "64:ff9b::808:808",  # NAT64 of a public address: DNS64 networks must work
    ],
)
def test_public_addresses(address: str) -> None:
    assert is_forbidden_address(ipaddress.ip_address(address)) is None


v4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
v6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)


def in_network(cidr: str) -> st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    net = ipaddress.ip_network(cidr)
    return st.integers(0, net.num_addresses - 1).map(lambda i: net[i])


@given(
    st.one_of(
        *(
            in_network(cidr)
            for cidr in [
                "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
                "100.64.0.0/10", "127.0.0.0/8", "0.0.0.0/8", "224.0.0.0/3",
                "fc00::/7", "fe80::/10", "ff00::/8", "::ffff:0:0/96", "2002::/16", "2001::/32",
            ]
        )
    )
)  # fmt: skip
def test_every_address_of_a_forbidden_range_is_forbidden(ip: addresses.IPAddress) -> None:
    assert is_forbidden_address(ip) is not None


@given(st.one_of(v4, v6))
def test_at_least_as_strict_as_the_standard_library(ip: addresses.IPAddress) -> None:
    if not ip.is_global or ip.is_multicast or ip.is_reserved:
        assert is_forbidden_address(ip) is not None


@given(v4)
def test_ipv6_forms_embedding_ipv4(ip: ipaddress.IPv4Address) -> None:
    mapped = ipaddress.IPv6Address(0xFFFF << 32 | int(ip))
    sixtofour = ipaddress.IPv6Address(0x2002 << 112 | int(ip) << 80)
    nat64 = ipaddress.IPv6Address(0x64FF9B << 96 | int(ip))
    assert is_forbidden_address(mapped) is not None
    assert is_forbidden_address(sixtofour) is not None
    assert (is_forbidden_address(nat64) is None) == (is_forbidden_address(ip) is None)
