"""A thin wrapper around slixmpp.ClientXMPP for the interop tests.

Every wait is bounded: nothing here can hang a test.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import socket
import ssl
import struct
from typing import Callable

import slixmpp
from slixmpp import JID
from slixmpp.stanza import Iq, Message, Presence
from slixmpp.plugins.xep_0402.stanza import Conference

log = logging.getLogger("interop")

STEP_TIMEOUT = 10.0  # one network round or event
TEST_TIMEOUT = 45.0  # one whole test
QUIET = 1.0  # a window in which something must NOT arrive
DEFAULT_PLUGINS = ("xep_0030", "xep_0054", "xep_0092", "xep_0199", "xep_0203")


class LoginFailed(AssertionError):
    pass


class Client:
    """One XMPP client connection to the server under test."""

    def __init__(self, server, account=None, *, jid: str | None = None,
                 password: str | None = None, direct_tls: bool = False,
                 mech: str | None = None, resource: str | None = None,
                 plugins=DEFAULT_PLUGINS, plugin_config: dict | None = None):
        self.server = server
        jid = jid or account.jid
        password = password if password is not None else account.password
        if resource:
            jid = f"{jid}/{resource}"
        self.direct_tls = direct_tls
        x = self.xmpp = slixmpp.ClientXMPP(
            jid, password, sasl_mech=mech, plugin_config=plugin_config or {})
        # The server's certificate is self-signed for `localhost`.
        x.ssl_context.check_hostname = False
        x.ssl_context.verify_mode = ssl.CERT_NONE
        # Exactly one connection method: never fall back to another one.
        x.enable_direct_tls = direct_tls
        x.enable_starttls = not direct_tls
        x.enable_plaintext = False
        x.whitespace_keepalive = False
        for p in plugins:
            x.register_plugin(p)
        # Subscription requests are answered explicitly by the tests.
        x.auto_authorize = None
        x.auto_subscribe = False

        self.messages = Inbox("message")
        self.presences = Inbox("presence")
        # Every message, presence and IQ slixmpp received, in order, as
        # parsed, before any plugin handled it (groupchat presences and
        # subjects included, and stanzas re-sent on stream resumption).
        self.inbox = Inbox("stanza")
        self.resumptions = 0
        self.sent_ids: set[str] = set()  # ids of the stanzas slixmpp sent
        self._sm_enabled: asyncio.Future = asyncio.get_running_loop().create_future()
        self.features: list[str] = []
        self.auth_failures: list[str] = []
        self.tls_version: str | None = None

        loop = asyncio.get_running_loop()
        self._outcome: asyncio.Future = loop.create_future()
        x.add_event_handler("session_start", self._on_session_start)
        x.add_event_handler("failed_auth", self._on_failed_auth)
        x.add_event_handler("failed_all_auth", self._on_failed_all_auth)
        x.add_event_handler("no_auth", self._on_failed_all_auth)
        x.add_event_handler("disconnected", self._on_disconnected)
        x.add_event_handler("stream_error", self._on_stream_error)
        x.add_event_handler("message", self.messages.put)
        x.add_event_handler("presence", self.presences.put)
        x.add_filter("in", self._record_features)
        x.add_filter("in", self._record_stanza)
        x.add_event_handler("sm_enabled", self._on_sm_enabled)
        x.add_filter("out", self._record_sent)

    # -- events --------------------------------------------------------

    def _settle(self, value) -> None:
        if not self._outcome.done():
            if isinstance(value, BaseException):
                self._outcome.set_exception(value)
            else:
                self._outcome.set_result(value)

    def _on_session_start(self, _event) -> None:
        sock = self.xmpp.socket
        if isinstance(sock, (ssl.SSLSocket, ssl.SSLObject)):
            self.tls_version = sock.version()
        self._settle(True)

    def _on_failed_auth(self, stanza) -> None:
        self.auth_failures.append(stanza["condition"])
        # With one forced mechanism slixmpp gives up right after this.
        self._settle(LoginFailed(f"SASL failure: {stanza['condition']}"))

    def _on_failed_all_auth(self, _event) -> None:
        self._settle(LoginFailed("no SASL mechanism left (failed_all_auth)"))

    def _on_disconnected(self, reason) -> None:
        self._settle(ConnectionError(f"disconnected before session start: {reason}"))

    def _on_stream_error(self, err) -> None:
        self._settle(ConnectionError(f"stream error: {err}"))

    def _record_sent(self, stanza):
        if isinstance(stanza, (Message, Presence, Iq)) and stanza["id"]:
            self.sent_ids.add(stanza["id"])
        return stanza

    def answers_to_me(self, stanza) -> bool:
        """An IQ result or error answering an IQ this client sent."""
        return (stanza.name == "iq" and stanza["type"] in ("result", "error")
                and stanza["id"] in self.sent_ids)

    def _on_sm_enabled(self, enabled) -> None:
        if not self._sm_enabled.done():
            self._sm_enabled.set_result(enabled)

    async def sm_enabled(self, timeout: float = STEP_TIMEOUT):
        """The server's <enabled/> (xep_0198 must be loaded)."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._sm_enabled), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"stream management not enabled within {timeout}s") from None

    def _record_features(self, stanza):
        if stanza.name == "features":
            self.features.append(str(stanza))
        return stanza

    def _record_stanza(self, stanza):
        if isinstance(stanza, (Message, Presence, Iq)):
            self.inbox.put(stanza)
        return stanza

    # -- connection ----------------------------------------------------

    @property
    def jid(self) -> slixmpp.JID:
        return self.xmpp.boundjid

    async def connect(self, *, initial_presence: bool = False,
                      timeout: float = 15.0) -> "Client":
        """Connect, authenticate and bind; raise LoginFailed on SASL failure."""
        port = self.server.c2s_tls_port if self.direct_tls else self.server.c2s_port
        self.xmpp.connect(self.server.host, port)
        try:
            await asyncio.wait_for(asyncio.shield(self._outcome), timeout)
        except asyncio.TimeoutError:
            await self.close()
            raise AssertionError(
                f"no session for {self.xmpp.requested_jid} within {timeout}s")
        except BaseException:
            await self.close()
            raise
        if initial_presence:
            self.xmpp.send_presence()
        return self

    def drop(self) -> None:
        """Kill the TCP connection abruptly: no stream close, no TLS
        close_notify, a RST (SO_LINGER 0) as when a phone loses its network.
        slixmpp keeps its stream management state (sm_id, handled count)."""
        x = self.xmpp
        transport = x.transport
        assert transport is not None, "not connected"
        raw = transport.get_extra_info("socket")
        if raw is not None:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

    async def resume(self, timeout: float = 15.0) -> str:
        """Reconnect after drop(); slixmpp's xep_0198 asks to resume the
        stream when it holds a resumable sm_id.  Returns 'resumed', or
        raises when the server refused (<failed/>) or nothing happened."""
        x = self.xmpp
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future = loop.create_future()

        def settle(value):
            if not outcome.done():
                outcome.set_result(value)

        handlers = {
            "session_resumed": lambda _e: settle("resumed"),
            "sm_failed": lambda e: settle(f"failed: {e}"),
            "session_start": lambda _e: settle("new session instead of resumption"),
            "stream_error": lambda e: settle(f"stream error: {e}"),
        }
        for name, h in handlers.items():
            x.add_event_handler(name, h)
        try:
            if x.transport is not None:  # the abort has not been noticed yet
                await asyncio.wait_for(x.disconnected, STEP_TIMEOUT)
            port = self.server.c2s_tls_port if self.direct_tls else self.server.c2s_port
            x.connect(self.server.host, port)
            try:
                result = await asyncio.wait_for(outcome, timeout)
            except asyncio.TimeoutError:
                raise AssertionError(f"no resumption within {timeout}s") from None
        finally:
            for name, h in handlers.items():
                x.del_event_handler(name, h)
        if result != "resumed":
            raise AssertionError(f"stream not resumed: {result}")
        self.resumptions += 1
        return result

    async def close(self) -> None:
        x = self.xmpp
        x.cancel_connection_attempt()
        if x.transport is not None:
            try:
                await asyncio.wait_for(x.disconnect(wait=2.0), 5.0)
            except (asyncio.TimeoutError, Exception):
                x.abort()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- helpers -------------------------------------------------------

    async def iq(self, iq: Iq, timeout: float = STEP_TIMEOUT) -> Iq:
        return await iq.send(timeout=timeout)

    async def roster_items(self) -> dict[str, dict]:
        """The roster as the server has it (a plain get, without `ver`)."""
        iq = self.xmpp.make_iq_get()
        iq.enable("roster")
        res = await self.iq(iq)
        return {str(j): dict(item) for j, item in res["roster"]["items"].items()}

    async def next_message(self, pred: Callable = lambda m: True,
                           timeout: float = STEP_TIMEOUT):
        return await self.messages.take(pred, timeout)

    async def next_presence(self, pred: Callable = lambda p: True,
                            timeout: float = STEP_TIMEOUT):
        return await self.presences.take(pred, timeout)


