"""The hostile-input catalogue: malformed or abusive inputs on every surface
of the server, each with the answer the specs define.

Specs: RFC 6120 (streams, stream and stanza errors, STARTTLS, SASL,
binding, restricted XML, UTF-8, server-to-server streams), RFC 6121
(roster, subscriptions, message types), RFC 6455 and RFC 7395 (WebSocket),
XEP-0124 and XEP-0206 (BOSH), XEP-0198 (stream management), XEP-0045
(group chat), XEP-0054 (vCard), XEP-0060/0163 (PEP), XEP-0160 (offline
messages), XEP-0220 (dialback), XEP-0313 and XEP-0059 (archive queries),
XEP-0363 (HTTP upload), RFC 9110 (HTTP semantics), RFC 5246/8446 (TLS).

A row is an `Entry`: a short id, the surface it attacks (c2s, c2s-tls,
websocket, bosh, upload, s2s), what it does, where the answer is defined,
the input (a function that sends it on a fresh connection or session of
its own and returns what came back, an `Observed`), and the expected
answer (an `Expect` from expect.py). test_catalogue.py runs them in
order while the good client chats. README.md says how to add one.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable
from xml.sax.saxutils import quoteattr

from expect import (Closed, Expect, Fact, Http, Result, SmFailed, StanzaError,
                    StreamError, Usable, WsClose, WsStreamClosed)
from wire import (BIND, DIALBACK, SASL, SM, TLS_NS, BoshSession, Observed, WsConn,
                  bosh_post, brief, http_raw, http_request, local_name, ns_of, q,
                  raw_bytes_under_tls, stanza_error_of)

STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
MAM = "urn:xmpp:mam:2"
RSM = "http://jabber.org/protocol/rsm"
MUC = "http://jabber.org/protocol/muc"
MUC_USER = "http://jabber.org/protocol/muc#user"
ROSTER = "jabber:iq:roster"
UPLOAD = "urn:xmpp:http:upload:0"
HTTPBIND = "http://jabber.org/protocol/httpbind"
PUBSUB = "http://jabber.org/protocol/pubsub"
PUBSUB_ERRORS = "http://jabber.org/protocol/pubsub#errors"

# Rows write the server's domain as this token; the input builders fill it
# in (conftest.SERVER_CONFIG decides the domain).
DOMAIN = "{domain}"

WAIT = 5.0  # how long an answer may take
QUIET = 1.0  # how long "nothing happens" is watched before the session is pinged


@dataclass
class Entry:
    id: str
    surface: str  # c2s, c2s-tls, websocket, bosh, upload, s2s
    description: str
    spec: str
    input: Callable  # (ctx) -> Observed
    expect: Expect

    def __str__(self):
        return f"{self.id} [{self.surface}] {self.description} -> {self.expect} ({self.spec})"


def uid(prefix: str = "h") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def fill(ctx, data):
    """`data` (str or bytes) with the DOMAIN token replaced."""
    if isinstance(data, bytes):
        return data.replace(DOMAIN.encode(), ctx.domain.encode())
    return data.replace(DOMAIN, ctx.domain) if isinstance(data, str) else data


# -- inputs: c2s streams ------------------------------------------------------


def c2s(data: bytes | str, header: bool = True, surface: str = "c2s", wait: float = WAIT):
    """Bytes on a fresh client stream (after our stream header unless
    `header` is false): nothing negotiated yet."""
    def run(ctx):
        with ctx.stream(surface) as s:
            if header:
                s.send(s.header())
            s.send_interleaved(fill(ctx, data))
            return s.observe(wait)
    return run


def session(data: bytes | str | Callable, *, track=(), sm: bool = False, wait: float = QUIET,
            local: str = "mallory", until_replies: bool = True, ping_timeout: float = 5.0):
    """Bytes on a fresh, bound session over direct TLS; `track`: ids whose
    answers are the entry's replies. `data` may be a function of the
    session's full JID. Then a ping tells whether the session survived."""
    def run(ctx):
        with ctx.session(local) as s:
            if sm:
                s.send(f"<enable xmlns='{SM}'/>")
                s.wait(lambda e: e.tag == q(SM, "enabled"))
            payload = data(ctx, s) if callable(data) else data
            s.send_interleaved(fill(ctx, payload))
            want = set(track)
            until = (lambda els: want <= {e.get("id") for e in els}) if want and until_replies else None
            obs = s.observe(wait if until is None else WAIT, until=until)
            obs.replies = [e for e in obs.elements if e.get("id") in want]
            if not obs.closed and not obs.stream_error:
                obs.usable = s.ping(timeout=ping_timeout)
            return obs
    return run


def iq_probe(body: str, type: str = "get", to: str | None = None):
    """One IQ on a fresh session; its answer is the reply."""
    def run(ctx):
        i = uid("iq")
        dest = fill(ctx, to(ctx) if callable(to) else to)
        to_attr = f" to={quoteattr(dest)}" if dest else ""
        xml = f"<iq type='{type}' id='{i}'{to_attr}>{body(ctx) if callable(body) else body}</iq>"
        return session(xml, track=[i])(ctx)
    return run


