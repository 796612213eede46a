"""Interop tests: aioxmpp with the server's MUC service (account-based
joining: a second session of an account joins a room the account is in),
PEP with aioxmpp's entity caps (+notify) and PEP services, the archive
(XEP-0313; aioxmpp has no MAM module: XSOs in aioxmpp_client with aioxmpp's
RSM and forms), blocking and carbons with aioxmpp's services, and stream
resumption with aioxmpp's own XEP-0198 support.

Every test bounds its waits (xmpp_client.bounded, STEP_TIMEOUT)."""

from __future__ import annotations

import asyncio

import aioxmpp
import aioxmpp.forms
import aioxmpp.muc.xso as muc_xso
import aioxmpp.ping
import aioxmpp.pubsub.xso as pubsub_xso
import aioxmpp.rsm.xso as rsm_xso
import aioxmpp.xso as xso

from aioxmpp_client import (NS_MAM, MAMQuery, aio_connect, body_of, chat_from,  # noqa: F401
                            groupchat, muc_codes, occupant, presence_from, subject_from)
from xmpp_client import STEP_TIMEOUT, bounded, new_room, wait_until

J = aioxmpp.JID.fromstr
NS_TUNE = "http://jabber.org/protocol/tune"
SUBJECT = "Interop with aioxmpp"


@pubsub_xso.as_payload_class
class Tune(xso.XSO):
    """XEP-0118 user tune (the title only), as an aioxmpp PubSub payload."""
    TAG = (NS_TUNE, "tune")
    title = xso.ChildText((NS_TUNE, "title"), default=None)

    def __init__(self, title=None):
        super().__init__()
        self.title = title


# XEP-0280 §6: <private/> (aioxmpp's carbons module has no XSO for it).
aioxmpp.Message.roost_carbons_private = xso.ChildFlag(("urn:xmpp:carbons:2", "private"))


def check(fn):
    async def _check():
        return fn()
    return _check


async def available(*clients):
    for c in clients:
        await c.presence()
    for c in clients:
        await c.inbox.take(presence_from(c.jid))


async def befriend(a, b):
    """A mutual presence subscription, with aioxmpp's roster service."""
    A, B = a.jid.bare(), b.jid.bare()
    ra, rb = a.summon(aioxmpp.RosterClient), b.summon(aioxmpp.RosterClient)
    ra.subscribe(B)
    await b.inbox.take(presence_from(A, aioxmpp.PresenceType.SUBSCRIBE))
    rb.approve(A)
    rb.subscribe(A)
    await a.inbox.take(presence_from(B, aioxmpp.PresenceType.SUBSCRIBED))
    await a.inbox.take(presence_from(B, aioxmpp.PresenceType.SUBSCRIBE))
    ra.approve(B)
    await b.inbox.take(presence_from(A, aioxmpp.PresenceType.SUBSCRIBED))


def chat(to, body, id_=None):
    m = aioxmpp.Message(type_=aioxmpp.MessageType.CHAT, to=to)
    m.body[None] = body
    if id_:
        m.id_ = id_
    return m


# -- MUC ---------------------------------------------------------------------------------


def join_order(seq):
    kinds = []
    for st in seq:
        if isinstance(st, aioxmpp.Presence):
            kinds.append("self" if 110 in muc_codes(st) else "other")
        elif body_of(st) is not None:
            kinds.append("history")
        elif st.subject:
            kinds.append("subject")
        else:
            kinds.append(f"unexpected {st!r}")
    order = ["other", "self", "history", "subject"]
    summary = f"join sequence {kinds}: {seq}"
    assert kinds.count("self") == 1 and kinds.count("subject") == 1, summary
    assert kinds == sorted(kinds, key=order.index), summary
    assert kinds[-1] == "subject", summary
    return kinds


async def join(c, room, nick, maxstanzas):
    """aioxmpp's MUC join; the sequence of presences and messages from the
    room up to the subject (the last of a join)."""
    muc = c.summon(aioxmpp.MUCClient)
    mark = c.inbox.mark()
    room_obj, fut = muc.join(J(room), nick, history=muc_xso.History(maxstanzas=maxstanzas))
    await asyncio.wait_for(fut, STEP_TIMEOUT)
    await c.inbox.take(lambda st: subject_from(room)(st) and c.inbox.items.index(st) >= mark)
    seq = [st for st in c.inbox.since(mark) if not isinstance(st, aioxmpp.IQ)
           and st.from_ is not None and st.from_.bare() == J(room)]
    return room_obj, seq


