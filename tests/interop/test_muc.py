"""Roost's MUC service (XEP-0045) with slixmpp's xep_0045 plugin.

Every test runs twice: against a server with account-based MUC joining on
(the default) and one with `[account_muc] enabled = false`, where each
session joins rooms on its own as in plain XEP-0045.  From a single
session's point of view both must look like XEP-0045; the one visible
difference is the real JID a moderator sees: the bare JID of the account
with account-based joining, the session's full JID without.
"""

from __future__ import annotations

import pytest
from slixmpp import JID
from slixmpp.exceptions import IqError

from conftest import RoostServer
from xmpp_client import (MUC_PLUGINS, NS_MUC, STEP_TIMEOUT, bounded,
                         create_instant_room, groupchat, muc_codes, muc_item, new_room,
                         occupant, subject_from)



@pytest.fixture(scope="module", params=[True, False],
                ids=["account_muc_on", "account_muc_off"])
def muc_server(request, tmp_path_factory) -> RoostServer:
    on = request.param
    extra = {} if on else {"account_muc": {"enabled": False}}
    srv = RoostServer(tmp_path_factory.mktemp("roost-muc"), extra_config=extra)
    srv.account_muc = on
    srv.start()
    try:
        yield srv
    finally:
        srv.close()


@bounded
async def test_muc_service_is_discoverable(muc_server, connect):
    srv = muc_server
    c = await connect(srv, srv.new_user("disco"), plugins=MUC_PLUGINS)
    disco = c.xmpp.plugin["xep_0030"]
    items = await disco.get_items(jid=srv.domain, timeout=STEP_TIMEOUT)
    service = f"conference.{srv.domain}"
    assert service in [str(j) for (j, _n, _name) in items["disco_items"]["items"]], str(items)
    info = await disco.get_info(jid=service, timeout=STEP_TIMEOUT)
    assert NS_MUC in info["disco_info"]["features"], str(info)
    assert any(cat == "conference" for (cat, _t, _l, _n) in info["disco_info"]["identities"])


@bounded
async def test_room_create_talk_nick_change_kick(muc_server, connect):
    srv = muc_server
    room = new_room(srv, "lobby")
    owner_acct, bob_acct = srv.new_user("owner"), srv.new_user("guest")
    owner = await connect(srv, owner_acct, presence=True, resource="desk",
                          plugins=MUC_PLUGINS)
    bob = await connect(srv, bob_acct, presence=True, resource="laptop",
                        plugins=MUC_PLUGINS)
    omuc, bmuc = owner.xmpp.plugin["xep_0045"], bob.xmpp.plugin["xep_0045"]

    await create_instant_room(owner, room, "Owner")

    # The room is unlocked: bob enters; he sees the owner, then himself.
    pres, subject, occupants, _history = await bmuc.join_muc_wait(
        JID(room), "Bob", maxstanzas=0, timeout=STEP_TIMEOUT)
    assert 110 in muc_codes(pres) and pres["from"] == JID(f"{room}/Bob"), str(pres)
    assert 201 not in muc_codes(pres)
    assert pres["muc"]["role"] == "participant", str(pres)
    assert [str(p["from"]) for p in occupants if 110 not in muc_codes(p)] == [f"{room}/Owner"]
    assert subject["from"] == JID(room) and not subject["body"], str(subject)
    assert sorted(bmuc.get_roster(JID(room))) == ["Bob", "Owner"]

    # The owner (a moderator) sees bob arrive, with his real JID.
    p = await owner.inbox.take(occupant(room, "Bob", "available"))
    real = JID(muc_item(p).get("jid"))
    if srv.account_muc:
        assert real == JID(bob_acct.jid), f"account-based MUC: the account is the occupant: {p}"
    else:
        assert real == bob.jid, f"plain XEP-0045: the session is the occupant: {p}"
    assert sorted(omuc.get_roster(JID(room))) == ["Bob", "Owner"]

    # Groupchat both ways; everyone gets each message once, the sender its
    # reflection with its own id.
    bmark, omark = bob.inbox.mark(), owner.inbox.mark()
    msg = owner.xmpp.make_message(mto=room, mbody="welcome, bob", mtype="groupchat")
    msg.send()
    m = await bob.inbox.take(groupchat(room, "welcome, bob", "Owner"))
    r = await owner.inbox.take(groupchat(room, "welcome, bob", "Owner"))
    assert r["id"] == msg["id"], f"the reflection keeps the id: {r}"
    assert m["to"] == bob.jid
    bob.xmpp.send_message(mto=room, mbody="thanks!", mtype="groupchat")
    await owner.inbox.take(groupchat(room, "thanks!", "Bob"))
    await bob.inbox.take(groupchat(room, "thanks!", "Bob"))
    await bob.inbox.none_within(groupchat(room), window=0.3, since=bmark,
                                what="duplicate groupchat")
    await owner.inbox.none_within(groupchat(room), window=0.1, since=omark,
                                  what="duplicate groupchat")

    # The owner sets the subject: bob gets it.
    omuc.set_subject(room, "Today: interop")
    s = await bob.inbox.take(subject_from(room, "Today: interop"))
    assert s["from"] == JID(f"{room}/Owner"), str(s)

    # Nick change: slixmpp's set_self_nick waits for the 110+303 sequence;
    # the owner sees 303 with the new nick, then the new occupant.
    assert await bmuc.set_self_nick(JID(room), "Robert", timeout=STEP_TIMEOUT) == "Robert"
    p = await owner.inbox.take(occupant(room, "Bob", "unavailable", {303}))
    assert muc_item(p).get("nick") == "Robert", str(p)
    await owner.inbox.take(occupant(room, "Robert", "available"))
    assert sorted(omuc.get_roster(JID(room))) == ["Owner", "Robert"]
    # Messages now come from the new nick.
    bob.xmpp.send_message(mto=room, mbody="call me Robert", mtype="groupchat")
    await owner.inbox.take(groupchat(room, "call me Robert", "Robert"))

    # Kick (muc#admin role='none'): bob is told 307 with 110, the owner 307.
    await omuc.set_role(room, "Robert", "none", reason="enough", timeout=STEP_TIMEOUT)
    k = await bob.inbox.take(occupant(room, "Robert", "unavailable", {307}))
    assert 110 in muc_codes(k), f"the kicked one's own presence carries 110: {k}"
    reason = k.xml.find(f".//{{http://jabber.org/protocol/muc#user}}reason")
    assert reason is not None and reason.text == "enough", str(k)
    await owner.inbox.take(occupant(room, "Robert", "unavailable", {307}))
    assert omuc.get_roster(JID(room)) == ["Owner"]

    # Out is out: bob's messages to the room bounce now.
    bob.xmpp.send_message(mto=room, mbody="still here?", mtype="groupchat")
    err = await bob.inbox.take(lambda s: s.name == "message" and s["type"] == "error"
                               and s["from"].bare == room)
    assert err["error"]["condition"] in ("not-acceptable", "forbidden"), str(err)
    await owner.inbox.none_within(groupchat(room, "still here?"), window=0.3, since=0)