class Victim:
    """A logged-in, available session of another account whose input is
    read by a thread of its own (so that a flood at it never backs up),
    counting the bodies it receives."""

    def __init__(self, ctx, local: str = "victim"):
        self.s = ctx.session(local)
        self.s.send("<presence/>")
        self.bodies: Counter = Counter()
        self.stanzas = 0
        self.types: list[str | None] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self._stop.is_set() and not self.s.closed:
            self.s.read_once(0.1)
            got = self.s.drain()
            with self._lock:
                for el in got:
                    self.stanzas += 1
                    if local_name(el.tag) == "message":
                        b = el.find(q("jabber:client", "body"))
                        if b is not None and b.text:
                            self.bodies[b.text] += 1
                            self.types.append(el.get("type"))

    def count(self, prefix: str) -> int:
        with self._lock:
            return sum(n for b, n in self.bodies.items() if b.startswith(prefix))

    def wait_for(self, prefix: str, n: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.count(prefix) < n and time.monotonic() < deadline and not self.s.closed:
            time.sleep(0.05)
        return self.count(prefix)

    def close(self) -> bool:
        """Stop reading; whether the victim's own session still answers."""
        self._stop.set()
        self.t.join(timeout=5)
        alive = not self.s.closed and self.s.ping()
        self.s.close()
        return alive


# -- c2s: plain TCP before TLS ------------------------------------------------

HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='{to}' version='{v}'{extra}>")


def header(v="1.0", extra="", to=DOMAIN):
    return HEADER.format(to=to, v=v, extra=extra)


BILLION_LAUGHS = (
    "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
    + "".join(f"<!ENTITY lol{i} '{('&lol' + str(i - 1) + ';') * 10 if i > 1 else '&lol;' * 10}'>"
              for i in range(1, 10))
    + "]>" + header() + "<message><body>&lol9;</body></message>")


def starttls_then(raw: bytes):
    """STARTTLS (RFC 6120 §5.4.2) and, instead of a TLS ClientHello, `raw`."""
    def run(ctx):
        with ctx.stream("c2s") as s:
            s.open()
            s.send(f"<starttls xmlns='{TLS_NS}'/>")
            s.wait(lambda e: e.tag == q(TLS_NS, "proceed"))
            before = len(s.raw_in)
            s.send(raw)
            # The answer, if any, is a TLS alert or nothing: no XML parsing.
            deadline = time.monotonic() + WAIT
            s.reset()
            s.pull.broken = True
            while time.monotonic() < deadline and not s.closed:
                s.read_once(0.2)
            obs = Observed(closed=s.closed)
            obs.facts["xml_after_proceed"] = b"<" in bytes(s.raw_in[before:])
            return obs
    return run


def slow_header(ctx):
    """Connect, start the XML declaration, then send nothing."""
    with ctx.stream("c2s") as s:
        s.send("<?xml version='1.0'?>")
        return s.observe(ctx.auth_timeout + 5)


def auth_before_tls(ctx):
    with ctx.stream("c2s") as s:
        s.open()
        token = base64.b64encode(b"\0mallory\0" + ctx.password.encode()).decode()
        s.send(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{token}</auth>")
        obs = s.observe(QUIET, until=lambda els: any(ns_of(e.tag) == SASL for e in els))
        fail = [e for e in obs.elements if e.tag == q(SASL, "failure")]
        obs.facts["sasl"] = [local_name(c.tag) for f in fail for c in f]
        obs.facts["open"] = not obs.closed and not obs.stream_error
        return obs


# -- c2s-tls: direct TLS, before and after authentication ----------------------


def tls_plaintext(ctx):
    """An XML stream header, in the clear, on the direct TLS port."""
    import socket
    obs = Observed()
    s = socket.create_connection((ctx.host, ctx.port("c2s-tls")), timeout=WAIT)
    try:
        s.sendall(header(to=ctx.domain).encode())
        got = b""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                d = s.recv(4096)
            except (TimeoutError, OSError):
                break
            if not d:
                obs.closed = True
                break
            got += d
        obs.facts["xml_in_clear"] = b"<stream" in got
    finally:
        s.close()
    return obs


def tls_garbage_hello(ctx):
    """A TLS handshake record header followed by garbage."""
    import socket
    obs = Observed()
    s = socket.create_connection((ctx.host, ctx.port("c2s-tls")), timeout=WAIT)
    try:
        s.sendall(b"\x16\x03\x01\x00\x40" + secrets.token_bytes(64))
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                d = s.recv(4096)
            except (TimeoutError, OSError):
                obs.closed = True
                break
            if not d:
                obs.closed = True
                break
    finally:
        s.close()
    return obs


def tls_record_garbage(ctx):
    """A bound session, then bytes outside any TLS record."""
    with ctx.session() as s:
        raw_bytes_under_tls(s, b"\x17\x03\x03\x00\x20" + secrets.token_bytes(32))
        obs = s.observe(WAIT)
        return obs


def tls_renegotiation(ctx):
    """TLS 1.2, then a client-initiated renegotiation (RFC 5746; TLS 1.3 has
    none): the server must refuse it, by a no_renegotiation alert or by
    closing; a renegotiated session would be a finding."""
    import select
    import socket
    from OpenSSL import SSL

    obs = Observed()
    c_ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    c_ctx.set_max_proto_version(SSL.TLS1_2_VERSION)
    c_ctx.set_verify(SSL.VERIFY_NONE, lambda *a: True)
    raw = socket.create_connection((ctx.host, ctx.port("c2s-tls")), timeout=WAIT)
    conn = SSL.Connection(c_ctx, raw)
    conn.set_tlsext_host_name(ctx.domain.encode())
    conn.set_connect_state()

    def handshake():
        deadline = time.monotonic() + WAIT
        while True:
            try:
                conn.do_handshake()
                return True
            except SSL.WantReadError:
                if time.monotonic() > deadline:
                    raise TimeoutError("TLS handshake took too long")
                select.select([raw], [], [], 0.2)

    try:
        handshake()
        obs.facts["version"] = conn.get_protocol_version_name()
        conn.sendall(header(to=ctx.domain).encode())
        conn.renegotiate()
        try:
            handshake()
            obs.facts["renegotiated"] = conn.total_renegotiations() > 0 and \
                not conn.renegotiate_pending()
        except (SSL.Error, TimeoutError, OSError) as e:
            obs.facts["renegotiated"] = False
            obs.notes.append(f"renegotiation refused: {e!r}")
    finally:
        try:
            raw.close()
        except OSError:
            pass
    return obs


SASL2 = "urn:xmpp:sasl:2"


def sasl_attempts(*auths: str, wait: float = WAIT, sasl2: bool = False):
    """SASL (or SASL2, XEP-0388) exchanges on a fresh TLS stream; facts:
    the failure conditions."""
    ns = SASL2 if sasl2 else SASL

    def run(ctx):
        with ctx.stream("c2s-tls") as s:
            s.open()
            for a in auths:
                s.send(a)
            n = len(auths)
            obs = s.observe(wait, until=lambda els: sum(ns_of(e.tag) == ns for e in els) >= n)
            obs.facts["failures"] = [local_name(c.tag) for e in obs.elements
                                     if e.tag == q(ns, "failure") for c in e
                                     if ns_of(c.tag) == SASL]
            obs.facts["open"] = not obs.closed and not obs.stream_error
            return obs
    return run


def bad_plain(payload: bytes) -> str:
    return f"<auth xmlns='{SASL}' mechanism='PLAIN'>{base64.b64encode(payload).decode()}</auth>"


def resume_unknown(ctx):
    """XEP-0198 §5: resumption of a session that never existed, after SASL
    and before binding."""
    with ctx.session(bind=False) as s:
        s.send(f"<resume xmlns='{SM}' previd='{secrets.token_hex(12)}' h='0'/>")
        obs = s.observe(WAIT, until=lambda els: any(ns_of(e.tag) == SM for e in els))
        return obs


def message_flood(n: int = 500):
    """`n` chat messages from one session to an online account in one burst."""
    def run(ctx):
        obs = Observed()
        v = Victim(ctx)
        try:
            with ctx.session() as s:
                tag = uid("flood")
                s.send_interleaved("".join(
                    f"<message to='{ctx.jid('victim')}' type='chat' id='{tag}-{i}'>"
                    f"<body>{tag}-{i}</body></message>" for i in range(n)))
                got = v.wait_for(tag, n, 30)
                obs = s.observe(0.3, obs)
                obs.usable = s.ping() if not obs.closed else False
                obs.facts["delivered"] = got
                obs.facts["bounced"] = sum(1 for e in obs.elements if e.get("type") == "error")
        finally:
            obs.facts["victim_alive"] = v.close()
        return obs
    return run


def iq_flood(n: int = 500):
    def run(ctx):
        with ctx.session() as s:
            tag = uid("ping")
            s.send_interleaved("".join(
                f"<iq type='get' id='{tag}-{i}' to='{ctx.domain}'><ping xmlns='urn:xmpp:ping'/></iq>"
                for i in range(n)))
            obs = s.observe(30, until=lambda els: sum(1 for e in els
                                                       if (e.get("id") or "").startswith(tag)) >= n)
            answers = [e for e in obs.elements if (e.get("id") or "").startswith(tag)]
            obs.facts["results"] = sum(1 for e in answers if e.get("type") == "result")
            obs.usable = s.ping() if not obs.closed else False
            return obs
    return run


def presence_flood(n: int = 300):
    def run(ctx):
        with ctx.session() as s:
            s.send_interleaved("".join(f"<presence><status>mood {i}</status></presence>"
                                       for i in range(n)))
            obs = s.observe(QUIET)
            obs.usable = s.ping() if not obs.closed else False
            return obs
    return run


def offline_flood(ctx):
    """More messages to an offline account than its offline storage holds."""
    n = ctx.max_offline + 5
    with ctx.session() as s:
        tag = uid("off")
        s.send("".join(f"<message to='{ctx.jid('sleeper')}' type='chat' id='{tag}-{i}'>"
                       f"<body>{tag}-{i}</body></message>" for i in range(n)))
        obs = s.observe(WAIT, until=lambda els: sum(1 for e in els if e.get("type") == "error") >= 5)
        obs.replies = [e for e in obs.elements if (e.get("id") or "").startswith(tag)]
        bounced = sorted(int(e.get("id").rsplit("-", 1)[1]) for e in obs.replies
                         if e.get("type") == "error")
        obs.facts["bounced"] = bounced
        obs.usable = s.ping() if not obs.closed else False
        return obs


def resource_flood(n: int = 30):
    """`n` sessions of one account at once, each with its own resource."""
    def run(ctx):
        obs = Observed()
        streams = []
        outcomes = Counter()
        try:
            for i in range(n):
                s = ctx.stream("c2s-tls")
                streams.append(s)
                try:
                    s.login("binder", ctx.password, f"flood-{i}")
                    outcomes["bound"] += 1
                except AssertionError as e:
                    cond = "resource-constraint" if "resource-constraint" in str(e) else str(e)[:80]
                    outcomes[cond] += 1
            alive = sum(1 for s in streams if not s.closed and s.ping(timeout=5))
            obs.facts["outcomes"] = dict(outcomes)
            obs.facts["alive"] = alive
        finally:
            for s in streams:
                s.close()
        return obs
    return run


def resource_conflict(n: int = 8):
    """`n` sessions in a row binding the same resource (RFC 6120 §7.7.2.2)."""
    def run(ctx):
        obs = Observed()
        previous = None
        ok = 0
        details = []
        res = uid("same")
        try:
            for _ in range(n):
                s = ctx.stream("c2s-tls")
                try:
                    jid = s.login("binder", ctx.password, res)
                except AssertionError as e:
                    # Option 1: the new session is refused with <conflict/>.
                    if "conflict" in str(e):
                        ok += 1
                    details.append(str(e)[:120])
                    s.close()
                    continue
                if previous is None:
                    ok += 1
                elif not jid.endswith("/" + res):
                    ok += 1  # option 3: another resource assigned
                else:
                    # Option 2: the old session ends with <conflict/>.
                    o = previous.observe(WAIT)
                    if o.stream_error == "conflict":
                        ok += 1
                    else:
                        details.append(f"old session: {o.summary()}")
                    previous.close()
                previous = s
            obs.facts["handled"] = ok
            obs.notes += details[:3]
        finally:
            if previous:
                previous.close()
        return obs
    return run


def roster_bomb(n: int = 200):
    """`n` roster sets, one item each, with long names and several groups."""
    def run(ctx):
        with ctx.session("roster-bomb") as s:
            tag = uid("rb")
            s.send_interleaved("".join(
                f"<iq type='set' id='{tag}-{i}'><query xmlns='{ROSTER}'>"
                f"<item jid='contact{i}@bomb.example' name='{'N' * 200}{i}'>"
                + "".join(f"<group>g{g}</group>" for g in range(5))
                + "</item></query></iq>" for i in range(n)))
            obs = s.observe(30, until=lambda els: sum(1 for e in els
                                                       if (e.get("id") or "").startswith(tag)) >= n)
            obs.replies = [e for e in obs.elements if (e.get("id") or "").startswith(tag)]
            r = s.iq(f"<query xmlns='{ROSTER}'/>", uid("rg"))
            obs.facts["roster_items"] = sum(1 for _ in r.iter(q(ROSTER, "item")))
            obs.usable = s.ping() if not s.closed else False
            return obs
    return run


def forged_subscription(ctx):
    """A roster set claiming subscription='both' (RFC 6121 §2.1.2.5)."""
    with ctx.session() as s:
        i = uid("rs")
        contact = f"forged-{secrets.token_hex(3)}@{ctx.domain}"
        s.send(f"<iq type='set' id='{i}'><query xmlns='{ROSTER}'><item jid='{contact}' "
               "subscription='both'/></query></iq>")
        obs = s.observe(WAIT, until=lambda els: any(e.get("id") == i for e in els))
        obs.replies = [e for e in obs.elements if e.get("id") == i]
        r = s.iq(f"<query xmlns='{ROSTER}'/>", uid("rg"))
        item = next((it for it in r.iter(q(ROSTER, "item")) if it.get("jid") == contact), None)
        obs.facts["subscription"] = None if item is None else item.get("subscription", "none")
        return obs


def subscription_spam(n: int = 200):
    def run(ctx):
        obs = Observed()
        v = Victim(ctx)
        try:
            with ctx.session() as s:
                s.send_interleaved("".join(
                    f"<presence to='{ctx.jid('victim')}' type='subscribe' id='sub-{i}'/>"
                    for i in range(n)))
                obs = s.observe(QUIET, obs)
                obs.usable = s.ping() if not obs.closed else False
        finally:
            obs.facts["victim_alive"] = v.close()
        return obs
    return run


def joined(room_nick: str):
    return lambda e: (local_name(e.tag) == "presence" and e.get("from") == room_nick
                      and any(st.get("code") == "110" for st in e.iter(q(MUC_USER, "status"))))


def muc_join_flood(n: int = 15):
    """`n` sessions of one account join the good client's room at once."""
    def run(ctx):
        obs = Observed()
        streams = []
        nick = f"{ctx.room}/crowd"
        try:
            for i in range(n):
                s = ctx.session("mallory2")
                streams.append(s)
                s.send(f"<presence to='{nick}'><x xmlns='{MUC}'><history maxstanzas='0'/></x></presence>")
            ok = 0
            for s in streams:
                try:
                    s.wait(joined(nick), WAIT)
                    ok += 1
                except (TimeoutError, ConnectionError) as e:
                    obs.notes.append(f"join not answered: {e}")
            obs.facts["joined"] = ok
        finally:
            for s in streams:
                s.close()
        return obs
    return run


def muc_message_flood(n: int = 300):
    """A joined occupant floods the good client's room."""
    def run(ctx):
        with ctx.session() as s:
            nick = f"{ctx.room}/shouter"
            s.send(f"<presence to='{nick}'><x xmlns='{MUC}'><history maxstanzas='0'/></x></presence>")
            s.wait(joined(nick), WAIT)
            tag = uid("shout")
            s.send_interleaved("".join(
                f"<message to='{ctx.room}' type='groupchat' id='{tag}-{i}'><body>{tag}-{i}</body></message>"
                for i in range(n)))
            obs = s.observe(30, until=lambda els: sum(1 for e in els
                                                       if (e.get("id") or "").startswith(tag)) >= n)
            refl = [e for e in obs.elements if (e.get("id") or "").startswith(tag)]
            obs.facts["reflected"] = sum(1 for e in refl if e.get("type") == "groupchat")
            obs.usable = s.ping() if not obs.closed else False
            s.send(f"<presence to='{nick}' type='unavailable'/>")
            return obs
    return run


def muc_probe(build, wait_pred=None):
    """One stanza to a room from a fresh session; the error it gets back."""
    def run(ctx):
        with ctx.session() as s:
            i = uid("muc")
            s.send(build(ctx, i))
            obs = s.observe(WAIT, until=lambda els: any(e.get("id") == i for e in els))
            obs.replies = [e for e in obs.elements if e.get("id") == i]
            return obs
    return run


def iq_without_id(ctx):
    """An IQ request without an id, then a normal one: the first answer
    to arrive for the id-less one is what counts."""
    with ctx.session() as s:
        s.send(f"<iq type='get' to='{ctx.domain}'><ping xmlns='urn:xmpp:ping'/></iq>"
               f"<iq type='get' id='after' to='{ctx.domain}'><ping xmlns='urn:xmpp:ping'/></iq>")
        obs = s.observe(WAIT, until=lambda els: any(e.get("id") == "after" for e in els))
        first = next((e for e in obs.elements if local_name(e.tag) == "iq" and e.get("id") is None), None)
        obs.facts["answer"] = None if first is None else (stanza_error_of(first) or first.get("type"))
        return obs


def error_bounce(ctx):
    """Error stanzas to an account that does not exist and to the server:
    answering them would let two servers (or a server and a client) bounce
    errors at each other forever."""
    with ctx.session() as s:
        tag = uid("err")
        err = ("<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
               "</error>")
        s.send(f"<message to='nobody-{tag}@{ctx.domain}' type='error' id='{tag}-1'>{err}</message>"
               f"<iq to='{ctx.domain}' type='error' id='{tag}-2'>{err}</iq>"
               f"<presence to='nobody-{tag}@{ctx.domain}' type='error' id='{tag}-3'>{err}</presence>")
        obs = s.observe(QUIET)
        obs.replies = [e for e in obs.elements if (e.get("id") or "").startswith(tag)]
        obs.facts["answers"] = len(obs.replies)
        obs.usable = s.ping() if not obs.closed else False
        return obs


def directed_presence_flood(n: int = 300):
    """Directed presence to `n` JIDs that do not exist (the server keeps
    directed presence to undo it at logout, RFC 6121 §4.6)."""
    def run(ctx):
        with ctx.session() as s:
            tag = uid("dp")
            s.send_interleaved("".join(f"<presence to='ghost{i}-{tag}@{ctx.domain}/r'/>"
                                       for i in range(n)))
            obs = s.observe(QUIET)
            obs.usable = s.ping() if not obs.closed else False
            return obs
    return run


def vcard_oversized(ctx):
    photo = base64.b64encode(secrets.token_bytes(150_000)).decode()
    with ctx.session() as s:
        i = uid("vc")
        s.send_interleaved(f"<iq type='set' id='{i}'><vCard xmlns='vcard-temp'><FN>M</FN><PHOTO>"
                           f"<TYPE>image/png</TYPE><BINVAL>{photo}</BINVAL></PHOTO></vCard></iq>")
        obs = s.observe(WAIT, until=lambda els: any(e.get("id") == i for e in els))
        obs.replies = [e for e in obs.elements if e.get("id") == i]
        if obs.replies and obs.replies[0].get("type") == "result":
            r = s.iq("<vCard xmlns='vcard-temp'/>", uid("vg"), to=ctx.jid("mallory"))
            b = r.find(".//{vcard-temp}BINVAL")
            obs.facts["stored_intact"] = b is not None and (b.text or "").strip() == photo
        else:
            obs.facts["stored_intact"] = None
        return obs


def mam_query(ctx, s, qid, form="", rsm="", to=None):
    to_attr = f" to='{to}'" if to else ""
    s.send(f"<iq type='set' id='{qid}'{to_attr}><query xmlns='{MAM}' queryid='{qid}'>{form}"
           f"<set xmlns='{RSM}'>{rsm}</set></query></iq>")


def mam_everything(ctx):
    """XEP-0313 query with no filter and a page size of a billion, on an
    archive bigger than any sane page (the floods above filled it)."""
    with ctx.session() as s:
        qid = uid("mam")
        t = time.monotonic()
        mam_query(ctx, s, qid, rsm="<max>1000000000</max>")
        obs = s.observe(30, until=lambda els: any(e.get("id") == qid for e in els))
        obs.facts["seconds"] = round(time.monotonic() - t, 2)
        fin_iq = next((e for e in obs.elements if e.get("id") == qid), None)
        results = [e for e in obs.elements if e.find(q(MAM, "result")) is not None]
        obs.replies = [fin_iq] if fin_iq is not None else []
        # The archive's size, by an empty page (XEP-0059 §2.6).
        cid = uid("cnt")
        mam_query(ctx, s, cid, rsm="<max>0</max>")
        c = s.wait(lambda e: e.get("id") == cid, WAIT)
        count_el = c.find(f".//{q(RSM, 'count')}")
        total = int(count_el.text) if count_el is not None else None
        fin = fin_iq.find(q(MAM, "fin")) if fin_iq is not None else None
        complete = fin is not None and fin.get("complete") in ("true", "1")
        obs.facts["results"] = len(results)
        obs.facts["archive"] = total
        # XEP-0313 §4.3 and "Page limits": a limited page is not "complete".
        obs.facts["consistent"] = (fin_iq is not None and fin_iq.get("type") == "result"
                                   and (total is None or len(results) == total or not complete))
        return obs


def mam_flood(n: int = 20):
    def run(ctx):
        with ctx.session() as s:
            tag = uid("mamf")
            for i in range(n):
                mam_query(ctx, s, f"{tag}-{i}", rsm="<max>250</max>")
            obs = s.observe(60, until=lambda els: sum(1 for e in els
                                                       if local_name(e.tag) == "iq"
                                                       and (e.get("id") or "").startswith(tag)) >= n)
            obs.replies = [e for e in obs.elements
                           if local_name(e.tag) == "iq" and (e.get("id") or "").startswith(tag)]
            obs.usable = s.ping() if not obs.closed else False
            return obs
    return run


def unknown_message_type(ctx):
    obs = Observed()
    v = Victim(ctx)
    try:
        with ctx.session() as s:
            tag = uid("weird")
            s.send(f"<message to='{ctx.jid('victim')}' type='bogus' id='{tag}'><body>{tag}</body></message>")
            obs = s.observe(QUIET, obs)
            obs.facts["delivered"] = v.wait_for(tag, 1, WAIT)
            obs.usable = s.ping() if not obs.closed else False
    finally:
        v.close()
    return obs


def huge_attribute_under_limit(ctx):
    """A 20 KB attribute value: well-formed, and the stanza is far below
    max_stanza_size."""
    obs = Observed()
    v = Victim(ctx)
    try:
        with ctx.session() as s:
            tag = uid("attr")
            s.send(f"<message to='{ctx.jid('victim')}' type='chat' id='{tag}' "
                   f"x-pad='{'x' * 20000}'><body>{tag}</body></message>")
            obs = s.observe(QUIET, obs)
            obs.facts["delivered"] = v.wait_for(tag, 1, 2)
            obs.usable = s.ping() if not obs.closed and not obs.stream_error else False
    finally:
        v.close()
    return obs


# -- WebSocket ------------------------------------------------------------------------


def ws_handshake(headers=None, method="GET"):
    def run(ctx):
        obs = Observed()
        with WsConn(ctx.host, ctx.port("websocket")) as w:
            obs.http_status, obs.http_headers, obs.http_body = w.handshake(
                "/xmpp-websocket", headers, method)
        return obs
    return run


def ws(frames, auth: bool = False, wait: float = WAIT, ping: bool = True):
    """Frames on a fresh WebSocket after <open/> (and login if `auth`);
    `frames(w)` builds them (bytes: raw frames, str: text messages)."""
    def run(ctx):
        with WsConn(ctx.host, ctx.port("websocket")) as w:
            status, _, _ = w.handshake()
            assert status == 101, f"WebSocket upgrade refused: {status}"
            if auth:
                w.login(ctx.domain, "mallory", ctx.password, uid("ws"))
            else:
                w.open_stream(ctx.domain)
            for f in frames(w):
                if isinstance(f, str):
                    f = w.frame(0x1, fill(ctx, f).encode())
                if not w.send_interleaved(f):
                    break
            obs = w.observe(wait if not auth else QUIET)
            if auth and ping and not obs.closed and not obs.stream_error:
                obs.usable = w.ping(ctx.domain)
            return obs
    return run


def ws_ping_flood(n: int = 300):
    def run(ctx):
        with WsConn(ctx.host, ctx.port("websocket")) as w:
            assert w.handshake()[0] == 101
            w.login(ctx.domain, "mallory", ctx.password, uid("ws"))
            w.send_raw(b"".join(w.frame(0x9, b"p%d" % i) for i in range(n)))
            obs = w.observe(QUIET)
            obs.usable = w.ping(ctx.domain) if not obs.closed else False
            return obs
    return run


def ws_fragmented(ctx):
    """An IQ in one-byte continuation frames (RFC 6455 §5.4)."""
    with WsConn(ctx.host, ctx.port("websocket")) as w:
        assert w.handshake()[0] == 101
        w.login(ctx.domain, "mallory", ctx.password, uid("ws"))
        i = uid("frag")
        text = (f"<iq xmlns='jabber:client' type='get' id='{i}' to='{ctx.domain}'>"
                "<ping xmlns='urn:xmpp:ping'/></iq>").encode()
        frames = [w.frame(0x1, text[:1], fin=False)]
        frames += [w.frame(0x0, text[k:k + 1], fin=False) for k in range(1, len(text) - 1)]
        frames.append(w.frame(0x0, text[-1:], fin=True))
        w.send_raw(b"".join(frames))
        obs = Observed()
        try:
            obs.replies = [w.wait(lambda e: e.get("id") == i, WAIT)]
        except (TimeoutError, ConnectionError) as e:
            obs.notes.append(repr(e))
        obs = w.observe(0.3, obs)
        return obs


# -- BOSH --------------------------------------------------------------------------------

BOSH_CREATE = "<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' to='{to}' ver='1.11' wait='2' hold='1'{extra}>{inner}</body>"


def bosh_raw(body: bytes | str | Callable, headers: dict | None = None):
    def run(ctx):
        b = body(ctx) if callable(body) else body
        return bosh_post(ctx.host, ctx.port("bosh"), b, headers)
    return run


def bosh_session(step):
    """A BOSH session created for the entry; `step(ctx, session)` returns
    the Observed of the hostile request."""
    def run(ctx):
        bs = BoshSession(ctx.host, ctx.port("bosh"), ctx.domain)
        obs = step(ctx, bs)
        if bs.sid and obs.facts.get("type") != "terminate":
            bs.terminate()
        return obs
    return run


def bosh_unknown_host(ctx):
    bs = BoshSession(ctx.host, ctx.port("bosh"), ctx.domain)
    obs = bs.create(to="evil.example")
    # XEP-0124 §17.2 host-unknown, or XEP-0206 remote-stream-error with
    # <host-unknown/> inside; either way the answer is one XML <body/>.
    obs.facts["well_formed"] = "body" in obs.facts
    obs.facts["host_unknown"] = (obs.facts.get("condition") == "host-unknown"
                                 or obs.stream_error == "host-unknown")
    return obs


def bosh_before_auth(ctx, bs):
    bs.create()
    return bs.post(f"<message xmlns='jabber:client' to='{ctx.jid('victim')}'><body>x</body></message>")


def bosh_forged_from(ctx, bs):
    bs.login("mallory", ctx.password, uid("bosh"))
    return bs.post(f"<message xmlns='jabber:client' to='{ctx.jid('victim')}' "
                   f"from='{ctx.jid('victim')}/x'><body>x</body></message>")


def bosh_rid_ahead(ctx, bs):
    bs.create()
    return bs.post(rid=bs.rid + 10)


def bosh_rid_old(ctx, bs):
    bs.create()
    return bs.post(rid=bs.rid - 100)


def bosh_session_flood(n: int = 20):
    def run(ctx):
        obs = Observed()
        sessions = []
        outcomes = Counter()
        for _ in range(n):
            bs = BoshSession(ctx.host, ctx.port("bosh"), ctx.domain)
            o = bs.create()
            if bs.sid:
                outcomes["created"] += 1
                sessions.append(bs)
            else:
                outcomes[o.facts.get("condition") or f"HTTP {o.http_status}"] += 1
        for bs in sessions:
            bs.terminate()
        obs.facts["outcomes"] = dict(outcomes)
        return obs
    return run


# -- upload (XEP-0363) ----------------------------------------------------------------------


class Slot:
    def __init__(self, ctx, size: int = 10, ctype: str = "text/plain", filename: str = "a.txt"):
        with ctx.session() as s:
            r = s.iq(f"<request xmlns='{UPLOAD}' filename={quoteattr(filename)} size='{size}' "
                     f"content-type='{ctype}'/>", uid("slot"), to=ctx.upload)
        if r.get("type") != "result":
            raise AssertionError(f"no slot: {brief(r)}")
        base = f"http://{ctx.host}:{ctx.port('upload')}"
        self.put = r.find(f".//{q(UPLOAD, 'put')}").get("url")[len(base):]
        self.get = r.find(f".//{q(UPLOAD, 'get')}").get("url")[len(base):]


def upload_put(mangle, body: bytes = b"0123456789", ctype: str = "text/plain", extra=None):
    """PUT to a real slot's URL changed by `mangle`; then whether anything
    is served at the GET URL."""
    def run(ctx):
        slot = Slot(ctx, 10)
        headers = {"Content-Type": ctype}
        headers.update(extra or {})
        obs = http_request(ctx.host, ctx.port("upload"), "PUT", mangle(slot.put), body, headers)
        got = http_request(ctx.host, ctx.port("upload"), "GET", slot.get)
        obs.facts["served_after"] = got.http_status
        return obs
    return run


def upload_reuse(ctx):
    slot = Slot(ctx, 10)
    first = http_request(ctx.host, ctx.port("upload"), "PUT", slot.put, b"0123456789",
                         {"Content-Type": "text/plain"})
    obs = http_request(ctx.host, ctx.port("upload"), "PUT", slot.put, b"EVILEVIL!!",
                       {"Content-Type": "text/plain"})
    got = http_request(ctx.host, ctx.port("upload"), "GET", slot.get)
    obs.facts["first"] = first.http_status
    obs.facts["content_kept"] = got.http_body == b"0123456789"
    return obs


def upload_chunked(ctx):
    slot = Slot(ctx, 10)
    req = (f"PUT {slot.put} HTTP/1.1\r\nHost: {ctx.host}\r\nContent-Type: text/plain\r\n"
           "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n")
    obs = http_raw(ctx.host, ctx.port("upload"), req.encode())
    obs.facts["served_after"] = http_request(ctx.host, ctx.port("upload"), "GET", slot.get).http_status
    return obs


def upload_traversal(ctx):
    slot = Slot(ctx, 10)
    assert http_request(ctx.host, ctx.port("upload"), "PUT", slot.put, b"0123456789",
                        {"Content-Type": "text/plain"}).http_status == 201
    file_id = slot.get.split("/")[2]
    paths = ["/upload/../roost.toml", "/upload/%2e%2e/%2e%2e/roost.toml",
             f"/upload/{file_id}/..%2F..%2Froost.toml", f"/upload/{file_id}/meta",
             f"/upload/{file_id}/%2e%2e", "/upload/..%2f..%2froost.sqlite/x",
             f"/upload/{file_id}/data"]
    statuses = {}
    leaked = []
    for p in paths:
        o = http_request(ctx.host, ctx.port("upload"), "GET", p)
        statuses[p] = o.http_status
        if o.http_status == 200 or b"data_dir" in o.http_body or b"SQLite" in o.http_body:
            leaked.append(p)
    obs = Observed(http_status=max(statuses.values()))
    obs.facts["statuses"] = statuses
    obs.facts["leaked"] = leaked
    return obs


def upload_range(spec: str):
    def run(ctx):
        slot = Slot(ctx, 10)
        http_request(ctx.host, ctx.port("upload"), "PUT", slot.put, b"0123456789",
                     {"Content-Type": "text/plain"})
        return http_request(ctx.host, ctx.port("upload"), "GET", slot.get, None, {"Range": spec})
    return run


def slot_request(size, filename="a.txt"):
    def run(ctx):
        i = uid("slot")
        return session(f"<iq type='get' id='{i}' to='{ctx.upload}'><request xmlns='{UPLOAD}' "
                       f"filename={quoteattr(filename)} size='{size}' content-type='text/plain'/></iq>",
                       track=[i])(ctx)
    return run


def slot_traversal_name(ctx):
    obs = slot_request(10, "../../../../etc/passwd")(ctx)
    r = obs.replies[0] if obs.replies else None
    if r is not None and r.get("type") == "result":
        put = r.find(f".//{q(UPLOAD, 'put')}").get("url").split("?")[0]
        path = put.split("/upload/", 1)[1]
        obs.facts["safe"] = ".." not in path.split("/") and path.count("/") == 1
    else:
        obs.facts["safe"] = r is not None and stanza_error_of(r) in ("bad-request", "not-acceptable")
    return obs


# -- s2s ----------------------------------------------------------------------------------------

S2S_HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
              "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
              "to='{to}' from='{frm}' version='1.0'{extra}>")


def s2s(data: bytes | str | Callable, header: bool = True, tls: bool = False,
        wait: float = WAIT, frm: str = "evil.example"):
    """Bytes on a fresh server stream (plain unless `tls`: STARTTLS first)."""
    def run(ctx):
        with ctx.stream("s2s") as s:
            if header or tls:
                s.open(frm=frm)
            if tls:
                s.starttls(alpn=None)
                s.open(frm=frm)
            payload = data(ctx) if callable(data) else data
            s.send_interleaved(fill(ctx, payload))
            return s.observe(wait, until=lambda els: any(ns_of(e.tag) == DIALBACK for e in els))
    return run


def dialback_answer(kind: str):
    """The <db:result/> or <db:verify/> answer's type and error condition."""
    def fact(obs):
        for e in obs.elements:
            if ns_of(e.tag) == DIALBACK and local_name(e.tag) == kind:
                cond = None
                for err in e:
                    if local_name(err.tag) == "error":
                        cond = next((local_name(c.tag) for c in err if ns_of(c.tag) == STANZAS
                                     and local_name(c.tag) != "text"), None)
                return (e.get("type"), cond)
        return None
    return fact


def with_fact(run, name, fn):
    def wrapped(ctx):
        obs = run(ctx)
        obs.facts[name] = fn(obs)
        return obs
    return wrapped


def s2s_starttls_garbage(ctx):
    with ctx.stream("s2s") as s:
        s.open(frm="evil.example")
        s.send(f"<starttls xmlns='{TLS_NS}'/>")
        s.wait(lambda e: e.tag == q(TLS_NS, "proceed"))
        s.send(b"\x16\x03\x01\x00\x40" + secrets.token_bytes(64))
        s.pull.broken = True
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and not s.closed:
            s.read_once(0.2)
        return Observed(closed=s.closed)


def s2s_forged_stanza_after_tls(ctx):
    """After STARTTLS, without proving any domain: a stanza claiming one."""
    obs = Observed()
    v = Victim(ctx)
    try:
        obs = s2s(f"<message from='boss@evil.example' to='{ctx.jid('victim')}' id='forged'>"
                  "<body>s2s-forged</body></message>", tls=True)(ctx)
        time.sleep(0.3)
        obs.facts["delivered"] = v.count("s2s-forged")
    finally:
        v.close()
    return obs


# -- the table ----------------------------------------------------------------------------------

XML_ERRORS = dict(xml_generic=True)  # RFC 6120 §4.9.3.1: <bad-format/> may stand in
ENCODING = StreamError("unsupported-encoding", **XML_ERRORS)  # RFC 6120 §11.6
H = header()

CATALOGUE: list[Entry] = [
    # ---- c2s: the STARTTLS port, before TLS --------------------------------------------------
    Entry("c2s-tls-hello-on-plain-port", "c2s",
          "a TLS ClientHello where an XML stream header belongs",
          "RFC 6120 §4.9.3.13",
          c2s(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32), header=False),
          StreamError("not-well-formed", **XML_ERRORS)),
    Entry("c2s-http-request", "c2s",
          "an HTTP request (text, no '<') where an XML stream header belongs",
          "RFC 6120 §4.9.3.13, §4.9.1.2",
          c2s(b"GET / HTTP/1.1\r\nHost: {domain}\r\nUser-Agent: scanner\r\n\r\n", header=False),
          StreamError("not-well-formed", **XML_ERRORS)),
    Entry("c2s-billion-laughs", "c2s",
          "a DTD with nine levels of nested entities before the stream header",
          "RFC 6120 §11.1, §4.9.3.18",
          c2s(BILLION_LAUGHS, header=False),
          StreamError("restricted-xml", **XML_ERRORS)),
    Entry("c2s-undeclared-entity", "c2s",
          "an entity reference to an undeclared entity inside a stanza",
          "RFC 6120 §11.1, XML 1.0 §4.1",
          c2s("<message><body>&xxe;</body></message>"),
          StreamError("restricted-xml", "not-well-formed", **XML_ERRORS)),
    Entry("c2s-comment", "c2s", "an XML comment inside a stanza", "RFC 6120 §11.1",
          c2s("<message><!-- hidden --><body>x</body></message>"),
          StreamError("restricted-xml", **XML_ERRORS)),
    Entry("c2s-processing-instruction", "c2s", "a processing instruction after the header",
          "RFC 6120 §11.1", c2s("<?evil run='me'?>"),
          StreamError("restricted-xml", **XML_ERRORS)),
    Entry("c2s-wrong-stream-namespace", "c2s",
          "a stream element in a namespace other than http://etherx.jabber.org/streams",
          "RFC 6120 §4.8.1, §4.9.3.10",
          c2s("<stream:stream xmlns='jabber:client' xmlns:stream='urn:evil' to='{domain}' "
              "version='1.0'>", header=False),
          StreamError("invalid-namespace", **XML_ERRORS)),
    Entry("c2s-wrong-content-namespace", "c2s",
          "a client stream whose content namespace is jabber:server",
          "RFC 6120 §4.8.2, §4.9.3.10",
          c2s("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
              "to='{domain}' version='1.0'>", header=False),
          StreamError("invalid-namespace")),
    Entry("c2s-undeclared-prefix", "c2s", "the stream: prefix used without being declared",
          "RFC 6120 §4.9.3.2, §11.2",
          c2s("<stream:stream xmlns='jabber:client' to='{domain}' version='1.0'>", header=False),
          StreamError("bad-namespace-prefix", "not-well-formed", **XML_ERRORS)),
    Entry("c2s-unknown-host", "c2s", "a stream header to a domain the server does not serve",
          "RFC 6120 §4.9.3.6", c2s(header(to="evil.example"), header=False),
          StreamError("host-unknown")),
    Entry("c2s-unsupported-version", "c2s", "a stream header with version='2.0'",
          "RFC 6120 §4.7.5, §4.9.3.25", c2s(header(v="2.0"), header=False),
          StreamError("unsupported-version")),
    Entry("c2s-huge-stream-header", "c2s",
          "a stream header with a 300 KB attribute (more than max_stanza_size)",
          "RFC 6120 §4.9.3.14, §13.12",
          c2s(header(extra=" x-pad='" + "A" * 300_000 + "'"), header=False),
          StreamError("policy-violation")),
    Entry("c2s-stanza-before-auth", "c2s", "a message before TLS and authentication",
          "RFC 6120 §4.9.3.12",
          c2s("<message to='victim@{domain}'><body>spam</body></message>"),
          StreamError("not-authorized")),
    Entry("c2s-auth-before-tls", "c2s",
          "SASL PLAIN with a real password on the plain stream (TLS required)",
          "RFC 6120 §5.3.1, §6.5.4",
          auth_before_tls,
          Fact("sasl", ["encryption-required"], "SASL <failure><encryption-required/></failure>")
          & Fact("open", True, "the stream stays open")),
    Entry("c2s-latin1", "c2s", "ISO-8859-1 bytes (0xE9) in a stanza",
          "RFC 6120 §11.6", c2s(b"<message><body>caf\xe9</body></message>"), ENCODING),
    Entry("c2s-declared-latin1", "c2s", "an XML declaration with encoding='ISO-8859-1'",
          "RFC 6120 §11.6",
          c2s("<?xml version='1.0' encoding='ISO-8859-1'?>" + H[len("<?xml version='1.0'?>"):],
              header=False),
          ENCODING),
    Entry("c2s-utf16-stream", "c2s", "a whole stream header encoded in UTF-16",
          "RFC 6120 §11.6", lambda ctx: c2s(fill(ctx, H).encode("utf-16"), header=False)(ctx),
          ENCODING),
    Entry("c2s-nul-byte", "c2s", "a NUL byte inside a stanza", "RFC 6120 §11.1, XML 1.0 §2.2",
          c2s(b"<message><body>a\x00b</body></message>"),
          StreamError("not-well-formed", **XML_ERRORS)),
    Entry("c2s-nul-char-ref", "c2s", "the character reference &#0; inside a stanza",
          "XML 1.0 §4.1 (WFC: Legal Character)",
          c2s("<message><body>a&#0;b</body></message>"),
          StreamError("not-well-formed", **XML_ERRORS)),
    Entry("c2s-starttls-garbage", "c2s", "STARTTLS, then garbage instead of a ClientHello",
          "RFC 6120 §5.4.3.2 (TLS failure: the TCP connection is closed)",
          starttls_then(b"\x16\x03\x01\x00\x40" + bytes(64) + b"garbage"),
          Closed() & Fact("xml_after_proceed", False, "no XML in the clear after <proceed/>")),
    Entry("c2s-starttls-plaintext", "c2s", "STARTTLS, then a plain XML stream header",
          "RFC 6120 §5.4.3.2", starttls_then(H.encode()),
          Closed() & Fact("xml_after_proceed", False, "no XML in the clear after <proceed/>")),
    Entry("c2s-slow-header", "c2s",
          "an XML declaration and then silence (slowloris)",
          "RFC 6120 §4.9.3.4 (connection-timeout within auth_timeout)",
          slow_header, StreamError("connection-timeout")),

    # ---- c2s-tls: direct TLS, SASL and bound sessions ---------------------------------------
    Entry("tls-plaintext-on-tls-port", "c2s-tls", "an XML stream header in the clear on the TLS port",
          "XEP-0368 §2, RFC 8446 §6", tls_plaintext,
          Closed() & Fact("xml_in_clear", False, "no XML in the clear")),
    Entry("tls-garbage-client-hello", "c2s-tls", "a TLS record header followed by random bytes",
          "RFC 8446 §6.2 (decode_error alert, connection closed)", tls_garbage_hello, Closed()),
    Entry("tls-garbage-record", "c2s-tls",
          "a bound session, then bytes outside any TLS record", "RFC 8446 §5.2 (bad_record_mac)",
          tls_record_garbage, Closed()),
    Entry("tls-renegotiation", "c2s-tls", "TLS 1.2 client-initiated renegotiation",
          "RFC 5746, RFC 5246 §7.2.2 (no_renegotiation)", tls_renegotiation,
          Fact("renegotiated", False, "renegotiation refused")),
    Entry("sasl-bad-base64", "c2s-tls", "SASL PLAIN with an initial response that is not base64",
          "RFC 6120 §6.5.5", sasl_attempts(f"<auth xmlns='{SASL}' mechanism='PLAIN'>!!not*base64!!</auth>"),
          Fact("failures", ["incorrect-encoding"], "SASL <incorrect-encoding/>")
          & Fact("open", True, "the stream stays open")),
    Entry("sasl-unknown-mechanism", "c2s-tls", "SASL with mechanism='X-EVIL'", "RFC 6120 §6.5.7",
          sasl_attempts(f"<auth xmlns='{SASL}' mechanism='X-EVIL'>AAAA</auth>"),
          Fact("failures", ["invalid-mechanism"], "SASL <invalid-mechanism/>")
          & Fact("open", True, "the stream stays open")),
    Entry("sasl-malformed-plain", "c2s-tls", "SASL PLAIN whose message has no NUL separators",
          "RFC 4616 §2, RFC 6120 §6.5.8",
          sasl_attempts(bad_plain(b"just-some-bytes")),
          Fact("failures", lambda f: f in (["malformed-request"], ["not-authorized"]),
               "SASL <malformed-request/> (or <not-authorized/>)")
          & Fact("open", True, "the stream stays open")),
    Entry("sasl2-unknown-mechanism", "c2s-tls", "SASL2 <authenticate/> with mechanism='X-EVIL'",
          "XEP-0388 §2.6 (<failure/> with an RFC 6120 §6.5 condition)",
          sasl_attempts("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='X-EVIL'>"
                        "<initial-response>AAAA</initial-response></authenticate>", sasl2=True),
          Fact("failures", ["invalid-mechanism"], "SASL2 <failure><invalid-mechanism/></failure>")
          & Fact("open", True, "the stream stays open")),
    Entry("sasl-retry-flood", "c2s-tls", "six failed SASL attempts on one stream",
          "RFC 6120 §6.4.5 (at most 5 retries), §4.9.3.14",
          sasl_attempts(*[f"<auth xmlns='{SASL}' mechanism='X-EVIL'>AAAA</auth>"] * 6),
          StreamError("policy-violation")),
    Entry("deep-nesting", "c2s-tls", "a message with 1000 nested elements",
          "RFC 6120 §4.9.3.14, §13.12",
          session("<message to='victim@{domain}'>" + "<a>" * 1000 + "</a>" * 1000 + "</message>"),
          StreamError("policy-violation")),
    Entry("oversized-stanza", "c2s-tls", "a 300 KB message body (more than max_stanza_size)",
          "RFC 6120 §4.9.3.14, §13.12",
          session("<message to='victim@{domain}'><body>" + "x" * 300_000 + "</body></message>"),
          StreamError("policy-violation")),
    Entry("huge-attribute-under-limit", "c2s-tls",
          "a 20 KB attribute value in a 20 KB stanza (limit 256 KB)",
          "RFC 6120 §13.12 (only a configured limit may refuse it: policy-violation)",
          huge_attribute_under_limit,
          (Usable() & Fact("delivered", 1, "the message is delivered"))
          | StreamError("policy-violation")),
    Entry("huge-attribute-over-limit", "c2s-tls", "a 300 KB attribute value (more than max_stanza_size)",
          "RFC 6120 §4.9.3.14, §13.12",
          session("<message to='victim@{domain}' x-pad='" + "x" * 300_000 + "'/>"),
          StreamError("policy-violation")),
    Entry("overlong-utf8", "c2s-tls", "an overlong UTF-8 sequence (0xC0 0xBC for '<') in a body",
          "RFC 6120 §11.6, RFC 3629 §3",
          session(b"<message to='victim@{domain}'><body>\xc0\xbc</body></message>"), ENCODING),
    Entry("nul-in-session", "c2s-tls", "a NUL byte in a bound session", "XML 1.0 §2.2",
          session(b"<message to='victim@{domain}'><body>\x00</body></message>"),
          StreamError("not-well-formed", **XML_ERRORS)),
    Entry("forged-from-other-account", "c2s-tls", "a message whose from is another account",
          "RFC 6120 §8.1.2.1, §4.9.3.9",
          session("<message to='victim@{domain}' from='victim@{domain}/x'><body>x</body></message>"),
          StreamError("invalid-from")),
    Entry("forged-from-own-resource", "c2s-tls",
          "a message whose from is another (unbound) resource of the same account",
          "RFC 6120 §8.1.2.1, §4.9.3.9",
          session("<message to='victim@{domain}' from='mallory@{domain}/not-mine'><body>x</body></message>"),
          StreamError("invalid-from")),
    Entry("unknown-top-level-element", "c2s-tls", "<foo/> in jabber:client after binding",
          "RFC 6120 §4.9.3.24", session("<foo/>"), StreamError("unsupported-stanza-type")),
    Entry("jid-malformed-to", "c2s-tls", "a message to '@@@'", "RFC 6120 §8.3.3.8",
          session("<message to='@@@' id='jm-1'><body>x</body></message>", track=["jm-1"]),
          StanzaError("jid-malformed") & Usable()),
    Entry("iq-unknown-type", "c2s-tls", "an IQ with type='bogus'", "RFC 6120 §8.2.3, §8.3.3.1",
          iq_probe("<ping xmlns='urn:xmpp:ping'/>", type="bogus", to="{domain}"),
          StanzaError("bad-request")),
    Entry("iq-two-payloads", "c2s-tls", "an IQ get with two child elements", "RFC 6120 §8.2.3",
          iq_probe("<ping xmlns='urn:xmpp:ping'/><query xmlns='jabber:iq:version'/>", to="{domain}"),
          StanzaError("bad-request")),
    Entry("iq-without-id", "c2s-tls", "an IQ get without an id attribute",
          "RFC 6120 §8.1.3, §8.3.3.1",
          iq_without_id,
          Fact("answer", "bad-request", "the id-less IQ gets <bad-request/>")
          | StreamError("invalid-xml", **XML_ERRORS)),
    Entry("second-bind", "c2s-tls", "a second resource binding on a bound stream",
          "RFC 6120 §7.6.2.2, §8.3.3.19",
          iq_probe(f"<bind xmlns='{BIND}'><resource>again</resource></bind>", type="set"),
          StanzaError("not-allowed", "service-unavailable", "resource-constraint")),
    Entry("resource-binding-flood", "c2s-tls", "50 simultaneous sessions of one account",
          "RFC 6120 §7.6.2.1 (a limit answers <resource-constraint/>)",
          resource_flood(50),
          Fact("outcomes", lambda o: o and set(o) <= {"bound", "resource-constraint"}
               and sum(o.values()) == 50, "every bind answered (bound or <resource-constraint/>)")),
    Entry("resource-conflict-flood", "c2s-tls", "8 sessions in a row binding the same resource",
          "RFC 6120 §7.7.2.2", resource_conflict(8),
          Fact("handled", 8, "each conflict resolved by one of the three RFC options")),
    Entry("message-flood", "c2s-tls", "2000 chat messages to an online account in one burst",
          "RFC 6121 §8.5.2 (delivered), RFC 6120 §13.12",
          message_flood(2000),
          (Usable() & Fact("delivered", 2000, "all 2000 delivered to the victim")
           & Fact("victim_alive", True, "the victim's session still answers"))
          | StreamError("policy-violation")),
    Entry("iq-flood", "c2s-tls", "2000 pings to the server in one burst", "RFC 6120 §8.2.3, XEP-0199",
          iq_flood(2000),
          (Usable() & Fact("results", 2000, "all 2000 answered")) | StreamError("policy-violation")),
    Entry("presence-flood", "c2s-tls", "300 presence updates in one burst", "RFC 6121 §4.4",
          presence_flood(300), Usable() | StreamError("policy-violation")),
    Entry("offline-storage-flood", "c2s-tls",
          "max_offline_messages + 5 messages to an offline account",
          "XEP-0160 §2 (a full offline queue: <service-unavailable/>)",
          offline_flood,
          StanzaError("service-unavailable", count=5)
          & Fact("bounced", lambda b: b == list(range(20, 25)),
                 "exactly the 5 messages beyond the limit bounce")),
    Entry("whitespace-flood", "c2s-tls",
          "600 KB of whitespace between stanzas (past the shaper's burst: read at limits.bytes_per_second)",
          "RFC 6120 §4.6.1, §11.7 (whitespace keepalives; nothing to buffer); README Limits",
          session(" \n\t" * 200_000, ping_timeout=20.0), Usable() | StreamError("policy-violation")),
    Entry("error-stanza-no-bounce", "c2s-tls",
          "error stanzas to a missing account and to the server",
          "RFC 6120 §8.3.1 (an error is never answered with an error)",
          error_bounce, Usable() & Fact("answers", 0, "no answer to any of them")),
    Entry("unsolicited-iq-result", "c2s-tls", "IQ results and errors the server never asked for",
          "RFC 6120 §8.2.3 (only requests are answered)",
          session("<iq type='result' id='nobody-asked' to='{domain}'/>"
                  "<iq type='error' id='nobody-asked-2'><error type='cancel'><item-not-found "
                  "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
                  track=["nobody-asked", "nobody-asked-2"], until_replies=False),
          Usable() & Fact("replies", 0, "no answer")),
    Entry("directed-presence-flood", "c2s-tls", "directed presence to 300 JIDs that do not exist",
          "RFC 6121 §4.6", directed_presence_flood(300), Usable() | StreamError("policy-violation")),
    Entry("unknown-message-type", "c2s-tls", "a message with type='bogus' to an online account",
          "RFC 6121 §5.2.2 (treated as 'normal')", unknown_message_type,
          Usable() & Fact("delivered", 1, "delivered as a normal message")),
    Entry("roster-many-items", "c2s-tls", "a roster set with two items", "RFC 6121 §2.3.3",
          iq_probe(f"<query xmlns='{ROSTER}'><item jid='a@x.example'/><item jid='b@x.example'/></query>",
                   type="set"),
          StanzaError("bad-request")),
    Entry("roster-empty-group", "c2s-tls", "a roster item with an empty <group/>", "RFC 6121 §2.3.3",
          iq_probe(f"<query xmlns='{ROSTER}'><item jid='a@x.example'><group/></item></query>", type="set"),
          StanzaError("not-acceptable")),
    Entry("roster-duplicate-group", "c2s-tls", "a roster item naming one group twice", "RFC 6121 §2.3.3",
          iq_probe(f"<query xmlns='{ROSTER}'><item jid='a@x.example'><group>g</group><group>g</group>"
                   "</item></query>", type="set"),
          StanzaError("bad-request")),
    Entry("roster-name-too-long", "c2s-tls", "a roster item with a 5000-character name", "RFC 6121 §2.3.3",
          iq_probe(f"<query xmlns='{ROSTER}'><item jid='a@x.example' name='{'n' * 5000}'/></query>",
                   type="set"),
          StanzaError("not-acceptable")),
    Entry("roster-forged-subscription", "c2s-tls", "a roster set with subscription='both'",
          "RFC 6121 §2.1.2.5 (ignored: only 'remove' is meaningful)", forged_subscription,
          Result() & Fact("subscription", "none", "the item's subscription stays 'none'")),
    Entry("roster-of-another-account", "c2s-tls", "a roster set addressed to another account",
          "RFC 6121 §2.3.3 (forbidden)",
          iq_probe(f"<query xmlns='{ROSTER}'><item jid='evil@x.example'/></query>", type="set",
                   to="victim@{domain}"),
          StanzaError("forbidden")),
    Entry("roster-bomb", "c2s-tls", "500 roster sets in one burst, long names, five groups each",
          "RFC 6121 §2.3", roster_bomb(500),
          Result(count=500) & Fact("roster_items", 500, "all 500 items in the roster")),
    Entry("subscription-spam", "c2s-tls", "500 subscription requests to an online account",
          "RFC 6121 §3.1", subscription_spam(500),
          (Usable() & Fact("victim_alive", True, "the victim's session still answers"))
          | StreamError("policy-violation")),
    Entry("muc-join-flood", "c2s-tls", "15 sessions of one account join the busy room at once",
          "XEP-0045 §7.2", muc_join_flood(15),
          Fact("joined", 15, "every session gets its self-presence (110)")),
    Entry("muc-message-flood", "c2s-tls", "1000 groupchat messages into the busy room in one burst",
          "XEP-0045 §7.4", muc_message_flood(1000),
          (Usable() & Fact("reflected", 1000, "all 1000 reflected")) | StreamError("policy-violation")),
    Entry("muc-not-occupant", "c2s-tls", "a groupchat message to the busy room without joining it",
          "XEP-0045 §7.4 (not-acceptable)",
          muc_probe(lambda ctx, i: f"<message to='{ctx.room}' type='groupchat' id='{i}'><body>x</body></message>"),
          StanzaError("not-acceptable")),
    Entry("muc-huge-nick", "c2s-tls", "a join with a 2000-character nickname",
          "RFC 7622 §3.4 (resourcepart <= 1023 bytes), RFC 6120 §8.3.3.8",
          muc_probe(lambda ctx, i: f"<presence to='{ctx.room}/{'n' * 2000}' id='{i}'/>"),
          StanzaError("jid-malformed")),
    Entry("muc-oversized-message", "c2s-tls", "a 20 KB groupchat message (room limit 16 KB)",
          "RFC 6120 §8.3.3.12",
          muc_probe(lambda ctx, i: f"<message to='{ctx.room}' type='groupchat' id='{i}'>"
                                   f"<body>{'x' * 20000}</body></message>"),
          StanzaError("policy-violation", "not-acceptable")),
    Entry("vcard-oversized", "c2s-tls", "a vCard with a 200 KB photo (under the stanza limit)",
          "XEP-0054, RFC 6120 §8.3.3",
          vcard_oversized,
          (Result() & Fact("stored_intact", True, "stored and served back intact"))
          | StanzaError("not-acceptable", "policy-violation", "resource-constraint")),
    Entry("pep-oversized-item", "c2s-tls", "a 100 KB PEP item (limit 64 KiB)",
          "XEP-0060 §7.1.3.5 (payload-too-big)",
          iq_probe(f"<pubsub xmlns='{PUBSUB}'><publish node='urn:example:big'><item id='1'>"
                   f"<x xmlns='urn:example:big'>{'A' * 100_000}</x></item></publish></pubsub>", type="set"),
          StanzaError("not-acceptable", app=(PUBSUB_ERRORS, "payload-too-big"))),
    Entry("mam-everything", "c2s-tls", "an archive query with no filter and <max>1000000000</max>",
          "XEP-0313 §4.3.1, XEP-0059 §2.1",
          mam_everything,
          Result() & Fact("consistent", True, "a page the server may limit, not marked complete if limited")
          & Fact("seconds", lambda s: s is not None and s < 10, "answered within 10 s")),
    Entry("mam-query-flood", "c2s-tls", "20 archive queries of 250 messages in one burst",
          "XEP-0313 §4, RFC 6120 §4.9.3.14 (a session that cannot keep up with its queue)",
          mam_flood(20), (Result(count=20) & Usable()) | StreamError("policy-violation")),
    Entry("mam-bad-max", "c2s-tls", "an archive query with <max>-1</max>", "XEP-0059 §2.1, RFC 6120 §8.3.3.1",
          iq_probe(f"<query xmlns='{MAM}'><set xmlns='{RSM}'><max>-1</max></set></query>", type="set"),
          StanzaError("bad-request")),
    Entry("mam-unknown-after", "c2s-tls", "an archive query after an id that does not exist",
          "XEP-0313 §4.3.2 (item-not-found)",
          iq_probe(f"<query xmlns='{MAM}'><set xmlns='{RSM}'><after>no-such-id</after></set></query>",
                   type="set"),
          StanzaError("item-not-found")),
    Entry("mam-unknown-field", "c2s-tls", "an archive query with an unknown form field",
          "XEP-0313 §4.1.5 (feature-not-implemented)",
          iq_probe(f"<query xmlns='{MAM}'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' "
                   f"type='hidden'><value>{MAM}</value></field><field var='x-evil'><value>1</value></field>"
                   "</x></query>", type="set"),
          StanzaError("feature-not-implemented")),
    Entry("mam-bad-date", "c2s-tls", "an archive query with start='not a date'",
          "XEP-0082, RFC 6120 §8.3.3.1",
          iq_probe(f"<query xmlns='{MAM}'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' "
                   f"type='hidden'><value>{MAM}</value></field><field var='start'><value>not a date"
                   "</value></field></x></query>", type="set"),
          StanzaError("bad-request")),
    Entry("mam-other-account", "c2s-tls", "an archive query addressed to another account",
          "XEP-0313 §8.1 (forbidden)",
          iq_probe(f"<query xmlns='{MAM}'/>", type="set", to="victim@{domain}"),
          StanzaError("forbidden")),
    Entry("sm-r-before-enable", "c2s-tls", "<r/> before stream management is enabled",
          "XEP-0198 §4 (nothing to acknowledge)",
          session(f"<r xmlns='{SM}'/>"), Usable()),
    Entry("sm-r-flood", "c2s-tls", "100 <r/> in a row with nothing sent",
          "XEP-0198 §6 (misuse MAY end the stream), RFC 6120 §4.9.3.14",
          session(f"<r xmlns='{SM}'/>" * 100, sm=True),
          StreamError("policy-violation")),
    Entry("sm-a-too-high", "c2s-tls", "<a h='1000'/> with nothing sent", "XEP-0198 §6",
          session(f"<a xmlns='{SM}' h='1000'/>", sm=True),
          StreamError("undefined-condition", app=(SM, "handled-count-too-high"))),
    Entry("sm-a-negative", "c2s-tls", "<a h='-1'/>", "XEP-0198 §4 (xs:unsignedInt), RFC 6120 §4.9.3.11",
          session(f"<a xmlns='{SM}' h='-1'/>", sm=True),
          StreamError("invalid-xml", **XML_ERRORS)),
    Entry("sm-a-not-a-number", "c2s-tls", "<a h='abc'/>", "XEP-0198 §4 (xs:unsignedInt), RFC 6120 §4.9.3.11",
          session(f"<a xmlns='{SM}' h='abc'/>", sm=True),
          StreamError("invalid-xml", **XML_ERRORS)),
    Entry("sm-a-flood", "c2s-tls", "2000 valid <a h='0'/> in one burst", "XEP-0198 §4",
          session(f"<a xmlns='{SM}' h='0'/>" * 2000, sm=True),
          Usable() | StreamError("policy-violation")),
    Entry("sm-enable-twice", "c2s-tls", "<enable/> on a stream that has it already", "XEP-0198 §3",
          session(f"<enable xmlns='{SM}'/>", sm=True), SmFailed("unexpected-request")),
    Entry("sm-resume-unknown", "c2s-tls", "<resume/> of a session that never existed", "XEP-0198 §5",
          resume_unknown, SmFailed("item-not-found")),

    # ---- websocket: RFC 7395 on /xmpp-websocket ----------------------------------------------
    Entry("ws-no-subprotocol", "websocket", "an upgrade without Sec-WebSocket-Protocol: xmpp",
          "RFC 7395 §3.1, RFC 6455 §4.2.2", ws_handshake({"Sec-WebSocket-Protocol": None}),
          Http(400)),
    Entry("ws-wrong-version", "websocket", "Sec-WebSocket-Version: 8",
          "RFC 6455 §4.2.2 (426 with Sec-WebSocket-Version: 13)",
          ws_handshake({"Sec-WebSocket-Version": "8"}),
          Http(426, headers={"Sec-WebSocket-Version": "13"})),
    Entry("ws-missing-key", "websocket", "an upgrade without Sec-WebSocket-Key", "RFC 6455 §4.2.1",
          ws_handshake({"Sec-WebSocket-Key": None}), Http(400)),
    Entry("ws-foreign-origin", "websocket", "an upgrade from Origin: https://evil.example",
          "RFC 6455 §4.2.2, §10.2 (403)", ws_handshake({"Origin": "https://evil.example"}), Http(403)),
    Entry("ws-post-upgrade", "websocket", "an upgrade request with POST",
          "RFC 6455 §4.1 (GET), RFC 9110 §15.5.6", ws_handshake(method="POST"), Http(400, 405)),
    Entry("ws-huge-headers", "websocket", "an upgrade with 20 KB of cookies",
          "RFC 6585 §5 (431), RFC 9110 §15.5.1", ws_handshake({"Cookie": "c=" + "a" * 20000}),
          Http(400, 431)),
    Entry("ws-binary-frame", "websocket", "a binary frame instead of a text frame",
          "RFC 7395 §3.2, RFC 6455 §7.4.1 (1003)",
          ws(lambda w: [w.frame(0x2, b"<presence xmlns='jabber:client'/>")]),
          ENCODING | WsClose(1003)),
    Entry("ws-invalid-utf8", "websocket", "a text frame with invalid UTF-8",
          "RFC 6455 §8.1 (fail the connection, 1007), RFC 6120 §11.6",
          ws(lambda w: [w.frame(0x1, b"<message xmlns='jabber:client'><body>caf\xe9</body></message>")]),
          (ENCODING & WsStreamClosed()) | (WsClose(1007) & Closed())),
    Entry("ws-two-elements", "websocket", "two stanzas in one WebSocket message",
          "RFC 7395 §3.3.3", ws(lambda w: ["<presence xmlns='jabber:client'/><presence xmlns='jabber:client'/>"]),
          StreamError("not-well-formed", **XML_ERRORS) & WsStreamClosed()),
    Entry("ws-tcp-stream-header", "websocket", "an RFC 6120 <stream:stream> open tag as a message",
          "RFC 7395 §3.3.2, §3.3.3",
          ws(lambda w: [H]), StreamError("not-well-formed", **XML_ERRORS) & WsStreamClosed()),
    Entry("ws-oversized-message", "websocket", "a 300 KB text message (more than max_stanza_size)",
          "RFC 6120 §4.9.3.14, RFC 6455 §7.4.1 (1009)",
          ws(lambda w: [w.frame(0x1, b"<message xmlns='jabber:client'><body>" + b"x" * 300_000
                                + b"</body></message>")]),
          StreamError("policy-violation") | WsClose(1009)),
    Entry("ws-deep-nesting", "websocket", "a message with 500 nested elements", "RFC 6120 §4.9.3.14",
          ws(lambda w: ["<message xmlns='jabber:client'>" + "<a>" * 500 + "</a>" * 500 + "</message>"]),
          StreamError("policy-violation")),
    Entry("ws-entity", "websocket", "an undeclared entity reference in a message", "RFC 6120 §11.1",
          ws(lambda w: ["<message xmlns='jabber:client'><body>&lol9;</body></message>"]),
          StreamError("restricted-xml", "not-well-formed", **XML_ERRORS)),
    Entry("ws-unknown-host", "websocket", "<open/> to a domain the server does not serve",
          "RFC 7395 §3.4, RFC 6120 §4.9.3.6",
          lambda ctx: _ws_open(ctx, "evil.example"), StreamError("host-unknown") & WsStreamClosed()),
    Entry("ws-stanza-before-auth", "websocket", "a message before authentication", "RFC 6120 §4.9.3.12",
          ws(lambda w: ["<message xmlns='jabber:client' to='victim@{domain}'><body>x</body></message>"]),
          StreamError("not-authorized")),
    Entry("ws-forged-from", "websocket", "a message whose from is another account", "RFC 6120 §4.9.3.9",
          ws(lambda w: ["<message xmlns='jabber:client' to='victim@{domain}' from='victim@{domain}'>"
                        "<body>x</body></message>"], auth=True),
          StreamError("invalid-from")),
    Entry("ws-unmasked-frame", "websocket", "an unmasked frame from the client",
          "RFC 6455 §5.1 (the server MUST close; 1002)",
          ws(lambda w: [w.frame(0x1, b"<presence xmlns='jabber:client'/>", mask=False)]), Closed(1002)),
    Entry("ws-reserved-bits", "websocket", "a frame with RSV1 set and no extension", "RFC 6455 §5.2",
          ws(lambda w: [w.frame(0x1, b"<presence xmlns='jabber:client'/>", rsv=4)]), Closed(1002)),
    Entry("ws-unknown-opcode", "websocket", "a frame with the reserved opcode 0xB", "RFC 6455 §5.2",
          ws(lambda w: [w.frame(0xB, b"x")]), Closed(1002)),
    Entry("ws-ping-flood", "websocket", "300 WebSocket pings in one burst", "RFC 6455 §5.5.2",
          ws_ping_flood(300), Usable()),
    Entry("ws-fragmented-stanza", "websocket", "an IQ split into one-byte continuation frames",
          "RFC 6455 §5.4", ws_fragmented, Result()),

    # ---- bosh: XEP-0124/0206 on /http-bind -----------------------------------------------------
    Entry("bosh-not-xml", "bosh", "a request body that is not XML", "XEP-0124 §17.2 (bad-request)",
          bosh_raw(b"this is not xml"), Http(200, 400, terminate="bad-request")),
    Entry("bosh-no-rid", "bosh", "a session request without rid", "XEP-0124 §7.1, §17.2",
          bosh_raw(lambda ctx: f"<body xmlns='{HTTPBIND}' to='{ctx.domain}' ver='1.11' wait='2' hold='1'/>"),
          Http(200, 400, terminate="bad-request")),
    Entry("bosh-rid-too-large", "bosh", "rid = 2^53 + 1", "XEP-0124 §14.1 (rid < 2^53)",
          bosh_raw(lambda ctx: BOSH_CREATE.format(rid=2 ** 53 + 1, to=ctx.domain, extra="", inner="")),
          Http(200, 400, terminate="bad-request")),
    Entry("bosh-unknown-sid", "bosh", "a request for a sid that does not exist", "XEP-0124 §17.2 (item-not-found)",
          bosh_raw(f"<body xmlns='{HTTPBIND}' rid='42' sid='{secrets.token_hex(12)}'/>"),
          Http(200, 404, terminate="item-not-found")),
    Entry("bosh-billion-laughs", "bosh", "a body with a DTD and nested entities",
          "XEP-0124 §17.2, RFC 6120 §11.1",
          bosh_raw(lambda ctx: "<?xml version='1.0'?><!DOCTYPE body [<!ENTITY a 'aaaaaaaaaa'>"
                   "<!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'><!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;'>]>"
                   + BOSH_CREATE.format(rid=77, to=ctx.domain, extra="", inner="&c;")),
          Http(200, 400, terminate="bad-request")),
    Entry("bosh-oversized-body", "bosh", "a 400 KB request body", "XEP-0124 §17.2, RFC 9110 §15.5.14",
          bosh_raw(lambda ctx: BOSH_CREATE.format(rid=78, to=ctx.domain, extra="", inner="x" * 400_000)),
          Http(200, 403, terminate="policy-violation") | Http(413)),
    Entry("bosh-deep-nesting", "bosh", "a body with 200 nested elements", "XEP-0124 §17.2",
          bosh_raw(lambda ctx: BOSH_CREATE.format(rid=79, to=ctx.domain, extra="",
                                                  inner="<a>" * 200 + "</a>" * 200)),
          Http(200, 400, terminate="bad-request") | Http(200, 403, terminate="policy-violation")),
    Entry("bosh-get", "bosh", "a GET request to /http-bind", "XEP-0124 §5, RFC 9110 §15.5.6",
          lambda ctx: http_request(ctx.host, ctx.port("bosh"), "GET", "/http-bind"), Http(400, 405)),
    Entry("bosh-foreign-origin", "bosh", "a POST from Origin: https://evil.example",
          "XEP-0124 §19, RFC 6454 (origins)",
          bosh_raw(lambda ctx: BOSH_CREATE.format(rid=80, to=ctx.domain, extra="", inner=""),
                   {"Origin": "https://evil.example"}),
          Http(403)),
    Entry("bosh-unknown-host", "bosh", "session creation to a domain the server does not serve",
          "XEP-0124 §17.2 (host-unknown), XEP-0206 §6",
          bosh_unknown_host,
          Fact("well_formed", True, "the answer is one well-formed <body/>")
          & Fact("host_unknown", True, "terminate with host-unknown")),
    Entry("bosh-stanza-before-auth", "bosh", "a message before authentication",
          "XEP-0206 §6, RFC 6120 §4.9.3.12", bosh_session(bosh_before_auth),
          Http(200, terminate="remote-stream-error") & StreamError("not-authorized")),
    Entry("bosh-forged-from", "bosh", "a message whose from is another account",
          "XEP-0206 §6, RFC 6120 §4.9.3.9", bosh_session(bosh_forged_from),
          Http(200, terminate="remote-stream-error") & StreamError("invalid-from")),
    Entry("bosh-rid-ahead-of-window", "bosh", "a rid 10 ahead of the window (requests=2)",
          "XEP-0124 §14.2", bosh_session(bosh_rid_ahead), Http(200, terminate="item-not-found")),
    Entry("bosh-rid-replay-old", "bosh", "a rid 100 behind, long out of the buffer",
          "XEP-0124 §14.3", bosh_session(bosh_rid_old), Http(200, terminate="item-not-found")),
    Entry("bosh-session-flood", "bosh", "20 session creations in a row",
          "XEP-0124 §7.1, §17.2", bosh_session_flood(20),
          Fact("outcomes", lambda o: o and set(o) <= {"created", "remote-connection-failed",
                                                      "policy-violation"} and sum(o.values()) == 20,
               "every request answered: a session, or a terminal condition")),

    # ---- upload: XEP-0363 under /upload/ -------------------------------------------------------
    Entry("upload-forged-signature", "upload", "a PUT whose signature was altered",
          "XEP-0363 §7, RFC 9110 §15.5.4",
          upload_put(lambda p: p[:-6] + "000000"),
          Http(403) & Fact("served_after", 404, "nothing stored")),
    Entry("upload-length-mismatch", "upload", "a PUT of 11 bytes to a 10-byte slot",
          "XEP-0363 §7 (MUST reject a Content-Length that does not match)",
          upload_put(lambda p: p, body=b"0123456789A"),
          Http(400, 403, 413) & Fact("served_after", 404, "nothing stored")),
    Entry("upload-content-type-mismatch", "upload", "a PUT with another Content-Type than the slot's",
          "XEP-0363 §7 (SHOULD reject)",
          upload_put(lambda p: p, ctype="text/html"),
          Http(400, 403, 415) & Fact("served_after", 404, "nothing stored")),
    Entry("upload-slot-reuse", "upload", "a second PUT to a used slot", "XEP-0363 §7, RFC 9110 §15.5.10",
          upload_reuse,
          Http(403, 409) & Fact("first", 201, "the first PUT stored the file")
          & Fact("content_kept", True, "the stored file is unchanged")),
    Entry("upload-chunked", "upload", "a PUT without Content-Length (chunked)",
          "XEP-0363 §7, RFC 9110 §15.5.12 (411)",
          upload_chunked, Http(400, 411) & Fact("served_after", 404, "nothing stored")),
    Entry("upload-path-traversal", "upload", "GETs of ../, %2e%2e and the file's meta/data paths",
          "RFC 3986 §5.2.4, XEP-0363 §9",
          upload_traversal,
          Fact("leaked", [], "no path outside /upload/<id>/<name> is served")),
    Entry("upload-range-unsatisfiable", "upload", "Range: bytes=5000-6000 of a 10-byte file",
          "RFC 9110 §15.5.17 (416 with Content-Range: bytes */10)",
          upload_range("bytes=5000-6000"), Http(416, headers={"Content-Range": "bytes */10"})),
    Entry("upload-range-overflow", "upload", "Range: bytes=0-99999999999999999999999",
          "RFC 9110 §14.2 (an invalid Range is ignored)",
          upload_range("bytes=0-99999999999999999999999"), Http(200, 206)),
    Entry("upload-slot-too-large", "upload", "a slot request for 1 TB", "XEP-0363 §6 (file-too-large)",
          slot_request(10 ** 12), StanzaError("not-acceptable", app=(UPLOAD, "file-too-large"))),
    Entry("upload-slot-size-overflow", "upload", "a slot request with size beyond 2^64",
          "XEP-0363 §6, RFC 6120 §8.3.3.1",
          slot_request("184467440737095516160"), StanzaError("not-acceptable", "bad-request")),
    Entry("upload-slot-traversal-name", "upload", "a slot request for '../../../../etc/passwd'",
          "XEP-0363 §9 (file names must not escape)",
          slot_traversal_name, Fact("safe", True, "a sanitised one-segment name, or refused")),

    # ---- s2s: the server-to-server port -----------------------------------------------------
    Entry("s2s-garbage", "s2s", "binary garbage instead of a stream header",
          "RFC 6120 §4.9.1.2, §4.9.3.13 (header, then the error)",
          s2s(b"\x00\x01\x02garbage<<<>>>", header=False), StreamError("not-well-formed", **XML_ERRORS)),
    Entry("s2s-wrong-stream-namespace", "s2s", "a stream element in the namespace urn:evil",
          "RFC 6120 §4.9.3.10",
          s2s("<stream:stream xmlns='jabber:server' xmlns:stream='urn:evil' to='{domain}' "
              "from='evil.example' version='1.0'>", header=False),
          StreamError("invalid-namespace", **XML_ERRORS)),
    Entry("s2s-client-namespace", "s2s", "a server stream whose content namespace is jabber:client",
          "RFC 6120 §4.8.2, §4.9.3.10",
          s2s("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
              "to='{domain}' from='evil.example' version='1.0'>", header=False),
          StreamError("invalid-namespace")),
    Entry("s2s-unknown-host", "s2s", "a stream header to a domain the server does not host",
          "RFC 6120 §4.9.3.6",
          s2s(S2S_HEADER.format(to="nothere.example", frm="evil.example", extra=""), header=False),
          StreamError("host-unknown")),
    Entry("s2s-huge-stream-header", "s2s", "a stream header with a 300 KB attribute",
          "RFC 6120 §4.9.3.14, §13.12",
          s2s(S2S_HEADER.format(to="{domain}", frm="evil.example",
                                extra=" x-pad='" + "x" * 300_000 + "'"), header=False),
          StreamError("policy-violation")),
    Entry("s2s-billion-laughs", "s2s", "a DTD with entities before the stream header",
          "RFC 6120 §11.1, §4.9.3.18",
          s2s("<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaa'><!ENTITY b '&a;&a;&a;&a;'>]>"
              + S2S_HEADER.format(to="{domain}", frm="evil.example", extra="")[len("<?xml version='1.0'?>"):],
              header=False),
          StreamError("restricted-xml", **XML_ERRORS)),
    Entry("s2s-stanza-before-tls", "s2s", "a stanza before STARTTLS (TLS required)",
          "RFC 6120 §5.3.1, §4.9.3.12, §4.9.3.14",
          s2s("<message from='a@evil.example' to='victim@{domain}'><body>x</body></message>"),
          StreamError("policy-violation", "not-authorized")),
    Entry("s2s-dialback-before-tls", "s2s", "a dialback key before STARTTLS (TLS required)",
          "XEP-0220 §2.5 (policy-violation)",
          with_fact(s2s("<db:result from='evil.example' to='{domain}'>deadbeef</db:result>"),
                    "answer", dialback_answer("result")),
          Fact("answer", ("error", "policy-violation"), "<db:result type='error'> with <policy-violation/>")
          | StreamError("policy-violation")),
    Entry("s2s-dialback-foreign-target", "s2s", "a dialback key for a domain the server does not host",
          "XEP-0220 §2.5 (item-not-found)",
          with_fact(s2s("<db:result from='evil.example' to='nothere.example'>deadbeef</db:result>"),
                    "answer", dialback_answer("result")),
          Fact("answer", ("error", "item-not-found"), "<db:result type='error'> with <item-not-found/>")),
    Entry("s2s-dialback-without-from", "s2s", "a dialback key without a from attribute",
          "RFC 6120 §4.9.3.7 (improper-addressing)",
          s2s("<db:result to='{domain}'>deadbeef</db:result>"), StreamError("improper-addressing")),
    Entry("s2s-dialback-verify-forged", "s2s", "a verification request for a key the server never made",
          "XEP-0220 §2.2.2 (type='invalid')",
          with_fact(s2s("<db:verify from='evil.example' to='{domain}' id='forged-id'>deadbeef</db:verify>"),
                    "answer", dialback_answer("verify")),
          Fact("answer", ("invalid", None), "<db:verify type='invalid'/>")),
    Entry("s2s-dialback-forged-domain", "s2s",
          "after TLS, a dialback key for a domain whose authoritative server refuses connections",
          "XEP-0220 §2.5 (a Step 3 error: remote-server-not-found; table: remote-connection-failed)",
          with_fact(s2s("<db:result from='evil.example' to='{domain}'>deadbeef</db:result>",
                        tls=True, wait=8),
                    "answer", dialback_answer("result")),
          Fact("answer", lambda a: a in (("error", "remote-server-not-found"),
                                         ("error", "remote-connection-failed")),
               "<db:result type='error'> with <remote-server-not-found/> or <remote-connection-failed/>")),
    Entry("s2s-forged-stanza-after-tls", "s2s",
          "after TLS, a stanza from a domain the stream never proved",
          "RFC 6120 §4.9.3.12", s2s_forged_stanza_after_tls,
          StreamError("not-authorized") & Fact("delivered", 0, "nothing delivered")),
    Entry("s2s-starttls-garbage", "s2s", "STARTTLS, then garbage instead of a ClientHello",
          "RFC 6120 §5.4.3.2", s2s_starttls_garbage, Closed()),
]


def _ws_open(ctx, to: str) -> Observed:
    with WsConn(ctx.host, ctx.port("websocket")) as w:
        assert w.handshake()[0] == 101
        w.send_text(f"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='{to}' version='1.0'/>")
        return w.observe(WAIT)


SURFACES = ("c2s", "c2s-tls", "websocket", "bosh", "upload", "s2s")
assert len({e.id for e in CATALOGUE}) == len(CATALOGUE), "duplicate ids"
assert all(e.surface in SURFACES for e in CATALOGUE)


if __name__ == "__main__":
    # `python tests/hostile/catalogue.py`: the table, one row per line.
    counts = {s: sum(1 for e in CATALOGUE if e.surface == s) for s in SURFACES}
    for e in CATALOGUE:
        print(f"{e.surface:9} {e.id:32} {e.description}\n{'':42}-> {e.expect}  [{e.spec}]")
    print(f"\n{len(CATALOGUE)} entries: " + ", ".join(f"{s} {n}" for s, n in counts.items()))
