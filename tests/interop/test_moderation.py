"""XEP-0425 moderated retraction with slixmpp's xep_0425 plugin: a room
owner retracts a guest's message; both of the guest's sessions (one
occupant with account-based joining) get the room's retraction, and the
room's archive (read with slixmpp's xep_0313) holds a tombstone where the
words were."""

from __future__ import annotations

import pytest
from slixmpp import JID
from slixmpp.exceptions import IqError

from xmpp_client import (MUC_PLUGINS, STEP_TIMEOUT, bounded, create_instant_room,
                         groupchat, new_room)

PLUGINS = MUC_PLUGINS + ("xep_0359", "xep_0421", "xep_0424", "xep_0425", "xep_0313")
NS_SID = "urn:xmpp:sid:0"
NS_RETRACT = "urn:xmpp:message-retract:1"
NS_MODERATE = "urn:xmpp:message-moderate:1"


def room_stanza_id(msg, room: str) -> str:
    for sid in msg.xml.findall(f"{{{NS_SID}}}stanza-id"):
        if sid.get("by") == room:
            return sid.get("id")
    raise AssertionError(f"no stanza-id by the room: {msg}")


def retraction_of(room: str, sid: str):
    def pred(s):
        if s.name != "message" or str(s["from"]) != room:
            return False
        r = s.xml.find(f"{{{NS_RETRACT}}}retract")
        return r is not None and r.get("id") == sid
    return pred


@bounded
async def test_an_owner_retracts_a_guests_message(server, connect):
    room = new_room(server, "moderated")
    owner = await connect(server, server.new_user("mod"), presence=True, plugins=PLUGINS)
    guest_acct = server.new_user("guest")
    phone = await connect(server, guest_acct, presence=True, resource="phone",
                          plugins=PLUGINS)
    laptop = await connect(server, guest_acct, presence=True, resource="laptop",
                           plugins=PLUGINS)
    await create_instant_room(owner, room, "Mod")
    for c in (phone, laptop):
        await c.xmpp.plugin["xep_0045"].join_muc_wait(JID(room), "Guest", maxstanzas=0,
                                                      timeout=STEP_TIMEOUT)

    phone.xmpp.send_message(mto=room, mbody="free magic potions", mtype="groupchat")
    seen = await owner.inbox.take(groupchat(room, "free magic potions"))
    sid = room_stanza_id(seen, room)

    # A participant may not moderate.
    with pytest.raises(IqError) as refused:
        await laptop.xmpp.plugin["xep_0425"].moderate(JID(room), sid, "no",
                                                      timeout=STEP_TIMEOUT)
    assert refused.value.iq["error"]["condition"] == "forbidden"

    await owner.xmpp.plugin["xep_0425"].moderate(JID(room), sid, "spam",
                                                 timeout=STEP_TIMEOUT)
    for c in (owner, phone, laptop):
        m = await c.inbox.take(retraction_of(room, sid))
        moderated = m.xml.find(f"{{{NS_RETRACT}}}retract/{{{NS_MODERATE}}}moderated")
        assert moderated is not None and moderated.get("by") == f"{room}/Mod", str(m)

    # The room's archive, through slixmpp's MAM: a tombstone, no words.
    mam = owner.xmpp.plugin["xep_0313"]
    found = None
    async for rsm_page in mam.retrieve(jid=JID(room), iterator=True, rsm={"max": 50}):
        for result in rsm_page["mam"]["results"]:
            if result["mam_result"]["id"] == sid:
                found = result["mam_result"]["forwarded"]["stanza"]
    assert found is not None, "the retracted message's row is gone"
    assert not found["body"], str(found)
    assert found.xml.find(f"{{{NS_RETRACT}}}retracted") is not None, str(found)
