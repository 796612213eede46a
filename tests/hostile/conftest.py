"""Fixtures of the hostile-input catalogue: one real `roost serve` for the
module, on a federating domain so that its s2s listener is open (RFC 6120
server streams), with its WebSocket (RFC 7395), BOSH (XEP-0124/0206) and
upload (XEP-0363) HTTP listener; the accounts the catalogue uses; and the
well-behaved client (good_client.py: RFC 6121 chat, XEP-0045 room) that
chats through the whole catalogue and is checked at the end.

The server's configuration is `SERVER_CONFIG` below: change it there.
The process runner is the interop tests' `RoostServer`
(tests/interop/conftest.py), loaded from there.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import queue
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
INTEROP = HERE.parent / "interop"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(INTEROP))

from wire import XmppStream, q  # noqa: E402


def _load_interop_conftest():
    spec = importlib.util.spec_from_file_location("interop_conftest", INTEROP / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


_interop = _load_interop_conftest()
RoostServer = _interop.RoostServer
free_port = _interop.free_port

# -- the server under attack: its configuration, in one place ------------------

DOMAIN = "hostile.test"  # not "localhost": federation (and the s2s port) is on
PASSWORD = "hostile catalogue password"


class Inline(dict):
    """A TOML inline table (`key = { a = "b" }`)."""


# Sections are TOML tables; nested dicts are sub-tables, `Inline` dicts
# inline tables. Ports are filled in at start. Keep every value one the
# server documents (roost.example.toml): unknown keys are refused.
SERVER_CONFIG: dict = {
    "domain": DOMAIN,
    "log": "info",
    "limits": {
        "max_stanza_size": 262144,
        # The slow-header row waits this long; every login is far quicker.
        "auth_timeout": 6,
        # Small, so that the offline-storage flood row reaches it fast.
        "max_offline_messages": 20,
        "idle_timeout": 300,
    },
    "http": {
        "request_timeout": 10,
        "bosh": {"max_wait": 5, "max_inactivity": 10},
    },
    # Sessions a row leaves resumable are gone soon after.
    "stream_management": {"resume_timeout": 5},
    # The good client's room is an instant room (XEP-0045 §10.1.2).
    "muc": {"lock_new_rooms": False},
    "s2s": {
        "connect_timeout": 5,
        # The forged domain's "authoritative server" refuses connections
        # at once (port 1 on loopback): no DNS, no waiting.
        "hosts": Inline({"evil.example": "127.0.0.1:1"}),
    },
    "upload": {"max_file_size": 1048576, "quota": 16777216},
    "registration": {"open": False},
}

# The good client: how often it sends, and its room.
GOOD_INTERVAL = 0.1  # seconds between a chat message and a groupchat message each
GOOD_ROOM = f"lounge@conference.{DOMAIN}"
GOOD_EXTRA_ROSTER = [(f"friend@{DOMAIN}", "Friend", "Good"),
                     (f"pen-pal@{DOMAIN}", "Pen Pal", "Far")]
# Latency bounds for a debug build on a 2-core machine under the catalogue.
LATENCY_MAX = 2.0
LATENCY_P99 = 1.0
GOOD_START_TIMEOUT = 60.0
GOOD_DRAIN = 20.0  # seconds the good client waits for messages in flight at the end

# Accounts (local parts); all share PASSWORD.
GOOD_A, GOOD_B = "alice", "bob"
ACCOUNTS = [GOOD_A, GOOD_B, "mallory", "mallory2", "victim", "sleeper", "binder", "roster-bomb"]


def _toml(v) -> str:
    if isinstance(v, Inline):
        return "{ " + ", ".join(f"{_toml(k)} = {_toml(x)}" for k, x in v.items()) + " }"
    return _interop._toml_value(v)


def render_toml(config: dict) -> str:
    lines: list[str] = []
    tables: list[tuple[str, dict]] = []
    for k, v in config.items():
        if isinstance(v, dict) and not isinstance(v, Inline):
            tables.append((k, v))
        else:
            lines.append(f"{k} = {_toml(v)}")

    def table(name: str, body: dict):
        lines.append("")
        lines.append(f"[{name}]")
        subs = []
        for k, v in body.items():
            if isinstance(v, dict) and not isinstance(v, Inline):
                subs.append((f"{name}.{k}", v))
            else:
                lines.append(f"{k} = {_toml(v)}")
        for n, b in subs:
            table(n, b)

    for name, body in tables:
        table(name, body)
    return "\n".join(lines) + "\n"


class HostileServer(RoostServer):
    """`RoostServer` with the catalogue's configuration and an s2s port."""

    def __init__(self, workdir: Path, config: dict):
        self.settings = config
        self.s2s_port = free_port()
        super().__init__(workdir, http=True, log_filter=config.get("log", "info"))
        self.muc_domain = f"conference.{self.domain}"
        self.upload_domain = f"upload.{self.domain}"

    def _write_config(self) -> None:
        self.domain = self.settings["domain"]
        cfg = copy.deepcopy(self.settings)
        cfg["data_dir"] = str(self.data_dir)
        cfg["listen"] = {
            "c2s": f"{self.host}:{self.c2s_port}",
            "c2s_tls": f"{self.host}:{self.c2s_tls_port}",
            "http": f"{self.host}:{self.http_port}",
            "https": "",
            "proxy65": "",
            "s2s": f"{self.host}:{self.s2s_port}",
            "s2s_tls": [],
        }
        cfg.setdefault("upload", {})["url"] = f"http://{self.host}:{self.http_port}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(render_toml(cfg))

    def start(self) -> None:
        super().start()
        deadline = time.monotonic() + 20
        for port in (self.http_port, self.s2s_port):
            while not _interop._accepts(port):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"port {port} not open; log:\n{self.log_text()}")
                time.sleep(0.1)

    def info(self) -> str:
        return (super().info() + f" http={self.http_port} s2s={self.s2s_port}")


