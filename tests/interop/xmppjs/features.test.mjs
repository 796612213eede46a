// xmpp.js and the account features: PEP publish and notifications
// (XEP-0163, with XEP-0115 caps +notify), the message archive paged with
// RSM (XEP-0313, XEP-0059), blocking (XEP-0191), carbons (XEP-0280) and
// stream resumption (XEP-0198, xmpp.js's own stream-management module).
// xmpp.js has no plugin for the first four: these are raw stanzas sent and
// parsed by xmpp.js over its own streams.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  DOMAIN,
  NS,
  Roost,
  STEP_MS,
  bare,
  befriend,
  chatFrom,
  errorCondition,
  presenceFrom,
  within,
  withSession,
  xml,
} from './harness.mjs';

const NS_TUNE = 'http://jabber.org/protocol/tune';

function tune(title) {
  return xml('tune', { xmlns: NS_TUNE }, xml('title', {}, title));
}

/** A PEP notification from `owner` for `node` carrying item `id`. */
function pepEvent(owner, node, id) {
  return (el) =>
    el.name === 'message' &&
    el.attrs.from === owner &&
    el.getChild('event', NS.pubsubEvent)
      ?.getChild('items')
      ?.getChildren('item')
      .some((i) => i.attrs.id === id) === true &&
    el.getChild('event', NS.pubsubEvent).getChild('items').attrs.node === node;
}

async function publish(c, node, id, payload) {
  const res = await c.iq(
    xml(
      'iq',
      { type: 'set' },
      xml('pubsub', { xmlns: NS.pubsub }, xml('publish', { node }, xml('item', { id }, payload))),
    ),
  );
  const item = res.getChild('pubsub', NS.pubsub)?.getChild('publish')?.getChild('item');
  if (item) assert.equal(item.attrs.id, id);
  return res;
}

/** One MAM query page: { results: [message], fin } (results come before the IQ result). */
async function mamPage(c, queryid, { with: withJid, max, after: afterId, before: beforeId }) {
  const set = xml('set', { xmlns: NS.rsm }, xml('max', {}, String(max)));
  if (afterId !== undefined) set.append(xml('after', {}, afterId));
  if (beforeId !== undefined) set.append(xml('before', {}, beforeId));
  const form = xml(
    'x',
    { xmlns: NS.data, type: 'submit' },
    xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, NS.mam)),
    xml('field', { var: 'with' }, xml('value', {}, withJid)),
  );
  const res = await c.iq(xml('iq', { type: 'set' }, xml('query', { xmlns: NS.mam, queryid }, form, set)));
  const fin = res.getChild('fin', NS.mam);
  assert.ok(fin, `a <fin/>: ${res}`);
  const results = c.inbox
    .pending((el) => el.name === 'message' && el.getChild('result', NS.mam)?.attrs.queryid === queryid)
    .map((el) => {
      c.inbox.taken.add(c.inbox.items.indexOf(el));
      return el;
    });
  return { results, fin };
}

const archived = (m) => {
  const r = m.getChild('result', NS.mam);
  const fwd = r.getChild('forwarded', NS.forward);
  return { id: r.attrs.id, body: fwd.getChild('message').getChildText('body'), delay: fwd.getChild('delay', 'urn:xmpp:delay') };
};

