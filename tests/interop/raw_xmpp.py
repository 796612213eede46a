"""A minimal blocking XMPP client over raw sockets, for tests that need
exact control of the stream: when each byte is sent, which acks come back,
what arrives before the server dies. Direct TLS (XEP-0368) and SASL PLAIN
only; every wait is bounded.
"""

from __future__ import annotations

import base64
import socket
import ssl
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

CLIENT = "jabber:client"
SM = "urn:xmpp:sm:3"
MAM = "urn:xmpp:mam:2"
RSM = "http://jabber.org/protocol/rsm"
FORWARD = "urn:xmpp:forward:0"


def q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


class RawClient:
    def __init__(self, host: str, port: int, jid: str, password: str,
                 resource: str = "raw", timeout: float = 10.0):
        self.jid = jid
        self.local, self.domain = jid.split("@", 1)
        self.timeout = timeout
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["xmpp-client"])
        raw = socket.create_connection((host, port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname=self.domain)
        self.pending: list[ET.Element] = []
        self._new_parser()
        self._open()
        self._expect(q("http://etherx.jabber.org/streams", "features"))
        token = base64.b64encode(f"\0{self.local}\0{password}".encode()).decode()
        self.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>")
        ok = self._expect(None)
        if ok.tag != q("urn:ietf:params:xml:ns:xmpp-sasl", "success"):
            raise AssertionError(f"authentication failed: {ET.tostring(ok)!r}")
        self._new_parser()
        self._open()
        self._expect(q("http://etherx.jabber.org/streams", "features"))
        self.send("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  f"<resource>{escape(resource)}</resource></bind></iq>")
        bound = self.wait(lambda e: e.tag == q(CLIENT, "iq") and e.get("id") == "bind")
        self.full_jid = bound.find(f".//{q('urn:ietf:params:xml:ns:xmpp-bind', 'jid')}").text

    def _new_parser(self) -> None:
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0

    def _open(self) -> None:
        self.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                  "xmlns:stream='http://etherx.jabber.org/streams' "
                  f"to='{self.domain}' version='1.0'>")

    def send(self, data: str) -> None:
        self.sock.sendall(data.encode())

    def _read_some(self, deadline: float) -> bool:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return False
        if not data:
            raise ConnectionError("stream closed by the server")
        self.parser.feed(data)
        for event, el in self.parser.read_events():
            if event == "start":
                self.depth += 1
            else:
                self.depth -= 1
                if self.depth == 1:
                    self.pending.append(el)
        return True

    def _expect(self, tag: str | None) -> ET.Element:
        el = self.wait(lambda e: tag is None or e.tag == tag)
        return el

    def wait(self, pred, timeout: float | None = None) -> ET.Element:
        """The first unconsumed top-level element matching `pred`."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for i, el in enumerate(self.pending):
                if pred(el):
                    return self.pending.pop(i)
            if not self._read_some(deadline) and time.monotonic() >= deadline:
                raise TimeoutError("no matching element within the timeout")

    def drain(self, pred) -> list[ET.Element]:
        """Everything matching `pred` that arrived so far (no waiting)."""
        taken = [e for e in self.pending if pred(e)]
        self.pending = [e for e in self.pending if not pred(e)]
        return taken

    def read_until(self, pred, timeout: float | None = None) -> ET.Element:
        return self.wait(pred, timeout)

    def close(self) -> None:
        try:
            self.send("</stream:stream>")
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


def bodies(elements) -> list[str]:
    """The <body/> texts of message elements (not of forwarded ones)."""
    out = []
    for el in elements:
        b = el.find(q(CLIENT, "body"))
        if el.tag == q(CLIENT, "message") and b is not None and b.text:
            out.append(b.text)
    return out


def archived_bodies(client: RawClient, with_jid: str | None = None) -> list[str]:
    """Every body in the account's XEP-0313 archive, paged to the end."""
    found: list[str] = []
    after = None
    for page in range(100):
        qid = f"mam{page}"
        rsm = "<max>250</max>" + (f"<after>{after}</after>" if after else "")
        form = ""
        if with_jid:
            form = ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
                    f"<value>{MAM}</value></field><field var='with'><value>{with_jid}</value></field></x>")
        client.send(f"<iq type='set' id='{qid}'><query xmlns='{MAM}' queryid='{qid}'>{form}"
                    f"<set xmlns='{RSM}'>{rsm}</set></query></iq>")
        fin = client.wait(lambda e: e.tag == q(CLIENT, "iq") and e.get("id") == qid)
        if fin.get("type") != "result":
            raise AssertionError(f"archive query failed: {ET.tostring(fin)!r}")
        results = client.drain(lambda e: e.find(q(MAM, "result")) is not None
                               and e.find(q(MAM, "result")).get("queryid") == qid)
        for r in results:
            m = r.find(f"{q(MAM, 'result')}/{q(FORWARD, 'forwarded')}/{q(CLIENT, 'message')}")
            if m is not None and m.find(q(CLIENT, "body")) is not None:
                found.append(m.find(q(CLIENT, "body")).text)
        f = fin.find(q(MAM, "fin"))
        last = f.find(f"{q(RSM, 'set')}/{q(RSM, 'last')}") if f is not None else None
        if f is None or f.get("complete") == "true" or last is None:
            return found
        after = last.text
    raise AssertionError("archive paging did not end")
