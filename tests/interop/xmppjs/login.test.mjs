// xmpp.js logins: every SASL mechanism xmpp.js has (SCRAM-SHA-1, PLAIN;
// it has no SCRAM-SHA-256) over every transport it has (STARTTLS on the c2s
// port, direct TLS on c2s_tls, WebSocket), wrong passwords, and 50
// consecutive logins per transport (SCRAM nonces that xmpp.js's SCRAM
// parser could not read used to fail some of them).

import crypto from 'node:crypto';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { PASSWORD, Roost, XClient, bare, withSession, xml } from './harness.mjs';

const TRANSPORTS = ['starttls', 'tls', 'ws'];
const MECHANISMS = ['SCRAM-SHA-1', 'PLAIN'];
const REPEAT = 50;
const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));

describe('xmpp.js logins', { timeout: 150_000 }, () => {
  let server;
  let alice;
  let bob;
  const srv = () => server;

  before(async () => {
    server = await new Roost('xmppjs-login').start();
    alice = server.addUser('alice');
    bob = server.addUser('bob');
  });
  after(async () => {
    await server?.stop();
  });

  for (const transport of TRANSPORTS) {
    for (const mechanism of MECHANISMS) {
      test(
        `${mechanism} over ${transport}`,
        withSession(srv, async (s) => {
          const c = await s.connect(alice, { transport, mechanism });
          assert.equal(c.authMechanism, mechanism, 'the mechanism xmpp.js used');
          assert.ok(c.offeredMechanisms.includes('SCRAM-SHA-1'), `offered: ${c.offeredMechanisms}`);
          assert.equal(bare(c.jid), alice.jid);
          assert.match(c.jid, /\/.+/, 'a resource was bound');
          assert.equal(c.xmpp.isSecure(), true, 'xmpp.js considers the connection secure');
          if (transport === 'starttls') {
            // Before TLS: STARTTLS and no mechanisms; after it: the mechanisms.
            assert.match(c.features[0], /<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/);
            assert.doesNotMatch(c.features[0], /<mechanisms/);
            assert.match(c.features[1], new RegExp(`<mechanism>${mechanism}</mechanism>`));
            assert.equal(c.xmpp.socket.socket.encrypted, true, 'the socket was upgraded to TLS');
          } else if (transport === 'tls') {
            assert.doesNotMatch(c.features[0], /starttls/);
            assert.match(c.features[0], new RegExp(`<mechanism>${mechanism}</mechanism>`));
            assert.equal(c.xmpp.socket.socket.encrypted, true, 'a TLS socket');
            assert.match(c.xmpp.socket.socket.getProtocol(), /^TLSv1\.[23]$/);
          } else {
            assert.doesNotMatch(c.features[0], /starttls/);
            assert.match(c.features[0], new RegExp(`<mechanism>${mechanism}</mechanism>`));
            assert.equal(c.xmpp.socket.socket.constructor.name, 'WebSocket');
            assert.equal(c.xmpp.socket.socket.protocol, 'xmpp', 'the xmpp subprotocol was agreed');
          }
          // The session works: a round trip to the server.
          const pong = await c.ping();
          assert.equal(pong.attrs.type, 'result');
          // And a resource-bound session can be closed cleanly.
          await c.close();
          assert.equal(c.xmpp.status, 'offline');
        }),
      );
    }
  }

  for (const [transport, mechanism] of [
    ['starttls', 'SCRAM-SHA-1'],
    ['tls', 'PLAIN'],
    ['ws', 'SCRAM-SHA-1'],
    ['ws', 'PLAIN'],
  ]) {
    test(
      `wrong password with ${mechanism} over ${transport} is not-authorized`,
      async () => {
        // In a child process: see wrong-password.mjs.
        const services = JSON.stringify(Object.fromEntries(TRANSPORTS.map((t) => [t, server.service(t)])));
        const { stdout } = await run(process.execPath, [
          '--experimental-websocket',
          path.join(here, 'wrong-password.mjs'),
          services, bob.local, transport, mechanism, `not ${PASSWORD}`,
        ], { timeout: 30_000 });
        const outcome = JSON.parse(stdout.trim().split('\n').at(-1));
        assert.equal(outcome.connected, false, stdout);
        assert.equal(outcome.name, 'SASLError', stdout);
        assert.equal(outcome.condition, 'not-authorized', stdout);
        assert.equal(outcome.jid ?? undefined, undefined, 'no JID was bound');
      },
    );
  }

  for (const transport of TRANSPORTS) {
    test(`${REPEAT} consecutive SCRAM-SHA-1 logins over ${transport}`, async () => {
      const failures = [];
      const nonces = new Set();
      for (let i = 0; i < REPEAT && failures.length < 3; i += 1) {
        const c = new XClient(server, alice, { transport, mechanism: 'SCRAM-SHA-1', resource: `r${i}` });
        try {
          await c.connect();
          // xmpp.js logs in with SASL2 and Bind 2: the resource is the
          // client's tag, a slash and the server's part (XEP-0386 §2.2.1).
          assert.equal(c.saslProfile, 'sasl2');
          assert.ok(c.jid.startsWith(`${alice.jid}/r${i}/`), c.jid);
          // The server-first-message: r=<client nonce><server nonce>,s=...,i=...
          // and the XEP-0474 downgrade protection hash h=..., which xmpp.js
          // ignores (an optional SCRAM attribute, RFC 5802 §5.1).
          const first = c.saslChallenges[0] ?? '';
          const r = /^r=([^,]*),s=[^,]+,i=\d+,h=[A-Za-z0-9+/=]+$/.exec(first);
          assert.ok(r, `server-first-message: ${JSON.stringify(first)}`);
          nonces.add(r[1]);
        } catch (err) {
          failures.push(`login ${i + 1}: ${err.message}\n${c.dump()}`);
        } finally {
          await c.close();
        }
      }
      assert.deepEqual(failures, [], `${failures.length} of the logins failed`);
      assert.equal(nonces.size, REPEAT, 'every login had its own nonce');
    });
  }

  test('FAST: a token from a password login, a token login, revocation', async () => {
    const userAgentId = crypto.randomUUID();
    const first = new XClient(server, alice, { transport: 'tls', userAgentId });
    let token;
    try {
      await first.connect();
      assert.equal(first.saslProfile, 'sasl2');
      token = await first.xmpp.fast.fetch();
      assert.ok(token?.token, `xmpp.js asked for and stored a token: ${JSON.stringify(token)}`);
      assert.equal(token.mechanism, 'HT-SHA-256-NONE');
    } finally {
      await first.close();
    }
    // The same installation later, with the token and a wrong password:
    // the token alone logs it in (HT-SHA-256-NONE, one round trip).
    const second = new XClient(server, alice, { transport: 'tls', userAgentId, fastToken: token, password: 'wrong' });
    try {
      await second.connect();
      assert.deepEqual(second.authAttempts, ['HT-SHA-256-NONE']);
      assert.equal(bare(second.jid), alice.jid);
      assert.equal((await second.ping()).attrs.type, 'result');
    } finally {
      await second.close();
    }
    // The user revokes the client's tokens; the token no longer works and
    // xmpp.js falls back to the password.
    const listed = server.userCommand('tokens', alice.jid);
    assert.match(listed, new RegExp(userAgentId));
    server.userCommand('revoke-tokens', alice.jid, '--client', userAgentId);
    const third = new XClient(server, alice, { transport: 'tls', userAgentId, fastToken: token });
    try {
      await third.connect();
      assert.deepEqual(third.authAttempts, ['HT-SHA-256-NONE', 'SCRAM-SHA-1']);
    } finally {
      await third.close();
    }
  });
});