def bounded(fn=None, *, timeout: float = TEST_TIMEOUT):
    """Fail (instead of hanging) when the whole test takes too long."""

    def deco(fn):
        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            try:
                return await asyncio.wait_for(fn(*args, **kwargs), timeout)
            except asyncio.TimeoutError:
                raise AssertionError(f"test did not finish within {timeout}s") from None

        return wrapper

    return deco(fn) if fn is not None else deco


class Inbox:
    """Received stanzas of one kind, in order; take() consumes the first
    one matching a predicate, waiting (bounded) for it to arrive."""

    def __init__(self, what: str):
        self.what = what
        self.items: list = []
        self.taken: set[int] = set()
        self._changed = asyncio.Event()

    def put(self, stanza) -> None:
        self.items.append(stanza)
        self._changed.set()

    def pending(self, pred: Callable = lambda s: True) -> list:
        return [s for i, s in enumerate(self.items)
                if i not in self.taken and pred(s)]

    def all(self, pred: Callable = lambda s: True) -> list:
        """Every stanza received so far that matches, taken or not."""
        return [s for s in self.items if pred(s)]

    def mark(self) -> int:
        """A position: since(mark) is what arrived after it."""
        return len(self.items)

    def since(self, mark: int, pred: Callable = lambda s: True) -> list:
        return [s for s in self.items[mark:] if pred(s)]

    async def none_within(self, pred: Callable, window: float = QUIET,
                          what: str = "stanza", since: int | None = None) -> None:
        """Assert that no unconsumed stanza matching pred arrived since the
        mark `since` (default: now), waiting window seconds first."""
        start = len(self.items) if since is None else since
        await asyncio.sleep(window)
        got = [s for i, s in enumerate(self.items[start:], start)
               if i not in self.taken and pred(s)]
        if got:
            raise AssertionError(
                f"unexpected {what} ({len(got)}): " + "; ".join(str(s) for s in got))

    async def take(self, pred: Callable = lambda s: True,
                   timeout: float = STEP_TIMEOUT):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for i, s in enumerate(self.items):
                if i not in self.taken and pred(s):
                    self.taken.add(i)
                    return s
            left = deadline - loop.time()
            if left <= 0:
                others = [str(s) for i, s in enumerate(self.items) if i not in self.taken]
                raise AssertionError(
                    f"no matching {self.what} within {timeout}s; unconsumed: "
                    + ("; ".join(others) if others else "none"))
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                pass