@bounded
async def test_join_errors(muc_server, connect):
    """A taken nick is refused with conflict; a non-owner cannot kick."""
    srv = muc_server
    room = new_room(srv, "errs")
    a = await connect(srv, srv.new_user("erra"), presence=True, plugins=MUC_PLUGINS)
    b = await connect(srv, srv.new_user("errb"), presence=True, plugins=MUC_PLUGINS)
    await create_instant_room(a, room, "Taken")
    from slixmpp.exceptions import PresenceError
    with pytest.raises(PresenceError) as e:
        await b.xmpp.plugin["xep_0045"].join_muc_wait(JID(room), "Taken", maxstanzas=0,
                                                      timeout=STEP_TIMEOUT)
    assert e.value.condition == "conflict", str(e.value.presence)
    await b.xmpp.plugin["xep_0045"].join_muc_wait(JID(room), "Other", maxstanzas=0,
                                                  timeout=STEP_TIMEOUT)
    with pytest.raises(IqError) as e:
        await b.xmpp.plugin["xep_0045"].set_role(room, "Taken", "none", timeout=STEP_TIMEOUT)
    assert e.value.condition in ("not-allowed", "forbidden"), str(e.value.iq)


@bounded
async def test_caps_disco_of_an_occupant_reaches_its_client(muc_server, connect):
    """XEP-0115 through a room: slixmpp asks an occupant whose caps it does
    not know for the disco#info of its caps node (to room/nick, node
    'node#ver'), as its xep_0115 plugin does by itself on seeing a presence.
    The room passes IQs on to the occupant (XEP-0045 §7.8.3); the answer
    must describe the occupant's client.  With account-based MUC the IQ
    reaches bob's account: ACCOUNT-MUC.md rule 6 has the server answer where
    it can and otherwise forward to one joined session."""
    srv = muc_server
    room = new_room(srv, "caps")
    owner = await connect(srv, srv.new_user("capo"), presence=True, plugins=MUC_PLUGINS)
    bob = await connect(srv, srv.new_user("capb"), presence=True, resource="laptop",
                        plugins=MUC_PLUGINS + ("xep_0059",))  # other caps than the owner's
    await create_instant_room(owner, room, "Owner")
    await bob.xmpp.plugin["xep_0045"].join_muc_wait(JID(room), "Bob", maxstanzas=0,
                                                    timeout=STEP_TIMEOUT)
    p = await owner.inbox.take(occupant(room, "Bob", "available"))
    c = p.xml.find("{http://jabber.org/protocol/caps}c")
    assert c is not None, f"bob's caps are passed on by the room: {p}"
    node = f"{c.get('node')}#{c.get('ver')}"
    try:
        info = await owner.xmpp.plugin["xep_0030"].get_info(
            jid=f"{room}/Bob", node=node, timeout=STEP_TIMEOUT)
    except IqError as e:
        raise AssertionError(f"disco#info node={node} to {room}/Bob: {e.iq}") from None
    assert info["disco_info"]["node"] == node, str(info)
    assert any(cat == "client" for (cat, _t, _l, _n) in info["disco_info"]["identities"]), str(info)
    assert "http://jabber.org/protocol/rsm" in info["disco_info"]["features"], str(info)
