"""XEP-0050 ad-hoc commands and XEP-0133 service administration with
slixmpp's xep_0050 plugin: an admin lists the commands, adds a user with
the two-step form, counts the registered users; a user sees only the
user commands and is refused the admin ones."""

from __future__ import annotations

import pytest
from slixmpp import JID
from slixmpp.exceptions import IqError

from conftest import Account, RoostServer
from xmpp_client import STEP_TIMEOUT, bounded

PLUGINS = ("xep_0004", "xep_0030", "xep_0050")
ADD_USER = "http://jabber.org/protocol/admin#add-user"


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory) -> RoostServer:
    srv = RoostServer(tmp_path_factory.mktemp("roost-adhoc"), admins=["boss@localhost"])
    srv.boss = srv.add_user("boss")
    srv.start()
    try:
        yield srv
    finally:
        srv.close()


def nodes(items) -> list[str]:
    return [node for (_jid, node, _name) in items["disco_items"]["items"]]


@bounded
async def test_an_admin_adds_a_user_and_counts_users(admin_server, connect):
    boss = await connect(admin_server, admin_server.boss, presence=True, plugins=PLUGINS)
    adhoc = boss.xmpp.plugin["xep_0050"]
    listed = nodes(await adhoc.get_commands(JID("localhost"), timeout=STEP_TIMEOUT))
    assert ADD_USER in listed and "ping" in listed, listed
    # Step one: the form; step two: the submitted form, same session.
    first = await adhoc.send_command(JID("localhost"), ADD_USER, timeout=STEP_TIMEOUT)
    assert first["command"]["status"] == "executing", str(first)
    form = first["command"]["form"]
    fields = {f["var"] for f in form["fields"]} if isinstance(form["fields"], list) \
        else set(form["fields"].keys())
    assert {"accountjid", "password"} <= fields, str(form)
    answer = boss.xmpp.plugin["xep_0004"].make_form(ftype="submit")
    answer.add_field(var="FORM_TYPE", value="http://jabber.org/protocol/admin", ftype="hidden")
    answer.add_field(var="accountjid", value="newbie@localhost")
    answer.add_field(var="password", value="pw-newbie")
    answer.add_field(var="password-verify", value="pw-newbie")
    done = await adhoc.send_command(JID("localhost"), ADD_USER, action="complete",
                                    payload=answer, sessionid=first["command"]["sessionid"],
                                    timeout=STEP_TIMEOUT)
    assert done["command"]["status"] == "completed", str(done)
    # The new account logs in.
    newbie = await connect(admin_server, Account("newbie@localhost", "pw-newbie"),
                           presence=True)
    assert newbie.jid.bare == "newbie@localhost"


@bounded
async def test_a_user_sees_user_commands_only(admin_server, connect):
    alice = await connect(admin_server, admin_server.new_user("alice"), presence=True,
                          plugins=PLUGINS)
    adhoc = alice.xmpp.plugin["xep_0050"]
    listed = nodes(await adhoc.get_commands(JID("localhost"), timeout=STEP_TIMEOUT))
    assert "ping" in listed and not any("admin#" in n for n in listed), listed
    pong = await adhoc.send_command(JID("localhost"), "ping", timeout=STEP_TIMEOUT)
    assert pong["command"]["status"] == "completed"
    with pytest.raises(IqError) as refused:
        await adhoc.send_command(JID("localhost"), ADD_USER, timeout=STEP_TIMEOUT)
    assert refused.value.iq["error"]["condition"] == "forbidden"