async def wait_until(check, timeout: float = STEP_TIMEOUT, interval: float = 0.2,
                     what: str = "condition"):
    """Poll an async check until it returns a truthy value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = None
    while True:
        last = await check()
        if last:
            return last
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s; last: {last!r}")
        await asyncio.sleep(interval)


# -- MUC (XEP-0045) helpers ------------------------------------------------------

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
MUC_PLUGINS = DEFAULT_PLUGINS + ("xep_0004", "xep_0045")

_room_counter = itertools.count(1)


def new_room(server, prefix: str = "room") -> str:
    """A room JID on the server's MUC service that no other test uses."""
    return f"{prefix}{next(_room_counter)}@conference.{server.domain}"


async def create_instant_room(client, room: str, nick: str):
    """Join a new room and accept the default configuration (an instant
    room: the empty muc#owner form); the owner's self-presence."""
    muc = client.xmpp.plugin["xep_0045"]
    pres, _subject, occupants, _history = await muc.join_muc_wait(
        JID(room), nick, maxstanzas=0, timeout=STEP_TIMEOUT)
    codes = muc_codes(pres)
    assert {110, 201} <= codes, f"not a new room (codes {codes}): {pres}"
    assert pres["muc"]["affiliation"] == "owner" and pres["muc"]["role"] == "moderator", str(pres)
    # slixmpp lists every presence that arrived while joining, its own too.
    others = [p for p in occupants if 110 not in muc_codes(p)]
    assert others == [], f"a new room with occupants: {others}"
    form = client.xmpp.plugin["xep_0004"].make_form(ftype="submit")
    await muc.set_room_config(room, form, timeout=STEP_TIMEOUT)
    return pres


