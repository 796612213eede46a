"""Runs the hostile-input catalogue (catalogue.py: RFC 6120/6121, RFC 7395,
XEP-0124/0206, XEP-0198, XEP-0045, XEP-0313, XEP-0363, XEP-0220 and the
rest named there) against one real `roost serve`, in order, while the
good client (good_client.py) chats; then checks that the good client lost
nothing, waited no longer than the bounds of conftest.py, kept its roster
and archive, and that the server is alive and never panicked.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from catalogue import CATALOGUE, Entry
from conftest import LATENCY_MAX, LATENCY_P99, verify_good_client


@pytest.mark.parametrize("entry", CATALOGUE, ids=[e.id for e in CATALOGUE])
def test_hostile_input(entry: Entry, ctx):
    assert ctx.server.running, "the server process is gone"
    assert ctx.good.alive, f"the good client is gone: {ctx.good.output[-10:]}"
    started = time.monotonic()
    obs = entry.input(ctx)
    problems = entry.expect.check(obs)
    if os.environ.get("HOSTILE_VERBOSE"):
        print(f"\n{entry.id} ({time.monotonic() - started:.2f}s): {obs.summary()}")
    assert ctx.server.running, f"the server process died on {entry.id}"
    assert not problems, (
        f"{entry.id} [{entry.surface}]: {entry.description}\n"
        f"  expected ({entry.spec}): {entry.expect}\n"
        f"  got: {obs.summary()}\n"
        f"  problems: {'; '.join(problems)}")


def test_good_client_unharmed(hostile_server, good_client):
    """After the whole catalogue: every message of the good client arrived
    exactly once and in order, quickly enough; its roster and archive are
    intact; the server answers and never panicked."""
    problems, figures = verify_good_client(hostile_server, good_client)
    good_client.verified = True
    for kind in ("rtt_dm", "rtt_gc"):
        f = figures[kind]
        print(f"\n{kind}: n={f['n']} p50={f['p50']:.4f}s p99={f['p99']:.4f}s max={f['max']:.4f}s "
              f"(bounds: p99 < {LATENCY_P99}s, max < {LATENCY_MAX}s)")
    print(f"good client: {json.dumps(figures, default=str)}")
    assert not problems, "the good client was harmed:\n" + "\n".join(problems)