# -- the good client ---------------------------------------------------------------


class GoodClient:
    """good_client.py in its own process; lines of its stdout in a queue."""

    def __init__(self, server: HostileServer):
        self.server = server
        cfg = {
            "host": server.host, "c2s_tls_port": server.c2s_tls_port, "domain": server.domain,
            "password": PASSWORD, "a": GOOD_A, "b": GOOD_B, "room": GOOD_ROOM,
            "interval": GOOD_INTERVAL, "drain": GOOD_DRAIN, "extra_roster": GOOD_EXTRA_ROSTER,
        }
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "good_client.py"), json.dumps(cfg)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=env)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        self.result: dict | None = None
        self.verified = False
        self.started_at = time.monotonic()

    def _pump(self):
        for line in self.proc.stdout:
            self.output.append(line.rstrip())
            self.lines.put(line.rstrip())
        self.lines.put(None)

    def _next(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"good client: no {prefix} line within {timeout}s; "
                                   f"output: {self.output[-20:]}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"good client exited ({self.proc.poll()}); "
                                   f"output: {self.output[-20:]}")
            if line.startswith("FAILED"):
                raise RuntimeError(f"good client failed: {line}")
            if line.startswith(prefix):
                return line[len(prefix):].strip()

    def wait_ready(self) -> dict:
        return json.loads(self._next("READY", GOOD_START_TIMEOUT))

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> dict:
        if self.result is None:
            try:
                self.proc.stdin.write("stop\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.result = json.loads(self._next("RESULT", GOOD_DRAIN + 30))
            finally:
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()  # our own child, by its handle
                    self.proc.wait(timeout=5)
        return self.result

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100 * (len(s) - 1)))))
    return s[k]


def latency_report(result: dict) -> dict:
    out = {}
    for kind in ("rtt_dm", "rtt_gc"):
        v = result[kind]
        out[kind] = {"n": len(v), "p50": percentile(v, 50), "p99": percentile(v, 99),
                     "max": max(v) if v else float("nan")}
    return out