def muc_codes(stanza) -> set[int]:
    """The muc#user status codes of a stanza, read from the XML."""
    return {int(s.get("code")) for s in
            stanza.xml.findall(f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}status")}


def muc_item(stanza):
    """The muc#user <item/> of a presence (an Element) or None."""
    return stanza.xml.find(f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}item")


def ptype_of(presence) -> str:
    """The presence's type attribute, 'available' when absent (slixmpp's
    presence['type'] gives the <show/> instead)."""
    return presence.xml.get("type") or "available"


def show_of(presence) -> str | None:
    el = presence.xml.find("{jabber:client}show")
    return el.text if el is not None else None


def from_room(room: str):
    """Anything from the room or one of its occupants."""
    return lambda s: s["from"].bare == room


def occupant(room: str, nick: str | None = None, ptype: str | None = None,
             codes: set[int] = frozenset()):
    """A presence from room/nick (any nick when None), of type ptype
    ('available', 'unavailable', 'error'; any when None), carrying at least
    these status codes."""
    def pred(s):
        if s.name != "presence" or s["from"].bare != room:
            return False
        if nick is not None and s["from"].resource != nick:
            return False
        if ptype is not None and ptype_of(s) != ptype:
            return False
        return codes <= muc_codes(s)
    return pred


def groupchat(room: str, body: str | None = None, nick: str | None = None):
    """A groupchat message with a body from the room."""
    def pred(s):
        if s.name != "message" or s["type"] != "groupchat" or s["from"].bare != room:
            return False
        if nick is not None and s["from"].resource != nick:
            return False
        return bool(s["body"]) and (body is None or s["body"] == body)
    return pred


def subject_from(room: str, text: str | None = None):
    """A subject message (no body) from the room, with this text if given
    ('' for the empty subject)."""
    def pred(s):
        if (s.name != "message" or s["type"] != "groupchat"
                or s["from"].bare != room or s["body"]):
            return False
        el = s.xml.find("{jabber:client}subject")
        return el is not None and (text is None or (el.text or "") == text)
    return pred


NS_BOOKMARKS = "urn:xmpp:bookmarks:1"


async def publish_bookmark(c: Client, room: str, nick: str, autojoin: bool):
    """Publish an XEP-0402 bookmark with slixmpp's xep_0060 and xep_0402
    stanzas, with the publish-options XEP-0402 asks clients to use."""
    conf = Conference()
    conf["name"] = "Interop"
    conf["autojoin"] = autojoin
    conf["nick"] = nick
    form = c.xmpp.plugin["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden",
                   value="http://jabber.org/protocol/pubsub#publish-options")
    form.add_field(var="pubsub#persist_items", value="true")
    form.add_field(var="pubsub#max_items", value="max")
    form.add_field(var="pubsub#send_last_published_item", value="never")
    form.add_field(var="pubsub#access_model", value="whitelist")
    await c.xmpp.plugin["xep_0060"].publish(None, NS_BOOKMARKS, id=room, payload=conf,
                                            options=form, timeout=STEP_TIMEOUT)
