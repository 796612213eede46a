"""ACCOUNT-MUC.md rules against rooms on Prosody and ejabberd: the same
checks as for rooms on Roost's own MUC service (tests/interop/
account_muc_rules.py), with bob and the room on the peer and alice's two
sessions on Roost (carol, the other account, is bob@roost.test). Rules
1-3, 13 and 15 against the peers are in test_federation.py."""

from __future__ import annotations

import itertools
import os

import pytest

from account_muc_rules import (SUBJECT, Party, check_iqs_return_to_the_asking_session_only,
                               check_kick_reaches_every_joined_session, check_nick_change,
                               check_others_come_and_go_and_accounts_stay_apart,
                               check_personal_archive_once_per_message,
                               check_presence_aggregation_and_leaving,
                               check_traffic_forks_and_reflections, join)
from conftest import EJABBERD, PROSODY, ROOST
from xmpp_client import (MUC_PLUGINS, bounded, create_instant_room, occupant, subject_from)

ALICE_PLUGINS = MUC_PLUGINS + ("xep_0313",)
# Federation set-up (DNS, TLS, dialback) takes longer than a local step.
SLOW = 30.0
_rooms = itertools.count(1)

pytestmark = pytest.mark.skipif(
    os.environ.get("FEDERATION_AUTH") != "certificate",
    reason="room behaviour does not depend on how servers authenticate: round 1 only")

PEERS = [pytest.param(PROSODY, "paula", id="prosody"),
         pytest.param(EJABBERD, "eve", id="ejabberd")]


async def remote_party(connect, peer, user) -> Party:
    """bob (the peer's user) creates a room on the peer and sets its
    subject; alice/phone joins from Roost, then alice/laptop."""
    room = f"acct{next(_rooms)}@conference.{peer.domain}"
    bob = await connect(peer, user, "desk", plugins=MUC_PLUGINS)
    await create_instant_room(bob, room, "Bob")
    bob.xmpp.plugin["xep_0045"].set_subject(room, SUBJECT)
    await bob.inbox.take(subject_from(room, SUBJECT))
    phone = await connect(ROOST, "alice", "phone", plugins=ALICE_PLUGINS)
    laptop = await connect(ROOST, "alice", "laptop", plugins=ALICE_PLUGINS)
    await join(phone, room, "Al", maxstanzas=0, timeout=SLOW)
    await bob.inbox.take(occupant(room, "Al", "available"), timeout=SLOW)
    await join(laptop, room, "Al", maxstanzas=0)

    def alice_session(resource: str):
        return connect(ROOST, "alice", resource, plugins=ALICE_PLUGINS)

    def carol_session(resource: str):
        return connect(ROOST, "bob", resource, plugins=MUC_PLUGINS)

    return Party(room, bob, phone, laptop, alice_session, carol_session)


@pytest.mark.parametrize("peer,user", PEERS)
@bounded(timeout=90)
async def test_room_traffic_forks_and_reflections(connect, peer, user):
    await check_traffic_forks_and_reflections(await remote_party(connect, peer, user))


@pytest.mark.parametrize("peer,user", PEERS)
@bounded(timeout=90)
async def test_iqs_return_to_the_asking_session_only(connect, peer, user):
    await check_iqs_return_to_the_asking_session_only(await remote_party(connect, peer, user))


@pytest.mark.parametrize("peer,user", PEERS)
@bounded(timeout=90)
async def test_presence_aggregation_and_sessions_leaving(connect, peer, user):
    await check_presence_aggregation_and_leaving(await remote_party(connect, peer, user))


@pytest.mark.parametrize("peer,user", PEERS)
@bounded(timeout=90)
async def test_nick_change(connect, peer, user):
    await check_nick_change(await remote_party(connect, peer, user))


@pytest.mark.parametrize("peer,user", PEERS)
@bounded(timeout=90)
async def test_kick_reaches_every_joined_session(connect, peer, user):
    await check_kick_reaches_every_joined_session(await remote_party(connect, peer, user))


@pytest.mark.parametrize("peer,user", PEERS)
@bounded(timeout=90)
async def test_personal_archive_holds_each_groupchat_message_once(connect, peer, user):
    await check_personal_archive_once_per_message(await remote_party(connect, peer, user))


@pytest.mark.parametrize("peer,user", PEERS)
@bounded(timeout=90)
async def test_others_come_and_go_and_accounts_stay_apart(connect, peer, user):
    await check_others_come_and_go_and_accounts_stay_apart(await remote_party(connect, peer, user))
