"""A thin wrapper around aioxmpp.Client for the interop tests.

aioxmpp is a second, independent Python XMPP library (its own XML parser,
stream, SASL through aiosasl, TLS through pyOpenSSL/aioopenssl).  The
server's conftest fixtures are reused; only the client side differs from
xmpp_client.py.  Every wait is bounded.

aioxmpp logs every element it sends and receives at DEBUG (`SENT`/`RECV`
lines of the `...XMLStream` loggers); pytest shows them for failed tests.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta

import aiosasl
import aioxmpp
import aioxmpp.connector
import aioxmpp.sasl
import aioxmpp.security_layer
import aioxmpp.misc
import aioxmpp.forms
import aioxmpp.rsm.xso
import aioxmpp.xso as xso

from xmpp_client import STEP_TIMEOUT, Inbox

LOGIN_TIMEOUT = 15.0


# -- SASL: one mechanism, aiosasl's implementation ------------------------------


class SCRAMSHA1(aiosasl.SCRAM):
    """aiosasl's SCRAM restricted to SCRAM-SHA-1 (it prefers the best hash)."""
    _supported_hashalgos = {"SHA-1": aiosasl.SCRAM._supported_hashalgos["SHA-1"]}


class SCRAMSHA256(aiosasl.SCRAM):
    _supported_hashalgos = {"SHA-256": aiosasl.SCRAM._supported_hashalgos["SHA-256"]}


MECHANISMS = {
    "SCRAM-SHA-256": SCRAMSHA256,
    "SCRAM-SHA-1": SCRAMSHA1,
    "PLAIN": aiosasl.PLAIN,
}


class OneMechanismProvider(aioxmpp.security_layer.SASLProvider):
    """A SASL provider that uses exactly one mechanism class (none other is
    tried when the server does not offer it or refuses it)."""

    def __init__(self, mechanism: str, username: str, password: str):
        self.mechanism = mechanism
        self.cls = MECHANISMS[mechanism]
        self.username = username
        self.password = password
        self.offered: list[str] | None = None
        self.used: str | None = None

    async def execute(self, client_jid, features, xmlstream, tls_transport):
        mechs = features[aioxmpp.security_layer.SASLMechanisms]
        self.offered = list(mechs.get_mechanism_list())
        cls, token = self._find_supported(features, [self.cls])
        if cls is None:
            return False

        async def credentials():
            return self.username, self.password

        ok = await self._execute(aioxmpp.sasl.SASLXMPPInterface(xmlstream), cls(credentials), token)
        if ok:
            self.used = self.mechanism
        return ok


def security_layer(provider) -> aioxmpp.security_layer.SecurityLayer:
    """TLS required, the server's self-signed certificate accepted."""
    return aioxmpp.security_layer.SecurityLayer(
        aioxmpp.security_layer.default_ssl_context,
        aioxmpp.security_layer._NullVerifier,  # what make(no_verify=True) uses
        True,
        (provider,),
    )


# -- the client ----------------------------------------------------------------


