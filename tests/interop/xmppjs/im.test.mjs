// xmpp.js instant messaging: disco#info of the account (no 'to'), roster
// and presence subscriptions, presence broadcast, messages both ways, over
// STARTTLS, direct TLS and WebSocket.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  DOMAIN,
  NS,
  Roost,
  befriend,
  chatFrom,
  presenceFrom,
  rosterOf,
  rosterPushTo,
  withSession,
  xml,
} from './harness.mjs';

function identities(query) {
  return query.getChildren('identity').map((i) => `${i.attrs.category}/${i.attrs.type}`);
}

function features(query) {
  return query.getChildren('feature').map((f) => f.attrs.var);
}

describe('xmpp.js instant messaging', { timeout: 120_000 }, () => {
  let server;
  const srv = () => server;

  before(async () => {
    server = await new Roost('xmppjs-im').start();
  });
  after(async () => {
    await server?.stop();
  });

  for (const transport of ['starttls', 'ws']) {
    test(
      `disco#info without 'to' is the account's (RFC 6120 §10.3.3) over ${transport}`,
      withSession(srv, async (s) => {
        const acct = server.newUser('disco');
        const c = await s.connect(acct, { transport });
        // No 'to': the stanza is handled for the account's bare JID.
        const res = await c.iq(xml('iq', { type: 'get' }, xml('query', { xmlns: NS.discoInfo })));
        assert.equal(res.attrs.type, 'result');
        assert.ok(
          res.attrs.from === undefined || res.attrs.from === acct.jid,
          `answered from ${res.attrs.from}, not from the account`,
        );
        const q = res.getChild('query', NS.discoInfo);
        const ids = identities(q);
        const feats = features(q);
        assert.ok(ids.includes('account/registered'), `identities: ${ids}`);
        assert.ok(ids.includes('pubsub/pep'), `XEP-0163 §4 PEP identity missing: ${ids}`);
        assert.ok(!ids.some((i) => i.startsWith('server/')), `the server's identity: ${ids}`);
        for (const f of [NS.pubsub, `${NS.pubsub}#publish`, `${NS.pubsub}#auto-create`, NS.mam]) {
          assert.ok(feats.includes(f), `feature ${f} missing: ${feats}`);
        }
        // The same as addressed to the bare JID, and not the server's.
        const toBare = await c.iq(xml('iq', { type: 'get', to: acct.jid }, xml('query', { xmlns: NS.discoInfo })));
        const qb = toBare.getChild('query', NS.discoInfo);
        assert.deepEqual(identities(qb).sort(), [...ids].sort());
        assert.deepEqual(features(qb).sort(), [...feats].sort());
        const ofServer = await c.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('query', { xmlns: NS.discoInfo })));
        const serverIds = identities(ofServer.getChild('query', NS.discoInfo));
        assert.ok(serverIds.includes('server/im'), `server identities: ${serverIds}`);
      }),
    );
  }

  test(
    'roster and presence subscription up to both, presence broadcast',
    withSession(srv, async (s) => {
      const aAcct = server.newUser('alice');
      const bAcct = server.newUser('bob');
      const A = aAcct.jid;
      const B = bAcct.jid;
      const a = await s.connect(aAcct, { transport: 'starttls', resource: 'desk' });
      const b = await s.connect(bAcct, { transport: 'ws', resource: 'web' });
      await a.presence();
      await b.presence();
      await a.take(presenceFrom(a.jid, 'available'), 'own presence');
      await b.take(presenceFrom(b.jid, 'available'), 'own presence');
      // Asking for the roster makes a resource "interested" (RFC 6121
      // §2.1.6): it gets the roster pushes from then on.
      assert.deepEqual(await rosterOf(a), {});
      assert.deepEqual(await rosterOf(b), {});

      // alice adds bob with a name and a group: a roster push, then the roster.
      await a.iq(
        xml(
          'iq',
          { type: 'set' },
          xml('query', { xmlns: NS.roster }, xml('item', { jid: B, name: 'Bob' }, xml('group', {}, 'Friends'))),
        ),
      );
      await rosterPushTo(a, B, 'none');
      let roster = await rosterOf(a);
      assert.deepEqual(roster[B], { subscription: 'none', name: 'Bob', ask: undefined, groups: ['Friends'] });

      // Subscription both ways, with the pushes of each step.
      await a.send(xml('presence', { to: B, type: 'subscribe' }));
      const req = await b.take(presenceFrom(A, 'subscribe'), 'subscription request');
      assert.equal(req.attrs.from, A, 'a subscription request comes from the bare JID');
      await b.send(xml('presence', { to: A, type: 'subscribed' }));
      await a.take(presenceFrom(B, 'subscribed'), 'subscription approval');
      await rosterPushTo(a, B, 'to');
      // alice now gets bob's current presence.
      await a.take(presenceFrom(b.jid, 'available'), "bob's presence after approval");
      await b.send(xml('presence', { to: A, type: 'subscribe' }));
      await a.take(presenceFrom(B, 'subscribe'), 'request from bob');
      await a.send(xml('presence', { to: B, type: 'subscribed' }));
      await b.take(presenceFrom(A, 'subscribed'), 'approval from alice');
      await rosterPushTo(a, B, 'both');
      await rosterPushTo(b, A, 'both');
      await b.take(presenceFrom(a.jid, 'available'), "alice's presence after approval");
      roster = await rosterOf(a);
      assert.equal(roster[B].subscription, 'both');
      assert.equal(roster[B].ask, undefined);
      assert.equal((await rosterOf(b))[A].subscription, 'both');

      // Presence broadcast: a status change, then unavailable when alice leaves.
      await a.presence({}, xml('show', {}, 'away'), xml('status', {}, 'lunch'));
      const away = await b.take(
        (el) => presenceFrom(a.jid, 'available')(el) && el.getChildText('show') === 'away',
        'away presence',
      );
      assert.equal(away.getChildText('status'), 'lunch');
      await a.close();
      await b.take(presenceFrom(a.jid, 'unavailable'), 'unavailable when alice closed her stream');
    }),
  );

  for (const [ta, tb] of [
    ['starttls', 'tls'],
    ['ws', 'starttls'],
  ]) {
    test(
      `messages both ways (${ta} and ${tb})`,
      withSession(srv, async (s) => {
        const aAcct = server.newUser('alice');
        const bAcct = server.newUser('bob');
        const a = await s.connect(aAcct, { transport: ta, resource: 'one' });
        const b = await s.connect(bAcct, { transport: tb, resource: 'two' });
        await a.presence();
        await b.presence();
        await befriend(a, b);
        await a.take(presenceFrom(b.jid, 'available'), "bob's presence");
        await b.take(presenceFrom(a.jid, 'available'), "alice's presence");

        // To the full JID and to the bare JID, with ids kept and from the sender's full JID.
        await a.send(xml('message', { to: b.jid, type: 'chat', id: 'm1' }, xml('body', {}, 'hi bob ☺ <&>')));
        let m = await b.take(chatFrom(a.jid, 'hi bob ☺ <&>'), 'message to the full JID');
        assert.equal(m.attrs.id, 'm1');
        assert.equal(m.attrs.to, b.jid);
        await b.send(xml('message', { to: aAcct.jid, type: 'chat', id: 'm2' }, xml('body', {}, 'hi alice')));
        m = await a.take(chatFrom(b.jid, 'hi alice'), 'message to the bare JID');
        assert.equal(m.attrs.id, 'm2');
        assert.equal(m.attrs.to, aAcct.jid, 'delivered as addressed, to the bare JID');
        // The archive's stanza-id is added by the receiving server (XEP-0359).
        const sid = m.getChild('stanza-id', NS.sid);
        assert.ok(sid && sid.attrs.by === aAcct.jid && sid.attrs.id, `stanza-id: ${m}`);
        // A burst arrives complete and in order.
        for (let i = 0; i < 10; i += 1) {
          await b.send(xml('message', { to: aAcct.jid, type: 'chat' }, xml('body', {}, `n${i}`)));
        }
        const got = [];
        for (let i = 0; i < 10; i += 1) {
          got.push((await a.take(chatFrom(b.jid), `burst message ${i}`)).getChildText('body'));
        }
        assert.deepEqual(got, [...Array(10).keys()].map((i) => `n${i}`));
      }),
    );
  }
});
