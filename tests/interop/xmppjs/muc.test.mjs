// xmpp.js in a room on the server's MUC service (conference.localhost):
// creating an instant room, joining, groupchat both ways, and a second
// session of the same account joining the same room, which the server
// answers from its own state (account-based MUC joining, ACCOUNT-MUC.md
// rules 1-5). xmpp.js has no MUC plugin: these are its own stanzas,
// stream, SASL and parser.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  NS,
  Roost,
  bare,
  groupchat,
  mucCodes,
  newRoom,
  occupant,
  resourceOf,
  subjectFrom,
  withSession,
  xml,
} from './harness.mjs';

const SUBJECT = 'Interop with xmpp.js';

const fromRoom = (room) => (el) => bare(el.attrs.from) === room && el.name !== 'iq';

/**
 * Sends the join presence and waits for the subject (the last of the join
 * sequence, XEP-0045 §7.2.15); the sequence of presences and messages from
 * the room, in order.
 */
/** bob creates an instant room (XEP-0045 §10.1.2) with the subject. */
async function createInstantRoom(c, room, nick) {
  await c.presence({ to: `${room}/${nick}` }, xml('x', { xmlns: NS.muc }, xml('history', { maxstanzas: '0' })));
  await c.take(occupant(room, nick, 'available', [110]), 'own presence in the new room');
  await c.iq(
    xml('iq', { type: 'set', to: room }, xml('query', { xmlns: NS.mucOwner }, xml('x', { xmlns: NS.data, type: 'submit' }))),
  );
  await c.send(xml('message', { to: room, type: 'groupchat' }, xml('subject', {}, SUBJECT)));
  await c.take((el) => subjectFrom(room)(el) && el.getChildText('subject') === SUBJECT, 'subject');
}

async function join(c, room, nick, maxstanzas) {
  const mark = c.inbox.mark();
  await c.presence(
    { to: `${room}/${nick}` },
    xml('x', { xmlns: NS.muc }, xml('history', { maxstanzas: String(maxstanzas) })),
  );
  await c.take((el) => subjectFrom(room)(el) && c.inbox.items.indexOf(el) >= mark, `subject of ${room} on join`);
  return c.inbox.since(mark, fromRoom(room));
}

/** Occupants' presences, own presence (110) last, history, then the subject. */
function assertJoinOrder(seq) {
  const kinds = seq.map((el) => {
    if (el.name === 'presence') return mucCodes(el).has(110) ? 'self' : 'other';
    if (el.name === 'message' && el.getChildText('body') !== null) return 'history';
    if (el.name === 'message' && el.getChild('subject')) return 'subject';
    return `unexpected ${el.name}`;
  });
  const order = ['other', 'self', 'history', 'subject'];
  const summary = `join sequence ${kinds}:\n  ${seq.map(String).join('\n  ')}`;
  assert.equal(kinds.filter((k) => k === 'self').length, 1, summary);
  assert.equal(kinds.filter((k) => k === 'subject').length, 1, summary);
  assert.deepEqual(kinds, [...kinds].sort((x, y) => order.indexOf(x) - order.indexOf(y)), summary);
  assert.equal(kinds.at(-1), 'subject', summary);
}

const bodies = (seq) => seq.filter((el) => el.name === 'message' && el.getChildText('body') !== null).map((el) => el.getChildText('body'));

