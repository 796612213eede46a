"""ACCOUNT-MUC.md rules 4-8, 11, 12 and 14 as checks on a prepared
party (alice's two sessions and bob in a room), shared by the tests of
rooms on Roost's own MUC service (tests/interop/test_account_muc.py) and
of rooms on Prosody and ejabberd (tests/federation/test_remote_rooms.py).

Each client is an unmodified slixmpp with its xep_0045 plugin; assertions
are about what each slixmpp received (Client.inbox) or what its plugin
reports.  "Nothing arrives" is asserted over a short window (QUIET).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Awaitable, Callable

from slixmpp import JID

from xmpp_client import (STEP_TIMEOUT, Client, from_room, groupchat, muc_codes, muc_item,
                         occupant, ptype_of, show_of, wait_until)

NS_STANZA_ID = "urn:xmpp:sid:0"
SUBJECT = "Account rooms"


@dataclass
class Party:
    """bob (nick Bob) in a room with subject SUBJECT; alice's sessions
    phone and laptop joined as Al (phone first)."""
    room: str
    bob: Client
    phone: Client
    laptop: Client
    # Another session of alice, logged in and available, not in the room.
    alice_session: Callable[[str], Awaitable[Client]]
    # A session of another account on alice's server (carol), available.
    carol_session: Callable[[str], Awaitable[Client]]

    def muc(self, c: Client):
        return c.xmpp.plugin["xep_0045"]


async def join(c: Client, room: str, nick: str, timeout: float = STEP_TIMEOUT, **kw):
    return await c.xmpp.plugin["xep_0045"].join_muc_wait(JID(room), nick, timeout=timeout, **kw)


def room_traffic(c: Client, room: str):
    """Presences and messages from the room, and IQ answers that are not
    answers to the client's own IQs.  IQ requests are left out: occupants'
    requests to the account go to one joined session (rule 6), e.g. the
    caps queries (XEP-0115) slixmpp sends by itself to occupants it sees."""
    def pred(s):
        if not from_room(room)(s):
            return False
        if s.name == "iq":
            return s["type"] in ("result", "error") and not c.answers_to_me(s)
        return True
    return pred


def bodies(stanzas):
    return [s["body"] for s in stanzas]



# -- rules 4-5: traffic forks, sending ---------------------------------------------------


async def check_traffic_forks_and_reflections(p: Party):
    room = p.room
    # A session of alice that did not join.
    idle = await p.alice_session("idle")

    marks = {c: c.inbox.mark() for c in (p.phone, p.laptop, p.bob)}
    # Rule 4: bob's message reaches each joined session once.
    msg = p.bob.xmpp.make_message(mto=room, mbody="hello alices", mtype="groupchat")
    msg.send()
    for c in (p.phone, p.laptop):
        m = await c.inbox.take(groupchat(room, "hello alices", "Bob"))
        assert m["to"] == c.jid, f"addressed to the session's full JID: {m}"
        assert m["id"] == msg["id"], str(m)
    await p.bob.inbox.take(groupchat(room, "hello alices", "Bob"))

    # Rule 5: alice/phone's message leaves from the account; its reflection
    # reaches both her joined sessions with the same id.
    out = p.phone.xmpp.make_message(mto=room, mbody="hi from the phone", mtype="groupchat")
    out.send()
    reflections = []
    for c in (p.phone, p.laptop):
        r = await c.inbox.take(groupchat(room, "hi from the phone", "Al"))
        assert r["to"] == c.jid, str(r)
        reflections.append(r)
    assert [r["id"] for r in reflections] == [out["id"], out["id"]], \
        f"reflections keep the id: {[str(r) for r in reflections]}"
    sid = [r.xml.find(f"{{{NS_STANZA_ID}}}stanza-id") for r in reflections]
    assert all(s is not None and s.get("by") == room for s in sid), [str(r) for r in reflections]
    assert sid[0].get("id") == sid[1].get("id"), "one room message, one stanza-id"
    b = await p.bob.inbox.take(groupchat(room, "hi from the phone", "Al"))
    assert b["id"] == out["id"]

    # Each once; nothing reaches the session that did not join.
    await p.phone.inbox.none_within(groupchat(room), since=marks[p.phone],
                                    what="a second copy")
    for c in (p.laptop, p.bob):
        await c.inbox.none_within(groupchat(room), window=0.1, since=marks[c],
                                  what="a second copy")
    assert idle.inbox.all(from_room(room)) == [], \
        [str(s) for s in idle.inbox.all(from_room(room))]
    assert len(p.bob.inbox.all(groupchat(room, "hi from the phone"))) == 1


# -- rule 6: IQs ------------------------------------------------------------------------------


async def check_iqs_return_to_the_asking_session_only(p: Party):
    room = p.room
    phone_mark = p.phone.inbox.mark()
    # An IQ to the room: its result comes back to alice/laptop.
    info = await p.laptop.xmpp.plugin["xep_0030"].get_info(jid=room, timeout=STEP_TIMEOUT)
    assert info["to"] == p.laptop.jid and info["from"] == JID(room), str(info)
    assert "http://jabber.org/protocol/muc" in info["disco_info"]["features"], str(info)
    # IQs to an occupant: a ping (which bob's server may answer for his
    # account) and a software version request, which needs a client: it
    # goes through the room to one of bob's joined sessions and back.
    await p.laptop.xmpp.plugin["xep_0199"].send_ping(f"{room}/Bob", timeout=STEP_TIMEOUT)
    ver = await p.laptop.xmpp.plugin["xep_0092"].get_version(f"{room}/Bob",
                                                              timeout=STEP_TIMEOUT)
    assert ver["to"] == p.laptop.jid and ver["from"] == JID(f"{room}/Bob"), str(ver)
    assert ver["software_version"]["name"].lower() == "slixmpp", str(ver)
    asked = p.bob.inbox.all(lambda s: s.name == "iq" and s["type"] == "get"
                            and s.xml.find("{jabber:iq:version}query") is not None)
    assert [str(s["from"]) for s in asked] == [f"{room}/Al"], [str(s) for s in asked]
    # Nothing of this reached alice/phone (whose slixmpp may have answers to
    # its own caps queries coming in).
    await p.phone.inbox.none_within(room_traffic(p.phone, room), window=0.3, since=phone_mark,
                                    what="IQ traffic for alice/laptop at alice/phone")


# -- rules 7-8: presence in the room, leaving --------------------------------------------------


async def check_presence_aggregation_and_leaving(p: Party):
    room, bob = p.room, p.bob
    bmuc = bob.xmpp.plugin["xep_0045"]

    # alice/phone goes away in the room; alice/laptop is still available:
    # the account's presence does not change, bob sees nothing.
    bob_mark = bob.inbox.mark()
    p.phone.xmpp.send_presence(pto=f"{room}/Al", pshow="away", pstatus="on the bus")
    await bob.inbox.none_within(occupant(room, "Al"), since=bob_mark,
                                what="presence change of Al")

    # alice/laptop leaves: it gets its own unavailable (110); the most
    # available joined session is now the away phone: bob sees Al away.
    p.muc(p.laptop).leave_muc(JID(room), "Al")
    u = await p.laptop.inbox.take(occupant(room, "Al", "unavailable", {110}))
    assert u["to"] == p.laptop.jid
    a = await bob.inbox.take(occupant(room, "Al"))
    assert ptype_of(a) == "available" and show_of(a) == "away", \
        f"bob should see Al away, not leave: {a}"
    assert a["status"] == "on the bus", str(a)
    assert sorted(bmuc.get_roster(JID(room))) == ["Al", "Bob"]
    assert not p.phone.inbox.all(occupant(room, "Al", "unavailable")), \
        "alice/phone was told of alice/laptop's exit"

    # The phone keeps receiving; the laptop no longer does.
    bob.xmpp.send_message(mto=room, mbody="still with us?", mtype="groupchat")
    await p.phone.inbox.take(groupchat(room, "still with us?", "Bob"))
    await p.laptop.inbox.none_within(groupchat(room, "still with us?"), window=0.5, since=0,
                                     what="room traffic after leaving")

    # The last joined session leaves: alice leaves the room for real.
    p.muc(p.phone).leave_muc(JID(room), "Al")
    u = await p.phone.inbox.take(occupant(room, "Al", "unavailable", {110}))
    assert u["to"] == p.phone.jid
    gone = await bob.inbox.take(occupant(room, "Al", "unavailable"))
    assert muc_item(gone).get("role") == "none", str(gone)
    assert bmuc.get_roster(JID(room)) == ["Bob"]
    bob.xmpp.send_message(mto=room, mbody="alone now", mtype="groupchat")
    await bob.inbox.take(groupchat(room, "alone now"))
    for c in (p.phone, p.laptop):
        await c.inbox.none_within(groupchat(room, "alone now"), window=0.3, since=0)


# -- rule 12: nick change ----------------------------------------------------------------------


async def check_nick_change(p: Party):
    room, bob = p.room, p.bob
    marks = {c: c.inbox.mark() for c in (p.phone, p.laptop, bob)}

    new = await p.muc(p.phone).set_self_nick(JID(room), "Alicia", timeout=STEP_TIMEOUT)
    assert new == "Alicia"
    for c in (p.phone, p.laptop):
        u = await c.inbox.take(occupant(room, "Al", "unavailable", {303, 110}))
        assert muc_item(u).get("nick") == "Alicia", str(u)
        await c.inbox.take(occupant(room, "Alicia", "available", {110}))
    u = await bob.inbox.take(occupant(room, "Al", "unavailable", {303}))
    assert muc_item(u).get("nick") == "Alicia"
    await bob.inbox.take(occupant(room, "Alicia", "available"))
    assert sorted(p.muc(bob).get_roster(JID(room))) == ["Alicia", "Bob"]
    # The laptop's slixmpp followed the change too.
    assert sorted(p.muc(p.laptop).get_roster(JID(room))) == ["Alicia", "Bob"]
    for c in (p.phone, p.laptop, bob):
        await c.inbox.none_within(occupant(room), window=0.2, since=marks[c],
                                  what="a second copy of the nick change")

    # alice/laptop asks for bob's nick: the conflict reaches it alone.
    phone_mark, bob_mark = p.phone.inbox.mark(), bob.inbox.mark()
    p.laptop.xmpp.send_presence(pto=f"{room}/Bob")
    err = await p.laptop.inbox.take(occupant(room, None, "error"))
    assert err["error"]["condition"] == "conflict", str(err)
    assert err["to"] == p.laptop.jid
    await p.phone.inbox.none_within(room_traffic(p.phone, room), since=phone_mark,
                                    what="the laptop's nick error at the phone")
    assert p.phone.inbox.since(phone_mark, room_traffic(p.phone, room)) == []
    assert bob.inbox.since(bob_mark, occupant(room)) == []
    # Alice is still in, under her new nick, on both sessions.
    bob.xmpp.send_message(mto=room, mbody="nice nick", mtype="groupchat")
    for c in (p.phone, p.laptop):
        await c.inbox.take(groupchat(room, "nice nick"))


# -- rule 11: removal ------------------------------------------------------------------------------


async def check_kick_reaches_every_joined_session(p: Party):
    room, bob = p.room, p.bob
    marks = {c: c.inbox.mark() for c in (p.phone, p.laptop, bob)}
    await p.muc(bob).set_role(room, "Al", "none", reason="testing", timeout=STEP_TIMEOUT)
    for c in (p.phone, p.laptop):
        k = await c.inbox.take(occupant(room, "Al", "unavailable", {307}))
        assert 110 in muc_codes(k) and k["to"] == c.jid, str(k)
    await bob.inbox.take(occupant(room, "Al", "unavailable", {307}))
    # Each session was told once, and alice is not rejoined by itself.
    for c in (p.phone, p.laptop):
        await c.inbox.none_within(occupant(room), window=0.3, since=marks[c],
                                  what="a second kick")
    await bob.inbox.none_within(occupant(room, "Al"), since=marks[bob], what="Al rejoining")
    assert p.muc(bob).get_roster(JID(room)) == ["Bob"]
    bob.xmpp.send_message(mto=room, mbody="after the kick", mtype="groupchat")
    await bob.inbox.take(groupchat(room, "after the kick"))
    for c in (p.phone, p.laptop):
        await c.inbox.none_within(groupchat(room, "after the kick"), window=0.2, since=0)


# -- rule 14: personal archive --------------------------------------------------------------------


def archived(msg):
    return msg["mam_result"]["forwarded"]["stanza"]


async def check_personal_archive_once_per_message(p: Party):
    room, bob = p.room, p.bob
    said = []
    for who, body in ((bob, "b1"), (p.phone, "a1"), (bob, "b2"), (p.laptop, "a2")):
        who.xmpp.send_message(mto=room, mbody=body, mtype="groupchat")
        said.append(body)
        for c in (p.phone, p.laptop, bob):
            await c.inbox.take(groupchat(room, body))
    live = {m["body"]: m.xml.find(f"{{{NS_STANZA_ID}}}stanza-id")
            for m in p.phone.inbox.all(groupchat(room))}

    mam = p.laptop.xmpp.plugin["xep_0313"]

    async def query():
        res = await mam.retrieve(with_jid=JID(room), timeout=STEP_TIMEOUT, rsm={"max": 50})
        return [archived(m) for m in res["mam"]["results"]]

    async def all_there():
        got = await query()
        return got if len(got) >= len(said) else None

    await wait_until(all_there, what="the groupchat messages in alice's archive")
    await asyncio.sleep(0.3)  # a duplicate would be stored by now
    got = await query()
    assert bodies(got) == said, \
        f"each groupchat message once, in order: {[str(m) for m in got]}"
    for m in got:
        assert m["type"] == "groupchat" and m["from"].bare == room, str(m)
        sid = m.xml.find(f"{{{NS_STANZA_ID}}}stanza-id")
        assert sid is not None and sid.get("by") == room, f"the room's stanza-id is kept: {m}"
        assert sid.get("id") == live[m["body"]].get("id"), str(m)


# -- rules 10 and 16: others come and go; one account's state stays its own ------------------------


async def check_others_come_and_go_and_accounts_stay_apart(p: Party):
    room, bob = p.room, p.bob
    carol = await p.carol_session("desk")
    marks = {c: c.inbox.mark() for c in (p.phone, p.laptop)}
    # carol, another account of alice's server, joins: a first join of her
    # own (bob sees her), forked to each of alice's joined sessions once.
    pres, _subject, occupants, _history = await join(carol, room, "Carol", maxstanzas=0)
    assert 110 in muc_codes(pres) and pres["to"] == carol.jid, str(pres)
    seen = sorted(str(o["from"].resource) for o in occupants if 110 not in muc_codes(o))
    assert seen == ["Al", "Bob"], f"carol sees alice's account once: {seen}"
    await bob.inbox.take(occupant(room, "Carol", "available"))
    for c in (p.phone, p.laptop):
        await c.inbox.take(occupant(room, "Carol", "available"))
    # carol goes away; alice's sessions follow.
    carol.xmpp.send_presence(pto=f"{room}/Carol", pshow="away")
    for c in (p.phone, p.laptop):
        await c.inbox.take(lambda s: occupant(room, "Carol", "available")(s)
                           and show_of(s) == "away")
    # A later session of alice sees the room as it is now: carol away.
    tablet = await p.alice_session("tablet")
    mark = tablet.inbox.mark()
    pres, _subject, occupants, _history = await join(tablet, room, "Al", maxstanzas=0)
    now = {str(o["from"].resource): show_of(o) for o in occupants if 110 not in muc_codes(o)}
    assert now.get("Carol") == "away" and "Bob" in now, f"the room as it is now: {now}"
    assert len(tablet.inbox.since(mark, occupant(room, "Carol"))) == 1
    # Nothing of alice's joins reached carol (rule 16): alice's tablet
    # joined from server state, and carol's sessions are not alice's.
    await carol.inbox.none_within(occupant(room, "Al"), window=0.5,
                                  what="alice's later join at carol")
    # carol leaves: every joined session of alice sees it, once.
    p.muc(carol).leave_muc(room, "Carol")
    await carol.inbox.take(occupant(room, "Carol", "unavailable", {110}))
    for c in (p.phone, p.laptop, tablet):
        await c.inbox.take(occupant(room, "Carol", "unavailable"))
    for c in (p.phone, p.laptop):
        got = c.inbox.since(marks[c], occupant(room, "Carol", "unavailable"))
        assert len(got) == 1, [str(g) for g in got]
    assert sorted(p.muc(p.laptop).get_roster(room)) == ["Al", "Bob"]
    # What carol says afterwards is hers alone: she is out of the room.
    bob.xmpp.send_message(mto=room, mbody="carol left", mtype="groupchat")
    for c in (p.phone, p.laptop, tablet):
        await c.inbox.take(groupchat(room, "carol left"))
    await carol.inbox.none_within(groupchat(room, "carol left"), window=0.3,
                                  what="room traffic after carol left")
