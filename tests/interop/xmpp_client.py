"""A thin wrapper around slixmpp.ClientXMPP for the interop tests.

Every wait is bounded: nothing here can hang a test.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Callable

import slixmpp
from slixmpp.stanza import Iq

log = logging.getLogger("interop")

STEP_TIMEOUT = 10.0  # one network round or event
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

    def _record_features(self, stanza):
        if stanza.name == "features":
            self.features.append(str(stanza))
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
