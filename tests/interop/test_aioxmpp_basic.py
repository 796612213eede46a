"""Interop tests: aioxmpp (a second third-party Python library) against
`roost serve`: logins with each SASL mechanism over STARTTLS and direct
TLS, 50 consecutive logins, disco#info of the account (no 'to'), roster
and presence subscriptions, messages both ways.

Every test bounds its waits (xmpp_client.bounded, STEP_TIMEOUT)."""

from __future__ import annotations

import asyncio

import aiosasl
import aioxmpp
import aioxmpp.disco.xso as disco_xso
import aioxmpp.ping
import aioxmpp.roster.xso as roster_xso
import pytest

from aioxmpp_client import AioClient, aio_connect, chat_from, presence_from  # noqa: F401
from conftest import PASSWORD
from xmpp_client import STEP_TIMEOUT, bounded, wait_until

MECHS = ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
REPEAT = 50


def identities(info) -> set[tuple[str, str]]:
    return {(i.category, i.type_) for i in info.identities}


# -- logins --------------------------------------------------------------------------


@pytest.mark.parametrize("direct_tls", [False, True], ids=["starttls", "direct-tls"])
@pytest.mark.parametrize("mech", MECHS)
@bounded
async def test_login(server, aio_connect, mech, direct_tls):
    c = await aio_connect(server, server.alice, mech=mech, direct_tls=direct_tls,
                          resource=f"aio-{mech}")
    assert c.provider.used == mech
    assert mech in c.provider.offered, c.provider.offered
    assert c.jid == aioxmpp.JID.fromstr(f"{server.alice.jid}/aio-{mech}")
    # The session works: a round trip (XEP-0199 ping with aioxmpp's service).
    await asyncio.wait_for(aioxmpp.ping.ping(c.client, aioxmpp.JID.fromstr(server.domain)),
                           STEP_TIMEOUT)
    # aioxmpp negotiated stream management with resumption.
    assert c.client.stream.sm_enabled
    assert c.client.stream.sm_resumable


@pytest.mark.parametrize("mech", MECHS)
@bounded
async def test_wrong_password_fails(server, mech):
    c = AioClient(server, server.bob, mech=mech, password="not " + PASSWORD)
    try:
        with pytest.raises(aiosasl.AuthenticationFailure) as err:
            await c.connect()
        assert err.value.opaque_error == "not-authorized"
    finally:
        await c.close()


