// Test harness for the browser test: a `roost serve` process on free
// loopback ports with a temporary data folder, a tiny static file server
// for the page and Converse.js, and headless Chromium (Debian's) driven by
// Playwright. Everything is bounded in time and stops by itself.

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '..', '..');
export const ARTIFACTS = path.join(REPO, 'test-artifacts');
export const DOMAIN = 'localhost';
export const MUC_DOMAIN = `conference.${DOMAIN}`;

const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;
const CLI_TIMEOUT_MS = 30_000;

export function roostBin() {
  const bin = process.env.ROOST_BIN || 'target/debug/roost';
  return path.isAbsolute(bin) ? bin : path.join(REPO, bin);
}

export function freePort() {
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

/** The config's `log` decides what the server logs, not RUST_LOG. */
function serverEnv() {
  const env = { ...process.env, NO_COLOR: '1' };
  delete env.RUST_LOG;
  return env;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** One `roost serve` process with its own ports, config and data folder. */
export class Roost {
  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'roost-browser-'));
    this.config = path.join(this.dir, 'roost.toml');
    this.logPath = path.join(this.dir, 'server.log');
    this.proc = null;
  }

  async start() {
    const [c2s, c2sTls, web] = [await freePort(), await freePort(), await freePort()];
    this.httpPort = web;
    this.ports = [c2s, c2sTls, web];
    fs.writeFileSync(
      this.config,
      [
        `domain = "${DOMAIN}"`,
        `data_dir = "${path.join(this.dir, 'data')}"`,
        'log = "info,roost_core::http=debug"',
        '[listen]',
        `c2s = "127.0.0.1:${c2s}"`,
        `c2s_tls = "127.0.0.1:${c2sTls}"`,
        `http = "127.0.0.1:${web}"`,
        'https = ""',
        'proxy65 = ""',
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
    let pending = [...this.ports];
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
  }

  get websocketUrl() {
    return `ws://127.0.0.1:${this.httpPort}/xmpp-websocket`;
  }

  /** XEP-0206 BOSH endpoint of the same listener. */
  get boshUrl() {
    return `http://127.0.0.1:${this.httpPort}/http-bind`;
  }

  /** `roost user add`, on the server's config, while it runs. */
  addUser(name, password) {
    execFileSync(
      roostBin(),
      ['user', 'add', `${name}@${DOMAIN}`, '--password', password, '--config', this.config],
      { timeout: CLI_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'pipe'], env: serverEnv() },
    );
    return `${name}@${DOMAIN}`;
  }

  /** Whether this build has the MUC service (its effective config has [muc]). */
  hasMuc() {
    const out = execFileSync(roostBin(), ['check-config', '--config', this.config], {
      timeout: CLI_TIMEOUT_MS,
      encoding: 'utf8',
      env: serverEnv(),
    });
    return /^\[muc\]/m.test(out);
  }

  log() {
    try {
      return fs.readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /** SIGTERM by PID, SIGKILL after a bound; keeps the log in test-artifacts/. */
  async stop() {
    const proc = this.proc;
    this.proc = null;
    if (proc && proc.exitCode === null) {
      proc.kill('SIGTERM');
      const stopped = await Promise.race([this.exited.then(() => true), sleep(STOP_TIMEOUT_MS).then(() => false)]);
      if (!stopped) {
        proc.kill('SIGKILL');
        await this.exited;
      }
    }
    try {
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      fs.copyFileSync(this.logPath, path.join(ARTIFACTS, 'browser-roost.log'));
    } catch {
      // No log yet.
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

const TYPES = {
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.mp3': 'audio/mpeg',
  '.ogg': 'audio/ogg',
  '.html': 'text/html; charset=utf-8',
};

/**
 * Serves `/` (the page, from `page()`), and `/dist/...` from Converse.js's
 * dist folder in node_modules. Loopback only; paths cannot leave `dist`.
 */
export async function staticServer(page) {
  const dist = path.join(REPO, 'tests', 'browser', 'node_modules', 'converse.js', 'dist');
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname === '/' || url.pathname === '/index.html') {
      res.writeHead(200, { 'content-type': TYPES['.html'], 'cache-control': 'no-store' });
      res.end(page(url.searchParams));
      return;
    }
    if (url.pathname.startsWith('/dist/')) {
      const file = path.resolve(dist, '.' + decodeURIComponent(url.pathname.slice('/dist'.length)));
      if (file.startsWith(dist + path.sep) && fs.existsSync(file) && fs.statSync(file).isFile()) {
        res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream' });
        fs.createReadStream(file).pipe(res);
        return;
      }
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  });
  server.keepAliveTimeout = 1000;
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(resolve);
      }),
  };
}

/** Debian's Chromium, headless, on a fresh profile, loopback traffic only. */
export async function launchBrowser() {
  // Playwright gives every launch its own new, empty user data folder.
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    timeout: 30_000,
  });
}

/** A new isolated browser context whose requests may only reach loopback. */
export async function newContext(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(20_000);
  await context.route('**/*', (route) => {
    const host = new URL(route.request().url()).hostname;
    if (host === '127.0.0.1' || host === 'localhost' || host === '[::1]') {
      return route.continue();
    }
    return route.abort();
  });
  return context;
}
