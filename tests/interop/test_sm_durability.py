"""XEP-0198: an acknowledged stanza is never lost, even when the server
process is killed (SIGKILL, no shutdown) right after the ack.

The client here is raw (raw_xmpp.py) so that the test controls exactly when
the ack request is sent and when the server dies: bob enables stream
management, sends N messages to alice, asks for an ack, and the moment
`<a h='N'/>` arrives the server is killed. After a restart every one of
the N messages must be somewhere alice can get it: already delivered to
her connection, in her offline storage, or in her archive.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from raw_xmpp import CLIENT, SM, RawClient, archived_bodies, bodies, q

N = 500
ACK_TIMEOUT = 30.0


def connect(server, account, resource="raw") -> RawClient:
    return RawClient(server.host, server.c2s_tls_port, account.jid, account.password,
                     resource=resource)


def kill_now(server) -> None:
    """SIGKILL by PID: no shutdown, no flush, as in a crash."""
    proc = server.proc
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    server.proc = None


def send_and_get_full_ack(bob: RawClient, to: str, prefix: str) -> None:
    bob.send(f"<enable xmlns='{SM}'/>")
    bob.wait(lambda e: e.tag == q(SM, "enabled"))
    batch = "".join(
        f"<message to='{to}' type='chat' id='{prefix}{i}'><body>{prefix}{i}</body></message>"
        for i in range(N))
    bob.send(batch + f"<r xmlns='{SM}'/>")
    # The server may answer an <r/> with fewer than N while stanzas are in
    # flight (it waits up to a few seconds for them to become safe); a
    # client then asks again, as this one does, within a bound.
    deadline = time.monotonic() + ACK_TIMEOUT
    while True:
        a = bob.wait(lambda e: e.tag == q(SM, "a"), timeout=max(0.1, deadline - time.monotonic()))
        if int(a.get("h")) == N:
            return
        assert int(a.get("h")) < N, f"h={a.get('h')} is more than was sent"
        assert time.monotonic() < deadline, f"no ack for all {N} within {ACK_TIMEOUT}s"
        bob.send(f"<r xmlns='{SM}'/>")


def recovered(server, alice_account) -> set[str]:
    """What alice finds after the restart: offline messages and archive."""
    alice = connect(server, alice_account, resource="after")
    try:
        stored = set(archived_bodies(alice))
        # Initial presence releases offline storage; the roster result is
        # answered by the account after it, so it marks the end.
        alice.send("<presence/><iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")
        alice.wait(lambda e: e.tag == q(CLIENT, "iq") and e.get("id") == "roster")
        offline = set(bodies(alice.drain(lambda e: e.tag == q(CLIENT, "message"))))
        return stored | offline
    finally:
        alice.close()


@pytest.mark.timeout(120)
def test_acked_messages_to_an_offline_account_survive_a_kill(own_server):
    srv = own_server
    alice_acc = srv.add_user("alice")
    bob_acc = srv.add_user("bob")
    srv.start()
    bob = connect(srv, bob_acc)
    send_and_get_full_ack(bob, alice_acc.jid, "off")
    kill_now(srv)
    bob.sock.close()
    srv.start()
    found = recovered(srv, alice_acc)
    missing = [f"off{i}" for i in range(N) if f"off{i}" not in found]
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:5]}"


@pytest.mark.timeout(120)
def test_acked_messages_to_an_online_account_survive_a_kill(own_server):
    srv = own_server
    alice_acc = srv.add_user("alice")
    bob_acc = srv.add_user("bob")
    srv.start()
    alice = connect(srv, alice_acc, resource="online")
    alice.send("<presence/><iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>")
    alice.wait(lambda e: e.tag == q(CLIENT, "iq") and e.get("id") == "r0")
    bob = connect(srv, bob_acc)
    send_and_get_full_ack(bob, alice_acc.jid, "on")
    kill_now(srv)
    # What reached alice's connection before the kill.
    try:
        # Read until the dead server's socket reports the end (bounded).
        while alice._read_some(time.monotonic() + 5.0):
            pass
    except (ConnectionError, OSError):
        pass
    delivered = set(bodies(alice.drain(lambda e: e.tag == q(CLIENT, "message"))))
    alice.sock.close()
    bob.sock.close()
    srv.start()
    found = recovered(srv, alice_acc) | delivered
    missing = [f"on{i}" for i in range(N) if f"on{i}" not in found]
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:5]}"
