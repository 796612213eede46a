"""Interop tests: slixmpp (a real third-party client) against `roost serve`.

Every test bounds its waits (see xmpp_client.STEP_TIMEOUT and bounded);
pytest-timeout in pytest.ini is only a backstop.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from slixmpp import JID
from slixmpp.exceptions import IqError

from conftest import PASSWORD
from xmpp_client import STEP_TIMEOUT, Client, LoginFailed, bounded, wait_until

NS_DELAY = "urn:xmpp:delay"
NS_REGISTER_FEATURE = "http://jabber.org/features/iq-register"


def from_bare(jid):
    bare = str(jid).split("/", 1)[0]
    return lambda st: st["from"].bare == bare


def ptype(t, jid=None):
    match_from = from_bare(jid) if jid is not None else (lambda st: True)
    return lambda p: p["type"] == t and match_from(p)


# -- authentication ------------------------------------------------------


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"])
@bounded
async def test_login_starttls(server, connect, mech):
    c = await connect(server, server.alice, mech=mech)
    assert c.xmpp.plugin["feature_mechanisms"].mech.name == mech
    assert c.jid.bare == server.alice.jid
    assert c.jid.resource, "a resource was bound"
    assert c.tls_version, "the session runs over TLS"
    # First <features/> (before TLS) offers STARTTLS and no mechanisms,
    # the one after TLS offers the mechanism.
    assert "starttls" in c.features[0]
    assert "<mechanism>" not in c.features[0]
    assert f"<mechanism>{mech}</mechanism>" in c.features[1]
    # The session works: a round trip to the server.
    await c.xmpp.plugin["xep_0199"].send_ping(server.domain, timeout=STEP_TIMEOUT)


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "PLAIN"])
@bounded
async def test_wrong_password_fails(server, connect, mech):
    with pytest.raises(LoginFailed):
        await connect(server, jid=server.bob.jid, password="not the password", mech=mech)


@bounded
async def test_wrong_password_reports_not_authorized(server):
    c = Client(server, jid=server.bob.jid, password="wrong", mech="SCRAM-SHA-1")
    try:
        with pytest.raises(LoginFailed):
            await c.connect()
        assert c.auth_failures == ["not-authorized"]
        assert not c.xmpp.authenticated
    finally:
        await c.close()


@bounded
async def test_login_direct_tls(server, connect):
    c = await connect(server, server.alice, direct_tls=True, mech="SCRAM-SHA-256")
    assert c.jid.bare == server.alice.jid
    assert c.tls_version
    # TLS is already up: no STARTTLS offered; PLAIN may be (it's over TLS).
    assert "starttls" not in c.features[0]
    assert "<mechanism>SCRAM-SHA-256</mechanism>" in c.features[0]
    await c.xmpp.plugin["xep_0199"].send_ping(server.domain, timeout=STEP_TIMEOUT)


@bounded
async def test_login_direct_tls_plain(server, connect):
    c = await connect(server, server.bob, direct_tls=True, mech="PLAIN")
    assert c.jid.bare == server.bob.jid


# -- roster, subscriptions, presence ---------------------------------------


@bounded
async def test_subscription_roster_and_presence(server, connect):
    alice_acct, bob_acct = server.new_user("alice"), server.new_user("bob")
    alice = await connect(server, alice_acct, presence=True)
    bob = await connect(server, bob_acct, presence=True)
    A, B = alice_acct.jid, bob_acct.jid

    # alice adds bob to her roster and asks for his presence.
    await alice.xmpp.update_roster(B, name="Bob", groups=["Friends"], timeout=STEP_TIMEOUT)
    items = await alice.roster_items()
    assert items[B]["name"] == "Bob"
    assert items[B]["groups"] == ["Friends"]
    assert items[B]["subscription"] == "none"
    alice.xmpp.send_presence(pto=B, ptype="subscribe")

    # bob gets the request and approves it, and asks back.
    await bob.next_presence(ptype("subscribe", A))
    bob.xmpp.send_presence(pto=A, ptype="subscribed")
    bob.xmpp.send_presence(pto=A, ptype="subscribe")

    # alice learns of the approval, approves bob's request.
    await alice.next_presence(ptype("subscribed", B))
    await alice.next_presence(ptype("subscribe", B))
    alice.xmpp.send_presence(pto=B, ptype="subscribed")
    await bob.next_presence(ptype("subscribed", A))

    async def sub(client, contact):
        items = await client.roster_items()
        return items.get(contact, {}).get("subscription")

    async def both(client, contact):
        return await sub(client, contact) == "both"

    await wait_until(lambda: both(alice, B), what=f"{A} has {B} with subscription both")
    await wait_until(lambda: both(bob, A), what=f"{B} has {A} with subscription both")
    items = await alice.roster_items()
    assert items[B]["name"] == "Bob", "the subscription kept alice's name for bob"

    # Each sees the other's available presence, from the full JID.
    p = await alice.next_presence(ptype("available", B))
    assert p["from"] == bob.jid
    p = await bob.next_presence(ptype("available", A))
    assert p["from"] == alice.jid

    # A second resource of alice: its initial presence probes bob (she gets
    # his presence) and is broadcast to bob.
    alice2 = await connect(server, alice_acct, presence=True, resource="second")
    p = await alice2.next_presence(ptype("available", B))
    assert p["from"] == bob.jid
    p = await bob.next_presence(lambda p: p["type"] == "available" and p["from"] == alice2.jid)

    # bob goes away: both of alice's resources see him unavailable.
    bob_full = bob.jid.full
    await bob.close()
    p = await alice.next_presence(ptype("unavailable", B))
    assert p["from"].full == bob_full
    p = await alice2.next_presence(ptype("unavailable", B))
    assert p["from"].full == bob_full


@bounded
async def test_roster_versioning(server, connect):
    owner, contact = server.new_user("rv"), server.new_user("rvc")
    c = await connect(server, owner)
    assert "rosterver" in c.xmpp.features, "roster versioning is advertised"

    async def get(ver):
        iq = c.xmpp.make_iq_get()
        iq.enable("roster")
        iq["roster"]["ver"] = ver
        return await c.iq(iq)

    first = await get("")
    ver1 = first.xml.find("{jabber:iq:roster}query").get("ver")
    assert ver1 is not None, f"roster result carries a ver: {first}"

    await c.xmpp.update_roster(contact.jid, name="C", timeout=STEP_TIMEOUT)
    second = await get("")
    ver2 = second.xml.find("{jabber:iq:roster}query").get("ver")
    assert ver2 and ver2 != ver1, "the version changes with the roster"
    assert contact.jid in second["roster"]["items"]

    # Asking with the current version: either an empty result (changes
    # come as pushes) or the complete roster (RFC 6121 2.6.3).
    same = await get(ver2)
    q = same.xml.find("{jabber:iq:roster}query")
    if q is not None:
        assert contact.jid in same["roster"]["items"]


# -- messages ---------------------------------------------------------------


@bounded
async def test_messages_both_ways(server, connect):
    a_acct, b_acct = server.new_user("ma"), server.new_user("mb")
    a = await connect(server, a_acct, presence=True)
    b = await connect(server, b_acct, presence=True)

    a.xmpp.send_message(mto=b_acct.jid, mbody="hello bob \u2603 <&>", mtype="chat")
    m = await b.next_message(from_bare(a_acct.jid))
    assert m["body"] == "hello bob \u2603 <&>"
    assert m["type"] == "chat"
    assert m["from"] == a.jid
    assert m["to"] == b.jid or m["to"].bare == b_acct.jid

    b.xmpp.send_message(mto=a.jid, mbody="hi alice", mtype="chat")
    m = await a.next_message(from_bare(b_acct.jid))
    assert m["body"] == "hi alice"
    assert m["from"] == b.jid

    # A normal (non-chat) message to the bare JID.
    a.xmpp.send_message(mto=b_acct.jid, mbody="second", msubject="subj")
    m = await b.next_message(lambda m: m["body"] == "second")
    assert m["subject"] == "subj"


# -- offline messages -----------------------------------------------------------


def assert_delayed(msg, domain):
    delay = msg.xml.find(f"{{{NS_DELAY}}}delay")
    assert delay is not None, f"offline message without XEP-0203 delay: {msg}"
    stamp = delay.get("stamp")
    assert stamp, f"delay without stamp: {msg}"
    when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert when.tzinfo is not None
    now = dt.datetime.now(dt.timezone.utc)
    assert abs((now - when).total_seconds()) < 600, f"odd stamp {stamp}"
    assert msg["delay"]["stamp"] is not None  # slixmpp's xep_0203 parses it


@bounded
async def test_offline_message(server, connect):
    a_acct, b_acct = server.new_user("oa"), server.new_user("ob")
    a = await connect(server, a_acct, presence=True)
    a.xmpp.send_message(mto=b_acct.jid, mbody="while you were out", mtype="chat")
    # A round trip, so the message has been handled before bob logs in.
    await a.xmpp.plugin["xep_0199"].send_ping(server.domain, timeout=STEP_TIMEOUT)

    b = await connect(server, b_acct, presence=True)
    m = await b.next_message(from_bare(a_acct.jid))
    assert m["body"] == "while you were out"
    assert_delayed(m, server.domain)
    await b.close()

    # Delivered once: the next login gets nothing again.
    b2 = await connect(server, b_acct, presence=True)
    await asyncio.sleep(1.0)
    assert b2.messages.pending(lambda m: m["body"]) == []


@bounded
async def test_offline_message_survives_restart(own_server, connect):
    srv = own_server
    a_acct, b_acct = srv.add_user("sender"), srv.add_user("receiver")
    srv.start()
    a = await connect(srv, a_acct, presence=True)
    a.xmpp.send_message(mto=b_acct.jid, mbody="stored across a restart", mtype="chat")
    await a.xmpp.plugin["xep_0199"].send_ping(srv.domain, timeout=STEP_TIMEOUT)
    await a.close()

    loop = asyncio.get_running_loop()
    rc = await loop.run_in_executor(None, srv.stop)
    assert rc == 0, f"roost serve exited with {rc} on SIGTERM"
    await loop.run_in_executor(None, srv.start)

    b = await connect(srv, b_acct, presence=True)
    m = await b.next_message(from_bare(a_acct.jid))
    assert m["body"] == "stored across a restart"
    assert_delayed(m, srv.domain)


# -- service discovery, ping, version, vcard -------------------------------------


@bounded
async def test_disco_ping_version(server, connect):
    c = await connect(server, server.alice)
    info = await c.xmpp.plugin["xep_0030"].get_info(jid=server.domain, timeout=STEP_TIMEOUT)
    features = set(info["disco_info"]["features"])
    assert "urn:xmpp:ping" in features, features
    assert "http://jabber.org/protocol/disco#info" in features, features
    identities = info["disco_info"]["identities"]
    assert any(cat == "server" for (cat, _type, _lang, _name) in identities), identities

    # send_ping raises IqError on an error reply (ping() would not, for the server).
    await c.xmpp.plugin["xep_0199"].send_ping(server.domain, timeout=STEP_TIMEOUT)

    ver = await c.xmpp.plugin["xep_0092"].get_version(server.domain, timeout=STEP_TIMEOUT)
    assert ver["software_version"]["name"] == "Roost"
    assert ver["software_version"]["version"]


@bounded
async def test_disco_info_without_to_is_the_accounts(server, connect):
    """RFC 6120 §10.3.3: an IQ without 'to' is handled for the account's
    bare JID: its identity and PEP (XEP-0163 §4), not the server's info."""
    acct = server.new_user("disco")
    c = await connect(server, acct)
    iq = c.xmpp.make_iq_get(queryxmlns="http://jabber.org/protocol/disco#info")
    assert not iq["to"], str(iq)
    res = await c.iq(iq)
    assert not res["from"] or res["from"] == JID(acct.jid), f"answered by {res['from']}: {res}"
    ids = {(i.get("category"), i.get("type")) for i in
           res.xml.findall("{http://jabber.org/protocol/disco#info}query/"
                           "{http://jabber.org/protocol/disco#info}identity")}
    features = {f.get("var") for f in
                res.xml.findall("{http://jabber.org/protocol/disco#info}query/"
                                "{http://jabber.org/protocol/disco#info}feature")}
    assert ("account", "registered") in ids, ids
    assert ("pubsub", "pep") in ids, ids
    assert not any(cat == "server" for cat, _ in ids), f"the server's identity: {ids}"
    for f in ("http://jabber.org/protocol/pubsub", "http://jabber.org/protocol/pubsub#publish"):
        assert f in features, sorted(features)