def _exactly_once_in_order(name: str, got: list[int], sent: int) -> list[str]:
    problems = []
    if got != list(range(sent)):
        missing = sorted(set(range(sent)) - set(got))
        dups = sorted({n for n in got if got.count(n) > 1}) if len(got) < 20000 else []
        out_of_order = [got[i] for i in range(1, len(got)) if got[i] < got[i - 1]]
        problems.append(f"{name}: {len(got)} of {sent} received; missing {missing[:20]}"
                        f"{'...' if len(missing) > 20 else ''}; duplicates {dups[:20]}; "
                        f"out of order {out_of_order[:20]}")
    return problems


def verify_good_client(server: HostileServer, good: GoodClient) -> tuple[list[str], dict]:
    """Everything the good client must have kept; (problems, figures)."""
    from raw_xmpp import RawClient, archived_bodies  # tests/interop

    problems: list[str] = []
    result = good.stop()
    sent = result["sent"]
    problems += _exactly_once_in_order("B's chat messages from A", result["b_dm"], sent)
    problems += _exactly_once_in_order("A's replies from B", result["a_re"], sent)
    problems += _exactly_once_in_order("A's room reflections", result["a_gc"], sent)
    problems += _exactly_once_in_order("B's room messages from A", result["b_gc"], sent)
    if result["bounces"]:
        problems.append(f"error stanzas reached the good client: {result['bounces'][:5]}")
    if result["errors"] or result["disconnected"]:
        problems.append(f"good client sessions failed: {result['errors']} "
                        f"disconnected={result['disconnected']}")
    figures = latency_report(result)
    figures["sent"] = sent
    figures["chat_seconds"] = result["chat_seconds"]
    for kind, f in figures.items():
        if not isinstance(f, dict):
            continue
        if f["n"] and f["max"] > LATENCY_MAX:
            problems.append(f"{kind}: max round trip {f['max']:.3f}s > {LATENCY_MAX}s")
        if f["n"] and f["p99"] > LATENCY_P99:
            problems.append(f"{kind}: p99 round trip {f['p99']:.3f}s > {LATENCY_P99}s")
    if sent < 10:
        problems.append(f"the good client sent only {sent} messages")

    # Its roster, archive and the server itself, from a fresh session.
    if not server.running:
        problems.append(f"the server process exited ({server.proc and server.proc.returncode})")
        return problems, figures
    time.sleep(0.5)  # the archive's group commit (README: 250 ms)
    a = RawClient(server.host, server.c2s_tls_port, f"{GOOD_A}@{server.domain}", PASSWORD,
                  resource="verify")
    try:
        a.send("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")
        r = a.wait(lambda e: e.get("id") == "roster")
        items = {i.get("jid"): i for i in r.iter(q("jabber:iq:roster", "item"))}
        bob = items.get(f"{GOOD_B}@{server.domain}")
        if bob is None or bob.get("subscription") != "both":
            problems.append(f"A's roster lost B or the subscription: "
                            f"{None if bob is None else dict(bob.attrib)}")
        for jid, name, group in GOOD_EXTRA_ROSTER:
            it = items.get(jid)
            groups = [g.text for g in it.iter(q("jabber:iq:roster", "group"))] if it is not None else []
            if it is None or it.get("name") != name or groups != [group]:
                problems.append(f"A's roster item {jid} changed: "
                                f"{None if it is None else (dict(it.attrib), groups)}")
        archived = archived_bodies(a, f"{GOOD_B}@{server.domain}")
        want = [f"dm-{n}" for n in range(sent)] + [f"re-{n}" for n in range(sent)]
        got = [b for b in archived if b and (b.startswith("dm-") or b.startswith("re-"))]
        if sorted(got) != sorted(want):
            missing = sorted(set(want) - set(got))
            extra = len(got) - len(set(got))
            problems.append(f"A's archive with B: {len(got)} of {len(want)} messages; "
                            f"missing {missing[:10]}; duplicates {extra}")
        room_archived = archived_bodies(a, GOOD_ROOM)
        gc = [b for b in room_archived if b and b.startswith("gc-")]
        if sorted(gc) != sorted(f"gc-{n}" for n in range(sent)):
            problems.append(f"A's archive of the room: {len(gc)} of {sent} groupchat "
                            f"messages (unique: {len(set(gc))})")
        figures["archived_with_b"] = len(got)
        figures["archived_room"] = len(gc)
        a.send(f"<iq type='get' id='alive' to='{server.domain}'><ping xmlns='urn:xmpp:ping'/></iq>")
        if a.wait(lambda e: e.get("id") == "alive").get("type") != "result":
            problems.append("the server did not answer a ping")
    finally:
        a.close()
    log = server.log_text()
    if "panicked" in log:
        at = log.index("panicked")
        problems.append("the server log has a panic: " + log[max(0, at - 300):at + 700])
    return problems, figures


