/**
 * Requests without a valid key take none of the request-body budget (MAX_INFLIGHT_BODY_BYTES): on
 * POST /tasks as on the express routes, the key is checked before a body is admitted, so clients
 * with no key (or random ones) trickling large bodies cannot make every real submission a 503.
 */
import net from 'node:net';
import { Authenticator } from '../../services/api/auth/authenticator';
import type { RunningServer } from '../../services/api/server';
import { createKey } from '../../services/core/tenancy/key-store';
import { startBodyBudgetApi, trickleBody } from '../support/body-budget';
import { createStack, silentLog, Stack } from '../support/stack';

const BODY = 64 * 1024;
let stack: Stack;
let auth: Authenticator;
let server: RunningServer;
let url = '';
const holders: net.Socket[] = [];

beforeAll(async () => {
  stack = await createStack();
  auth = new Authenticator(stack.pool, { mode: 'keys', cacheMs: 300, log: silentLog });
  ({ url, server } = await startBodyBudgetApi(stack, auth, BODY));
});
afterAll(async () => {
  for (const s of holders) s.destroy();
  await server.stop();
  await auth.close();
  await stack.close();
});

/** Declares a full-size body, sends its first bytes and holds the rest back (as a slow client does). */
async function trickle(authorization: string | null): Promise<void> {
  holders.push(await trickleBody(server.address.port, '/tasks', { length: BODY, first: '{"type":"', authorization, holdMs: 300 }));
}

it('clients with no key, a malformed one or an unknown one, holding bodies back, leave room for a real submission', async () => {
  const key = (await createKey(stack.pool, { tenant: 'budget', scopes: ['tasks:write'], expiresInMs: null })).key;
  const random = () => `tsk_${[...Array(16)].map(() => Math.floor(Math.random() * 16).toString(16)).join('')}_${'D'.repeat(43)}`;
  await Promise.all([trickle(null), trickle('Bearer not-a-key'), trickle(`Bearer ${random()}`), trickle(`Bearer ${random()}`)]);
  const res = await fetch(`${url}/tasks`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ type: 'noop' }) });
  expect(res.status).toBe(201);
});

it('a refused client gets its 401 once its body has arrived', async () => {
  const answer = await new Promise<string>((resolve, reject) => {
    const s = net.connect(server.address.port, '127.0.0.1', () => {
      s.write(`POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n`);
      setTimeout(() => s.write('{}'), 200);
    });
    let text = '';
    s.on('data', (d) => (text += d.toString()));
    s.on('end', () => resolve(text));
    s.on('error', reject);
  });
  expect(answer).toMatch(/^HTTP\/1\.1 401/);
  expect(answer).toContain('WWW-Authenticate: Bearer');
});
