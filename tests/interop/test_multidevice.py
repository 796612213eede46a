"""Multi-device features with slixmpp's own plugins: stream management with
resumption (XEP-0198), carbons (XEP-0280), the archive (XEP-0313) and
blocking (XEP-0191).

Every assertion is about what slixmpp received (Client.inbox records every
stanza as slixmpp parsed it) or what its plugins report.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

from slixmpp import JID

from xmpp_client import DEFAULT_PLUGINS, QUIET, STEP_TIMEOUT, bounded, wait_until

NS_SM = "urn:xmpp:sm:3"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_STANZA_ID = "urn:xmpp:sid:0"

SM_PLUGINS = DEFAULT_PLUGINS + ("xep_0198",)
CARBON_PLUGINS = DEFAULT_PLUGINS + ("xep_0280",)
MAM_PLUGINS = DEFAULT_PLUGINS + ("xep_0313",)
BLOCK_PLUGINS = DEFAULT_PLUGINS + ("xep_0191",)


def chat_from(jid):
    """A one-to-one message with a body from this account."""
    bare = JID(jid).bare
    return lambda s: (s.name == "message" and s["type"] != "error"
                      and s["from"].bare == bare and bool(s["body"]))


def bodies(stanzas):
    return [s["body"] for s in stanzas]


async def round_trip(client):
    """A ping to the server: everything sent before it has been handled."""
    await client.xmpp.plugin["xep_0199"].send_ping(client.server.domain,
                                                   timeout=STEP_TIMEOUT)


# -- XEP-0198 stream management ------------------------------------------------


@bounded
async def test_resumed_stream_gets_exactly_the_missed_messages_once(server, connect):
    a_acct, b_acct = server.new_user("sma"), server.new_user("smb")
    a = await connect(server, a_acct, presence=True, resource="phone",
                      plugins=SM_PLUGINS)
    enabled = await a.sm_enabled()
    sm = a.xmpp.plugin["xep_0198"]
    assert enabled.xml.get("resume") in ("true", "1"), f"not resumable: {enabled}"
    assert sm.sm_id, f"no stream id to resume with: {enabled}"
    sm_id, full = sm.sm_id, a.jid.full
    b = await connect(server, b_acct, presence=True, resource="desk")

    b.xmpp.send_message(mto=full, mbody="before", mtype="chat")
    await a.inbox.take(chat_from(b_acct.jid))

    # The phone loses its network: no </stream:stream>, a TCP RST.
    a.drop()
    await asyncio.sleep(0.5)

    # Meanwhile bob writes, to the full JID and to the bare JID: the
    # session is still online, so both reach it.
    missed = ["missed 1", "missed 2", "missed 3"]
    b.xmpp.send_message(mto=full, mbody=missed[0], mtype="chat")
    b.xmpp.send_message(mto=full, mbody=missed[1], mtype="chat")
    b.xmpp.send_message(mto=a_acct.jid, mbody=missed[2], mtype="chat")
    await round_trip(b)
    assert not b.inbox.all(lambda s: s.name == "message" and s["type"] == "error"), \
        "bob's messages to the hibernating session bounced"

    # slixmpp reconnects and resumes the stream (its sm_id is still set).
    assert await a.resume() == "resumed"
    assert sm.sm_id == sm_id
    assert a.jid.full == full, "a resumed session keeps its full JID"

    for body in missed:
        await a.inbox.take(lambda s, body=body: chat_from(b_acct.jid)(s)
                           and s["body"] == body)
    await asyncio.sleep(QUIET)  # anything sent twice would arrive now
    got = bodies(a.inbox.all(chat_from(b_acct.jid)))
    assert got == ["before"] + missed, \
        f"expected 'before' once then the missed messages once each, in order: {got}"

    # The resumed stream works both ways.
    b.xmpp.send_message(mto=full, mbody="after", mtype="chat")
    await a.inbox.take(lambda s: chat_from(b_acct.jid)(s) and s["body"] == "after")
    a.xmpp.send_message(mto=b.jid, mbody="I am back", mtype="chat")
    await b.inbox.take(lambda s: chat_from(a_acct.jid)(s) and s["body"] == "I am back")
    # Acks flow: the server acknowledges everything slixmpp sent, the
    # stanzas re-sent on resumption included.
    sm.request_ack()

    async def all_acked():
        return len(sm.unacked_queue) == 0

    await wait_until(all_acked, what="the server acknowledged every stanza")


# -- XEP-0280 carbons -------------------------------------------------------------


def carbon(kind, body=None):
    """A carbon (kind 'received' or 'sent') whose forwarded body is body."""
    def pred(s):
        if s.name != "message" or s.xml.find(f"{{{NS_CARBONS}}}{kind}") is None:
            return False
        inner = s[f"carbon_{kind}"]
        return body is None or inner["body"] == body
    return pred


@bounded
async def test_carbons_between_two_sessions_of_one_account(server, connect):
    a_acct, b_acct = server.new_user("cba"), server.new_user("cbb")
    desk = await connect(server, a_acct, presence=True, resource="desk",
                         plugins=CARBON_PLUGINS)
    phone = await connect(server, a_acct, presence=True, resource="phone",
                          plugins=CARBON_PLUGINS)
    # A third session that does not enable carbons.
    plain = await connect(server, a_acct, presence=True, resource="plain")
    bob = await connect(server, b_acct, presence=True, resource="pc")
    received_events, sent_events = [], []
    phone.xmpp.add_event_handler("carbon_received", received_events.append)
    phone.xmpp.add_event_handler("carbon_sent", sent_events.append)
    await desk.xmpp.plugin["xep_0280"].enable(timeout=STEP_TIMEOUT)
    await phone.xmpp.plugin["xep_0280"].enable(timeout=STEP_TIMEOUT)

    # Received: bob writes to the desk; the phone gets a received carbon.
    bob.xmpp.send_message(mto=desk.jid, mbody="to your desk", mtype="chat")
    m = await desk.inbox.take(chat_from(b_acct.jid))
    assert m["body"] == "to your desk"
    c = await phone.inbox.take(carbon("received", "to your desk"))
    assert c["from"] == a_acct.jid, f"carbon not from the account: {c}"
    inner = c["carbon_received"]
    assert inner["from"] == bob.jid and inner["to"] == desk.jid, str(c)
    assert inner["type"] == "chat"
    assert len(received_events) == 1, "slixmpp's xep_0280 raised carbon_received once"

    # Sent: the desk writes to bob; the phone gets a sent carbon.
    desk.xmpp.send_message(mto=bob.jid, mbody="from my desk", mtype="chat")
    await bob.inbox.take(lambda s: chat_from(a_acct.jid)(s) and s["body"] == "from my desk")
    c = await phone.inbox.take(carbon("sent", "from my desk"))
    assert c["from"] == a_acct.jid, str(c)
    inner = c["carbon_sent"]
    assert inner["from"] == desk.jid and inner["to"] == bob.jid, str(c)
    assert len(sent_events) == 1, "slixmpp's xep_0280 raised carbon_sent once"

    # A private message (carbons <private/>, XEP-0334 no-copy) is not copied.
    msg = desk.xmpp.make_message(mto=bob.jid, mbody="just this device", mtype="chat")
    msg.enable("carbon_private")
    msg.append(_no_copy())
    msg.send()
    await bob.inbox.take(lambda s: chat_from(a_acct.jid)(s) and s["body"] == "just this device")

    # No carbon goes back to the sender, none to the session without carbons,
    # and nothing else reached the phone.
    await desk.inbox.none_within(lambda s: carbon("sent")(s) or carbon("received")(s),
                                 window=0.3, since=0, what="carbon to the sender")
    await plain.inbox.none_within(lambda s: carbon("sent")(s) or carbon("received")(s),
                                  window=0.1, since=0, what="carbon to a session without carbons")
    await phone.inbox.none_within(carbon("sent", "just this device"), window=0.1, since=0,
                                  what="carbon of a private message")
    assert not plain.inbox.all(lambda s: s.name == "message" and s["body"] == "to your desk"), \
        "a message to the desk's full JID reached another session"


def _no_copy():
    return ET.Element("{urn:xmpp:hints}no-copy")


# -- XEP-0313 archive -------------------------------------------------------------


def archived(msg):
    """The archived message inside a MAM result."""
    return msg["mam_result"]["forwarded"]["stanza"]


@bounded
async def test_archive_paging_and_with_filter(server, connect):
    a_acct = server.new_user("mama")
    b_acct, c_acct = server.new_user("mamb"), server.new_user("mamc")
    a = await connect(server, a_acct, presence=True, plugins=MAM_PLUGINS)
    b = await connect(server, b_acct, presence=True)
    c = await connect(server, c_acct, presence=True)

    with_bob = []
    for i in range(7):
        body = f"bob thread {i}"
        with_bob.append(body)
        if i % 2 == 0:
            a.xmpp.send_message(mto=b_acct.jid, mbody=body, mtype="chat")
            await b.inbox.take(lambda s, body=body: s.name == "message" and s["body"] == body)
        else:
            b.xmpp.send_message(mto=a_acct.jid, mbody=body, mtype="chat")
            await a.inbox.take(lambda s, body=body: s.name == "message" and s["body"] == body)
    with_carol = []
    for i in range(3):
        body = f"carol thread {i}"
        with_carol.append(body)
        c.xmpp.send_message(mto=a_acct.jid, mbody=body, mtype="chat")
        await a.inbox.take(lambda s, body=body: s.name == "message" and s["body"] == body)

    # Received messages carry the archive's stanza-id (XEP-0359).
    got = a.inbox.all(lambda s: s.name == "message" and s["body"] == "bob thread 1")[0]
    sid = got.xml.find(f"{{{NS_STANZA_ID}}}stanza-id")
    assert sid is not None and sid.get("by") == a_acct.jid and sid.get("id"), str(got)

    mam = a.xmpp.plugin["xep_0313"]

    # Forward paging, 3 per page, 'with' = bob.
    pages = []
    async for page in mam.retrieve(with_jid=JID(b_acct.jid), iterator=True,
                                   rsm={"max": 3}):
        pages.append([archived(m) for m in page["mam"]["results"]])
        assert len(pages) <= 10, "paging does not end"
    assert [len(p) for p in pages] == [3, 3, 1], \
        f"pages of 3: {[bodies(p) for p in pages]}"
    flat = [m for p in pages for m in p]
    assert bodies(flat) == with_bob
    for m in flat:
        assert {m["from"].bare, m["to"].bare} == {a_acct.jid, b_acct.jid}, str(m)
    # The id slixmpp saw on the live message is the archive id.
    ids = []
    async for page in mam.retrieve(with_jid=JID(b_acct.jid), iterator=True,
                                   rsm={"max": 3}):
        ids += [m["mam_result"]["id"] for m in page["mam"]["results"]]
    assert sid.get("id") in ids

    # Backward paging (from the end), the same messages newest first.
    back = [archived(m) async for m in mam.iterate(with_jid=JID(b_acct.jid),
                                                   reverse=True, rsm={"max": 3})]
    assert bodies(back) == list(reversed(with_bob))

    # 'with' = carol: only carol's messages.
    res = await mam.retrieve(with_jid=JID(c_acct.jid), timeout=STEP_TIMEOUT)
    carol = [archived(m) for m in res["mam"]["results"]]
    assert bodies(carol) == with_carol
    assert all(m["from"].bare == c_acct.jid for m in carol)

    # No filter: everything, in order.
    res = await mam.retrieve(timeout=STEP_TIMEOUT, rsm={"max": 50})
    assert bodies(archived(m) for m in res["mam"]["results"]) == with_bob + with_carol
    assert res["mam_fin"]["complete"] in (True, "true"), str(res)


# -- XEP-0191 blocking --------------------------------------------------------------


def error_from(jid, condition):
    bare = JID(jid).bare
    return lambda s: (s.name == "message" and s["type"] == "error"
                      and s["from"].bare == bare and s["error"]["condition"] == condition)


@bounded
async def test_blocking_both_ways_and_unblock(server, connect):
    a_acct, b_acct = server.new_user("bla"), server.new_user("blb")
    a = await connect(server, a_acct, presence=True, plugins=BLOCK_PLUGINS)
    a2 = await connect(server, a_acct, presence=True, resource="other",
                       plugins=BLOCK_PLUGINS)
    b = await connect(server, b_acct, presence=True)
    blocking = a.xmpp.plugin["xep_0191"]
    pushes = []
    a2.xmpp.add_event_handler("blocked", pushes.append)
    # Pushes go to the sessions that asked for the list (XEP-0191 3.3).
    assert await a2.xmpp.plugin["xep_0191"].get_blocked_jids(timeout=STEP_TIMEOUT) == set()

    await blocking.block(JID(b_acct.jid), timeout=STEP_TIMEOUT)
    assert await blocking.get_blocked_jids(timeout=STEP_TIMEOUT) == {JID(b_acct.jid)}
    # The other session that asked for the list hears of it (a push).
    await a2.inbox.take(lambda s: s.name == "iq" and s["type"] == "set"
                        and s.xml.find("{urn:xmpp:blocking}block") is not None)
    assert pushes, "slixmpp's xep_0191 raised 'blocked' on the push"

    # bob cannot reach alice: his message bounces, alice gets nothing.
    b.xmpp.send_message(mto=a.jid, mbody="can you hear me", mtype="chat")
    await b.inbox.take(error_from(a.jid, "service-unavailable"))
    # alice cannot reach bob: not-acceptable with <blocked/>.
    a.xmpp.send_message(mto=b_acct.jid, mbody="you are blocked", mtype="chat")
    err = await a.inbox.take(error_from(b_acct.jid, "not-acceptable"))
    assert err.xml.find(".//{urn:xmpp:blocking:errors}blocked") is not None, str(err)
    await a.inbox.none_within(chat_from(b_acct.jid), window=0.3, since=0)
    assert not b.inbox.all(chat_from(a_acct.jid))

    await blocking.unblock(JID(b_acct.jid), timeout=STEP_TIMEOUT)
    assert await blocking.get_blocked_jids(timeout=STEP_TIMEOUT) == set()
    b.xmpp.send_message(mto=a.jid, mbody="now?", mtype="chat")
    m = await a.inbox.take(chat_from(b_acct.jid))
    assert m["body"] == "now?"