@bounded
async def test_muc_groupchat_and_a_second_session_of_the_account(server, aio_connect):
    alice, bob_acct = server.new_user("alice"), server.new_user("bob")
    room = new_room(server, "aio")
    bob = await aio_connect(server, bob_acct, resource="desk")
    await available(bob)
    bmuc = bob.summon(aioxmpp.MUCClient)
    broom, fut = bmuc.join(J(room), "Bob", history=muc_xso.History(maxstanzas=0))
    await asyncio.wait_for(fut, STEP_TIMEOUT)
    created = await bob.inbox.take(occupant(room, "Bob", codes={110}))
    assert 201 in muc_codes(created), f"a new room: {created}"
    # An instant room: the empty submit form (XEP-0045 §10.1.2).
    await asyncio.wait_for(
        bmuc.set_room_config(J(room), aioxmpp.forms.Data(aioxmpp.forms.DataType.SUBMIT)),
        STEP_TIMEOUT)
    await asyncio.wait_for(broom.set_topic({None: SUBJECT}), STEP_TIMEOUT)
    await bob.inbox.take(lambda st: subject_from(room)(st) and st.subject.any() == SUBJECT)
    msg = aioxmpp.Message(type_=aioxmpp.MessageType.GROUPCHAT)
    msg.body[None] = "said before alice came"
    broom.send_message(msg)
    await bob.inbox.take(groupchat(room, "said before alice came", "Bob"))

    phone = await aio_connect(server, alice, resource="phone")
    laptop = await aio_connect(server, alice, resource="laptop", direct_tls=True)
    await available(phone, laptop)

    # First join of the account.
    proom, seq = await join(phone, room, "Al", 5)
    join_order(seq)
    self_p = next(st for st in seq if 110 in muc_codes(st))
    assert self_p.from_ == J(f"{room}/Al") and self_p.to == phone.jid
    assert [str(st.from_) for st in seq if isinstance(st, aioxmpp.Presence)
            and 110 not in muc_codes(st)] == [f"{room}/Bob"]
    assert [body_of(st) for st in seq if body_of(st)] == ["said before alice came"]
    assert proom.me.nick == "Al"
    assert sorted(m.nick for m in proom.members) == ["Al", "Bob"]
    seen = await bob.inbox.take(occupant(room, "Al"))
    assert seen.xep0045_muc_user.items[0].jid.bare() == J(alice.jid), \
        "the owner sees the account's JID"

    # Groupchat both ways, ids kept; aioxmpp's room signals see them too.
    got_on_phone = []
    proom.on_message.connect(lambda m, member, source, **kw: got_on_phone.append(body_of(m)))
    for i in range(3):
        m = aioxmpp.Message(type_=aioxmpp.MessageType.GROUPCHAT)
        m.body[None] = f"h{i}"
        m.id_ = f"aio-b{i}"
        broom.send_message(m)
        r = await phone.inbox.take(groupchat(room, f"h{i}", "Bob"))
        assert r.id_ == f"aio-b{i}" and r.to == phone.jid
        await bob.inbox.take(groupchat(room, f"h{i}", "Bob"))
    m = aioxmpp.Message(type_=aioxmpp.MessageType.GROUPCHAT)
    m.body[None] = "hi from the phone"
    m.id_ = "aio-p1"
    proom.send_message(m)
    refl = await phone.inbox.take(groupchat(room, "hi from the phone", "Al"))
    assert refl.id_ == "aio-p1"
    assert (await bob.inbox.take(groupchat(room, "hi from the phone", "Al"))).id_ == "aio-p1"
    await wait_until(check(lambda: got_on_phone[-4:] == ["h0", "h1", "h2", "hi from the phone"]),
                     what=f"aioxmpp's on_message on the phone: {got_on_phone}")

    # The laptop joins the same room: answered from the account's state.
    bob_mark, phone_mark = bob.inbox.mark(), phone.inbox.mark()
    lroom, seq = await join(laptop, room, "Al", 2)
    join_order(seq)
    self_l = next(st for st in seq if 110 in muc_codes(st))
    assert self_l.from_ == J(f"{room}/Al") and self_l.to == laptop.jid
    assert [body_of(st) for st in seq if body_of(st)] == ["h2", "hi from the phone"], \
        "history per maxstanzas=2"
    assert next(st for st in seq if subject_from(room)(st)).subject.any() == SUBJECT
    assert sorted(m.nick for m in lroom.members) == ["Al", "Bob"]
    await bob.inbox.none_within(occupant(room, "Al", type_=None), since=bob_mark,
                                what="a second presence of alice's account")
    await phone.inbox.none_within(lambda st: st.from_ is not None and st.from_.bare() == J(room)
                                  and not isinstance(st, aioxmpp.IQ),
                                  window=0.1, since=phone_mark,
                                  what="room traffic to the phone on the laptop's join")

    # Traffic reaches both sessions once; the laptop's message is reflected
    # to both with its id.
    m = aioxmpp.Message(type_=aioxmpp.MessageType.GROUPCHAT)
    m.body[None] = "hello both"
    broom.send_message(m)
    for c in (phone, laptop):
        got = await c.inbox.take(groupchat(room, "hello both", "Bob"))
        assert got.to == c.jid
    m = aioxmpp.Message(type_=aioxmpp.MessageType.GROUPCHAT)
    m.body[None] = "from the laptop"
    m.id_ = "aio-l1"
    lroom.send_message(m)
    for c in (laptop, phone):
        got = await c.inbox.take(groupchat(room, "from the laptop", "Al"))
        assert got.id_ == "aio-l1"
    await bob.inbox.take(groupchat(room, "from the laptop", "Al"))
    for c in (phone, laptop, bob):
        await c.inbox.none_within(groupchat(room), window=0.3, what="a second copy")


