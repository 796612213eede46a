// End-to-end over BOSH (XEP-0124/XEP-0206): Converse.js in headless
// Chromium with `bosh_service_url` and no WebSocket, against `roost serve`
// at /http-bind, from a page on another (loopback) origin, so CORS is on
// the path. Carol logs in over BOSH, Dave over WebSocket; Carol adds Dave,
// he accepts, and they chat both ways.
//
// Run by scripts/browser-test.sh (which installs what this needs):
//   ROOST_BIN=target/debug/roost node --test bosh.test.mjs

import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { ARTIFACTS, DOMAIN, Roost, launchBrowser, newContext, staticServer } from './harness.mjs';

const WAIT_MS = 20_000;
const PASSWORDS = { carol: 'carol-secret', dave: 'dave-secret' };

/** The page: Converse.js over BOSH (`?bosh=1`) or WebSocket. */
function pageHtml(roost, params) {
  const transport =
    params.get('bosh') === '1'
      ? { bosh_service_url: roost.boshUrl }
      : { websocket_url: roost.websocketUrl };
  const settings = {
    assets_path: '/dist/',
    view_mode: 'fullscreen',
    ...transport,
    discover_connection_methods: false,
    authentication: 'login',
    i18n: 'en',
    loglevel: process.env.BROWSER_TEST_DEBUG ? 'debug' : 'info',
    play_sounds: false,
    show_desktop_notifications: false,
    blacklisted_plugins: ['converse-omemo'],
  };
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Roost BOSH test</title>
<link rel="stylesheet" href="/dist/converse.min.css"></head>
<body class="converse-fullscreen">
<script type="module">
import converse from '/dist/converse.min.js';
converse.initialize(${JSON.stringify(settings)});
</script>
</body></html>`;
}

describe('Converse.js over BOSH', { timeout: 200_000 }, () => {
  let roost;
  let site;
  let browser;
  const pages = new Map();
  /** BOSH requests the browser made, by status. */
  const boshStatuses = [];

  before(async () => {
    roost = new Roost();
    await roost.start();
    roost.addUser('carol', PASSWORDS.carol);
    roost.addUser('dave', PASSWORDS.dave);
    site = await staticServer((params) => pageHtml(roost, params));
    browser = await launchBrowser();
  });

  after(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    for (const [name, page] of pages) {
      try {
        await page.screenshot({ path: path.join(ARTIFACTS, `bosh-${name}.png`), timeout: 10_000 });
      } catch (e) {
        console.error(`screenshot of ${name} failed: ${e.message}`);
      }
    }
    await browser?.close();
    await site?.close();
    await roost?.stop();
  });

  async function login(account, bosh) {
    const context = await newContext(browser);
    const page = await context.newPage();
    pages.set(account, page);
    const consoleLog = path.join(ARTIFACTS, `bosh-${account}.console.log`);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    fs.writeFileSync(consoleLog, '');
    page.on('console', (m) => fs.appendFileSync(consoleLog, `${m.type()} ${m.text()}\n`));
    page.on('pageerror', (e) => fs.appendFileSync(consoleLog, `pageerror ${e.message}\n`));
    page.on('response', (r) => {
      if (r.url().endsWith('/http-bind')) boshStatuses.push(r.status());
    });
    await page.goto(`${site.url}?bosh=${bosh ? 1 : 0}`, { timeout: WAIT_MS });
    const form = page.locator('converse-login-form form, form.converse-form').first();
    await form.locator('input[name=jid]').fill(`${account}@${DOMAIN}`);
    await form.locator('input[name=password]').fill(PASSWORDS[account]);
    await form.locator('[type=submit]').click();
    await page.locator('converse-user-profile .username', { hasText: `${account}@${DOMAIN}` }).waitFor({ timeout: WAIT_MS });
    await page.locator('converse-user-profile .xmpp-status [data-value=online]').waitFor({ timeout: WAIT_MS });
    return page;
  }

  async function send(page, view, text) {
    const box = page.locator(`${view} textarea.chat-textarea`);
    await box.fill(text);
    await box.press('Enter');
  }

  async function expectMessage(page, view, text) {
    await page
      .locator(`${view} converse-chat-message-body`)
      .filter({ hasText: text })
      .first()
      .waitFor({ timeout: WAIT_MS });
  }

  test('carol logs in over BOSH and chats with dave on a WebSocket', async () => {
    const carol = await login('carol', true);
    const dave = await login('dave', false);
    if (!boshStatuses.length) throw new Error('Carol made no BOSH request');
    if (boshStatuses.some((s) => s !== 200)) throw new Error(`BOSH statuses: ${boshStatuses}`);

    await carol.locator('.dropdown--contacts button.dropdown-toggle').click();
    await carol.locator('a.add-contact').click();
    const add = carol.locator('form.add-xmpp-contact');
    await add.locator('input[name=jid]').fill(`dave@${DOMAIN}`);
    await add.locator('input[name=name]').fill('Dave');
    await add.locator('button[type=submit]').click();
    await dave.locator(`li.requesting-xmpp-contact a.open-chat[data-jid="carol@${DOMAIN}"]`).waitFor({ timeout: WAIT_MS });
    await dave.locator('li.requesting-xmpp-contact button.dropdown-toggle').click();
    await dave.locator('a.accept-xmpp-request').click();
    const accept = dave.locator('converse-accept-contact-request-modal form');
    await accept.locator('input[name=name]').fill('Carol');
    await accept.locator('[type=submit]').click();
    await carol.locator(`converse-roster li.online a.open-chat[data-jid="dave@${DOMAIN}"]`).waitFor({ timeout: WAIT_MS });

    const withDave = `converse-chat[jid="dave@${DOMAIN}"]`;
    const withCarol = `converse-chat[jid="carol@${DOMAIN}"]`;
    await carol.locator(`converse-roster a.open-chat[data-jid="dave@${DOMAIN}"]`).click();
    await send(carol, withDave, 'Hello Dave, Carol here over BOSH');
    await dave.locator(`converse-roster a.open-chat[data-jid="carol@${DOMAIN}"]`).first().click();
    await expectMessage(dave, withCarol, 'Hello Dave, Carol here over BOSH');
    await send(dave, withCarol, 'Hi Carol, the long poll works');
    await expectMessage(carol, withDave, 'Hi Carol, the long poll works');
  });
});
