"""Roost federating with Prosody 0.12 and ejabberd 23.01 (see
scripts/federation-interop.sh): messages both ways, and rooms on each
server joined from the others. On Roost's side an account with two
sessions is one occupant of a room on Prosody or ejabberd (account-based
MUC joining), and both of its sessions get the room's traffic."""

from __future__ import annotations

import asyncio
import itertools
import os

import pytest
from slixmpp import JID

from conftest import EJABBERD, PROSODY, ROOST
from xmpp_client import (MUC_PLUGINS, STEP_TIMEOUT, bounded, create_instant_room,
                         groupchat, muc_item, occupant, publish_bookmark)

BOOKMARK_PLUGINS = MUC_PLUGINS + ("xep_0060", "xep_0402")

PEERS = [pytest.param(PROSODY, "paula", id="prosody"),
         pytest.param(EJABBERD, "eve", id="ejabberd")]
_rooms = itertools.count(1)
# Federation set-up (DNS, TLS, dialback) takes longer than a local step.
SLOW = 30.0


def chat_from(jid_prefix: str, body: str):
    return lambda m: m.name == "message" and m["body"] == body and str(m["from"]).startswith(jid_prefix)


@pytest.mark.parametrize("peer,user", PEERS)
@bounded(timeout=100)
async def test_messages_cross_both_ways(connect, peer, user):
    alice = await connect(ROOST, "alice", "home")
    other = await connect(peer, user, "desk")
    alice.xmpp.send_message(mto=f"{user}@{peer.domain}", mbody=f"hello {peer.domain}", mtype="chat")
    m = await other.inbox.take(chat_from("alice@roost.test", f"hello {peer.domain}"), timeout=SLOW)
    assert str(m["from"]) == "alice@roost.test/home"
    other.xmpp.send_message(mto="alice@roost.test/home", mbody="hello roost", mtype="chat")
    m = await alice.inbox.take(chat_from(f"{user}@{peer.domain}", "hello roost"), timeout=SLOW)
    assert str(m["from"]) == f"{user}@{peer.domain}/desk"


@pytest.mark.parametrize("peer,user", PEERS)
@bounded(timeout=110)
async def test_a_roost_account_joins_a_remote_room_once_from_two_sessions(connect, peer, user):
    room = f"fed{next(_rooms)}@conference.{peer.domain}"
    owner = await connect(peer, user, "owner", plugins=MUC_PLUGINS)
    await create_instant_room(owner, room, "Owner")
    phone = await connect(ROOST, "alice", "phone", plugins=MUC_PLUGINS)
    laptop = await connect(ROOST, "alice", "laptop", plugins=MUC_PLUGINS)
    for c in (phone, laptop):
        await c.xmpp.plugin["xep_0045"].join_muc_wait(JID(room), "Al", maxstanzas=0, timeout=SLOW)
    # The remote room sees one occupant for the account, its bare JID.
    p = await owner.inbox.take(occupant(room, "Al", "available"), timeout=SLOW)
    item = muc_item(p)
    if item is not None and item.get("jid"):
        assert JID(item.get("jid")).bare == "alice@roost.test"
    await owner.inbox.none_within(occupant(room, "Al"), window=1.5)
    # Room traffic reaches both sessions; each session's message reaches the room.
    owner.xmpp.send_message(mto=room, mbody="welcome", mtype="groupchat")
    for c in (phone, laptop):
        await c.inbox.take(groupchat(room, "welcome"), timeout=SLOW)
    laptop.xmpp.send_message(mto=room, mbody="from the laptop", mtype="groupchat")
    await owner.inbox.take(groupchat(room, "from the laptop", nick="Al"), timeout=SLOW)
    await phone.inbox.take(groupchat(room, "from the laptop", nick="Al"), timeout=SLOW)


