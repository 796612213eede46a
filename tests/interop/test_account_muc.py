"""Account-based MUC joining (README "Account-based MUC joining",
ACCOUNT-MUC.md rules) seen from slixmpp: two sessions of alice
(alice/phone, alice/laptop) and one of bob in a room on Roost's own MUC
service, on the shared server (account-based joining on, the default).

Each client is an unmodified slixmpp with its xep_0045 plugin; assertions
are about what each slixmpp received (Client.inbox) or what its plugin
reports.  "Nothing arrives" is asserted over a short window (QUIET).
"""

from __future__ import annotations

from slixmpp import JID

from account_muc_rules import (SUBJECT, Party, bodies, archived, join, room_traffic,
                               check_iqs_return_to_the_asking_session_only, check_kick_reaches_every_joined_session,
                               check_nick_change, check_others_come_and_go_and_accounts_stay_apart,
                               check_personal_archive_once_per_message,
                               check_presence_aggregation_and_leaving,
                               check_traffic_forks_and_reflections)
from xmpp_client import (MUC_PLUGINS, STEP_TIMEOUT, bounded, create_instant_room, from_room,
                         groupchat, muc_codes, muc_item, new_room, occupant, publish_bookmark,
                         show_of, subject_from, wait_until)

ACCOUNT_MUC_FEATURE = "urn:roost:account-muc:0"

ALICE_PLUGINS = MUC_PLUGINS + ("xep_0313",)
BOOKMARK_PLUGINS = MUC_PLUGINS + ("xep_0060", "xep_0313", "xep_0402")


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

    def alice_session(resource: str):
        return connect(server, alice, presence=True, resource=resource, plugins=ALICE_PLUGINS)

    carol = server.new_user("carol")

    def carol_session(resource: str):
        return connect(server, carol, presence=True, resource=resource, plugins=MUC_PLUGINS)

    return Party(room, bob, phone, laptop, alice_session, carol_session)


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


# -- rule 6: IQs ------------------------------------------------------------------------------


# -- rules 7-8: presence in the room, leaving --------------------------------------------------


# -- rule 12: nick change ----------------------------------------------------------------------


# -- rule 11: removal ------------------------------------------------------------------------------


# -- rule 14: personal archive --------------------------------------------------------------------


# -- rules 4-8, 11, 12, 14: the shared checks (account_muc_rules.py) ---------------------------


@bounded
async def test_room_traffic_forks_and_reflections_reach_every_joined_session(server, connect):
    await check_traffic_forks_and_reflections(await party(server, connect))


@bounded
async def test_iqs_return_to_the_asking_session_only(server, connect):
    await check_iqs_return_to_the_asking_session_only(await party(server, connect))


@bounded
async def test_presence_aggregation_and_sessions_leaving(server, connect):
    await check_presence_aggregation_and_leaving(await party(server, connect))


@bounded
async def test_nick_change_reaches_every_session_and_a_refusal_only_the_asker(server, connect):
    await check_nick_change(await party(server, connect))


@bounded
async def test_kick_reaches_every_joined_session(server, connect):
    await check_kick_reaches_every_joined_session(await party(server, connect))


@bounded
async def test_personal_archive_holds_each_groupchat_message_once(server, connect):
    await check_personal_archive_once_per_message(await party(server, connect))


@bounded
async def test_others_come_and_go_and_accounts_stay_apart(server, connect):
    await check_others_come_and_go_and_accounts_stay_apart(await party(server, connect))


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
