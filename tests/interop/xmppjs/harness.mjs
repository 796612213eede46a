// Harness for the xmpp.js interop tests: `roost serve` processes on free
// loopback ports with a temporary config and data folder, and xmpp.js
// clients (@xmpp/client from npm) that record every element they send and
// receive. Every wait is bounded; nothing here can hang a test.
//
// Run by scripts/interop-xmppjs.sh (which installs the pinned packages);
// by hand, in this folder:
//   ROOST_BIN=../../../target/debug/roost node --experimental-websocket --test login.test.mjs

import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { client, xml } from '@xmpp/client';

export { xml };

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '..', '..', '..');
export const DOMAIN = 'localhost';
export const MUC_DOMAIN = `conference.${DOMAIN}`;
export const PASSWORD = 'correct horse battery staple';

export const STEP_MS = 10_000; // one network round or awaited stanza
export const QUIET_MS = 1_000; // a window in which something must NOT arrive
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;
const CLI_TIMEOUT_MS = 30_000;
const LOGIN_TIMEOUT_MS = 15_000;

export const NS = {
  caps: 'http://jabber.org/protocol/caps',
  discoInfo: 'http://jabber.org/protocol/disco#info',
  roster: 'jabber:iq:roster',
  ping: 'urn:xmpp:ping',
  muc: 'http://jabber.org/protocol/muc',
  mucUser: 'http://jabber.org/protocol/muc#user',
  mucOwner: 'http://jabber.org/protocol/muc#owner',
  pubsub: 'http://jabber.org/protocol/pubsub',
  pubsubEvent: 'http://jabber.org/protocol/pubsub#event',
  mam: 'urn:xmpp:mam:2',
  rsm: 'http://jabber.org/protocol/rsm',
  forward: 'urn:xmpp:forward:0',
  data: 'jabber:x:data',
  blocking: 'urn:xmpp:blocking',
  blockingErrors: 'urn:xmpp:blocking:errors',
  carbons: 'urn:xmpp:carbons:2',
  sm: 'urn:xmpp:sm:3',
  sasl: 'urn:ietf:params:xml:ns:xmpp-sasl',
  stanzas: 'urn:ietf:params:xml:ns:xmpp-stanzas',
  sid: 'urn:xmpp:sid:0',
};

// The server's certificate is self-signed (generated into its data_dir):
// xmpp.js passes no TLS options through, so accept it process-wide. Only
// loopback servers started here are ever contacted.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Rejects with `what` when `promise` does not settle within `ms`. */
export async function within(ms, promise, what) {
  let timer;
  const expired = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

export const bare = (j) => String(j ?? '').split('/')[0];
export const resourceOf = (j) => {
  const s = String(j ?? '');
  const i = s.indexOf('/');
  return i < 0 ? '' : s.slice(i + 1);
};

export function roostBin() {
  const bin = process.env.ROOST_BIN || 'target/debug/roost';
  return path.isAbsolute(bin) ? bin : path.join(REPO, bin);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function accepts(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const done = (ok) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.on('connect', () => done(true));
    sock.on('error', () => done(false));
  });
}

function serverEnv() {
  const env = { ...process.env, NO_COLOR: '1' };
  delete env.RUST_LOG; // the config's `log` decides
  return env;
}

let userCounter = 0;
let roomCounter = 0;