@bounded(timeout=110)
async def test_prosody_and_ejabberd_users_join_a_roost_room(connect):
    room = f"home{next(_rooms)}@conference.roost.test"
    alice = await connect(ROOST, "alice", "host", plugins=MUC_PLUGINS)
    await create_instant_room(alice, room, "Alice")
    paula = await connect(PROSODY, "paula", "muc", plugins=MUC_PLUGINS)
    eve = await connect(EJABBERD, "eve", "muc", plugins=MUC_PLUGINS)
    for c, nick in ((paula, "Paula"), (eve, "Eve")):
        await c.xmpp.plugin["xep_0045"].join_muc_wait(JID(room), nick, maxstanzas=0, timeout=SLOW)
        await alice.inbox.take(occupant(room, nick, "available"), timeout=SLOW)
    alice.xmpp.send_message(mto=room, mbody="hi both", mtype="groupchat")
    await paula.inbox.take(groupchat(room, "hi both"), timeout=SLOW)
    await eve.inbox.take(groupchat(room, "hi both"), timeout=SLOW)
    eve.xmpp.send_message(mto=room, mbody="hi from ejabberd", mtype="groupchat")
    await paula.inbox.take(groupchat(room, "hi from ejabberd", nick="Eve"), timeout=SLOW)
    await alice.inbox.take(groupchat(room, "hi from ejabberd", nick="Eve"), timeout=STEP_TIMEOUT)


def configure_persistent(owner, room: str):
    """Make the room persistent, so that it outlives its server's restart."""
    form = owner.xmpp.plugin["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden",
                   value="http://jabber.org/protocol/muc#roomconfig")
    form.add_field(var="muc#roomconfig_persistentroom", value="1")
    return owner.xmpp.plugin["xep_0045"].set_room_config(room, form, timeout=SLOW)


@pytest.mark.skipif(os.environ.get("FEDERATION_AUTH") != "certificate",
                    reason="restarts the peers: once per run (round 1) is enough")
@pytest.mark.parametrize("peer,user,name", [
    pytest.param(PROSODY, "paula", "prosody", id="prosody"),
    pytest.param(EJABBERD, "eve", "ejabberd", id="ejabberd")])
@bounded(timeout=170)
async def test_a_bookmarked_remote_room_survives_its_server_restarting(connect, peer, user, name):
    """ACCOUNT-MUC rules 13 and 15 against a real remote server: the
    account stays in (or rejoins by itself) a bookmarked room after that
    room's server restarts; then a session joins from server state and
    talks as before (rules 2, 4, 5)."""
    room = f"keep{next(_rooms)}@conference.{peer.domain}"
    owner = await connect(peer, user, "owner", plugins=MUC_PLUGINS)
    await create_instant_room(owner, room, "Owner")
    await configure_persistent(owner, room)
    phone = await connect(ROOST, "alice", "phone", plugins=BOOKMARK_PLUGINS)
    await publish_bookmark(phone, room, "Al", autojoin=True)
    await owner.inbox.take(occupant(room, "Al", "available"), timeout=SLOW)
    await phone.close()

    restart = await asyncio.create_subprocess_exec(
        os.environ["FEDERATION_RESTART"], name, stdin=asyncio.subprocess.DEVNULL)
    assert await asyncio.wait_for(restart.wait(), timeout=90) == 0, f"{name} did not restart"

    owner = await connect(peer, user, "owner2", plugins=MUC_PLUGINS)
    muc = owner.xmpp.plugin["xep_0045"]
    await muc.join_muc_wait(JID(room), "Owner", maxstanzas=0, timeout=SLOW)
    # The account is an occupant again: still there for the room, or back
    # after its own self-ping found it gone.
    if "Al" not in muc.get_roster(JID(room)):
        await owner.inbox.take(occupant(room, "Al", "available"), timeout=90)
    laptop = await connect(ROOST, "alice", "laptop", plugins=MUC_PLUGINS)
    await laptop.xmpp.plugin["xep_0045"].join_muc_wait(JID(room), "Al", maxstanzas=0,
                                                       timeout=SLOW)
    await owner.inbox.none_within(occupant(room, "Al", "unavailable"), window=1.0)
    owner.xmpp.send_message(mto=room, mbody="after the restart", mtype="groupchat")
    await laptop.inbox.take(groupchat(room, "after the restart"), timeout=SLOW)
    laptop.xmpp.send_message(mto=room, mbody="still here", mtype="groupchat")
    await owner.inbox.take(groupchat(room, "still here", nick="Al"), timeout=SLOW)
