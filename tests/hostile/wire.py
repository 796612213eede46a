"""Wire-level clients for the hostile-input catalogue, each able to send
bytes no well-behaved library would: XML streams over TCP and TLS
(RFC 6120, jabber:client and jabber:server), XMPP over WebSocket
(RFC 6455 framing done by hand, RFC 7395), BOSH (XEP-0124/XEP-0206) and
plain HTTP (XEP-0363 uploads). Every socket has a timeout and every wait
is bounded; what came back is summed up in an `Observed`.
"""

from __future__ import annotations

import base64
import os
import select
import socket
import ssl
import struct
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

STREAMS = "http://etherx.jabber.org/streams"
STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
STANZA_ERRORS = "urn:ietf:params:xml:ns:xmpp-stanzas"
CLIENT = "jabber:client"
SERVER = "jabber:server"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
TLS_NS = "urn:ietf:params:xml:ns:xmpp-tls"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"
SM = "urn:xmpp:sm:3"
FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
HTTPBIND = "http://jabber.org/protocol/httpbind"
XBOSH = "urn:xmpp:xbosh"
DIALBACK = "jabber:server:dialback"

IO_TIMEOUT = 10.0  # any single blocking socket operation
QUIET = 1.5  # how long "nothing more arrives" is waited for


def q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def ns_of(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def tls_context(alpn: str | None = None) -> ssl.SSLContext:
    """Accepts the server's self-signed certificate: the catalogue tests
    what the server does with input, not its certificate."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols([alpn])
    return ctx


def stream_error_of(el: ET.Element) -> str | None:
    """The defined condition of a <stream:error/>."""
    for c in el:
        if ns_of(c.tag) == STREAM_ERRORS and local_name(c.tag) != "text":
            return local_name(c.tag)
    return None


def stanza_error_of(el: ET.Element) -> str | None:
    """The defined condition of a stanza of type 'error' (RFC 6120 §8.3)."""
    if el.get("type") != "error":
        return None
    for err in el:
        if local_name(err.tag) == "error":
            for c in err:
                if ns_of(c.tag) == STANZA_ERRORS and local_name(c.tag) != "text":
                    return local_name(c.tag)
    return "undefined-condition"


def brief(el: ET.Element, limit: int = 300) -> str:
    text = ET.tostring(el, encoding="unicode")
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass
class Observed:
    """What an input got back. Matchers (expect.py) read this."""

    stream_error: str | None = None
    stream_error_el: ET.Element | None = None
    # The peer ended the connection (TCP FIN/RST, TLS alert, WebSocket close).
    closed: bool = False
    # </stream:stream> or RFC 7395 <close/> arrived.
    stream_end: bool = False
    # Top-level elements received (after the input was sent).
    elements: list[ET.Element] = field(default_factory=list)
    # Answers to the probe stanzas an entry tracked (IQ replies, bounces).
    replies: list[ET.Element] = field(default_factory=list)
    http_status: int | None = None
    http_headers: dict[str, str] = field(default_factory=dict)
    http_body: bytes = b""
    ws_close_code: int | None = None
    # The session answered a ping after the input.
    usable: bool | None = None
    # Anything else an entry wants to assert on.
    facts: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def take(self, elements) -> None:
        for el in elements:
            if el.tag == q(STREAMS, "error"):
                self.stream_error = stream_error_of(el)
                self.stream_error_el = el
            self.elements.append(el)

    def summary(self) -> str:
        parts = []
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
            if self.http_body:
                parts.append(f"body={self.http_body[:300]!r}")
        if self.stream_error:
            parts.append(f"stream error <{self.stream_error}/>: {brief(self.stream_error_el)}")
        if self.ws_close_code is not None:
            parts.append(f"WebSocket close code {self.ws_close_code}")
        parts.append(f"closed={self.closed} stream_end={self.stream_end} usable={self.usable}")
        if self.replies:
            parts.append("replies: " + "; ".join(brief(r, 200) for r in self.replies[:5])
                         + (f" (+{len(self.replies) - 5} more)" if len(self.replies) > 5 else ""))
        others = [e for e in self.elements if e.tag != q(STREAMS, "error")]
        if others:
            parts.append(f"{len(others)} elements, last: " + brief(others[-1], 200))
        if self.facts:
            parts.append(f"facts={self.facts}")
        parts += self.notes
        return " | ".join(parts)


class Pull:
    """Top-level elements of one XML stream document, fed incrementally."""

    def __init__(self, wrapped: bool = False):
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.broken = False
        self.header: ET.Element | None = None
        self.ended = False
        if wrapped:
            # Parse bare elements (WebSocket messages) as if inside a stream.
            self.feed(b"<wrapper xmlns='jabber:client'>")
            self.header = None

    def feed(self, data: bytes) -> list[ET.Element]:
        out = []
        if self.broken or not data:
            return out
        try:
            self.parser.feed(data)
            for event, el in self.parser.read_events():
                if event == "start":
                    self.depth += 1
                    if self.depth == 1:
                        self.header = el
                else:
                    self.depth -= 1
                    if self.depth == 1:
                        out.append(el)
                        # Keep memory flat on long floods.
                        if self.header is not None:
                            try:
                                self.header.remove(el)
                            except ValueError:
                                pass
                    elif self.depth == 0:
                        self.ended = True
        except ET.ParseError:
            self.broken = True
        return out


class XmppStream:
    """An RFC 6120 XML stream over TCP, TLS from the first byte (XEP-0368),
    or TLS after STARTTLS; for clients (jabber:client) or servers
    (jabber:server on the s2s port)."""

    def __init__(self, host: str, port: int, domain: str, *, direct_tls: bool = False,
                 content_ns: str = CLIENT, timeout: float = IO_TIMEOUT,
                 alpn: str | None = "xmpp-client"):
        self.host, self.port, self.domain = host, port, domain
        self.content_ns = content_ns
        self.timeout = timeout
        raw = socket.create_connection((host, port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock: socket.socket = raw
        if direct_tls:
            self.sock = tls_context(alpn).wrap_socket(raw, server_hostname=domain)
        self.closed = False
        self.pull = Pull()
        self.pending: list[ET.Element] = []
        self.seen: list[ET.Element] = []  # everything, for observations
        self.raw_in = bytearray()
        self.full_jid: str | None = None
        self.features: ET.Element | None = None

    # -- bytes ---------------------------------------------------------

    def send(self, data: bytes | str) -> bool:
        """False when the peer had closed (the input could not all go)."""
        if isinstance(data, str):
            data = data.encode()
        if self.closed:
            return False
        try:
            self.sock.settimeout(self.timeout)
            self.sock.sendall(data)
            return True
        except (OSError, ssl.SSLError):
            self.closed = True
            return False

    def send_interleaved(self, data: bytes | str, chunk: int = 16384) -> bool:
        """Send a large input in pieces, reading what comes back between
        them, so that a stream error sent while we still write is read
        before the server's close can reset the connection."""
        if isinstance(data, str):
            data = data.encode()
        for i in range(0, len(data), chunk):
            if not self.send(data[i:i + chunk]):
                return False
            self.read_once(0.005)
            if self.closed or any(e.tag == q(STREAMS, "error") for e in self.pending):
                return False
        return True

    def read_once(self, timeout: float) -> bool:
        """One read; True if bytes arrived."""
        if self.closed:
            return False
        try:
            if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
                pass
            else:
                r, _, _ = select.select([self.sock], [], [], max(timeout, 0))
                if not r:
                    return False
            self.sock.settimeout(max(timeout, 0.05))
            data = self.sock.recv(65536)
        except (socket.timeout, TimeoutError, ssl.SSLWantReadError):
            return False
        except (OSError, ssl.SSLError):
            self.closed = True
            return False
        if not data:
            self.closed = True
            return False
        self.raw_in += data
        if len(self.raw_in) > 1 << 20:
            del self.raw_in[: len(self.raw_in) - (1 << 20)]
        els = self.pull.feed(data)
        self.pending += els
        self.seen += els
        if len(self.seen) > 5000:
            del self.seen[:-5000]
        return True

    # -- elements ------------------------------------------------------

    def wait(self, pred, timeout: float | None = None) -> ET.Element:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for i, el in enumerate(self.pending):
                if pred(el):
                    return self.pending.pop(i)
            if any(e.tag == q(STREAMS, "error") for e in self.pending):
                err = next(e for e in self.pending if e.tag == q(STREAMS, "error"))
                raise ConnectionError(f"stream error while waiting: {brief(err)}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching element within the timeout")
            if self.closed:
                raise ConnectionError("connection closed while waiting")
            self.read_once(min(left, 0.5))

    def drain(self, pred=lambda e: True) -> list[ET.Element]:
        taken = [e for e in self.pending if pred(e)]
        self.pending = [e for e in self.pending if not pred(e)]
        return taken

    def collect(self, wait: float = QUIET, until_closed: bool = True,
                stop=None) -> list[ET.Element]:
        """Read until the connection closes (or `stop(element)` matches),
        or `wait` seconds pass; return what arrived."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not self.closed:
            self.read_once(min(0.2, deadline - time.monotonic()))
            if stop and any(stop(e) for e in self.pending):
                break
            if not until_closed and not self.pending:
                continue
        return self.drain()

    def observe(self, wait: float = 5.0, obs: Observed | None = None, until=None) -> Observed:
        """After an input: read until the connection ends, `wait` passes,
        or `until(elements so far)` is true."""
        obs = obs or Observed()
        got: list[ET.Element] = []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not self.closed:
            self.read_once(min(0.2, deadline - time.monotonic()))
            got += self.drain()
            if until and until(got):
                break
            if any(e.tag == q(STREAMS, "error") for e in got):
                break
        obs.take(got)
        # A stream error goes with the closing tag; wait a moment for the close.
        if obs.stream_error and not self.closed:
            self.collect(2.0)
        obs.closed = obs.closed or self.closed
        obs.stream_end = obs.stream_end or self.pull.ended or b"</stream:stream>" in self.raw_in
        return obs

    def reset(self) -> None:
        self.pull = Pull()
        self.pending = []

    # -- negotiation -----------------------------------------------------

    def header(self, to: str | None = None, frm: str | None = None, version: str = "1.0",
               extra: str = "") -> str:
        attrs = f" to={quoteattr(to or self.domain)}"
        if frm:
            attrs += f" from={quoteattr(frm)}"
        db = f" xmlns:db='{DIALBACK}'" if self.content_ns == SERVER else ""
        return (f"<?xml version='1.0'?><stream:stream xmlns='{self.content_ns}'{db} "
                f"xmlns:stream='{STREAMS}'{attrs} version='{version}'{extra}>")

    def open(self, **kw) -> ET.Element:
        """Send a stream header; return the features."""
        self.send(self.header(**kw))
        self.features = self.wait(lambda e: e.tag == q(STREAMS, "features"))
        return self.features

    def starttls(self, alpn: str | None = None) -> None:
        self.send(f"<starttls xmlns='{TLS_NS}'/>")
        self.wait(lambda e: e.tag == q(TLS_NS, "proceed"))
        self.sock = tls_context(alpn).wrap_socket(self.sock, server_hostname=self.domain)
        self.reset()

    def login(self, local: str, password: str, resource: str | None = "hostile",
              starttls: bool = False, bind: bool = True) -> str | None:
        """SASL PLAIN and resource binding (RFC 6120 §6, §7)."""
        self.open()
        if starttls:
            self.starttls()
            self.open()
        token = base64.b64encode(f"\0{local}\0{password}".encode()).decode()
        self.send(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{token}</auth>")
        res = self.wait(lambda e: ns_of(e.tag) == SASL)
        if local_name(res.tag) != "success":
            raise AssertionError(f"authentication failed: {brief(res)}")
        self.reset()
        self.open()
        if not bind:
            return None
        r = f"<resource>{escape(resource)}</resource>" if resource else ""
        self.send(f"<iq type='set' id='bind-1'><bind xmlns='{BIND}'>{r}</bind></iq>")
        bound = self.wait(lambda e: e.get("id") == "bind-1")
        if bound.get("type") != "result":
            raise AssertionError(f"bind failed: {brief(bound)}")
        self.full_jid = bound.find(f".//{q(BIND, 'jid')}").text
        return self.full_jid

    def iq(self, body: str, id: str, to: str | None = None, type: str = "get",
           timeout: float | None = None) -> ET.Element:
        to_attr = f" to={quoteattr(to)}" if to else ""
        self.send(f"<iq type='{type}' id={quoteattr(id)}{to_attr}>{body}</iq>")
        return self.wait(lambda e: local_name(e.tag) == "iq" and e.get("id") == id, timeout)

    def ping(self, timeout: float = 5.0) -> bool:
        """The session still answers (XEP-0199 ping to the server)."""
        pid = f"alive-{time.monotonic_ns()}"
        try:
            r = self.iq("<ping xmlns='urn:xmpp:ping'/>", pid, to=self.domain, timeout=timeout)
            return r.get("type") == "result"
        except (TimeoutError, ConnectionError):
            return False

    def close(self) -> None:
        if not self.closed:
            try:
                self.sock.settimeout(1.0)
                self.sock.sendall(b"</stream:stream>")
            except (OSError, ssl.SSLError):
                pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def raw_bytes_under_tls(stream: XmppStream, data: bytes) -> None:
    """Write bytes straight onto the TCP connection under an established
    TLS session, outside any TLS record: garbage to the server's TLS layer."""
    fd = os.dup(stream.sock.fileno())
    s = socket.socket(fileno=fd)
    try:
        s.settimeout(IO_TIMEOUT)
        s.sendall(data)
    except OSError:
        pass
    finally:
        s.detach()
        os.close(fd)


# -- WebSocket (RFC 6455) --------------------------------------------------


class WsConn:
    """A WebSocket client framed by hand, so that frames can be wrong on
    purpose (unmasked, binary, invalid UTF-8, oversized)."""

    def __init__(self, host: str, port: int, timeout: float = IO_TIMEOUT):
        self.host, self.port = host, port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = bytearray()
        self.closed = False
        self.close_code: int | None = None
        self.messages: list[str] = []
        self.pull = Pull(wrapped=True)
        self.pending: list[ET.Element] = []
        self.full_jid: str | None = None

    def handshake(self, path: str = "/xmpp-websocket", headers: dict | None = None,
                  method: str = "GET") -> tuple[int, dict, bytes]:
        h = {
            "Host": f"{self.host}:{self.port}",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Protocol": "xmpp",
        }
        for k, v in (headers or {}).items():
            if v is None:
                h.pop(k, None)
            else:
                h[k] = v
        req = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
        self.sock.sendall(req.encode())
        status, hdrs, body = read_http_response(self.sock, self.buf, self.timeout,
                                                head_only=True)
        return status, hdrs, body

    def frame(self, opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True,
              rsv: int = 0) -> bytes:
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
        else:
            head = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
        if not mask:
            return head + payload
        key = os.urandom(4)
        masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if n < 4096 else \
            _mask_fast(payload, key)
        return head + key + masked

    def send_raw(self, data: bytes) -> bool:
        if self.closed:
            return False
        try:
            self.sock.settimeout(self.timeout)
            self.sock.sendall(data)
            return True
        except OSError:
            self.closed = True
            return False

    def send_text(self, text: str | bytes) -> bool:
        payload = text.encode() if isinstance(text, str) else text
        return self.send_raw(self.frame(0x1, payload))

    def send_interleaved(self, data: bytes, chunk: int = 16384) -> bool:
        for i in range(0, len(data), chunk):
            if not self.send_raw(data[i:i + chunk]):
                return False
            self.read_once(0.005)
            if self.closed or self.close_code is not None:
                return False
        return True

    def read_once(self, timeout: float) -> bool:
        if self.closed:
            return False
        try:
            r, _, _ = select.select([self.sock], [], [], max(timeout, 0))
            if not r:
                return False
            data = self.sock.recv(65536)
        except OSError:
            self.closed = True
            return False
        if not data:
            self.closed = True
            return False
        self.buf += data
        self._frames()
        return True

    def _frames(self) -> None:
        while len(self.buf) >= 2:
            b0, b1 = self.buf[0], self.buf[1]
            n = b1 & 0x7F
            off = 2
            if n == 126:
                if len(self.buf) < 4:
                    return
                n = struct.unpack("!H", self.buf[2:4])[0]
                off = 4
            elif n == 127:
                if len(self.buf) < 10:
                    return
                n = struct.unpack("!Q", self.buf[2:10])[0]
                off = 10
            if b1 & 0x80:
                off += 4  # servers do not mask; tolerate it anyway
            if len(self.buf) < off + n:
                return
            payload = bytes(self.buf[off:off + n])
            del self.buf[:off + n]
            opcode = b0 & 0x0F
            if opcode == 0x1:
                text = payload.decode("utf-8", "replace")
                self.messages.append(text)
                els = self.pull.feed(payload)
                self.pending += els
            elif opcode == 0x8:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                # Answer the close handshake (RFC 6455 §5.5.1).
                self.send_raw(self.frame(0x8, payload[:2]))
            elif opcode == 0x9:
                self.send_raw(self.frame(0xA, payload))

    def wait(self, pred, timeout: float | None = None) -> ET.Element:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for i, el in enumerate(self.pending):
                if pred(el):
                    return self.pending.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching WebSocket message within the timeout")
            if self.closed:
                raise ConnectionError("WebSocket closed while waiting")
            self.read_once(min(left, 0.5))

    def observe(self, wait: float = 5.0, obs: Observed | None = None) -> Observed:
        obs = obs or Observed()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not self.closed:
            self.read_once(min(0.2, deadline - time.monotonic()))
            if self.close_code is not None:
                # The close frame is the end; give the TCP close a moment.
                end = time.monotonic() + 1.0
                while time.monotonic() < end and not self.closed:
                    self.read_once(0.1)
                break
        obs.take(self.pending)
        self.pending = []
        obs.closed = obs.closed or self.closed or self.close_code is not None
        obs.ws_close_code = self.close_code
        obs.stream_end = any(e.tag == q(FRAMING, "close") for e in obs.elements)
        return obs

    # XMPP over the WebSocket (RFC 7395).

    def open_stream(self, to: str, version: str = "1.0") -> ET.Element:
        self.send_text(f"<open xmlns='{FRAMING}' to={quoteattr(to)} version='{version}'/>")
        self.wait(lambda e: e.tag == q(FRAMING, "open"))
        return self.wait(lambda e: e.tag == q(STREAMS, "features"))

    def login(self, domain: str, local: str, password: str, resource: str = "ws") -> str:
        self.open_stream(domain)
        token = base64.b64encode(f"\0{local}\0{password}".encode()).decode()
        self.send_text(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{token}</auth>")
        res = self.wait(lambda e: ns_of(e.tag) == SASL)
        if local_name(res.tag) != "success":
            raise AssertionError(f"authentication failed: {brief(res)}")
        self.open_stream(domain)
        self.send_text(f"<iq xmlns='jabber:client' type='set' id='bind-1'><bind xmlns='{BIND}'>"
                       f"<resource>{escape(resource)}</resource></bind></iq>")
        bound = self.wait(lambda e: e.get("id") == "bind-1")
        self.full_jid = bound.find(f".//{q(BIND, 'jid')}").text
        return self.full_jid

    def ping(self, domain: str, timeout: float = 5.0) -> bool:
        pid = f"alive-{time.monotonic_ns()}"
        self.send_text(f"<iq xmlns='jabber:client' type='get' id='{pid}' to='{domain}'>"
                       "<ping xmlns='urn:xmpp:ping'/></iq>")
        try:
            return self.wait(lambda e: e.get("id") == pid, timeout).get("type") == "result"
        except (TimeoutError, ConnectionError):
            return False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _mask_fast(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


# -- HTTP ------------------------------------------------------------------


def read_http_response(sock: socket.socket, buf: bytearray, timeout: float,
                       head_only: bool = False) -> tuple[int, dict, bytes]:
    """Read one HTTP/1.1 response (status, lower-cased headers, body).
    `head_only`: stop after the head of a 101 (the rest is WebSocket)."""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no HTTP response head within the timeout")
        sock.settimeout(left)
        data = sock.recv(65536)
        if not data:
            if not buf:
                raise ConnectionError("connection closed without an HTTP response")
            break
        buf += data
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    del buf[:len(head) + 4]
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if status == 101 or (head_only and status < 200):
        return status, headers, b""
    length = headers.get("content-length")
    if length is not None:
        n = int(length)
        while len(buf) < n and time.monotonic() < deadline:
            sock.settimeout(max(deadline - time.monotonic(), 0.05))
            try:
                data = sock.recv(65536)
            except (socket.timeout, TimeoutError):
                break
            if not data:
                break
            buf += data
        body = bytes(buf[:n])
        del buf[:n]
        return status, headers, body
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while time.monotonic() < deadline:
            if b"\r\n" in buf:
                size_line, _, _ = bytes(buf).partition(b"\r\n")
                size = int(size_line.split(b";")[0] or b"0", 16)
                if len(buf) >= len(size_line) + 2 + size + 2:
                    start = len(size_line) + 2
                    body += buf[start:start + size]
                    del buf[:start + size + 2]
                    if size == 0:
                        return status, headers, bytes(body)
                    continue
            sock.settimeout(max(deadline - time.monotonic(), 0.05))
            try:
                data = sock.recv(65536)
            except (socket.timeout, TimeoutError):
                break
            if not data:
                break
            buf += data
        return status, headers, bytes(body)
    # Neither: the body runs to the end of the connection (or it has none).
    if status in (204, 304) or head_only:
        return status, headers, b""
    while time.monotonic() < deadline:
        sock.settimeout(max(min(deadline - time.monotonic(), 1.0), 0.05))
        try:
            data = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            break
        if not data:
            break
        buf += data
    body = bytes(buf)
    buf.clear()
    return status, headers, body


def http_raw(host: str, port: int, request: bytes, timeout: float = IO_TIMEOUT,
             interleave: bool = False) -> Observed:
    """Send one raw HTTP request, read one response."""
    obs = Observed()
    s = socket.create_connection((host, port), timeout=timeout)
    buf = bytearray()
    try:
        try:
            if interleave:
                for i in range(0, len(request), 16384):
                    s.sendall(request[i:i + 16384])
                    r, _, _ = select.select([s], [], [], 0.002)
                    if r:
                        break
            else:
                s.sendall(request)
        except OSError as e:
            obs.notes.append(f"send failed: {e!r}")
        try:
            obs.http_status, obs.http_headers, obs.http_body = read_http_response(s, buf, timeout)
        except (TimeoutError, socket.timeout) as e:
            obs.notes.append(f"no response: {e!r}")
        except (ConnectionError, OSError) as e:
            obs.closed = True
            obs.notes.append(f"connection closed: {e!r}")
    finally:
        s.close()
    return obs


def http_request(host: str, port: int, method: str, path: str, body: bytes | None = None,
                 headers: dict | None = None, timeout: float = IO_TIMEOUT) -> Observed:
    """A well-formed HTTP/1.1 request; hostile only in what it carries."""
    h = {"Host": f"{host}:{port}", "Connection": "close"}
    h.update(headers or {})
    if body is not None and "Content-Length" not in h and "Transfer-Encoding" not in h:
        h["Content-Length"] = str(len(body))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    return http_raw(host, port, head.encode("latin-1") + (body or b""), timeout,
                    interleave=body is not None and len(body) > 65536)


def bosh_post(host: str, port: int, body: bytes | str, headers: dict | None = None,
              timeout: float = IO_TIMEOUT) -> Observed:
    """One BOSH request (XEP-0124 §7); the answer's <body/> in facts['body']."""
    if isinstance(body, str):
        body = body.encode()
    h = {"Content-Type": "text/xml; charset=utf-8"}
    h.update(headers or {})
    obs = http_request(host, port, "POST", "/http-bind", body, h, timeout)
    parse_bosh(obs)
    return obs


def parse_bosh(obs: Observed) -> None:
    if obs.http_body:
        try:
            el = ET.fromstring(obs.http_body)
        except ET.ParseError:
            obs.notes.append("answer is not XML")
            return
        obs.facts["body"] = el
        obs.facts["type"] = el.get("type")
        obs.facts["condition"] = el.get("condition")
        # XEP-0124 §13: a terminating body ends the session and its stream.
        obs.stream_end = el.get("type") == "terminate"
        for child in el:
            if child.tag == q(STREAMS, "error"):
                obs.stream_error = stream_error_of(child)
                obs.stream_error_el = child
            obs.elements.append(child)


class BoshSession:
    """A BOSH session (XEP-0124, XEP-0206) driven request by request."""

    def __init__(self, host: str, port: int, domain: str, wait: int = 2):
        self.host, self.port, self.domain = host, port, domain
        self.rid = 1_000_000 + int.from_bytes(os.urandom(3), "big")
        self.sid: str | None = None
        self.wait = wait
        self.received: list[ET.Element] = []

    def attrs(self) -> str:
        return f"rid='{self.rid}'" + (f" sid='{self.sid}'" if self.sid else "")

    def post(self, inner: str = "", extra: str = "", rid: int | None = None) -> Observed:
        if rid is None:
            self.rid += 1
            rid = self.rid
        sid = f" sid='{self.sid}'" if self.sid else ""
        obs = bosh_post(self.host, self.port,
                        f"<body xmlns='{HTTPBIND}' xmlns:xmpp='{XBOSH}' rid='{rid}'{sid}{extra}>"
                        f"{inner}</body>", timeout=self.wait + IO_TIMEOUT)
        self.received += obs.elements
        return obs

    def create(self, to: str | None = None) -> Observed:
        obs = self.post("", f" to='{to or self.domain}' xml:lang='en' wait='{self.wait}' hold='1'"
                            " ver='1.11' xmpp:version='1.0'")
        body = obs.facts.get("body")
        if body is None or body.get("sid") is None:
            return obs
        self.sid = body.get("sid")
        return obs

    def until(self, pred, timeout: float = 10.0) -> ET.Element:
        deadline = time.monotonic() + timeout
        while True:
            for i, el in enumerate(self.received):
                if pred(el):
                    return self.received.pop(i)
            if time.monotonic() > deadline:
                raise TimeoutError("no matching BOSH payload within the timeout")
            obs = self.post()
            if obs.facts.get("type") == "terminate":
                raise ConnectionError(f"BOSH session terminated: {obs.summary()}")

    def login(self, local: str, password: str, resource: str = "bosh") -> str:
        self.create()
        if not self.sid:
            raise AssertionError("no BOSH session")
        self.until(lambda e: e.tag == q(STREAMS, "features"))
        token = base64.b64encode(f"\0{local}\0{password}".encode()).decode()
        self.post(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{token}</auth>")
        res = self.until(lambda e: ns_of(e.tag) == SASL)
        if local_name(res.tag) != "success":
            raise AssertionError(f"authentication failed: {brief(res)}")
        self.post("", f" to='{self.domain}' xmpp:restart='true'")
        self.until(lambda e: e.tag == q(STREAMS, "features"))
        self.post(f"<iq xmlns='jabber:client' type='set' id='bind-1'><bind xmlns='{BIND}'>"
                  f"<resource>{resource}</resource></bind></iq>")
        bound = self.until(lambda e: e.get("id") == "bind-1")
        return bound.find(f".//{q(BIND, 'jid')}").text

    def terminate(self) -> None:
        try:
            self.post("<presence xmlns='jabber:client' type='unavailable'/>", " type='terminate'")
        except (OSError, TimeoutError):
            pass