describe('xmpp.js and account features', { timeout: 120_000 }, () => {
  let server;
  const srv = () => server;

  before(async () => {
    server = await new Roost('xmppjs-features').start();
  });
  after(async () => {
    await server?.stop();
  });

  test(
    'PEP: publish, last item to a new contact resource, notification to subscribed contacts only',
    withSession(srv, async (s) => {
      const aliceAcct = server.newUser('alice');
      const bobAcct = server.newUser('bob');
      const carolAcct = server.newUser('carol');
      const alice = await s.connect(aliceAcct, { transport: 'starttls', resource: 'a' });
      const bob = s.client(bobAcct, { transport: 'ws', resource: 'one' });
      const carol = s.client(carolAcct, { transport: 'tls', resource: 'c' });
      bob.notify.add(NS_TUNE);
      carol.notify.add(NS_TUNE);
      await bob.connect();
      await carol.connect();
      await alice.presence();
      await bob.presence();
      await carol.presence();
      await befriend(alice, bob);

      // alice publishes a first item (the node is created on publish).
      await publish(alice, NS_TUNE, 't1', tune('First'));
      // A new resource of bob that wants tune notifications gets the last
      // item when it comes online (XEP-0163 §4.3.3).
      const bob2 = s.client(bobAcct, { transport: 'starttls', resource: 'two' });
      bob2.notify.add(NS_TUNE);
      await bob2.connect();
      await bob2.presence();
      const last = await bob2.take(pepEvent(aliceAcct.jid, NS_TUNE, 't1'), 'last published item');
      assert.equal(last.getChild('event', NS.pubsubEvent).getChild('items').getChild('item').getChild('tune', NS_TUNE).getChildText('title'), 'First');

      // A second item: a notification to each of bob's resources, none to
      // carol (no subscription), even though she asked for +notify.
      const carolMark = carol.inbox.mark();
      await publish(alice, NS_TUNE, 't2', tune('Second'));
      for (const c of [bob, bob2]) {
        const ev = await c.take(pepEvent(aliceAcct.jid, NS_TUNE, 't2'), 'notification of t2');
        assert.equal(ev.attrs.to, c.jid);
        assert.equal(ev.getChild('event', NS.pubsubEvent).getChild('items').getChild('item').getChild('tune', NS_TUNE).getChildText('title'), 'Second');
      }
      await carol.noneWithin((el) => el.getChild('event', NS.pubsubEvent) !== undefined, 'a PEP event for a non-contact', 1000, carolMark);
      // bob can read the node; carol cannot (presence access model).
      const items = await bob.iq(
        xml('iq', { type: 'get', to: aliceAcct.jid }, xml('pubsub', { xmlns: NS.pubsub }, xml('items', { node: NS_TUNE }))),
      );
      const ids = items.getChild('pubsub', NS.pubsub).getChild('items').getChildren('item').map((i) => i.attrs.id);
      assert.ok(ids.includes('t2'), `items: ${items}`);
      const denied = await carol.iqError(
        xml('iq', { type: 'get', to: aliceAcct.jid }, xml('pubsub', { xmlns: NS.pubsub }, xml('items', { node: NS_TUNE }))),
      );
      assert.equal(denied.attrs.type, 'error', `carol read alice's tune: ${denied}`);
    }),
  );

  test(
    'MAM: the archive paged forward and backward with RSM',
    withSession(srv, async (s) => {
      const aliceAcct = server.newUser('alice');
      const bobAcct = server.newUser('bob');
      const alice = await s.connect(aliceAcct, { transport: 'tls' });
      const bob = await s.connect(bobAcct, { transport: 'ws' });
      await bob.presence();
      const N = 5;
      for (let i = 0; i < N; i += 1) {
        await alice.send(xml('message', { to: bobAcct.jid, type: 'chat', id: `mam${i}` }, xml('body', {}, `m${i}`)));
        await bob.take(chatFrom(alice.jid, `m${i}`), `m${i}`);
      }

      // Forward: pages of 2 with <after/>, the last one complete.
      const forward = [];
      const pages = [];
      let afterId;
      for (let page = 0; page < N; page += 1) {
        const { results, fin } = await mamPage(bob, `f${page}`, { with: aliceAcct.jid, max: 2, after: afterId });
        const set = fin.getChild('set', NS.rsm);
        const got = results.map(archived);
        forward.push(...got);
        pages.push(got.map((g) => g.body));
        if (got.length) {
          assert.equal(set.getChildText('first'), got[0].id, `rsm first: ${fin}`);
          assert.equal(set.getChildText('last'), got.at(-1).id, `rsm last: ${fin}`);
        }
        if (fin.attrs.complete === 'true') break;
        afterId = set.getChildText('last');
      }
      assert.deepEqual(pages, [['m0', 'm1'], ['m2', 'm3'], ['m4']], 'forward pages');
      for (const g of forward) assert.ok(g.delay?.attrs.stamp, 'each archived message has its delay stamp');
      assert.equal(new Set(forward.map((g) => g.id)).size, N, 'distinct archive ids');

      // Backward: <before/> empty is the last page, then before=<first>.
      const backward = [];
      let beforeId = '';
      for (let page = 0; page < N; page += 1) {
        const { results, fin } = await mamPage(bob, `b${page}`, { with: aliceAcct.jid, max: 2, before: beforeId });
        backward.push(results.map((m) => archived(m).body));
        if (fin.attrs.complete === 'true') break;
        beforeId = fin.getChild('set', NS.rsm).getChildText('first');
      }
      assert.deepEqual(backward, [['m3', 'm4'], ['m1', 'm2'], ['m0']], 'backward pages, each in chronological order');

      // The live message's stanza-id is its archive id.
      const live = bob.inbox.items.find(chatFrom(alice.jid, 'm4'));
      const sid = live.getChild('stanza-id', NS.sid);
      assert.equal(sid?.attrs.by, bobAcct.jid);
      assert.equal(sid.attrs.id, forward.at(-1).id);
    }),
  );

  test(
    'blocking: block push, both directions refused, unblock',
    withSession(srv, async (s) => {
      const aliceAcct = server.newUser('alice');
      const bobAcct = server.newUser('bob');
      const alice = await s.connect(aliceAcct, { transport: 'starttls' });
      const bob = await s.connect(bobAcct, { transport: 'ws' });
      await alice.presence();
      await bob.presence();
      const blocklist = async () =>
        (await alice.iq(xml('iq', { type: 'get' }, xml('blocklist', { xmlns: NS.blocking }))))
          .getChild('blocklist', NS.blocking)
          .getChildren('item')
          .map((i) => i.attrs.jid);
      assert.deepEqual(await blocklist(), []);

      await alice.iq(xml('iq', { type: 'set' }, xml('block', { xmlns: NS.blocking }, xml('item', { jid: bobAcct.jid }))));
      const push = await alice.take(
        (el) => el.name === 'iq' && el.attrs.type === 'set' && el.getChild('block', NS.blocking) !== undefined,
        'block push',
      );
      assert.deepEqual(push.getChild('block', NS.blocking).getChildren('item').map((i) => i.attrs.jid), [bobAcct.jid]);
      assert.deepEqual(await blocklist(), [bobAcct.jid]);

      // bob cannot reach alice: service-unavailable, and alice gets nothing.
      const aliceMark = alice.inbox.mark();
      await bob.send(xml('message', { to: aliceAcct.jid, type: 'chat', id: 'blocked1' }, xml('body', {}, 'are you there?')));
      const bounce = await bob.take((el) => el.name === 'message' && el.attrs.id === 'blocked1', 'error for blocked1');
      assert.equal(bounce.attrs.type, 'error');
      assert.equal(errorCondition(bounce), 'service-unavailable');
      // alice cannot reach bob: not-acceptable with <blocked/>.
      await alice.send(xml('message', { to: bobAcct.jid, type: 'chat', id: 'blocked2' }, xml('body', {}, 'you are blocked')));
      const refused = await alice.take((el) => el.name === 'message' && el.attrs.id === 'blocked2', 'error for blocked2');
      assert.equal(refused.attrs.type, 'error');
      assert.equal(errorCondition(refused), 'not-acceptable');
      assert.ok(refused.getChild('error').getChild('blocked', NS.blockingErrors), `<blocked/>: ${refused}`);
      await alice.noneWithin(chatFrom(bobAcct.jid), 'a message from a blocked contact', 500, aliceMark);

      await alice.iq(xml('iq', { type: 'set' }, xml('unblock', { xmlns: NS.blocking }, xml('item', { jid: bobAcct.jid }))));
      await alice.take(
        (el) => el.name === 'iq' && el.attrs.type === 'set' && el.getChild('unblock', NS.blocking) !== undefined,
        'unblock push',
      );
      assert.deepEqual(await blocklist(), []);
      await bob.send(xml('message', { to: aliceAcct.jid, type: 'chat' }, xml('body', {}, 'again')));
      await alice.take(chatFrom(bob.jid, 'again'), 'message after unblocking');
    }),
  );

  test(
    'carbons: received and sent copies to the other session, none for private messages',
    withSession(srv, async (s) => {
      const aliceAcct = server.newUser('alice');
      const bobAcct = server.newUser('bob');
      const phone = await s.connect(aliceAcct, { transport: 'starttls', resource: 'phone' });
      const laptop = await s.connect(aliceAcct, { transport: 'ws', resource: 'laptop' });
      const bob = await s.connect(bobAcct, { transport: 'tls', resource: 'b' });
      for (const c of [phone, laptop, bob]) await c.presence();
      for (const c of [phone, laptop]) {
        await c.iq(xml('iq', { type: 'set' }, xml('enable', { xmlns: NS.carbons })));
      }
      const carbon = (kind, body) => (el) =>
        el.name === 'message' &&
        el.attrs.from === aliceAcct.jid &&
        el.getChild(kind, NS.carbons)?.getChild('forwarded', NS.forward)?.getChild('message')?.getChildText('body') === body;

      // bob → alice/phone: the laptop gets a <received/> copy.
      await bob.send(xml('message', { to: phone.jid, type: 'chat', id: 'c1' }, xml('body', {}, 'to the phone')));
      await phone.take(chatFrom(bob.jid, 'to the phone'), 'the message');
      const rc = await laptop.take(carbon('received', 'to the phone'), 'received carbon');
      const inner = rc.getChild('received', NS.carbons).getChild('forwarded', NS.forward).getChild('message');
      assert.equal(inner.attrs.from, bob.jid);
      assert.equal(inner.attrs.to, phone.jid);
      assert.equal(inner.attrs.id, 'c1');
      assert.equal(rc.attrs.to, laptop.jid);

      // alice/phone → bob: the laptop gets a <sent/> copy, the phone none.
      const phoneMark = phone.inbox.mark();
      await phone.send(xml('message', { to: bobAcct.jid, type: 'chat', id: 'c2' }, xml('body', {}, 'from the phone')));
      await bob.take(chatFrom(phone.jid, 'from the phone'), 'the message');
      const sc = await laptop.take(carbon('sent', 'from the phone'), 'sent carbon');
      const sent = sc.getChild('sent', NS.carbons).getChild('forwarded', NS.forward).getChild('message');
      assert.equal(sent.attrs.to, bobAcct.jid);
      assert.equal(sent.attrs.id, 'c2');

      // <private/>: no copy.
      const laptopMark = laptop.inbox.mark();
      await phone.send(
        xml(
          'message',
          { to: bobAcct.jid, type: 'chat', id: 'c3' },
          xml('body', {}, 'private'),
          xml('private', { xmlns: NS.carbons }),
          xml('no-copy', { xmlns: 'urn:xmpp:hints' }),
        ),
      );
      await bob.take(chatFrom(phone.jid, 'private'), 'the private message');
      await laptop.noneWithin((el) => el.getChild('sent', NS.carbons) !== undefined, 'a carbon of a private message', 700, laptopMark);
      await phone.noneWithin((el) => el.getChild('sent', NS.carbons) !== undefined || el.getChild('received', NS.carbons) !== undefined, 'a carbon of its own message', 10, phoneMark);
    }),
  );

  test(
    'stream management: a dropped stream resumes with exactly the missed stanzas',
    withSession(srv, async (s) => {
      const aliceAcct = server.newUser('alice');
      const bobAcct = server.newUser('bob');
      const alice = await s.connect(aliceAcct, { transport: 'starttls', resource: 'mobile' });
      const bob = await s.connect(bobAcct, { transport: 'ws' });
      await bob.presence(); // available: messages to the bare JID reach it
      const enabled = await alice.nonzas.take((el) => el.is('enabled', NS.sm), 'SM <enabled/>');
      assert.equal(enabled.attrs.resume, 'true', `resumable: ${enabled}`);
      await alice.presence();
      await bob.send(xml('message', { to: alice.jid, type: 'chat' }, xml('body', {}, 'before')));
      await alice.take(chatFrom(bob.jid, 'before'), 'message before the drop');
      const jid = alice.jid;

      // The connection dies without a stream close; bob writes meanwhile.
      const x = alice.xmpp;
      const disconnected = new Promise((resolve) => x.once('disconnect', resolve));
      alice.drop();
      await within(STEP_MS, disconnected, 'xmpp.js noticing the drop');
      for (let i = 1; i <= 3; i += 1) {
        await bob.send(xml('message', { to: jid, type: 'chat' }, xml('body', {}, `missed ${i}`)));
      }
      await bob.ping(DOMAIN); // the server has routed bob's messages

      // xmpp.js reconnects and resumes (XEP-0198 <resume/>).
      const resumed = new Promise((resolve) => x.streamManagement.once('resumed', resolve));
      const mark = alice.inbox.mark();
      await within(15_000, x.reconnect.reconnect(), 'reconnection');
      await within(STEP_MS, resumed, 'xmpp.js resumed event');
      const res = await alice.nonzas.take((el) => el.is('resumed', NS.sm), 'SM <resumed/>');
      assert.equal(res.attrs.previd, enabled.attrs.id);
      assert.equal(alice.jid, jid, 'the same full JID');
      for (let i = 1; i <= 3; i += 1) {
        await alice.take(chatFrom(bob.jid, `missed ${i}`), `missed ${i}`);
      }
      const got = alice.inbox.since(mark, chatFrom(bob.jid)).map((el) => el.getChildText('body'));
      assert.deepEqual(got, ['missed 1', 'missed 2', 'missed 3'], 'each missed message once, in order');
      // The resumed session still works both ways.
      await alice.send(xml('message', { to: bobAcct.jid, type: 'chat' }, xml('body', {}, 'back')));
      await bob.take(chatFrom(jid, 'back'), 'message from the resumed session');
      await bob.send(xml('message', { to: jid, type: 'chat' }, xml('body', {}, 'welcome back')));
      await alice.take(chatFrom(bob.jid, 'welcome back'), 'message to the resumed session');
      assert.equal(alice.inbox.items.filter(chatFrom(bob.jid, 'before')).length, 1, "'before' once");
      await alice.noneWithin(presenceFrom(jid, 'unavailable'), 'own unavailable presence', 10);
      assert.equal(bare(jid), aliceAcct.jid);
    }),
  );
});
