"""XEP-0363 HTTP File Upload with slixmpp's xep_0363 plugin, which finds
the service in disco, asks for a slot and PUTs the file with aiohttp; the
file is then fetched back over HTTP and compared byte for byte."""

from __future__ import annotations

import asyncio
import io
import os
import urllib.request

import pytest

from conftest import RoostServer
from xmpp_client import STEP_TIMEOUT, bounded

PLUGINS = ("xep_0030", "xep_0363")


@pytest.fixture(scope="module")
def upload_server(tmp_path_factory) -> RoostServer:
    srv = RoostServer(tmp_path_factory.mktemp("roost-upload"), http=True)
    srv.start()
    try:
        yield srv
    finally:
        srv.close()


@bounded(timeout=60)
async def test_slixmpp_uploads_a_file_that_comes_back_the_same(upload_server, connect):
    alice = await connect(upload_server, upload_server.new_user("alice"), presence=True,
                          plugins=PLUGINS)
    data = os.urandom(3 * 1024 * 1024)
    url = await alice.xmpp.plugin["xep_0363"].upload_file(
        "notes.bin", size=len(data), content_type="application/octet-stream",
        input_file=io.BytesIO(data), timeout=STEP_TIMEOUT)
    assert url.startswith(f"http://127.0.0.1:{upload_server.http_port}/upload/"), url

    def fetch():
        with urllib.request.urlopen(url, timeout=STEP_TIMEOUT) as r:
            return r.status, r.headers.get("Content-Type"), r.read()

    status, ctype, body = await asyncio.get_running_loop().run_in_executor(None, fetch)
    assert status == 200 and ctype == "application/octet-stream"
    assert body == data
