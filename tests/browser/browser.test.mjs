// End-to-end: Converse.js (from npm) in headless Chromium, driven by
// Playwright, against `roost serve` over XMPP over WebSocket (RFC 7395).
// Alice logs in with the login form, adds Bob (who accepts), they chat,
// and, when the build has the MUC service, two browser sessions of Alice
// and one of Bob share a room in which Alice is one occupant
// (account-based MUC). Final pages are saved in test-artifacts/.
//
// Run by scripts/browser-test.sh (which installs what this needs):
//   ROOST_BIN=target/debug/roost node --test browser.test.mjs

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  ARTIFACTS,
  DOMAIN,
  MUC_DOMAIN,
  Roost,
  launchBrowser,
  newContext,
  staticServer,
} from './harness.mjs';

const WAIT_MS = 20_000; // any single UI expectation
const ROOM = `lobby@${MUC_DOMAIN}`;
const PASSWORDS = { alice: 'alice-secret', bob: 'bob-secret' };

/** The page: Converse.js from node_modules, pointed at roost's WebSocket. */
function pageHtml(websocketUrl) {
  const settings = {
    assets_path: '/dist/',
    view_mode: 'fullscreen',
    websocket_url: websocketUrl,
    discover_connection_methods: false,
    authentication: 'login',
    i18n: 'en',
    // BROWSER_TEST_DEBUG=1: every stanza in test-artifacts/browser-*.console.log.
    loglevel: process.env.BROWSER_TEST_DEBUG ? 'debug' : 'info',
    play_sounds: false,
    show_desktop_notifications: false,
    // OMEMO needs a wasm file and a device list; not what is tested here.
    blacklisted_plugins: ['converse-omemo'],
  };
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Roost web client test</title>
<link rel="stylesheet" href="/dist/converse.min.css"></head>
<body class="converse-fullscreen">
<script type="module">
import converse from '/dist/converse.min.js';
converse.initialize(${JSON.stringify(settings)});
</script>
</body></html>`;
}

describe('Converse.js over WebSocket', { timeout: 200_000 }, () => {
  let roost;
  let site;
  let browser;
  let hasMuc = false;
  /** name -> Playwright page, in the order they were opened. */
  const pages = new Map();

  before(async () => {
    roost = new Roost();
    await roost.start();
    roost.addUser('alice', PASSWORDS.alice);
    roost.addUser('bob', PASSWORDS.bob);
    hasMuc = roost.hasMuc();
    site = await staticServer(() => pageHtml(roost.websocketUrl));
    browser = await launchBrowser();
  });

  after(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    for (const [name, page] of pages) {
      try {
        await page.screenshot({ path: path.join(ARTIFACTS, `browser-${name}.png`), timeout: 10_000 });
      } catch (e) {
        console.error(`screenshot of ${name} failed: ${e.message}`);
      }
    }
    await browser?.close();
    await site?.close();
    await roost?.stop();
  });

  /** A fresh browser context (its own storage) that logs in with the form. */
  async function login(name, account) {
    const context = await newContext(browser);
    const page = await context.newPage();
    pages.set(name, page);
    const consoleLog = path.join(ARTIFACTS, `browser-${name}.console.log`);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    fs.writeFileSync(consoleLog, '');
    page.on('console', (m) => fs.appendFileSync(consoleLog, `${m.type()} ${m.text()}\n`));
    page.on('pageerror', (e) => {
      fs.appendFileSync(consoleLog, `pageerror ${e.message}\n`);
      console.error(`[${name}] page error: ${e.message}`);
    });
    await page.goto(site.url, { timeout: WAIT_MS });
    const form = page.locator('converse-login-form form, form.converse-form').first();
    await form.locator('input[name=jid]').fill(`${account}@${DOMAIN}`);
    await form.locator('input[name=password]').fill(PASSWORDS[account]);
    await form.locator('[type=submit]').click();
    await page.locator('converse-user-profile .username', { hasText: `${account}@${DOMAIN}` }).waitFor({ timeout: WAIT_MS });
    // Online: the status shown is not "offline".
    await page.locator('converse-user-profile .xmpp-status [data-value=online]').waitFor({ timeout: WAIT_MS });
    return page;
  }

  function messages(page, view) {
    return page.locator(`${view} converse-chat-message-body`);
  }

  async function expectMessage(page, view, text) {
    await messages(page, view).filter({ hasText: text }).first().waitFor({ timeout: WAIT_MS });
  }

  async function send(page, view, text) {
    const box = page.locator(`${view} textarea.chat-textarea`);
    await box.fill(text);
    await box.press('Enter');
  }

  test('alice and bob log in with the login form over the WebSocket', async () => {
    const alice = await login('alice', 'alice');
    const bob = await login('bob', 'bob');
    for (const page of [alice, bob]) {
      assert.equal(await page.locator('converse-roster').count(), 1);
    }
  });

  test('alice adds bob as a contact and bob accepts', async () => {
    const alice = pages.get('alice');
    const bob = pages.get('bob');
    await alice.locator('.dropdown--contacts button.dropdown-toggle').click();
    await alice.locator('a.add-contact').click();
    const add = alice.locator('form.add-xmpp-contact');
    await add.locator('input[name=jid]').fill(`bob@${DOMAIN}`);
    await add.locator('input[name=name]').fill('Bob');
    await add.locator('button[type=submit]').click();

    const request = bob.locator(`li.requesting-xmpp-contact a.open-chat[data-jid="alice@${DOMAIN}"]`);
    await request.waitFor({ timeout: WAIT_MS });
    await bob.locator('li.requesting-xmpp-contact button.dropdown-toggle').click();
    await bob.locator('a.accept-xmpp-request').click();
    const accept = bob.locator('converse-accept-contact-request-modal form');
    await accept.locator('input[name=name]').fill('Alice');
    await accept.locator('[type=submit]').click();

    // Alice is subscribed to Bob and sees him online; Bob (who only
    // approved, as Converse's accept does) has her as a contact.
    await alice.locator(`converse-roster li.online a.open-chat[data-jid="bob@${DOMAIN}"]`).waitFor({ timeout: WAIT_MS });
    await bob
      .locator(`converse-roster li.requesting-xmpp-contact a.open-chat[data-jid="alice@${DOMAIN}"]`)
      .waitFor({ state: 'detached', timeout: WAIT_MS });
    await bob.locator(`converse-roster a.open-chat[data-jid="alice@${DOMAIN}"]`).first().waitFor({ timeout: WAIT_MS });
  });

  test('alice and bob exchange messages', async () => {
    const alice = pages.get('alice');
    const bob = pages.get('bob');
    const withBob = `converse-chat[jid="bob@${DOMAIN}"]`;
    const withAlice = `converse-chat[jid="alice@${DOMAIN}"]`;
    await alice.locator(`converse-roster a.open-chat[data-jid="bob@${DOMAIN}"]`).click();
    await send(alice, withBob, 'Hello Bob, this is Alice in a browser');
    await bob.locator(`converse-roster a.open-chat[data-jid="alice@${DOMAIN}"]`).first().click();
    await expectMessage(bob, withAlice, 'Hello Bob, this is Alice in a browser');
    await send(bob, withAlice, 'Hi Alice, Bob here');
    await expectMessage(alice, withBob, 'Hi Alice, Bob here');
    // Each side shows both messages, once.
    for (const [page, view] of [[alice, withBob], [bob, withAlice]]) {
      const texts = await messages(page, view).allInnerTexts();
      assert.deepEqual(
        texts.map((t) => t.trim()),
        ['Hello Bob, this is Alice in a browser', 'Hi Alice, Bob here'],
      );
    }
  });

  test('two sessions of alice and one of bob share a room; alice is one occupant', async (t) => {
    if (!hasMuc) {
      t.skip('this roost build has no MUC service');
      return;
    }
    const room = `converse-muc[jid="${ROOM}"]`;
    async function join(page, nick) {
      await page.locator('#chatrooms converse-dropdown button.dropdown-toggle').click();
      await page.locator('a.show-add-muc-modal').click();
      const form = page.locator('form.add-chatroom');
      await form.locator('input[name=chatroom]').fill(ROOM);
      await form.locator('input[name=nickname]').fill(nick);
      await form.locator('[type=submit]').click();
      await page.locator(`${room} textarea.chat-textarea`).waitFor({ timeout: WAIT_MS });
    }
    const alice = pages.get('alice');
    const bob = pages.get('bob');
    await join(alice, 'alice');
    await join(bob, 'bob');
    const alice2 = await login('alice-second', 'alice');
    await join(alice2, 'alice');

    await send(alice, room, 'Hello room from alice, first tab');
    await send(bob, room, 'Hello room from bob');
    await send(alice2, room, 'Hello room from alice, second tab');
    const all = [
      'Hello room from alice, first tab',
      'Hello room from bob',
      'Hello room from alice, second tab',
    ];
    for (const page of [alice, alice2, bob]) {
      for (const text of all) {
        await expectMessage(page, room, text);
      }
    }
    for (const [name, page] of [['alice', alice], ['alice-second', alice2], ['bob', bob]]) {
      // Shown once each, whatever session sent it.
      for (const text of all) {
        assert.equal(await messages(page, room).filter({ hasText: text }).count(), 1, `${name}: ${text}`);
      }
      const nicks = page.locator(`${room} converse-muc-sidebar .occupant-nick`);
      await nicks.filter({ hasText: 'bob' }).first().waitFor({ timeout: WAIT_MS });
      const shown = (await nicks.allInnerTexts()).map((n) => n.trim()).sort();
      assert.deepEqual(shown, ['alice', 'bob'], `${name}'s occupant list`);
    }
  });
});