# -- PEP ---------------------------------------------------------------------------------


def pep_event(owner, item_id):
    owner = J(str(owner))

    def pred(st):
        ev = getattr(st, "xep0060_event", None)
        if not isinstance(st, aioxmpp.Message) or ev is None or st.from_ != owner:
            return False
        items = ev.payload
        return (getattr(items, "node", None) == NS_TUNE
                and any(i.id_ == item_id for i in items.items))
    return pred


@bounded
async def test_pep_publish_and_notifications(server, aio_connect):
    a_acct, b_acct, c_acct = (server.new_user(p) for p in ("alice", "bob", "carol"))
    alice = await aio_connect(server, a_acct, resource="a")
    bob = await aio_connect(server, b_acct, resource="one")
    carol = await aio_connect(server, c_acct, resource="c", direct_tls=True)
    notified = {}
    for c in (bob, carol):
        # aioxmpp's caps service puts +notify in the presence's caps.
        c.summon(aioxmpp.EntityCapsService)
        claim = c.summon(aioxmpp.PEPClient).claim_pep_node(NS_TUNE, notify=True)
        c.claim = claim
        claim.on_item_publish.connect(
            lambda jid, node, item, c=c, **kw: notified.setdefault(c, []).append(item.id_))
    await available(alice, bob, carol)
    await befriend(alice, bob)

    pep = alice.summon(aioxmpp.PEPClient)
    # aioxmpp asks the account's disco#info for the PEP identity first.
    await asyncio.wait_for(pep.publish(NS_TUNE, Tune("First"), id_="t1"), STEP_TIMEOUT)

    # A new resource of bob that wants tune notifications gets the last item.
    bob2 = await aio_connect(server, b_acct, resource="two")
    bob2.summon(aioxmpp.EntityCapsService)
    bob2.summon(aioxmpp.PEPClient).claim_pep_node(NS_TUNE, notify=True)
    await available(bob2)
    last = await bob2.inbox.take(pep_event(a_acct.jid, "t1"))
    assert last.xep0060_event.payload.items[0].registered_payload.title == "First"

    carol_mark = carol.inbox.mark()
    await asyncio.wait_for(pep.publish(NS_TUNE, Tune("Second"), id_="t2"), STEP_TIMEOUT)
    for c in (bob, bob2):
        ev = await c.inbox.take(pep_event(a_acct.jid, "t2"))
        assert ev.to == c.jid
        assert ev.xep0060_event.payload.items[0].registered_payload.title == "Second"
    await wait_until(check(lambda: "t2" in notified.get(bob, [])),
                     what="aioxmpp's PEP claim on_item_publish for t2")
    await carol.inbox.none_within(lambda st: getattr(st, "xep0060_event", None) is not None,
                                  since=carol_mark, what="a PEP event for a non-contact")
    assert "t2" not in notified.get(carol, [])
    # bob reads the node with aioxmpp's PubSub client.
    items = await asyncio.wait_for(
        bob.summon(aioxmpp.PubSubClient).get_items(J(a_acct.jid), NS_TUNE), STEP_TIMEOUT)
    assert "t2" in [i.id_ for i in items.payload.items]