# -- fixtures ----------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory):
    srv = HostileServer(tmp_path_factory.mktemp("roost-hostile"), SERVER_CONFIG)
    srv.accounts = {}
    for local in ACCOUNTS:
        srv.accounts[local] = srv.add_user(local, PASSWORD)
    srv.start()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture(scope="module")
def good_client(hostile_server):
    good = GoodClient(hostile_server)
    try:
        good.setup = good.wait_ready()
        yield good
        if not good.verified and good.alive:
            # The final test did not run (-x, -k): check all the same.
            problems, figures = verify_good_client(hostile_server, good)
            good.verified = True
            print(f"\ngood client: {json.dumps(figures, default=str)}")
            if problems:
                pytest.fail("the good client was harmed:\n" + "\n".join(problems))
    finally:
        good.kill()


class Ctx:
    """What a catalogue entry gets: the server's addresses, the accounts,
    and constructors for connections on every surface."""

    def __init__(self, server: HostileServer, good: GoodClient):
        self.server = server
        self.good = good
        self.host = server.host
        self.domain = server.domain
        self.muc = server.muc_domain
        self.upload = server.upload_domain
        self.password = PASSWORD
        self.room = GOOD_ROOM
        self.auth_timeout = SERVER_CONFIG["limits"]["auth_timeout"]
        self.max_offline = SERVER_CONFIG["limits"]["max_offline_messages"]
        self.max_stanza = SERVER_CONFIG["limits"]["max_stanza_size"]

    def port(self, surface: str) -> int:
        return {"c2s": self.server.c2s_port, "c2s-tls": self.server.c2s_tls_port,
                "http": self.server.http_port, "websocket": self.server.http_port,
                "bosh": self.server.http_port, "upload": self.server.http_port,
                "s2s": self.server.s2s_port}[surface]

    def jid(self, local: str) -> str:
        return f"{local}@{self.domain}"

    def stream(self, surface: str = "c2s", **kw) -> XmppStream:
        if surface == "s2s":
            return XmppStream(self.host, self.server.s2s_port, self.domain,
                              content_ns="jabber:server", **kw)
        return XmppStream(self.host, self.port(surface), self.domain,
                          direct_tls=surface == "c2s-tls", **kw)

    def session(self, local: str = "mallory", resource: str | None = None,
                bind: bool = True) -> XmppStream:
        """A logged-in session over direct TLS."""
        s = self.stream("c2s-tls")
        s.login(local, PASSWORD, resource or f"r{secrets.token_hex(4)}", bind=bind)
        return s


@pytest.fixture(scope="module")
def ctx(hostile_server, good_client):
    return Ctx(hostile_server, good_client)


# -- the server log of a failed test -----------------------------------------


def pytest_runtest_setup(item):
    for srv in list(_interop._LIVE_SERVERS):
        srv.log_mark = srv.log_size()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for srv in list(_interop._LIVE_SERVERS):
            text = srv.log_text(srv.log_mark)
            if len(text) > 20000:
                text = "[... cut ...]\n" + text[-20000:]
            rep.sections.append((f"roost server log ({rep.when}) {srv.info()}", text or "(empty)"))
