"""XEP-0065 SOCKS5 Bytestreams through Roost's proxy with slixmpp's
xep_0065 plugin on both ends: the requester finds the proxy in disco,
asks for its streamhost, offers it to the target, which connects; the
requester connects and activates; 1 MiB crosses one way and an answer
the other, byte for byte."""

from __future__ import annotations

import asyncio
import os

import pytest

from conftest import RoostServer
from xmpp_client import STEP_TIMEOUT, bounded

PLUGINS = ("xep_0030", "xep_0065")
SIZE = 1024 * 1024


@pytest.fixture(scope="module")
def proxy_server(tmp_path_factory) -> RoostServer:
    srv = RoostServer(tmp_path_factory.mktemp("roost-proxy65"), proxy65=True)
    srv.start()
    try:
        yield srv
    finally:
        srv.close()


class Received:
    """Bytes a client's SOCKS5 streams delivered, and a wait for a size."""

    def __init__(self, xmpp):
        self.data = bytearray()
        self._grew = asyncio.Event()
        xmpp.add_event_handler("socks5_data", self._on_data)

    def _on_data(self, chunk: bytes) -> None:
        self.data.extend(chunk)
        self._grew.set()

    async def at_least(self, size: int) -> bytes:
        async def wait():
            while len(self.data) < size:
                self._grew.clear()
                await self._grew.wait()
        await asyncio.wait_for(wait(), STEP_TIMEOUT * 3)
        return bytes(self.data)


@bounded(timeout=60)
async def test_slixmpp_clients_relay_a_file_through_the_proxy(proxy_server, connect):
    alice = await connect(proxy_server, proxy_server.new_user("alice"), plugins=PLUGINS)
    bob = await connect(proxy_server, proxy_server.new_user("bob"), plugins=PLUGINS,
                        plugin_config={"xep_0065": {"auto_accept": True}})
    s5b_alice = alice.xmpp.plugin["xep_0065"]

    proxies = await s5b_alice.discover_proxies(timeout=STEP_TIMEOUT)
    assert list(proxies) == ["proxy.localhost"], proxies
    host, port = proxies["proxy.localhost"]
    assert (host, int(port)) == ("127.0.0.1", proxy_server.proxy65_port), proxies

    at_bob = Received(bob.xmpp)
    at_alice = Received(alice.xmpp)
    target_side = asyncio.get_running_loop().create_future()
    bob.xmpp.add_event_handler(
        "socks5_stream", lambda conn: target_side.done() or target_side.set_result(conn))

    requester_side = await s5b_alice.handshake(bob.xmpp.boundjid, timeout=STEP_TIMEOUT)
    assert requester_side is not None, "handshake through the proxy failed"

    data = os.urandom(SIZE)
    for i in range(0, SIZE, 64 * 1024):
        await requester_side.write(data[i:i + 64 * 1024])
    assert await at_bob.at_least(SIZE) == data

    conn = await asyncio.wait_for(target_side, STEP_TIMEOUT)
    await conn.write(b"received, thanks")
    assert await at_alice.at_least(16) == b"received, thanks"