/** One `roost serve` process with its own ports, config and data folder. */
export class Roost {
  constructor(name = 'xmppjs') {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `roost-${name}-`));
    this.config = path.join(this.dir, 'roost.toml');
    this.logPath = path.join(this.dir, 'server.log');
    this.proc = null;
  }

  async start() {
    const ports = new Set();
    while (ports.size < 3) ports.add(await freePort());
    [this.c2sPort, this.c2sTlsPort, this.httpPort] = [...ports];
    fs.writeFileSync(
      this.config,
      [
        `domain = "${DOMAIN}"`,
        `data_dir = "${path.join(this.dir, 'data')}"`,
        'log = "debug"',
        '',
        '[listen]',
        `c2s = "127.0.0.1:${this.c2sPort}"`,
        `c2s_tls = "127.0.0.1:${this.c2sTlsPort}"`,
        `http = "127.0.0.1:${this.httpPort}"`,
        'https = ""',
        'proxy65 = ""',
        '',
        '[registration]',
        'open = false',
        'loopback = false',
        '',
      ].join('\n'),
    );
    const log = fs.openSync(this.logPath, 'a');
    this.proc = spawn(roostBin(), ['serve', '--config', this.config], {
      stdio: ['ignore', log, log],
      env: serverEnv(),
      cwd: this.dir,
    });
    fs.closeSync(log);
    this.exited = new Promise((resolve) => this.proc.on('exit', resolve));
    const deadline = Date.now() + START_TIMEOUT_MS;
    let pending = [this.c2sPort, this.c2sTlsPort, this.httpPort];
    while (pending.length) {
      if (this.proc.exitCode !== null) {
        throw new Error(`roost serve exited with ${this.proc.exitCode}:\n${this.log()}`);
      }
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`roost serve did not listen on ${pending} in time:\n${this.log()}`);
      }
      const ok = await Promise.all(pending.map(accepts));
      pending = pending.filter((_, i) => !ok[i]);
      if (pending.length) await sleep(100);
    }
    return this;
  }

  /** The xmpp.js service URI of a transport. */
  service(transport) {
    switch (transport) {
      case 'starttls':
        return `xmpp://127.0.0.1:${this.c2sPort}`;
      case 'tls':
        return `xmpps://127.0.0.1:${this.c2sTlsPort}`;
      case 'ws':
        return `ws://127.0.0.1:${this.httpPort}/xmpp-websocket`;
      default:
        throw new Error(`unknown transport ${transport}`);
    }
  }

  /** `roost user add`, on the server's config, while it runs. */
  /** `roost user <args...>` on this server's configuration; its output. */
  userCommand(...args) {
    return execFileSync(roostBin(), ['user', ...args, '--config', this.config], {
      encoding: 'utf8',
      timeout: CLI_TIMEOUT_MS,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: serverEnv(),
    });
  }

  addUser(local, password = PASSWORD) {
    const jid = `${local}@${DOMAIN}`;
    execFileSync(roostBin(), ['user', 'add', jid, '--password', password, '--config', this.config], {
      timeout: CLI_TIMEOUT_MS,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: serverEnv(),
    });
    return { jid, local, password };
  }

  /** A fresh account no other test uses. */
  newUser(prefix = 'user') {
    userCounter += 1;
    return this.addUser(`${prefix}${process.pid}x${userCounter}`);
  }

  logSize() {
    try {
      return fs.statSync(this.logPath).size;
    } catch {
      return 0;
    }
  }

  log(since = 0) {
    try {
      const buf = fs.readFileSync(this.logPath);
      return buf.subarray(since).toString('utf8');
    } catch {
      return '';
    }
  }

  /** SIGTERM by PID, SIGKILL after a bound; removes the temporary folder. */
  async stop({ keep = false } = {}) {
    const proc = this.proc;
    this.proc = null;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      let timer;
      const stopped = await Promise.race([
        this.exited.then(() => true),
        new Promise((resolve) => {
          timer = setTimeout(() => resolve(false), STOP_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
      if (!stopped) {
        proc.kill('SIGKILL');
        await this.exited;
      }
    }
    if (!keep && !process.env.XMPPJS_KEEP) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export function newRoom(prefix = 'jsroom') {
  roomCounter += 1;
  return `${prefix}${process.pid}x${roomCounter}@${MUC_DOMAIN}`;
}

/**
 * Received elements, in order; take() consumes the first one matching a
 * predicate, waiting (bounded) for it to arrive.
 */
export class Inbox {
  constructor(what, owner) {
    this.what = what;
    this.owner = owner;
    this.items = [];
    this.taken = new Set();
    this.waiters = new Set();
  }

  put(el) {
    this.items.push(el);
    for (const w of [...this.waiters]) w();
  }

  mark() {
    return this.items.length;
  }

  since(mark, pred = () => true) {
    return this.items.slice(mark).filter(pred);
  }

  pending(pred = () => true) {
    return this.items.filter((el, i) => !this.taken.has(i) && pred(el));
  }

  #find(pred) {
    for (let i = 0; i < this.items.length; i += 1) {
      if (!this.taken.has(i) && pred(this.items[i])) {
        this.taken.add(i);
        return this.items[i];
      }
    }
    return undefined;
  }

  async take(pred, what = 'matching stanza', ms = STEP_MS) {
    const found = this.#find(pred);
    if (found) return found;
    return new Promise((resolve, reject) => {
      const check = () => {
        const el = this.#find(pred);
        if (el) {
          clearTimeout(timer);
          this.waiters.delete(check);
          resolve(el);
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        const rest = this.pending().map(String);
        reject(
          new Error(
            `${this.owner}: no ${what} within ${ms} ms; unconsumed ${this.what}s: ` +
              (rest.length ? rest.join('\n  ') : 'none'),
          ),
        );
      }, ms);
      this.waiters.add(check);
    });
  }

  /** Asserts that no unconsumed element matching pred arrives (since mark) within ms. */
  async noneWithin(pred, what = 'stanza', ms = QUIET_MS, since = undefined) {
    const start = since ?? this.items.length;
    await sleep(ms);
    const got = this.items
      .map((el, i) => [el, i])
      .filter(([el, i]) => i >= start && !this.taken.has(i) && pred(el))
      .map(([el]) => String(el));
    if (got.length) {
      throw new Error(`${this.owner}: unexpected ${what} (${got.length}): ${got.join('\n  ')}`);
    }
  }
}

/** Our client's disco#info: the caps node and the +notify features (XEP-0115, XEP-0163). */
const CAPS_NODE = 'https://roost.invalid/interop/xmppjs';
const IDENTITY = { category: 'client', type: 'bot', name: 'roost xmpp.js interop' };

function capsVer(features) {
  // XEP-0115 §5.1: identities, then features, each followed by '<'.
  let s = `${IDENTITY.category}/${IDENTITY.type}//${IDENTITY.name}<`;
  for (const f of [...features].sort()) s += `${f}<`;
  return crypto.createHash('sha1').update(s, 'utf8').digest('base64');
}

/**
 * One xmpp.js client connection. `transport` is 'starttls' (c2s port),
 * 'tls' (direct TLS, c2s_tls port) or 'ws' (WebSocket); `mechanism` is the
 * one SASL mechanism xmpp.js must use.
 */
export class XClient {
  constructor(server, account, { transport = 'starttls', mechanism = 'SCRAM-SHA-1', resource, password, bind2Rooms = false, userAgentId, fastToken } = {}) {
    this.server = server;
    this.account = account;
    this.transport = transport;
    this.mechanism = mechanism;
    this.name = `${account.local}${resource ? '/' + resource : ''} (${transport}, ${mechanism})`;
    this.trace = []; // every element sent and received, for failure reports
    this.features = []; // every <stream:features/> received, as XML text
    this.offeredMechanisms = null;
    this.saslChallenges = []; // decoded SASL challenges
    this.authMechanism = null; // the mechanism of the <auth/> or <authenticate/> xmpp.js sent
    this.saslProfile = null; // 'sasl' (RFC 6120) or 'sasl2' (XEP-0388)
    this.authAttempts = []; // the mechanism of every SASL2 <authenticate/>
    this.inbox = new Inbox('stanza', this.name);
    this.nonzas = new Inbox('nonza', this.name); // e.g. XEP-0198 <enabled/>, <resumed/>
    this.errors = [];
    this.notify = new Set(); // PEP nodes this client wants +notify for
    this.closed = false;
    const creds = { username: account.local, password: password ?? account.password };
    const x = (this.xmpp = client({
      service: server.service(transport),
      domain: DOMAIN,
      resource,
      // The library's hook for choosing the credentials and the mechanism:
      // xmpp.js runs the SASL exchange with the mechanism given here.
      credentials: async (authenticate, mechanisms, fast) => {
        this.offeredMechanisms = [...mechanisms];
        if (!mechanisms.includes(this.mechanism)) {
          throw new Error(`${this.mechanism} not among the usable mechanisms ${mechanisms}`);
        }
        // A FAST token (XEP-0484) xmpp.js holds is tried first; xmpp.js
        // falls back to the password when the server refuses it.
        const token = fast ? await fast.fetch() : undefined;
        await authenticate({ ...creds, token }, this.mechanism, this.userAgent);
      },
    }));
    // Reconnection only when a test asks for it (stream resumption).
    x.reconnect.stop();
    // The SASL2 user-agent (XEP-0388): a stable id per installation; FAST
    // tokens belong to it.
    this.userAgent = xml('user-agent', { id: userAgentId ?? crypto.randomUUID() }, xml('software', {}, 'roost-interop'));
    if (fastToken) x.fast.saveToken(fastToken);
    // Roost's Bind 2 inline feature: join the new session to the
    // account's rooms. The <rooms/> answer in <bound/> is kept here.
    this.boundRooms = null;
    if (bind2Rooms) {
      x.bind2.use(
        'urn:roost:account-muc:0',
        () => xml('rooms', { xmlns: 'urn:roost:account-muc:0' }),
        (el) => {
          if (el.is('rooms', 'urn:roost:account-muc:0')) this.boundRooms = el;
        },
      );
    }
    // xmpp.js 0.14's Connection.open() starts listening for the server's
    // stream header only after its own header's write callback; over
    // direct TLS the answer can be parsed first, and then open() waits
    // for a header that already came (with RFC 6120 SASL the stream
    // restart after authentication hid this; SASL2 has no restart). We
    // listen from before the write; the library's own wait is dropped.
    const libraryOpen = x.open.bind(x);
    x.open = (options) => {
      const opened = new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no stream header')), LOGIN_TIMEOUT_MS);
        x.once('open', (el) => {
          clearTimeout(timer);
          resolve(el);
        });
      });
      libraryOpen(options).catch(() => {});
      return opened;
    };
    x.on('error', (err) => {
      this.errors.push(err);
      this.note(`ERROR ${err?.condition ?? ''} ${err?.message ?? err}`);
    });
    x.on('element', (el) => {
      this.note(`RECV ${el}`);
      if (el.is('features', 'http://etherx.jabber.org/streams')) this.features.push(String(el));
      if (el.is('challenge', NS.sasl) || el.is('challenge', 'urn:xmpp:sasl:2')) {
        this.saslChallenges.push(Buffer.from(el.text(), 'base64').toString('utf8'));
      }
      // SASL2 (XEP-0388) carries XEP-0198's answers inside <success/>:
      // <bound><enabled/></bound> (Bind 2) or <resumed/>. The tests read
      // them as the nonzas they are without SASL2.
      if (el.is('success', 'urn:xmpp:sasl:2')) {
        const sm = [el.getChild('resumed', NS.sm), el.getChild('failed', NS.sm),
          el.getChild('bound', 'urn:xmpp:bind:0')?.getChild('enabled', NS.sm),
          el.getChild('bound', 'urn:xmpp:bind:0')?.getChild('failed', NS.sm)];
        for (const answer of sm) if (answer) this.nonzas.put(answer);
      }
    });
    x.on('send', (el) => {
      this.note(`SEND ${el}`);
      if (el.is('auth', NS.sasl)) {
        this.authMechanism = el.attrs.mechanism;
        this.saslProfile = 'sasl';
      }
      if (el.is('authenticate', 'urn:xmpp:sasl:2')) {
        this.authMechanism = el.attrs.mechanism;
        this.authAttempts.push(el.attrs.mechanism);
        this.saslProfile = 'sasl2';
      }
    });
    x.on('stanza', (el) => this.inbox.put(el));
    x.on('nonza', (el) => this.nonzas.put(el));
    x.on('status', (s) => this.note(`STATUS ${s}`));
    // Answer disco#info, with the caps node too, so the server learns our
    // +notify features (XEP-0163 §4.2).
    x.iqCallee.get(NS.discoInfo, 'query', (ctx) => {
      const node = ctx.element.attrs.node;
      return xml(
        'query',
        node ? { xmlns: NS.discoInfo, node } : { xmlns: NS.discoInfo },
        xml('identity', IDENTITY),
        ...this.#features().map((v) => xml('feature', { var: v })),
      );
    });
    // Pushes are acknowledged with an empty result (RFC 6121 §2.1.6,
    // XEP-0191 §3.3); the tests read them from the inbox.
    x.iqCallee.set(NS.roster, 'query', () => true);
    x.iqCallee.set(NS.blocking, 'block', () => true);
    x.iqCallee.set(NS.blocking, 'unblock', () => true);
  }

  #features() {
    return [NS.discoInfo, NS.caps, NS.ping, ...[...this.notify].map((n) => `${n}+notify`)];
  }

  /** The XEP-0115 <c/> element for the current features. */
  capsElement() {
    return xml('c', { xmlns: NS.caps, hash: 'sha-1', node: CAPS_NODE, ver: capsVer(this.#features()) });
  }

  note(line) {
    const t = new Date().toISOString().slice(11, 23);
    this.trace.push(`${t} ${line}`);
    if (process.env.XMPPJS_DEBUG) console.error(`[${this.name}] ${t} ${line}`);
  }

  get jid() {
    return this.xmpp.jid?.toString();
  }

  /**
   * Connect, authenticate and bind (bounded); rejects on any failure.
   * When the server offers stream management, also waits until xmpp.js
   * has taken in the server's <enabled/> (see smSettled).
   */
  async connect() {
    try {
      await within(LOGIN_TIMEOUT_MS, this.xmpp.start(), `${this.name}: login`);
      if (this.features.at(-1)?.includes(`<sm xmlns="${NS.sm}"`)) {
        await within(STEP_MS, this.smSettled(), `${this.name}: stream management <enabled/>`);
      }
    } catch (err) {
      await this.close();
      throw err;
    }
    return this;
  }

  /**
   * xmpp.js 0.14.0 sends <enable/> after 'online' and zeroes its count of
   * received stanzas when its own <enable/> round trip completes, which can
   * be after it counted stanzas that followed <enabled/>; its next <a/> then
   * has a lower 'h' than the one before. Roost ignores such a stale 'h'
   * (XEP-0198 only forbids one above what was sent), but the library's
   * count stays off until it has taken in <enabled/>; tests start after
   * that, so that their acks mean what they check.
   */
  async smSettled() {
    const sm = this.xmpp.streamManagement;
    const answer = await this.nonzas.take((el) => el.is('enabled', NS.sm) || el.is('failed', NS.sm), 'SM <enabled/>');
    // Peek, not consume: tests read <enabled/> themselves.
    this.nonzas.taken.delete(this.nonzas.items.indexOf(answer));
    if (!answer.is('enabled', NS.sm)) throw new Error(`stream management not enabled: ${answer}`);
    const deadline = Date.now() + STEP_MS;
    while (!sm.enabled) {
      if (Date.now() > deadline) throw new Error('xmpp.js did not take in <enabled/>');
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  send(el) {
    return within(STEP_MS, this.xmpp.send(el), `${this.name}: send`);
  }

  /** An IQ round trip: the result stanza; rejects on an error reply. */
  iq(el, ms = STEP_MS) {
    return within(ms + 1000, this.xmpp.iqCaller.request(el, ms), `${this.name}: iq ${el.attrs.type}`);
  }

  /** An IQ round trip that must fail: the error reply stanza. */
  async iqError(el, ms = STEP_MS) {
    if (!el.attrs.id) el.attrs.id = `err-${crypto.randomUUID()}`;
    const { id } = el.attrs;
    await this.send(el);
    return this.inbox.take((s) => s.name === 'iq' && s.attrs.id === id, `reply to iq ${id}`, ms);
  }

  ping(to = DOMAIN) {
    return this.iq(xml('iq', { type: 'get', to }, xml('ping', { xmlns: NS.ping })));
  }

  take(pred, what, ms) {
    return this.inbox.take(pred, what, ms);
  }

  noneWithin(pred, what, ms, since) {
    return this.inbox.noneWithin(pred, what, ms, since);
  }

  /** Available presence, with caps. */
  presence(attrs = {}, ...children) {
    return this.send(xml('presence', attrs, this.capsElement(), ...children));
  }

  /** Kill the connection abruptly, as when a phone loses its network. */
  drop() {
    const sock = this.xmpp.socket?.socket;
    if (!sock) throw new Error(`${this.name}: not connected`);
    // destroy(), not end(): no </stream:stream>, no TLS close_notify;
    // the server sees the TCP connection close under the stream.
    sock.destroy();
  }

  async close() {
    if (this.closed) return;
    this.closed = true;
    const x = this.xmpp;
    x.reconnect.stop();
    if (x.status === 'offline') return;
    try {
      await within(5_000, x.stop(), `${this.name}: stop`);
    } catch {
      const sock = x.socket?.socket;
      try {
        if (sock?.destroy) sock.destroy();
        else if (sock?.close) sock.close();
      } catch {
        // Already gone.
      }
    }
  }

  dump() {
    return `---- ${this.name} (${this.jid ?? 'not bound'}) ----\n${this.trace.join('\n')}`;
  }
}

/**
 * What one test opens: clients (closed at the end, pass or fail) and, on
 * failure, the stanza traces of each client and the server log of the test
 * appended to the error.
 */
export class Session {
  constructor(server) {
    this.server = server;
    this.clients = [];
    this.logMark = server.logSize();
  }

  client(account, opts = {}) {
    const c = new XClient(this.server, account, opts);
    this.clients.push(c);
    return c;
  }

  async connect(account, opts = {}) {
    return this.client(account, opts).connect();
  }

  async closeAll() {
    await Promise.all(this.clients.map((c) => c.close()));
  }

  report() {
    let log = this.server.log(this.logMark);
    if (log.length > 60_000) log = `[... cut ...]\n${log.slice(-60_000)}`;
    return [...this.clients.map((c) => c.dump()), `---- roost server log ----\n${log}`].join('\n');
  }
}

/** test(name, body) wrapper: body gets a Session; failures carry the traces. */
export function withSession(getServer, body) {
  return async () => {
    const s = new Session(getServer());
    try {
      await body(s);
    } catch (err) {
      if (err && typeof err === 'object') {
        err.message = `${err.message}\n${s.report()}`;
      }
      throw err;
    } finally {
      await s.closeAll();
    }
  };
}

// -- stanza predicates ------------------------------------------------------

export const isMessage = (el) => el.name === 'message';
export const isPresence = (el) => el.name === 'presence';
export const ptypeOf = (el) => el.attrs.type ?? 'available';

export function presenceFrom(jid, type = undefined) {
  const full = jid.includes('/');
  return (el) =>
    el.name === 'presence' &&
    (full ? el.attrs.from === jid : bare(el.attrs.from) === jid) &&
    (type === undefined || ptypeOf(el) === type);
}

export function chatFrom(jid, body = undefined) {
  const full = jid.includes('/');
  return (el) =>
    el.name === 'message' &&
    (full ? el.attrs.from === jid : bare(el.attrs.from) === jid) &&
    el.attrs.type !== 'error' &&
    el.getChildText('body') !== null &&
    (body === undefined || el.getChildText('body') === body);
}

export function mucCodes(el) {
  const x = el.getChild('x', NS.mucUser);
  return new Set((x?.getChildren('status') ?? []).map((s) => Number(s.attrs.code)));
}

export function occupant(room, nick = undefined, type = undefined, codes = []) {
  return (el) =>
    el.name === 'presence' &&
    bare(el.attrs.from) === room &&
    (nick === undefined || resourceOf(el.attrs.from) === nick) &&
    (type === undefined || ptypeOf(el) === type) &&
    codes.every((c) => mucCodes(el).has(c));
}

export function groupchat(room, body = undefined, nick = undefined) {
  return (el) =>
    el.name === 'message' &&
    el.attrs.type === 'groupchat' &&
    bare(el.attrs.from) === room &&
    (nick === undefined || resourceOf(el.attrs.from) === nick) &&
    el.getChildText('body') !== null &&
    (body === undefined || el.getChildText('body') === body);
}

export function subjectFrom(room) {
  return (el) =>
    el.name === 'message' &&
    el.attrs.type === 'groupchat' &&
    bare(el.attrs.from) === room &&
    el.getChildText('body') === null &&
    el.getChild('subject') !== undefined;
}

export function errorCondition(el) {
  const err = el.getChild('error');
  if (!err) return null;
  const cond = err.children.find((c) => typeof c !== 'string' && c.attrs.xmlns === NS.stanzas && c.name !== 'text');
  return cond ? cond.name : null;
}

/** The roster as the server has it: { jid: {subscription, name, ask, groups} }. */
export async function rosterOf(c) {
  const res = await c.iq(xml('iq', { type: 'get' }, xml('query', { xmlns: NS.roster })));
  const out = {};
  for (const item of res.getChild('query', NS.roster).getChildren('item')) {
    out[item.attrs.jid] = {
      subscription: item.attrs.subscription ?? 'none',
      name: item.attrs.name,
      ask: item.attrs.ask,
      groups: item.getChildren('group').map((g) => g.text()),
    };
  }
  return out;
}

/**
 * Two accounts with a mutual presence subscription ('both'), made with
 * presence stanzas. Both clients must be available (have sent presence):
 * subscription requests reach available resources only (RFC 6121 §3.1.3).
 */
export async function befriend(a, b) {
  const A = bare(a.jid);
  const B = bare(b.jid);
  await a.send(xml('presence', { to: B, type: 'subscribe' }));
  await b.take(presenceFrom(A, 'subscribe'), `subscribe from ${A}`);
  await b.send(xml('presence', { to: A, type: 'subscribed' }));
  await b.send(xml('presence', { to: A, type: 'subscribe' }));
  await a.take(presenceFrom(B, 'subscribed'), `subscribed from ${B}`);
  await a.take(presenceFrom(B, 'subscribe'), `subscribe from ${B}`);
  await a.send(xml('presence', { to: B, type: 'subscribed' }));
  await b.take(presenceFrom(A, 'subscribed'), `subscribed from ${A}`);
}

/** Waits until the server's roster of c shows `contact` with `subscription`. */
export async function rosterPushTo(c, contact, subscription) {
  return c.take(
    (el) =>
      el.name === 'iq' &&
      el.attrs.type === 'set' &&
      el.getChild('query', NS.roster)?.getChildren('item').some(
        (i) => i.attrs.jid === contact && (i.attrs.subscription ?? 'none') === subscription,
      ),
    `roster push ${contact} ${subscription}`,
  );
}