@bounded(timeout=120)
async def test_50_consecutive_logins(server):
    """SCRAM-SHA-256 and SCRAM-SHA-1 alternately, STARTTLS and direct TLS
    alternately: every login succeeds (SCRAM nonces a client's parser
    cannot read would fail some)."""
    failures = []
    for i in range(50):
        mech = ("SCRAM-SHA-256", "SCRAM-SHA-1")[i % 2]
        c = Client(server, server.bob, mech=mech, direct_tls=bool(i // 2 % 2),
                   resource=f"slix{i}")
        try:
            await c.connect()
            assert c.xmpp.plugin["feature_mechanisms"].mech.name == mech
            assert str(c.jid) == f"{server.bob.jid}/slix{i}"
        except BaseException as e:  # noqa: BLE001 - reported below
            failures.append(f"login {i + 1} ({mech}): {e!r}")
            if len(failures) >= 3:
                break
        finally:
            await c.close()
    assert failures == [], f"{len(failures)} logins failed: {failures}"


@bounded
async def test_vcard_set_and_get_by_other(server, connect):
    a_acct, b_acct = server.new_user("va"), server.new_user("vb")
    a = await connect(server, a_acct)
    b = await connect(server, b_acct)

    vcard = a.xmpp.plugin["xep_0054"].make_vcard()
    vcard["FN"] = "Alice Liddell"
    vcard["NICKNAME"] = "alice"
    await a.xmpp.plugin["xep_0054"].publish_vcard(vcard, timeout=STEP_TIMEOUT)

    got = await b.xmpp.plugin["xep_0054"].get_vcard(a_acct.jid, timeout=STEP_TIMEOUT)
    assert got["vcard_temp"]["FN"] == "Alice Liddell"
    nick = got.xml.find("{vcard-temp}vCard/{vcard-temp}NICKNAME")
    assert nick is not None and nick.text == "alice", str(got)

    # The owner reads it back too (a get without 'to').
    iq = a.xmpp.make_iq_get()
    iq.enable("vcard_temp")
    own = await a.iq(iq)
    assert own["vcard_temp"]["FN"] == "Alice Liddell"


# -- in-band registration ---------------------------------------------------------


async def register(srv, local, password, timeout=15.0):
    """Register local@domain in-band with slixmpp's xep_0077.

    Returns (client, error condition or None)."""
    jid = f"{local}@{srv.domain}"
    c = Client(srv, jid=jid, password=password, mech="SCRAM-SHA-256",
               plugins=("xep_0030", "xep_0004", "xep_0066", "xep_0077"))
    result: asyncio.Future = asyncio.get_running_loop().create_future()

    async def on_register(form):
        fields = form["register"]["fields"]
        resp = c.xmpp.Iq()
        resp["type"] = "set"
        resp["register"]["username"] = local
        resp["register"]["password"] = password
        try:
            await resp.send(timeout=STEP_TIMEOUT)
        except IqError as e:
            if not result.done():
                result.set_result(("error", e.iq["error"]["condition"], fields))
            c.xmpp.disconnect()
            return
        if not result.done():
            result.set_result(("ok", None, fields))

    c.xmpp.add_event_handler("register", on_register)
    try:
        try:
            await c.connect(timeout=timeout)
        except (LoginFailed, ConnectionError):
            pass  # the registration failed and we hung up, see result
        outcome = await asyncio.wait_for(result, timeout)
    finally:
        await c.close()
    return c, outcome


@bounded
async def test_inband_registration(open_server, connect):
    srv = open_server
    c, (status, cond, fields) = await register(srv, "newbie", "s3cret-pw")
    assert any(NS_REGISTER_FEATURE in f for f in c.features), \
        "open registration is advertised as a stream feature"
    assert "username" in fields and "password" in fields, fields
    assert status == "ok", f"registration failed: {cond}"

    # The new account logs in, with its own session.
    n = await connect(srv, jid=f"newbie@{srv.domain}", password="s3cret-pw",
                      mech="SCRAM-SHA-256")
    assert n.jid.bare == f"newbie@{srv.domain}"
    await n.xmpp.plugin["xep_0199"].send_ping(srv.domain, timeout=STEP_TIMEOUT)

    # The name is now taken.
    _c, (status, cond, _f) = await register(srv, "newbie", "other-pw")
    assert (status, cond) == ("error", "conflict")


@bounded
async def test_registration_not_offered_when_closed(server, connect):
    # The shared server has open = false and loopback = false.
    c = await connect(server, server.alice)
    assert c.features, "stream features were seen"
    assert not any(NS_REGISTER_FEATURE in f for f in c.features), c.features
