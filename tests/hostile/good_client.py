"""The well-behaved client that keeps chatting while the hostile-input
catalogue runs: two accounts with a mutual presence subscription
(RFC 6121 §3), one-to-one chat both ways (RFC 6121 §5) and a group chat
room (XEP-0045 §7.2, §7.4), over direct TLS (XEP-0368) with SASL PLAIN
and resource binding (RFC 6120 §6, §7).

Run as its own process (so that its timing does not depend on the
catalogue's Python work): one JSON argument with the server and the
accounts. It prints `READY` once both sessions are set up, chats every
`interval` seconds until a `stop` line arrives on stdin, waits for what
is still in flight, and prints one `RESULT {json}` line:

- every A->B chat `dm-N` is answered by B with `re-N`; the round trip
  A->server->B->server->A is one latency sample;
- every groupchat `gc-N` of A is reflected by the room to A (one
  latency sample) and delivered to B;
- what each side received, in order, to check "exactly once, in order".
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import sys
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

STREAMS = "http://etherx.jabber.org/streams"
CLIENT = "jabber:client"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"
ROSTER = "jabber:iq:roster"
MUC = "http://jabber.org/protocol/muc"
MUC_USER = "http://jabber.org/protocol/muc#user"
STEP = 15.0  # seconds for any one setup step


def q(ns, name):
    return f"{{{ns}}}{name}"


class Conn:
    def __init__(self, cfg: dict, local: str, resource: str, log):
        self.cfg = cfg
        self.local = local
        self.domain = cfg["domain"]
        self.bare = f"{local}@{self.domain}"
        self.resource = resource
        self.log = log
        self.waiters: list[tuple] = []
        self.handlers = []
        self.reader_task = None
        self.closed = asyncio.Event()
        self.errors: list[str] = []

    def _parser(self):
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0

    async def connect(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["xmpp-client"])
        self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(
            self.cfg["host"], self.cfg["c2s_tls_port"], ssl=ctx,
            server_hostname=self.domain), STEP)
        self._parser()
        self.reader_task = asyncio.create_task(self._read())
        await self._open()
        token = base64.b64encode(f"\0{self.local}\0{self.cfg['password']}".encode()).decode()
        res = await self.request(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{token}</auth>",
                                 lambda e: e.tag in (q(SASL, "success"), q(SASL, "failure")))
        if res.tag != q(SASL, "success"):
            raise RuntimeError(f"{self.local}: authentication failed")
        self._parser()
        await self._open()
        bound = await self.request(
            f"<iq type='set' id='bind'><bind xmlns='{BIND}'><resource>{self.resource}</resource>"
            "</bind></iq>", lambda e: e.get("id") == "bind")
        self.jid = bound.find(f".//{q(BIND, 'jid')}").text

    async def _open(self):
        await self.request(
            f"<?xml version='1.0'?><stream:stream xmlns='{CLIENT}' xmlns:stream='{STREAMS}' "
            f"to='{self.domain}' version='1.0'>", lambda e: e.tag == q(STREAMS, "features"))

    async def _read(self):
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                self.parser.feed(data)
                for ev, el in self.parser.read_events():
                    if ev == "start":
                        self.depth += 1
                    else:
                        self.depth -= 1
                        if self.depth == 1:
                            self._dispatch(el)
        except (OSError, ET.ParseError, ssl.SSLError) as e:
            self.errors.append(f"{self.local}: read failed: {e!r}")
        finally:
            self.closed.set()

    def _dispatch(self, el):
        if el.tag == q(STREAMS, "error"):
            self.errors.append(f"{self.local}: stream error {ET.tostring(el)!r}")
        for w in list(self.waiters):
            pred, fut = w
            if not fut.done() and pred(el):
                fut.set_result(el)
                self.waiters.remove(w)
                return
        for h in self.handlers:
            if h(el):
                return
        # RFC 6120 §8.2.3: IQ requests get an answer.
        if el.tag == q(CLIENT, "iq") and el.get("type") in ("get", "set"):
            # Pings and roster pushes (RFC 6121 §2.1.6) get a result.
            ok = el.find("{urn:xmpp:ping}ping") is not None or el.find(q(ROSTER, "query")) is not None
            body = "" if ok else ("<error type='cancel'><service-unavailable "
                                  "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>")
            kind = "result" if ok else "error"
            self.send(f"<iq type='{kind}' id={quoteattr(el.get('id') or '')} "
                      f"to={quoteattr(el.get('from') or self.domain)}>{body}</iq>")

    def send(self, text: str):
        if not self.closed.is_set():
            self.writer.write(text.encode())

    async def request(self, text: str, pred, timeout: float = STEP):
        fut = asyncio.get_running_loop().create_future()
        self.waiters.append((pred, fut))
        self.send(text)
        await self.writer.drain()
        return await asyncio.wait_for(fut, timeout)

    async def expect(self, pred, timeout: float = STEP):
        fut = asyncio.get_running_loop().create_future()
        self.waiters.append((pred, fut))
        return await asyncio.wait_for(fut, timeout)

    async def close(self):
        try:
            self.send("</stream:stream>")
            await asyncio.wait_for(self.writer.drain(), 2)
            await asyncio.wait_for(self.closed.wait(), 3)
        except (OSError, asyncio.TimeoutError, ssl.SSLError):
            pass
        self.writer.close()


def body_of(el):
    b = el.find(q(CLIENT, "body"))
    return b.text if b is not None else None


async def main(cfg: dict):
    t0 = time.monotonic()
    log = []
    a = Conn(cfg, cfg["a"], "good", log)
    b = Conn(cfg, cfg["b"], "good", log)
    await asyncio.gather(a.connect(), b.connect())
    room = cfg["room"]
    # Initial presence, then a mutual subscription (RFC 6121 §3.1, §3.2).
    sub_in_b = b.expect(lambda e: e.tag == q(CLIENT, "presence") and e.get("type") == "subscribe")
    sub_in_a = a.expect(lambda e: e.tag == q(CLIENT, "presence") and e.get("type") == "subscribe")
    a.send("<presence/>")
    b.send("<presence/>")
    a.send(f"<presence to='{b.bare}' type='subscribe'/>")
    await sub_in_b
    b.send(f"<presence to='{a.bare}' type='subscribed'/>")
    b.send(f"<presence to='{a.bare}' type='subscribe'/>")
    await sub_in_a
    a.send(f"<presence to='{b.bare}' type='subscribed'/>")
    # Roster items of A's own, checked at the end (RFC 6121 §2.3).
    for jid, name, group in cfg["extra_roster"]:
        r = await a.request(
            f"<iq type='set' id='r-{escape(jid)}'><query xmlns='{ROSTER}'><item jid={quoteattr(jid)} "
            f"name={quoteattr(name)}><group>{escape(group)}</group></item></query></iq>",
            lambda e, j=jid: e.get("id") == f"r-{j}")
        if r.get("type") != "result":
            raise RuntimeError(f"roster set failed: {ET.tostring(r)!r}")
    # Both subscribed both ways before the chat starts.
    deadline = time.monotonic() + STEP
    while True:
        r = await a.request(f"<iq type='get' id='rg'><query xmlns='{ROSTER}'/></iq>",
                            lambda e: e.get("id") == "rg")
        items = {i.get("jid"): i.get("subscription") for i in r.iter(q(ROSTER, "item"))}
        if items.get(b.bare) == "both":
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"subscription not mutual: {items}")
        await asyncio.sleep(0.2)
    # The room (XEP-0045 §7.2): A creates it, B joins.
    for c, nick in ((a, "alice"), (b, "bob")):
        await c.request(
            f"<presence to='{room}/{nick}'><x xmlns='{MUC}'><history maxstanzas='0'/></x></presence>",
            lambda e, n=nick: e.tag == q(CLIENT, "presence") and e.get("from") == f"{room}/{n}"
            and any(s.get("code") == "110" for s in e.iter(q(MUC_USER, "status"))))

    sent_dm: dict[int, float] = {}
    sent_gc: dict[int, float] = {}
    b_dm: list[int] = []
    a_re: list[int] = []
    a_gc: list[int] = []
    b_gc: list[int] = []
    rtt_dm: list[float] = []
    rtt_gc: list[float] = []
    bounces: list[str] = []

    def on_b(el):
        if el.tag != q(CLIENT, "message"):
            return False
        body = body_of(el) or ""
        if el.get("type") == "error":
            bounces.append("B got " + ET.tostring(el, encoding="unicode")[:300])
            return True
        if el.get("type") == "chat" and body.startswith("dm-") and \
                (el.get("from") or "").startswith(a.bare):
            n = int(body[3:])
            b_dm.append(n)
            b.send(f"<message to='{a.bare}' type='chat' id='re-{n}'><body>re-{n}</body></message>")
            return True
        if el.get("type") == "groupchat" and body.startswith("gc-") and \
                el.get("from") == f"{room}/alice":
            b_gc.append(int(body[3:]))
            return True
        return False

    def on_a(el):
        if el.tag != q(CLIENT, "message"):
            return False
        body = body_of(el) or ""
        now = time.monotonic()
        if el.get("type") == "error":
            bounces.append("A got " + ET.tostring(el, encoding="unicode")[:300])
            return True
        if el.get("type") == "chat" and body.startswith("re-") and \
                (el.get("from") or "").startswith(b.bare):
            n = int(body[3:])
            a_re.append(n)
            if n in sent_dm:
                rtt_dm.append(now - sent_dm[n])
            return True
        if el.get("type") == "groupchat" and body.startswith("gc-") and \
                el.get("from") == f"{room}/alice":
            n = int(body[3:])
            a_gc.append(n)
            if n in sent_gc:
                rtt_gc.append(now - sent_gc[n])
            return True
        return False

    a.handlers.append(on_a)
    b.handlers.append(on_b)
    print("READY", json.dumps({"setup_seconds": round(time.monotonic() - t0, 3)}), flush=True)

    stop = asyncio.Event()

    async def watch_stdin():
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or line.strip() == "stop":
                stop.set()
                return

    stdin_task = asyncio.create_task(watch_stdin())
    interval = cfg["interval"]
    n = 0
    next_at = time.monotonic()
    started = time.monotonic()
    while not stop.is_set():
        if a.closed.is_set() or b.closed.is_set():
            break
        now = time.monotonic()
        sent_dm[n] = now
        a.send(f"<message to='{b.bare}' type='chat' id='dm-{n}'><body>dm-{n}</body></message>")
        sent_gc[n] = now
        a.send(f"<message to='{room}' type='groupchat' id='gc-{n}'><body>gc-{n}</body></message>")
        n += 1
        next_at += interval
        try:
            await asyncio.wait_for(stop.wait(), max(next_at - time.monotonic(), 0.001))
        except asyncio.TimeoutError:
            pass
    chat_seconds = time.monotonic() - started
    # What is in flight gets a bounded time to arrive.
    deadline = time.monotonic() + cfg["drain"]
    while time.monotonic() < deadline:
        if len(a_re) >= n and len(a_gc) >= n and len(b_gc) >= n:
            break
        await asyncio.sleep(0.05)
    result = {
        "sent": n,
        "chat_seconds": round(chat_seconds, 3),
        "b_dm": b_dm, "a_re": a_re, "a_gc": a_gc, "b_gc": b_gc,
        "rtt_dm": [round(x, 4) for x in rtt_dm],
        "rtt_gc": [round(x, 4) for x in rtt_gc],
        "bounces": bounces[:50],
        "errors": a.errors + b.errors,
        "disconnected": [c.local for c in (a, b) if c.closed.is_set()],
    }
    await asyncio.gather(a.close(), b.close())
    print("RESULT " + json.dumps(result), flush=True)
    stdin_task.cancel()


if __name__ == "__main__":
    try:
        asyncio.run(main(json.loads(sys.argv[1])))
    except Exception as e:  # reported to the parent, which fails the test
        print("FAILED " + repr(e), flush=True)
        sys.exit(1)
