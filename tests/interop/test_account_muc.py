"""Account-based MUC joining (README "Account-based MUC joining",
ACCOUNT-MUC.md rules) seen from slixmpp: two sessions of alice
(alice/phone, alice/laptop) and one of bob in a room on Roost's own MUC
service, on the shared server (account-based joining on, the default).

Each client is an unmodified slixmpp with its xep_0045 plugin; assertions
are about what each slixmpp received (Client.inbox) or what its plugin
reports.  "Nothing arrives" is asserted over a short window (QUIET).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from slixmpp import JID

from conftest import Account, RoostServer
from xmpp_client import (MUC_PLUGINS, STEP_TIMEOUT, Client, bounded, publish_bookmark,
                         NS_BOOKMARKS,
                         create_instant_room, from_room, groupchat, muc_codes, muc_item,
                         new_room, occupant, ptype_of, show_of, subject_from, wait_until)

NS_STANZA_ID = "urn:xmpp:sid:0"
ACCOUNT_MUC_FEATURE = "urn:roost:account-muc:0"

ALICE_PLUGINS = MUC_PLUGINS + ("xep_0313",)
BOOKMARK_PLUGINS = MUC_PLUGINS + ("xep_0060", "xep_0313", "xep_0402")
SUBJECT = "Account rooms"


@dataclass
class Party:
    server: RoostServer
    room: str
    alice: Account
    bob_acct: Account
    bob: Client
    phone: Client
    laptop: Client

    def muc(self, c: Client):
        return c.xmpp.plugin["xep_0045"]


async def join(c: Client, room: str, nick: str, **kw):
    return await c.xmpp.plugin["xep_0045"].join_muc_wait(
        JID(room), nick, timeout=STEP_TIMEOUT, **kw)


async def party(server, connect, *, laptop_joins: bool = True) -> Party:
    """bob creates a room and sets the subject; alice/phone joins (first
    join), then alice/laptop (a later join) unless told not to."""
    alice, bob_acct = server.new_user("alice"), server.new_user("bob")
    room = new_room(server, "acct")
    bob = await connect(server, bob_acct, presence=True, resource="desk", plugins=MUC_PLUGINS)
    await create_instant_room(bob, room, "Bob")
    bob.xmpp.plugin["xep_0045"].set_subject(room, SUBJECT)
    await bob.inbox.take(subject_from(room, SUBJECT))
    phone = await connect(server, alice, presence=True, resource="phone", plugins=ALICE_PLUGINS)
    laptop = await connect(server, alice, presence=True, resource="laptop", plugins=ALICE_PLUGINS)
    await join(phone, room, "Al", maxstanzas=0)
    await bob.inbox.take(occupant(room, "Al", "available"))
    if laptop_joins:
        await join(laptop, room, "Al", maxstanzas=0)
    return Party(server, room, alice, bob_acct, bob, phone, laptop)


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


# -- rules 1-3: joins ----------------------------------------------------------------


@bounded
async def test_first_join_then_later_join_answered_from_state(server, connect):
    alice, bob_acct = server.new_user("alice"), server.new_user("bob")
    room = new_room(server, "join")
    bob = await connect(server, bob_acct, presence=True, resource="desk", plugins=MUC_PLUGINS)
    await create_instant_room(bob, room, "Bob")
    bmuc = bob.xmpp.plugin["xep_0045"]
    bmuc.set_subject(room, SUBJECT)
    await bob.inbox.take(subject_from(room, SUBJECT))
    bob.xmpp.send_message(mto=room, mbody="said before alice came", mtype="groupchat")
    await bob.inbox.take(groupchat(room, "said before alice came"))

    phone = await connect(server, alice, presence=True, resource="phone", plugins=ALICE_PLUGINS)
    laptop = await connect(server, alice, presence=True, resource="laptop", plugins=ALICE_PLUGINS)
    # The feature is discoverable on the account.
    info = await phone.xmpp.plugin["xep_0030"].get_info(jid=alice.jid, timeout=STEP_TIMEOUT)
    assert ACCOUNT_MUC_FEATURE in info["disco_info"]["features"], str(info)

    # Rule 1, first join: the room's join sequence, addressed to alice/phone:
    # bob's presence, her own with 110 last, the history, the subject.
    mark = phone.inbox.mark()
    pres, subject, occupants, history = await join(phone, room, "Al", maxstanzas=5)
    assert pres["from"] == JID(f"{room}/Al") and pres["to"] == phone.jid, str(pres)
    assert 110 in muc_codes(pres), str(pres)
    assert [str(p["from"]) for p in occupants if 110 not in muc_codes(p)] == [f"{room}/Bob"]
    assert bodies(history) == ["said before alice came"], \
        f"slixmpp's history (delay from the room): {[str(h) for h in history]}"
    assert subject["subject"] == SUBJECT
    _assert_join_order(phone.inbox.since(mark, from_room(room)))
    p = await bob.inbox.take(occupant(room, "Al", "available"))
    assert JID(muc_item(p).get("jid")) == JID(alice.jid), \
        f"the room's occupant is the account (bare JID): {p}"

    # Messages said while alice is in, for the later join's history.
    for i in range(3):
        bob.xmpp.send_message(mto=room, mbody=f"h{i}", mtype="groupchat")
        await phone.inbox.take(groupchat(room, f"h{i}", "Bob"))
        await bob.inbox.take(groupchat(room, f"h{i}", "Bob"))

    # Rule 2, later join: answered from state, to alice/laptop only.
    mark = laptop.inbox.mark()
    bob_mark, phone_mark = bob.inbox.mark(), phone.inbox.mark()
    pres, subject, occupants, history = await join(laptop, room, "Al", maxstanzas=2)
    assert pres["from"] == JID(f"{room}/Al") and pres["to"] == laptop.jid, str(pres)
    assert 110 in muc_codes(pres), str(pres)
    assert [str(p["from"]) for p in occupants if 110 not in muc_codes(p)] == [f"{room}/Bob"]
    assert subject["subject"] == SUBJECT and subject["from"].bare == room, str(subject)
    assert bodies(history) == ["h1", "h2"], \
        f"maxstanzas=2 honoured: {[str(h) for h in history]}"
    seq = laptop.inbox.since(mark, from_room(room))
    _assert_join_order(seq)

    # Rule 3: bob sees no second join of alice: no presence, nothing else
    # from the room either (IQ requests may come: the laptop's slixmpp asks
    # room/Bob for its caps on seeing his presence).
    await bob.inbox.none_within(occupant(room, "Al"), since=bob_mark,
                                what="presence of Al on a later join")
    assert bob.inbox.since(bob_mark, room_traffic(bob, room)) == []
    al_presences = bob.inbox.all(occupant(room, "Al", "available"))
    assert len(al_presences) == 1, [str(p) for p in al_presences]
    assert sorted(bmuc.get_roster(JID(room))) == ["Al", "Bob"]
    assert sorted(laptop.xmpp.plugin["xep_0045"].get_roster(JID(room))) == ["Al", "Bob"]
    # The phone was not told about the laptop's join either.
    await phone.inbox.none_within(room_traffic(phone, room), window=0.1, since=phone_mark,
                                  what="stanza to alice/phone on alice/laptop's join")

    # Rule 2: a later join asking for another nick gets the account's nick
    # with status 210.
    tablet = await connect(server, alice, presence=True, resource="tablet",
                           plugins=ALICE_PLUGINS)
    bob_mark = bob.inbox.mark()
    pres, *_ = await join(tablet, room, "Alicia", maxstanzas=0)
    assert pres["from"] == JID(f"{room}/Al"), f"the account's nick is kept: {pres}"
    assert {110, 210} <= muc_codes(pres), str(pres)
    await bob.inbox.none_within(occupant(room), window=0.3, since=bob_mark,
                                what="presence on a third join")


def _assert_join_order(seq):
    """Occupant presences, then the own presence (110) last, then history
    (messages with a body), then the subject: nothing else, each once."""
    kinds = []
    # IQs from the room are answers to slixmpp's own caps queries (XEP-0115)
    # of the occupants it sees, not part of the join.
    seq = [s for s in seq if s.name != "iq"]
    for s in seq:
        if s.name == "presence":
            kinds.append("self" if 110 in muc_codes(s) else "other")
        elif s.name == "message" and s["body"]:
            kinds.append("history")
        elif s.name == "message" and s.xml.find("{jabber:client}subject") is not None:
            kinds.append("subject")
        else:
            kinds.append(f"unexpected {s.name}")
    summary = f"join sequence {kinds}: " + "; ".join(str(s) for s in seq)
    assert kinds.count("self") == 1 and kinds.count("subject") == 1, summary
    assert kinds == sorted(kinds, key=["other", "self", "history", "subject"].index), summary
    assert kinds[-1] == "subject", summary


# -- rules 4-5: traffic forks, sending ---------------------------------------------------


@bounded
async def test_room_traffic_forks_and_reflections_reach_every_joined_session(server, connect):
    p = await party(server, connect)
    room = p.room
    # A session of alice that did not join.
    idle = await connect(server, p.alice, presence=True, resource="idle", plugins=ALICE_PLUGINS)

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


@bounded
async def test_iqs_return_to_the_asking_session_only(server, connect):
    p = await party(server, connect)
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


@bounded
async def test_presence_aggregation_and_sessions_leaving(server, connect):
    p = await party(server, connect)
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


@bounded
async def test_nick_change_reaches_every_session_and_a_refusal_only_the_asker(server, connect):
    p = await party(server, connect)
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


@bounded
async def test_kick_reaches_every_joined_session(server, connect):
    p = await party(server, connect)
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


@bounded
async def test_personal_archive_holds_each_groupchat_message_once(server, connect):
    p = await party(server, connect)
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


# -- rule 13: bookmarks ---------------------------------------------------------------------------


@bounded
async def test_autojoin_bookmark_makes_the_account_an_xa_occupant(server, connect):
    alice, bob_acct = server.new_user("alice"), server.new_user("bob")
    room = new_room(server, "bkm")
    bob = await connect(server, bob_acct, presence=True, resource="desk", plugins=MUC_PLUGINS)
    await create_instant_room(bob, room, "Bob")
    a = await connect(server, alice, presence=True, resource="phone", plugins=BOOKMARK_PLUGINS)

    await publish_bookmark(a, room, "Al", autojoin=True)
    p = await bob.inbox.take(occupant(room, "Al", "available"))
    assert show_of(p) == "xa", f"no session joined: the account shows as xa: {p}"
    assert JID(muc_item(p).get("jid")) == JID(alice.jid), str(p)
    assert sorted(bob.xmpp.plugin["xep_0045"].get_roster(JID(room))) == ["Al", "Bob"]

    # What is said meanwhile reaches alice's archive, not her session.
    bob.xmpp.send_message(mto=room, mbody="while nobody of alice is here", mtype="groupchat")
    await bob.inbox.take(groupchat(room, "while nobody of alice is here"))

    async def archived_once():
        res = await a.xmpp.plugin["xep_0313"].retrieve(with_jid=JID(room), timeout=STEP_TIMEOUT)
        got = bodies(archived(m) for m in res["mam"]["results"])
        return got if got else None

    assert await wait_until(archived_once, what="the message in alice's archive") == \
        ["while nobody of alice is here"]
    assert a.inbox.all(from_room(room)) == [], \
        f"a session that did not join got room traffic: {[str(s) for s in a.inbox.all(from_room(room))]}"

    # Clearing autojoin with no session joined takes the account out.
    await publish_bookmark(a, room, "Al", autojoin=False)
    gone = await bob.inbox.take(occupant(room, "Al", "unavailable"))
    assert muc_item(gone).get("role") == "none", str(gone)
