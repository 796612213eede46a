"""XEP-0060 publish-subscribe service with slixmpp's xep_0060 plugin: one
client creates a node on pubsub.localhost and publishes, another client
subscribed to it gets the notification with the payload, finds the node
in disco, and retrieves the items (all, the newest, and by id)."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest
from slixmpp import JID

from conftest import RoostServer
from xmpp_client import STEP_TIMEOUT, bounded

PLUGINS = ("xep_0030", "xep_0004", "xep_0060")
SERVICE = JID("pubsub.localhost")
NODE = "interop-news"
ATOM = "http://www.w3.org/2005/Atom"


def entry(title: str) -> ET.Element:
    e = ET.Element(f"{{{ATOM}}}entry")
    ET.SubElement(e, f"{{{ATOM}}}title").text = title
    return e


def title_of(item) -> str | None:
    payload = item["payload"]
    if payload is None:
        return None
    t = payload.find(f"{{{ATOM}}}title")
    return t.text if t is not None else None


@pytest.fixture(scope="module")
def pubsub_server(tmp_path_factory) -> RoostServer:
    srv = RoostServer(tmp_path_factory.mktemp("roost-pubsub"))
    srv.start()
    try:
        yield srv
    finally:
        srv.close()


@bounded(timeout=60)
async def test_slixmpp_publishes_and_a_subscriber_is_notified_and_reads_items(
        pubsub_server, connect):
    alice = await connect(pubsub_server, pubsub_server.new_user("alice"), presence=True,
                          plugins=PLUGINS)
    bob = await connect(pubsub_server, pubsub_server.new_user("bob"), presence=True,
                        plugins=PLUGINS)
    a_pubsub = alice.xmpp.plugin["xep_0060"]
    b_pubsub = bob.xmpp.plugin["xep_0060"]
    # The plugin turns event messages into `pubsub_publish` events.
    published: asyncio.Queue = asyncio.Queue()
    bob.xmpp.add_event_handler("pubsub_publish", published.put_nowait)

    await a_pubsub.create_node(SERVICE, NODE, timeout=STEP_TIMEOUT)
    sub = await b_pubsub.subscribe(SERVICE, NODE, timeout=STEP_TIMEOUT)
    assert sub["pubsub"]["subscription"]["subscription"] == "subscribed"

    first = await a_pubsub.publish(SERVICE, NODE, id="first", payload=entry("Hello"),
                                   timeout=STEP_TIMEOUT)
    assert first["pubsub"]["publish"]["item"]["id"] == "first"
    generated = await a_pubsub.publish(SERVICE, NODE, payload=entry("Second"),
                                       timeout=STEP_TIMEOUT)
    second_id = generated["pubsub"]["publish"]["item"]["id"]
    assert second_id, "the service names an item published without id"

    heard = []
    for _ in range(2):
        msg = await asyncio.wait_for(published.get(), STEP_TIMEOUT)
        assert msg["from"] == SERVICE
        items = msg["pubsub_event"]["items"]
        assert items["node"] == NODE
        heard += [(i["id"], title_of(i)) for i in items]
    assert heard == [("first", "Hello"), (second_id, "Second")]

    # The service lists the node.
    listed = await bob.xmpp.plugin["xep_0030"].get_items(jid=SERVICE, timeout=STEP_TIMEOUT)
    assert NODE in [node for (_, node, _) in listed["disco_items"]["items"]]

    everything = await b_pubsub.get_items(SERVICE, NODE, timeout=STEP_TIMEOUT)
    assert [i["id"] for i in everything["pubsub"]["items"]] == ["first", second_id]
    newest = await b_pubsub.get_items(SERVICE, NODE, max_items=1, timeout=STEP_TIMEOUT)
    assert [i["id"] for i in newest["pubsub"]["items"]] == [second_id]
    one = await b_pubsub.get_item(SERVICE, NODE, "first", timeout=STEP_TIMEOUT)
    items = list(one["pubsub"]["items"])
    assert [title_of(i) for i in items] == ["Hello"]