describe('xmpp.js in a MUC room', { timeout: 120_000 }, () => {
  let server;
  const srv = () => server;

  before(async () => {
    server = await new Roost('xmppjs-muc').start();
  });
  after(async () => {
    await server?.stop();
  });

  test(
    'instant room, groupchat both ways, a second session of one account joins',
    withSession(srv, async (s) => {
      const aliceAcct = server.newUser('alice');
      const bobAcct = server.newUser('bob');
      const room = newRoom();
      const bob = await s.connect(bobAcct, { transport: 'ws', resource: 'web' });
      await bob.presence();

      // bob creates an instant room (XEP-0045 §10.1.2).
      await bob.presence({ to: `${room}/Bob` }, xml('x', { xmlns: NS.muc }, xml('history', { maxstanzas: '0' })));
      const created = await bob.take(occupant(room, 'Bob', 'available', [110]), 'own presence in the new room');
      assert.ok(mucCodes(created).has(201), `a new room (201): ${created}`);
      const item = created.getChild('x', NS.mucUser).getChild('item');
      assert.equal(item.attrs.affiliation, 'owner');
      assert.equal(item.attrs.role, 'moderator');
      await bob.iq(
        xml('iq', { type: 'set', to: room }, xml('query', { xmlns: NS.mucOwner }, xml('x', { xmlns: NS.data, type: 'submit' }))),
      );
      await bob.send(xml('message', { to: room, type: 'groupchat' }, xml('subject', {}, SUBJECT)));
      const subj = await bob.take((el) => subjectFrom(room)(el) && el.getChildText('subject') === SUBJECT, 'subject');
      assert.equal(subj.attrs.from, `${room}/Bob`);
      await bob.send(xml('message', { to: room, type: 'groupchat', id: 'g0' }, xml('body', {}, 'said before alice came')));
      await bob.take(groupchat(room, 'said before alice came', 'Bob'), 'reflection of g0');

      // alice/phone joins (first join of the account).
      const phone = await s.connect(aliceAcct, { transport: 'starttls', resource: 'phone' });
      const laptop = await s.connect(aliceAcct, { transport: 'tls', resource: 'laptop' });
      await phone.presence();
      await laptop.presence();
      let seq = await join(phone, room, 'Al', 5);
      assertJoinOrder(seq);
      const self = seq.find((el) => el.name === 'presence' && mucCodes(el).has(110));
      assert.equal(self.attrs.from, `${room}/Al`);
      assert.equal(self.attrs.to, phone.jid);
      assert.deepEqual(
        seq.filter((el) => el.name === 'presence' && !mucCodes(el).has(110)).map((el) => el.attrs.from),
        [`${room}/Bob`],
      );
      assert.deepEqual(bodies(seq), ['said before alice came']);
      assert.equal(seq.at(-1).getChildText('subject'), SUBJECT);
      const seen = await bob.take(occupant(room, 'Al', 'available'), "alice's presence in the room");
      assert.equal(
        bare(seen.getChild('x', NS.mucUser).getChild('item').attrs.jid),
        aliceAcct.jid,
        `the owner sees alice's JID: ${seen}`,
      );

      // Groupchat both ways, with ids kept on the reflections.
      for (let i = 0; i < 3; i += 1) {
        await bob.send(xml('message', { to: room, type: 'groupchat', id: `b${i}` }, xml('body', {}, `h${i}`)));
        const m = await phone.take(groupchat(room, `h${i}`, 'Bob'), `h${i} from bob`);
        assert.equal(m.attrs.id, `b${i}`);
        assert.equal(m.attrs.to, phone.jid);
        await bob.take(groupchat(room, `h${i}`, 'Bob'), `reflection of h${i}`);
      }
      await phone.send(xml('message', { to: room, type: 'groupchat', id: 'p1' }, xml('body', {}, 'hi from the phone')));
      const refl = await phone.take(groupchat(room, 'hi from the phone', 'Al'), 'reflection to the phone');
      assert.equal(refl.attrs.id, 'p1');
      assert.equal(refl.getChild('stanza-id', NS.sid)?.attrs.by, room, `the room's stanza-id: ${refl}`);
      assert.equal((await bob.take(groupchat(room, 'hi from the phone', 'Al'), 'phone message at bob')).attrs.id, 'p1');

      // alice/laptop joins the same room: answered by the server from the
      // account's state, history per maxstanzas, nothing seen by the room.
      const bobMark = bob.inbox.mark();
      const phoneMark = phone.inbox.mark();
      seq = await join(laptop, room, 'Al', 2);
      assertJoinOrder(seq);
      const lself = seq.find((el) => el.name === 'presence' && mucCodes(el).has(110));
      assert.equal(lself.attrs.from, `${room}/Al`);
      assert.equal(lself.attrs.to, laptop.jid);
      assert.deepEqual(
        seq.filter((el) => el.name === 'presence' && !mucCodes(el).has(110)).map((el) => el.attrs.from),
        [`${room}/Bob`],
      );
      assert.deepEqual(bodies(seq), ['h2', 'hi from the phone'], 'the last 2 messages (maxstanzas=2)');
      assert.equal(seq.at(-1).getChildText('subject'), SUBJECT);
      await bob.noneWithin(occupant(room, 'Al'), "a second presence of alice's account", 1000, bobMark);
      await phone.noneWithin(fromRoom(room), "room traffic on the laptop's join", 100, phoneMark);

      // The room's traffic reaches both joined sessions, once each.
      await bob.send(xml('message', { to: room, type: 'groupchat', id: 'b9' }, xml('body', {}, 'hello both')));
      for (const c of [phone, laptop]) {
        const m = await c.take(groupchat(room, 'hello both', 'Bob'), 'hello both');
        assert.equal(m.attrs.to, c.jid);
        assert.equal(m.attrs.id, 'b9');
      }
      // The laptop's message: one room message, reflected to both sessions.
      await laptop.send(xml('message', { to: room, type: 'groupchat', id: 'l1' }, xml('body', {}, 'from the laptop')));
      const ids = [];
      for (const c of [laptop, phone]) {
        const m = await c.take(groupchat(room, 'from the laptop', 'Al'), 'laptop message reflection');
        assert.equal(m.attrs.id, 'l1');
        ids.push(m.getChild('stanza-id', NS.sid)?.attrs.id);
      }
      assert.ok(ids[0] && ids[0] === ids[1], `one stanza-id: ${ids}`);
      await bob.take(groupchat(room, 'from the laptop', 'Al'), 'laptop message at bob');
      for (const c of [phone, laptop, bob]) {
        await c.noneWithin(groupchat(room), 'a second copy', 300);
      }
      assert.equal(bob.inbox.items.filter(groupchat(room, 'from the laptop')).length, 1);

      // The laptop leaves: 110 to it alone; the account stays (the phone is in).
      const leaveMark = bob.inbox.mark();
      await laptop.send(xml('presence', { to: `${room}/Al`, type: 'unavailable' }));
      const gone = await laptop.take(occupant(room, 'Al', 'unavailable', [110]), 'own unavailable');
      assert.equal(gone.attrs.to, laptop.jid);
      await bob.noneWithin(occupant(room, 'Al', 'unavailable'), 'alice leaving while her phone is in', 500, leaveMark);
      // The phone leaves too: now the account leaves for real.
      await phone.send(xml('presence', { to: `${room}/Al`, type: 'unavailable' }));
      await phone.take(occupant(room, 'Al', 'unavailable', [110]), 'own unavailable');
      await bob.take(occupant(room, 'Al', 'unavailable'), 'alice left the room');
      assert.equal(resourceOf(gone.attrs.from), 'Al');
    }),
  );

  test(
    "Bind 2 with Roost's rooms feature: a new session is in the account's rooms at once",
    withSession(srv, async (s) => {
      const aliceAcct = server.newUser('alice');
      const bobAcct = server.newUser('bob');
      const room = newRoom();
      const bob = await s.connect(bobAcct, { transport: 'ws', resource: 'web' });
      await bob.presence();
      await createInstantRoom(bob, room, 'Bob');
      const phone = await s.connect(aliceAcct, { transport: 'starttls', resource: 'phone' });
      await phone.presence();
      await join(phone, room, 'Al', 0);
      await bob.take(occupant(room, 'Al', 'available'), "alice's presence in the room");
      const bobMark = bob.inbox.mark();

      // A new session asks for its rooms inline: <bound/> lists the room,
      // and the join sequence follows, answered from the account's state.
      const tablet = await s.connect(aliceAcct, { transport: 'tls', resource: 'tablet', bind2Rooms: true });
      assert.equal(tablet.saslProfile, 'sasl2');
      const listed = tablet.boundRooms?.getChildren('room').map((r) => [r.attrs.jid, r.attrs.nick]);
      assert.deepEqual(listed, [[room, 'Al']], `<rooms/> in <bound/>: ${tablet.boundRooms}`);
      const self = await tablet.take(occupant(room, 'Al', 'available', [110]), 'own presence in the room');
      assert.equal(self.attrs.to, tablet.jid);
      await tablet.take(occupant(room, 'Bob', 'available'), "bob's presence");
      await tablet.take(subjectFrom(room), 'the subject');
      await bob.noneWithin(occupant(room, 'Al'), "a second presence of alice's account", 500, bobMark);
      // The tablet gets the room's traffic like any joined session.
      await bob.send(xml('message', { to: room, type: 'groupchat', id: 't1' }, xml('body', {}, 'hi tablet')));
      const m = await tablet.take(groupchat(room, 'hi tablet', 'Bob'), 'groupchat at the tablet');
      assert.equal(m.attrs.to, tablet.jid);
    }),
  );
});