class AioClient:
    """One aioxmpp client connection to the server under test.

    `inbox` holds every message, presence and IQ aioxmpp parsed, in arrival
    order, before any of its services handled them."""

    def __init__(self, server, account, *, mech: str = "SCRAM-SHA-256",
                 direct_tls: bool = False, resource: str | None = None,
                 password: str | None = None, services=()):
        self.server = server
        self.account = account
        jid = aioxmpp.JID.fromstr(account.jid)
        if resource:
            jid = jid.replace(resource=resource)
        self.provider = OneMechanismProvider(
            mech, jid.localpart, password if password is not None else account.password)
        connector = (aioxmpp.connector.XMPPOverTLSConnector() if direct_tls
                     else aioxmpp.connector.STARTTLSConnector())
        port = server.c2s_tls_port if direct_tls else server.c2s_port
        self.client = aioxmpp.Client(
            jid, security_layer(self.provider),
            override_peer=[(server.host, port, connector)],
            max_initial_attempts=1,
            negotiation_timeout=timedelta(seconds=10),
        )
        # Reconnect quickly after a dropped connection (stream resumption).
        self.client.backoff_start = timedelta(seconds=0.1)
        self.client.backoff_cap = timedelta(seconds=1)
        self.inbox = Inbox("stanza")
        self.suspended = 0
        self.resumed = 0
        self.destroyed = 0
        stream = self.client.stream
        original = stream.recv_stanza

        def recording_recv_stanza(st):
            if isinstance(st, (aioxmpp.Message, aioxmpp.Presence, aioxmpp.IQ)):
                self.inbox.put(st)
            return original(st)

        # StanzaStream hands this bound method to the XML stream's parser at
        # each (re)connection: every parsed stanza passes here first.
        stream.recv_stanza = recording_recv_stanza
        self._resumed_event = asyncio.Event()
        self.client.on_stream_suspended.connect(self._on_suspended)
        self.client.on_stream_resumed.connect(self._on_resumed)
        self.client.on_stream_destroyed.connect(self._on_destroyed)
        # Services that act during stream establishment (e.g. the blocking
        # client fetches the blocklist then) are summoned before connecting.
        for cls in services:
            self.client.summon(cls)

    def _on_suspended(self, *args, **kw):
        self.suspended += 1

    def _on_resumed(self, *args, **kw):
        self.resumed += 1
        self._resumed_event.set()

    def _on_destroyed(self, *args, **kw):
        self.destroyed += 1

    @property
    def jid(self) -> aioxmpp.JID:
        return self.client.local_jid

    def summon(self, cls):
        return self.client.summon(cls)

    async def connect(self, timeout: float = LOGIN_TIMEOUT) -> "AioClient":
        """Connect, authenticate and bind; raise on any failure."""
        c = self.client
        established = c.on_stream_established.future()
        failed = c.on_failure.future()
        c.start()
        try:
            done, _ = await asyncio.wait({established, failed}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if failed in done:
                raise failed.exception() or AssertionError("aioxmpp client failed")
            if not done:
                raise AssertionError(f"no session for {c.local_jid} within {timeout}s")
        except BaseException:
            await self.close()
            raise
        finally:
            for f in (established, failed):
                if not f.done():
                    f.cancel()
        return self

    async def send(self, stanza, timeout: float = STEP_TIMEOUT):
        """Send; for an IQ get/set, the payload of the result (raises
        aioxmpp.errors.XMPPError on an error reply)."""
        return await asyncio.wait_for(self.client.send(stanza), timeout)

    def enqueue(self, stanza):
        return self.client.enqueue(stanza)

    async def presence(self, show=aioxmpp.PresenceShow.NONE, status=None):
        """Available presence through aioxmpp's PresenceServer (with the
        entity caps of the services summoned)."""
        ps = self.summon(aioxmpp.PresenceServer)
        ps.set_presence(aioxmpp.PresenceState(True, show), status=status or {})

    def drop(self) -> None:
        """Cut the TCP connection under the stream, as when a phone loses
        its network: no stream footer, no TLS close_notify. Both ends see
        the socket shut down; aioxmpp notices, reconnects by itself and
        resumes the stream (XEP-0198)."""
        transport = self.client.stream._xmlstream._transport
        raw = transport.get_extra_info("socket")
        assert raw is not None, "no socket under the stream"
        raw.shutdown(socket.SHUT_RDWR)

    async def wait_resumed(self, timeout: float = 15.0) -> None:
        try:
            await asyncio.wait_for(self._resumed_event.wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"stream not resumed within {timeout}s (suspended {self.suspended}, "
                f"destroyed {self.destroyed})") from None

    async def close(self) -> None:
        c = self.client
        if not c.running:
            return
        stopped = c.on_stopped.future()
        failed = c.on_failure.future()
        c.stop()
        try:
            await asyncio.wait({stopped, failed}, timeout=5.0,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for f in (stopped, failed):
                if not f.done():
                    f.cancel()


# -- stanza helpers ------------------------------------------------------------------


def body_of(msg) -> str | None:
    """The message body (any language), or None (also for non-messages)."""
    if not isinstance(msg, aioxmpp.Message) or not msg.body:
        return None
    return next(iter(msg.body.values()))


def chat_from(jid, body=None):
    """A message with a body from jid (a full JID matches exactly, a bare
    one any resource)."""
    jid = aioxmpp.JID.fromstr(str(jid))

    def pred(st):
        if not isinstance(st, aioxmpp.Message) or st.type_ == aioxmpp.MessageType.ERROR:
            return False
        if st.from_ is None:
            return False
        if (st.from_ if jid.resource else st.from_.bare()) != jid:
            return False
        b = body_of(st)
        return b is not None and (body is None or b == body)
    return pred


def presence_from(jid, type_=aioxmpp.PresenceType.AVAILABLE):
    jid = aioxmpp.JID.fromstr(str(jid))

    def pred(st):
        if not isinstance(st, aioxmpp.Presence) or st.from_ is None:
            return False
        if (st.from_ if jid.resource else st.from_.bare()) != jid:
            return False
        return type_ is None or st.type_ == type_
    return pred


# -- XEP-0313 (aioxmpp has no MAM module): XSOs for the query and results -----------

NS_MAM = "urn:xmpp:mam:2"


class MAMQuery(xso.XSO):
    TAG = (NS_MAM, "query")
    queryid = xso.Attr("queryid", default=None)
    form = xso.Child([aioxmpp.forms.Data])
    rsm = xso.Child([aioxmpp.rsm.xso.ResultSetMetadata])


class MAMFin(xso.XSO):
    TAG = (NS_MAM, "fin")
    complete = xso.Attr("complete", type_=xso.Bool(), default=False)
    rsm = xso.Child([aioxmpp.rsm.xso.ResultSetMetadata])


class MAMResult(xso.XSO):
    TAG = (NS_MAM, "result")
    queryid = xso.Attr("queryid", default=None)
    id_ = xso.Attr("id")
    forwarded = xso.Child([aioxmpp.misc.Forwarded])


aioxmpp.IQ.as_payload_class(MAMQuery)
aioxmpp.IQ.as_payload_class(MAMFin)
aioxmpp.Message.xep0313_result = xso.Child([MAMResult])


# -- fixture -------------------------------------------------------------------------

import pytest  # noqa: E402


@pytest.fixture
async def aio_connect():
    """aio_connect(server, account, **AioClient kwargs) -> connected AioClient.

    Every client made here is stopped at teardown, pass or fail."""
    made: list[AioClient] = []

    async def _connect(server, account, **kw) -> AioClient:
        c = AioClient(server, account, **kw)
        made.append(c)
        return await c.connect()

    yield _connect
    for c in made:
        await c.close()


# -- MUC helpers -------------------------------------------------------------------------


def muc_codes(st) -> set[int]:
    x = getattr(st, "xep0045_muc_user", None)
    if x is None:
        return set()
    return {int(getattr(c, "value", c)) for c in x.status_codes}


def occupant(room, nick=None, type_=aioxmpp.PresenceType.AVAILABLE, codes=frozenset()):
    room = aioxmpp.JID.fromstr(str(room))

    def pred(st):
        if not isinstance(st, aioxmpp.Presence) or st.from_ is None:
            return False
        if st.from_.bare() != room or (nick is not None and st.from_.resource != nick):
            return False
        if type_ is not None and st.type_ != type_:
            return False
        return set(codes) <= muc_codes(st)
    return pred


def groupchat(room, body=None, nick=None):
    room = aioxmpp.JID.fromstr(str(room))

    def pred(st):
        if not isinstance(st, aioxmpp.Message) or st.type_ != aioxmpp.MessageType.GROUPCHAT:
            return False
        if st.from_ is None or st.from_.bare() != room:
            return False
        if nick is not None and st.from_.resource != nick:
            return False
        b = body_of(st)
        return b is not None and (body is None or b == body)
    return pred


def subject_from(room):
    room = aioxmpp.JID.fromstr(str(room))

    def pred(st):
        return (isinstance(st, aioxmpp.Message) and st.type_ == aioxmpp.MessageType.GROUPCHAT
                and st.from_ is not None and st.from_.bare() == room
                and body_of(st) is None and bool(st.subject))
    return pred
