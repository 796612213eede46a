"""The three servers started by tests/federation/inside.sh, as the
interop client (tests/interop/xmpp_client.py) expects to find them."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interop"))

from xmpp_client import Client  # noqa: E402


@dataclass(frozen=True)
class Server:
    domain: str
    host: str
    c2s_port: int = 5222
    c2s_tls_port: int = 5223


ROOST = Server("roost.test", "127.0.0.2")
PROSODY = Server("prosody.test", "127.0.0.3")
EJABBERD = Server("ejabberd.test", "127.0.0.4")


@pytest.fixture
async def connect():
    """connect(server, local, resource, plugins=...) -> a logged-in Client
    (password pw-<local>); all are closed at teardown."""
    made: list[Client] = []

    async def _connect(server: Server, local: str, resource: str = "test", **kw) -> Client:
        c = Client(server, jid=f"{local}@{server.domain}", password=f"pw-{local}",
                   resource=resource, **kw)
        made.append(c)
        await c.connect(initial_presence=True, timeout=30)
        return c

    yield _connect
    for c in made:
        await c.close()
