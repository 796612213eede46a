"""XEP-0357 push notifications between slixmpp clients: a phone session
registers with an app server (another slixmpp session, which answers the
pushes), goes away, and a message to the account reaches the app server
as a pubsub publish of the summary form; disabling stops the pushes."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from xmpp_client import QUIET, STEP_TIMEOUT, bounded

NS_PUSH = "urn:xmpp:push:0"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"


def push_iq(s) -> bool:
    return s.name == "iq" and s["type"] == "set" and s.xml.find(f"{{{NS_PUBSUB}}}pubsub") is not None


async def send_push_iq(client, child: str):
    iq = client.xmpp.make_iq_set()
    iq.append(ET.fromstring(child))
    return await client.iq(iq)


@bounded
async def test_a_phone_that_went_away_is_pushed_through_its_app_server(server, connect):
    app = await connect(server, server.new_user("pusher"), presence=True, resource="app")
    # The app server answers every push.
    app.xmpp.register_handler(Callback(
        "push", MatchXPath(f"{{jabber:client}}iq/{{{NS_PUBSUB}}}pubsub"),
        lambda iq: iq.reply().send()))
    alice = server.new_user("alice")
    phone = await connect(server, alice, presence=True, resource="phone")
    await send_push_iq(phone, f"<enable xmlns='{NS_PUSH}' jid='{app.jid}' node='tok-1'/>")
    await phone.close()
    bob = await connect(server, server.new_user("bob"), presence=True, resource="desk")

    bob.xmpp.send_message(mto=alice.jid, mbody="wake up", mtype="chat")
    p = await app.inbox.take(push_iq, timeout=STEP_TIMEOUT)
    assert p["from"] == alice.jid.split("/")[0], str(p)
    publish = p.xml.find(f"{{{NS_PUBSUB}}}pubsub/{{{NS_PUBSUB}}}publish")
    assert publish is not None and publish.get("node") == "tok-1", str(p)
    fields = {f.get("var"): f.findtext("{jabber:x:data}value")
              for f in publish.iter("{jabber:x:data}field")}
    assert fields["FORM_TYPE"] == "urn:xmpp:push:summary", fields
    assert fields["message-count"] == "1", fields
    assert fields["last-message-sender"] == str(bob.jid), fields

    # Disabled from another session: no more pushes.
    laptop = await connect(server, alice, presence=True, resource="laptop")
    await send_push_iq(laptop, f"<disable xmlns='{NS_PUSH}' jid='{app.jid}'/>")
    await laptop.close()
    bob.xmpp.send_message(mto=alice.jid, mbody="still asleep?", mtype="chat")
    await app.inbox.none_within(push_iq, window=QUIET, what="a push after disable")