# -- MAM -----------------------------------------------------------------------------------


async def mam_page(c, queryid, with_jid, rsm):
    form = aioxmpp.forms.Data(aioxmpp.forms.DataType.SUBMIT)
    form.fields.append(aioxmpp.forms.Field(type_=aioxmpp.forms.FieldType.HIDDEN,
                                           var="FORM_TYPE", values=[NS_MAM]))
    form.fields.append(aioxmpp.forms.Field(var="with", values=[str(with_jid)]))
    q = MAMQuery()
    q.queryid = queryid
    q.form = form
    q.rsm = rsm
    fin = await c.send(aioxmpp.IQ(type_=aioxmpp.IQType.SET, payload=q))
    results = []
    for st in c.inbox.pending(lambda s: isinstance(s, aioxmpp.Message)
                              and getattr(s, "xep0313_result", None) is not None
                              and s.xep0313_result.queryid == queryid):
        c.inbox.taken.add(c.inbox.items.index(st))
        results.append(st.xep0313_result)
    return results, fin


@bounded
async def test_mam_paging_with_rsm(server, aio_connect):
    a_acct, b_acct = server.new_user("alice"), server.new_user("bob")
    alice = await aio_connect(server, a_acct)
    bob = await aio_connect(server, b_acct, direct_tls=True)
    await available(bob)
    n = 5
    for i in range(n):
        await alice.send(chat(J(b_acct.jid), f"m{i}"))
        await bob.inbox.take(chat_from(alice.jid, f"m{i}"))

    pages, ids = [], []
    rsm = rsm_xso.ResultSetMetadata.limit(2)
    for page in range(n):
        results, fin = await mam_page(bob, f"f{page}", a_acct.jid, rsm)
        pages.append([body_of(r.forwarded.stanza) for r in results])
        ids += [r.id_ for r in results]
        assert all(r.forwarded.delay is not None for r in results), "delay stamps"
        if results:
            assert fin.rsm.first.value == results[0].id_ and fin.rsm.last.value == results[-1].id_
        if fin.complete:
            break
        rsm = fin.rsm.next_page(2)
    assert pages == [["m0", "m1"], ["m2", "m3"], ["m4"]]
    assert len(set(ids)) == n

    back = []
    rsm = rsm_xso.ResultSetMetadata.last_page(2)
    for page in range(n):
        results, fin = await mam_page(bob, f"b{page}", a_acct.jid, rsm)
        back.append([body_of(r.forwarded.stanza) for r in results])
        if fin.complete:
            break
        rsm = fin.rsm.previous_page(2)
    assert back == [["m3", "m4"], ["m1", "m2"], ["m0"]]

    live = bob.inbox.all(chat_from(alice.jid, "m4"))[0]
    assert [s.id_ for s in live.xep0359_stanza_ids if s.by == J(b_acct.jid)] == [ids[-1]]


# -- blocking, carbons -----------------------------------------------------------------


@bounded
async def test_blocking(server, aio_connect):
    a_acct, b_acct = server.new_user("alice"), server.new_user("bob")
    alice = await aio_connect(server, a_acct, services=[aioxmpp.BlockingClient])
    bob = await aio_connect(server, b_acct)
    await available(alice, bob)
    blocking = alice.summon(aioxmpp.BlockingClient)
    assert blocking.blocklist == frozenset()
    pushed = []
    blocking.on_jids_blocked.connect(lambda jids: pushed.append(set(jids)))
    await asyncio.wait_for(blocking.block_jids([J(b_acct.jid)]), STEP_TIMEOUT)
    await wait_until(check(lambda: pushed == [{J(b_acct.jid)}]),
                     what=f"aioxmpp's on_jids_blocked from the push: {pushed}")
    assert blocking.blocklist == frozenset({J(b_acct.jid)})

    mark = alice.inbox.mark()
    await bob.send(chat(J(a_acct.jid), "are you there?", "aio-blk1"))
    err = await bob.inbox.take(lambda st: isinstance(st, aioxmpp.Message) and st.id_ == "aio-blk1")
    assert err.type_ == aioxmpp.MessageType.ERROR
    assert err.error.condition == aioxmpp.ErrorCondition.SERVICE_UNAVAILABLE
    await alice.send(chat(J(b_acct.jid), "you are blocked", "aio-blk2"))
    err = await alice.inbox.take(lambda st: isinstance(st, aioxmpp.Message) and st.id_ == "aio-blk2")
    assert err.type_ == aioxmpp.MessageType.ERROR
    assert err.error.condition == aioxmpp.ErrorCondition.NOT_ACCEPTABLE
    await alice.inbox.none_within(chat_from(b_acct.jid), since=mark, window=0.5,
                                  what="a message from a blocked contact")

    await asyncio.wait_for(blocking.unblock_jids([J(b_acct.jid)]), STEP_TIMEOUT)
    await wait_until(check(lambda: blocking.blocklist == frozenset()), what="unblock push")
    await bob.send(chat(J(a_acct.jid), "again"))
    await alice.inbox.take(chat_from(bob.jid, "again"))


