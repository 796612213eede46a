"""External components (XEP-0114) with slixmpp's ComponentXMPP: the
component shakes hands on Roost's component port, answers a slixmpp
client's messages and IQs, and a wrong secret is refused."""

from __future__ import annotations

import asyncio

import pytest
import slixmpp

from conftest import RoostServer
from xmpp_client import STEP_TIMEOUT, bounded

DOMAIN = "echo.localhost"
SECRET = "echo-secret"


@pytest.fixture(scope="module")
def component_server(tmp_path_factory) -> RoostServer:
    srv = RoostServer(tmp_path_factory.mktemp("roost-component"), components={DOMAIN: SECRET})
    srv.start()
    try:
        yield srv
    finally:
        srv.close()


class Echo(slixmpp.ComponentXMPP):
    """Answers every chat message with its body, prefixed."""

    def __init__(self, server: RoostServer, secret: str = SECRET):
        super().__init__(DOMAIN, secret, server.host, server.component_port)
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199")
        self.started = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", lambda _: self._settle(True))
        self.add_event_handler("stream_error", lambda e: self._settle(e["condition"]))
        self.add_event_handler("disconnected", lambda _: self._settle("disconnected"))
        self.add_event_handler("message", self.on_message)

    def _settle(self, value) -> None:
        if not self.started.done():
            self.started.set_result(value)

    def on_message(self, msg) -> None:
        if msg["type"] in ("chat", "normal") and msg["body"]:
            msg.reply(f"echo: {msg['body']}").send()


@bounded
async def test_a_slixmpp_component_answers_a_client(component_server, connect):
    echo = Echo(component_server)
    echo.connect()
    try:
        assert await asyncio.wait_for(echo.started, STEP_TIMEOUT) is True
        alice = await connect(component_server, component_server.new_user("alice"),
                              presence=True, resource="phone")
        alice.xmpp.send_message(mto=f"bot@{DOMAIN}", mbody="hello component", mtype="chat")
        m = await alice.inbox.take(lambda s: s.name == "message"
                                   and s["body"] == "echo: hello component")
        assert str(m["from"]) == f"bot@{DOMAIN}", str(m)
        # The client pings the component; the component pings the client.
        await alice.xmpp.plugin["xep_0199"].send_ping(DOMAIN, timeout=STEP_TIMEOUT)
        rtt = await echo.plugin["xep_0199"].ping(jid=alice.jid, ifrom=DOMAIN,
                                                timeout=STEP_TIMEOUT)
        assert rtt is not None
    finally:
        echo.disconnect()


@bounded
async def test_a_wrong_secret_is_refused(component_server):
    echo = Echo(component_server, secret="wrong")
    echo.connect()
    try:
        got = await asyncio.wait_for(echo.started, STEP_TIMEOUT)
        assert got in ("not-authorized", "disconnected"), got
        assert component_server.log_text(component_server.log_mark).count(
            "wrong secret for echo.localhost") >= 1
    finally:
        echo.disconnect()
