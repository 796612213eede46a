"""Fixtures that run a real `roost serve` process for the interop tests.

The server binary comes from $ROOST_BIN (default: target/debug/roost in the
repository root).  Every server gets its own free loopback ports, its own
temporary config and data_dir, and its stderr/stdout in a log file that is
attached to the report of any test that fails while it runs.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from xmpp_client import Client

REPO_ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "localhost"
PASSWORD = "correct horse battery staple"
START_TIMEOUT = 20.0  # seconds for the listeners to accept connections
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
CLI_TIMEOUT = 30.0  # seconds for `roost user add`

_LIVE_SERVERS: list["RoostServer"] = []
_user_counter = itertools.count(1)


def roost_bin() -> Path:
    path = Path(os.environ.get("ROOST_BIN", "target/debug/roost"))
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {v!r}")


@dataclass(frozen=True)
class Account:
    jid: str
    password: str

    @property
    def local(self) -> str:
        return self.jid.split("@", 1)[0]


class RoostServer:
    """One `roost serve` process and its files."""

    def __init__(self, workdir: Path, *, registration_open: bool = False,
                 registration_loopback: bool | None = False,
                 log_filter: str = "debug",
                 extra_config: dict[str, dict] | None = None,
                 components: dict[str, str] | None = None,
                 admins: list[str] | None = None,
                 http: bool = False,
                 proxy65: bool = False):
        self.bin = roost_bin()
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.config = workdir / "roost.toml"
        self.log_path = workdir / "server.log"
        self.domain = DOMAIN
        self.host = "127.0.0.1"
        self.c2s_port = free_port()
        self.c2s_tls_port = free_port()
        while self.c2s_tls_port == self.c2s_port:
            self.c2s_tls_port = free_port()
        self.registration_open = registration_open
        self.registration_loopback = registration_loopback
        self.log_filter = log_filter
        # More TOML sections, e.g. {"account_muc": {"enabled": False}}.
        self.extra_config = extra_config or {}
        # A plain HTTP listener (file upload, WebSocket) on a port of its own.
        self.http_port = free_port() if http else None
        if self.http_port:
            self.extra_config.setdefault("upload", {})["url"] = f"http://{self.host}:{self.http_port}"
        # Accounts allowed XEP-0133 administration commands.
        self.admins = admins or []
        # The SOCKS5 bytestreams proxy (XEP-0065) on a port of its own.
        self.proxy65_port = free_port() if proxy65 else None
        # External components (XEP-0114): domain -> secret.
        self.components = components or {}
        self.component_port = free_port() if self.components else None
        self.proc: subprocess.Popen | None = None
        self.log_mark = 0  # log offset at the start of the current test
        self._write_config()

    # -- files ---------------------------------------------------------

    def _write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = [
            f'domain = "{self.domain}"',
            f'data_dir = "{self.data_dir}"',
            f'log = "{self.log_filter}"',
            f"admins = {_toml_value(self.admins)}",
            "",
            "[listen]",
            f'c2s = "{self.host}:{self.c2s_port}"',
            f'c2s_tls = "{self.host}:{self.c2s_tls_port}"',
            # No web listeners unless asked: several servers run at once here.
            f'http = "{self.host}:{self.http_port}"' if self.http_port else 'http = ""',
            'https = ""',
            f'proxy65 = "{self.host}:{self.proxy65_port}"' if self.proxy65_port else 'proxy65 = ""',
        ]
        if self.component_port:
            lines.append(f'component = "{self.host}:{self.component_port}"')
        lines += [
            "",
            "[registration]",
            f"open = {'true' if self.registration_open else 'false'}",
        ]
        if self.registration_loopback is not None:
            lines.append(
                f"loopback = {'true' if self.registration_loopback else 'false'}")
        lines += [
            "",
            "[limits]",
            "max_stanza_size = 262144",
            "",
        ]
        for section, keys in self.extra_config.items():
            lines.append(f"[{section}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in keys.items()]
            lines.append("")
        for domain, secret in self.components.items():
            lines += ["[[component]]", f"domain = {_toml_value(domain)}",
                      f"secret = {_toml_value(secret)}", ""]
        self.config.write_text("\n".join(lines))

    def log_text(self, since: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    # -- accounts ------------------------------------------------------

    def add_user(self, local: str, password: str = PASSWORD) -> Account:
        jid = f"{local}@{self.domain}"
        cmd = [str(self.bin), "user", "add", jid, "--password", password,
               "--config", str(self.config)]
        res = subprocess.run(cmd, capture_output=True, text=True,
                             timeout=CLI_TIMEOUT, stdin=subprocess.DEVNULL,
                             env=self._env())
        if res.returncode != 0:
            raise RuntimeError(
                f"`roost user add {jid}` exited {res.returncode}\n"
                f"stdout: {res.stdout}\nstderr: {res.stderr}")
        return Account(jid, password)

    def new_user(self, prefix: str = "user", password: str = PASSWORD) -> Account:
        """A fresh account with a name no other test uses."""
        return self.add_user(f"{prefix}{next(_user_counter)}", password)

    # -- process -------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("RUST_LOG", None)  # the config's `log` decides
        env["NO_COLOR"] = "1"
        env.setdefault("RUST_BACKTRACE", "1")
        return env

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        assert not self.running, "server already running"
        if not self.bin.is_file():
            raise RuntimeError(f"server binary not found: {self.bin} (set ROOST_BIN)")
        with open(self.log_path, "ab") as log:
            log.write(f"==== roost serve --config {self.config} ====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [str(self.bin), "serve", "--config", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self._env(), cwd=self.workdir)
        if self not in _LIVE_SERVERS:
            _LIVE_SERVERS.append(self)
        deadline = time.monotonic() + START_TIMEOUT
        pending = {self.c2s_port, self.c2s_tls_port}
        while pending:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"roost serve exited with {self.proc.returncode} during startup; "
                    f"log:\n{self.log_text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"roost serve did not accept connections on {sorted(pending)} "
                    f"within {START_TIMEOUT}s; log:\n{self.log_text()}")
            pending = {p for p in pending if not _accepts(p)}
            if pending:
                time.sleep(0.1)

    def stop(self) -> int | None:
        """SIGTERM the server by its PID, SIGKILL it after STOP_TIMEOUT."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with open(self.log_path, "ab") as log:
                    log.write(b"==== no exit within the stop timeout: SIGKILL ====\n")
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT)
        return proc.returncode

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self in _LIVE_SERVERS:
            _LIVE_SERVERS.remove(self)

    def info(self) -> str:
        return (f"roost at {self.host} c2s={self.c2s_port} c2s_tls={self.c2s_tls_port} "
                f"config={self.config}")