@bounded(timeout=120)
async def test_50_consecutive_logins(server):
    """SCRAM-SHA-256 and SCRAM-SHA-1 alternately, STARTTLS and direct TLS
    alternately: every login succeeds (nonces aiosasl cannot parse would
    fail some)."""
    failures = []
    for i in range(REPEAT):
        mech = ("SCRAM-SHA-256", "SCRAM-SHA-1")[i % 2]
        c = AioClient(server, server.bob, mech=mech, direct_tls=bool(i // 2 % 2),
                      resource=f"r{i}")
        try:
            await c.connect()
            assert c.provider.used == mech
            assert str(c.jid) == f"{server.bob.jid}/r{i}"
        except BaseException as e:  # noqa: BLE001 - reported below
            failures.append(f"login {i + 1} ({mech}): {e!r}")
            if len(failures) >= 3:
                break
        finally:
            await c.close()
    assert failures == [], f"{len(failures)} logins failed: {failures}"


# -- disco#info of the account -------------------------------------------------------


@bounded
async def test_disco_info_without_to_is_the_accounts(server, aio_connect):
    """RFC 6120 §10.3.3: no 'to' means the account's bare JID; it has the
    account identity and PEP (XEP-0163 §4: pubsub/pep, and the features),
    not the server's identity."""
    acct = server.new_user("disco")
    c = await aio_connect(server, acct)
    # No 'to' at all: aioxmpp's IQ with to=None.
    iq = aioxmpp.IQ(type_=aioxmpp.IQType.GET, payload=disco_xso.InfoQuery())
    assert iq.to is None
    info = await c.send(iq)
    ids = identities(info)
    assert ("account", "registered") in ids, ids
    assert ("pubsub", "pep") in ids, ids
    assert not any(cat == "server" for cat, _ in ids), f"the server's identity: {ids}"
    for feature in (NS_PUBSUB, NS_PUBSUB + "#publish", NS_PUBSUB + "#auto-create"):
        assert feature in info.features, sorted(info.features)
    # aioxmpp's own check (its PEP service asks the bare JID) agrees.
    pep = c.summon(aioxmpp.PEPClient)
    assert await asyncio.wait_for(pep.available(), STEP_TIMEOUT) is True
    # And the server's own info is different.
    disco = c.summon(aioxmpp.DiscoClient)
    server_info = await asyncio.wait_for(
        disco.query_info(aioxmpp.JID.fromstr(server.domain), require_fresh=True), STEP_TIMEOUT)
    assert ("server", "im") in identities(server_info)


# -- roster, subscriptions, presence -------------------------------------------------


@bounded
async def test_roster_subscription_and_presence(server, aio_connect):
    a_acct, b_acct = server.new_user("alice"), server.new_user("bob")
    A, B = aioxmpp.JID.fromstr(a_acct.jid), aioxmpp.JID.fromstr(b_acct.jid)
    a = await aio_connect(server, a_acct, resource="desk")
    b = await aio_connect(server, b_acct, mech="SCRAM-SHA-1", direct_tls=True, resource="tab")
    # aioxmpp's roster service fetches the roster on connect (summoned
    # after connecting: ask for it explicitly) and follows the pushes.
    a_roster = a.summon(aioxmpp.RosterClient)
    b_roster = b.summon(aioxmpp.RosterClient)
    for c in (a, b):
        res = await c.send(aioxmpp.IQ(type_=aioxmpp.IQType.GET, payload=roster_xso.Query()))
        assert list(res.items) == []
    await a.presence()
    await b.presence()
    await a.inbox.take(presence_from(a.jid))
    await b.inbox.take(presence_from(b.jid))

    await asyncio.wait_for(a_roster.set_entry(B, name="Bob", add_to_groups={"Friends"}),
                           STEP_TIMEOUT)
    await wait_until(async_(lambda: B in a_roster.items), what="roster push of bob")
    assert a_roster.items[B].name == "Bob"
    assert a_roster.items[B].groups == {"Friends"}
    assert a_roster.items[B].subscription == "none"

    a_roster.subscribe(B)
    req = await b.inbox.take(presence_from(A, aioxmpp.PresenceType.SUBSCRIBE))
    assert req.from_ == A
    b_roster.approve(A)
    b_roster.subscribe(A)
    await a.inbox.take(presence_from(B, aioxmpp.PresenceType.SUBSCRIBED))
    await a.inbox.take(presence_from(b.jid))  # bob's presence after approval
    await a.inbox.take(presence_from(B, aioxmpp.PresenceType.SUBSCRIBE))
    a_roster.approve(B)
    await b.inbox.take(presence_from(A, aioxmpp.PresenceType.SUBSCRIBED))
    await b.inbox.take(presence_from(a.jid))
    await wait_until(async_(lambda: B in a_roster.items and a_roster.items[B].subscription == "both"),
                     what="alice's roster: bob both")
    await wait_until(async_(lambda: A in b_roster.items and b_roster.items[A].subscription == "both"),
                     what="bob's roster: alice both")

    # aioxmpp's presence client tracks bob's resources.
    pc = a.summon(aioxmpp.PresenceClient)
    await b.presence(aioxmpp.PresenceShow.AWAY, "lunch")
    away = await a.inbox.take(lambda st: presence_from(b.jid)(st) and st.show == aioxmpp.PresenceShow.AWAY)
    assert away.status.any() == "lunch"

    def bob_away():
        st = pc.get_most_available_stanza(B)
        return st is not None and st.show == aioxmpp.PresenceShow.AWAY
    await wait_until(async_(bob_away), what="aioxmpp's PresenceClient: bob away")
    await b.close()
    await a.inbox.take(presence_from(b.jid, aioxmpp.PresenceType.UNAVAILABLE))


def async_(fn):
    async def check():
        return fn()
    return check


# -- messages ------------------------------------------------------------------------


@bounded
async def test_messages_both_ways(server, aio_connect):
    a_acct, b_acct = server.new_user("alice"), server.new_user("bob")
    a = await aio_connect(server, a_acct, resource="one", direct_tls=True)
    b = await aio_connect(server, b_acct, resource="two")
    await a.presence()
    await b.presence()
    await a.inbox.take(presence_from(a.jid))
    await b.inbox.take(presence_from(b.jid))

    msg = aioxmpp.Message(type_=aioxmpp.MessageType.CHAT, to=b.jid)
    msg.body[None] = "hi bob ☺ <&>"
    msg.id_ = "aio-m1"
    await a.send(msg)
    got = await b.inbox.take(chat_from(a.jid, "hi bob ☺ <&>"))
    assert got.id_ == "aio-m1" and got.to == b.jid

    reply = aioxmpp.Message(type_=aioxmpp.MessageType.CHAT,
                            to=aioxmpp.JID.fromstr(a_acct.jid))
    reply.body[None] = "hi alice"
    await b.send(reply)
    got = await a.inbox.take(chat_from(b.jid, "hi alice"))
    ids = got.xep0359_stanza_ids
    assert ids and any(s.by == aioxmpp.JID.fromstr(a_acct.jid) and s.id_ for s in ids), \
        "the archive's stanza-id (XEP-0359)"

    for i in range(10):
        m = aioxmpp.Message(type_=aioxmpp.MessageType.CHAT, to=aioxmpp.JID.fromstr(a_acct.jid))
        m.body[None] = f"n{i}"
        await b.send(m)
    bodies = [next(iter((await a.inbox.take(chat_from(b.jid))).body.values())) for _ in range(10)]
    assert bodies == [f"n{i}" for i in range(10)]