@bounded
async def test_carbons(server, aio_connect):
    a_acct, b_acct = server.new_user("alice"), server.new_user("bob")
    phone = await aio_connect(server, a_acct, resource="phone")
    laptop = await aio_connect(server, a_acct, resource="laptop", direct_tls=True)
    bob = await aio_connect(server, b_acct, resource="b")
    await available(phone, laptop, bob)
    for c in (phone, laptop):
        await asyncio.wait_for(c.summon(aioxmpp.CarbonsClient).enable(), STEP_TIMEOUT)

    def carbon(kind, body):
        def pred(st):
            w = getattr(st, f"xep0280_{kind}", None) if isinstance(st, aioxmpp.Message) else None
            return (w is not None and st.from_ == J(a_acct.jid)
                    and body_of(w.forwarded.stanza) == body)
        return pred

    await bob.send(chat(phone.jid, "to the phone", "aio-c1"))
    await phone.inbox.take(chat_from(bob.jid, "to the phone"))
    rc = await laptop.inbox.take(carbon("received", "to the phone"))
    inner = rc.xep0280_received.forwarded.stanza
    assert inner.from_ == bob.jid and inner.to == phone.jid and inner.id_ == "aio-c1"

    phone_mark = phone.inbox.mark()
    await phone.send(chat(J(b_acct.jid), "from the phone", "aio-c2"))
    await bob.inbox.take(chat_from(phone.jid, "from the phone"))
    sc = await laptop.inbox.take(carbon("sent", "from the phone"))
    assert sc.xep0280_sent.forwarded.stanza.to == J(b_acct.jid)

    laptop_mark = laptop.inbox.mark()
    m = chat(J(b_acct.jid), "private")
    m.roost_carbons_private = True
    await phone.send(m)
    await bob.inbox.take(chat_from(phone.jid, "private"))
    await laptop.inbox.none_within(carbon("sent", "private"), since=laptop_mark, window=0.7,
                                   what="a carbon of a <private/> message")
    await phone.inbox.none_within(
        lambda st: getattr(st, "xep0280_sent", None) is not None, since=phone_mark, window=0.01,
        what="a carbon of the phone's own message")


# -- stream management ---------------------------------------------------------------------


@bounded
async def test_stream_resumption_after_a_dropped_connection(server, aio_connect):
    a_acct, b_acct = server.new_user("alice"), server.new_user("bob")
    alice = await aio_connect(server, a_acct, resource="mobile")
    bob = await aio_connect(server, b_acct)
    await available(alice, bob)
    stream = alice.client.stream
    assert stream.sm_enabled and stream.sm_resumable
    sm_id = stream.sm_id
    await bob.send(chat(alice.jid, "before"))
    await alice.inbox.take(chat_from(bob.jid, "before"))
    jid = alice.jid

    mark = alice.inbox.mark()
    alice.drop()
    for i in range(1, 4):
        await bob.send(chat(jid, f"missed {i}"))
    await asyncio.wait_for(aioxmpp.ping.ping(bob.client, J(server.domain)), STEP_TIMEOUT)
    # aioxmpp reconnects by itself and resumes the stream (no new session).
    await alice.wait_resumed()
    assert alice.destroyed == 0, "the stream was not resumed but replaced"
    assert alice.client.stream.sm_id == sm_id
    assert alice.jid == jid
    for i in range(1, 4):
        await alice.inbox.take(chat_from(bob.jid, f"missed {i}"))
    got = [body_of(st) for st in alice.inbox.since(mark, chat_from(bob.jid))]
    assert got == ["missed 1", "missed 2", "missed 3"], got
    assert len(alice.inbox.all(chat_from(bob.jid, "before"))) == 1
    await alice.send(chat(J(b_acct.jid), "back"))
    await bob.inbox.take(chat_from(jid, "back"))
