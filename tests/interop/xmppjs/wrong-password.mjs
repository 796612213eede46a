// One xmpp.js login with a wrong password, in a process of its own
// (login.test.mjs runs it). xmpp.js 0.14 sometimes leaves the SASL
// failure as an unhandled promise rejection besides rejecting start();
// under node's test runner that fails whichever test is running, so the
// attempt runs here, where the outcome is reported on stdout as JSON.
//
//   node wrong-password.mjs '<services JSON>' <user> <transport> <mechanism> <password>

import { XClient } from './harness.mjs';

process.on('unhandledRejection', () => {
  // The library's second copy of the SASL failure; the first is reported.
});

const [services, user, transport, mechanism, password] = process.argv.slice(2);
const server = { service: (t) => JSON.parse(services)[t] };
const c = new XClient(server, { local: user, jid: `${user}@localhost` }, { transport, mechanism, password });
let outcome;
try {
  await c.connect();
  outcome = { connected: true, jid: String(c.jid ?? '') };
  await c.close();
} catch (err) {
  outcome = { connected: false, name: err?.name, condition: err?.condition, jid: c.jid ?? null };
}
process.stdout.write(JSON.stringify(outcome) + '\n');
process.exit(0);