# -- fixtures ----------------------------------------------------------


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> RoostServer:
    """The shared server: registration closed, accounts alice and bob."""
    srv = RoostServer(tmp_path_factory.mktemp("roost"))
    srv.alice = srv.add_user("alice")
    srv.bob = srv.add_user("bob")
    srv.start()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def own_server(tmp_path) -> RoostServer:
    """A server of the test's own, e.g. to restart it."""
    srv = RoostServer(tmp_path / "roost")
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture(scope="module")
def open_server(tmp_path_factory) -> RoostServer:
    """A server with `[registration] open = true`."""
    srv = RoostServer(tmp_path_factory.mktemp("roost-open"), registration_open=True,
                      registration_loopback=None)
    srv.start()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
async def connect():
    """connect(server, account, presence=False, **Client kwargs) -> Client.

    Every client made here is disconnected at teardown, pass or fail."""
    made: list[Client] = []

    async def _connect(server, account=None, *, presence: bool = False, **kw) -> Client:
        c = Client(server, account, **kw)
        made.append(c)
        await c.connect(initial_presence=presence)
        return c

    yield _connect
    for c in made:
        await c.close()


# -- server log on failure -----------------------------------------------


def pytest_runtest_setup(item):
    for srv in _LIVE_SERVERS:
        srv.log_mark = srv.log_size()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        servers = list(_LIVE_SERVERS)
        for srv in servers:
            text = srv.log_text(srv.log_mark)
            if len(text) > 60000:
                text = "[... cut ...]\n" + text[-60000:]
            rep.sections.append(
                (f"roost server log ({rep.when}) {srv.info()}", text or "(empty)"))
