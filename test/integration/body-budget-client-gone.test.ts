/**
 * A request whose client goes away while its key is being looked up gives back the body budget
 * (MAX_INFLIGHT_BODY_BYTES) it is admitted for: its response has already closed, so a reservation
 * made then would wait for a 'close' that never comes, and a few such requests (clients timing out
 * while Postgres is slow) made every later request with a body a 503 until the API restarted.
 */
import { Pool } from 'pg';
import { Authenticator } from '../../services/api/auth/authenticator';
import type { RunningServer } from '../../services/api/server';
import { createKey } from '../../services/core/tenancy/key-store';
import { startBodyBudgetApi, trickleBody } from '../support/body-budget';
import { createStack, silentLog, Stack } from '../support/stack';

const BODY = 64 * 1024;
const LOOKUP_MS = 400;
let stack: Stack;
let auth: Authenticator;
let server: RunningServer;
let url = '';
let key = '';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  stack = await createStack();
  // Every key lookup takes LOOKUP_MS to come back (a busy Postgres).
  const slow = new Proxy(stack.pool, {
    get(target, prop, receiver) {
      if (prop !== 'query') return Reflect.get(target, prop, receiver);
      return async (...args: unknown[]) => {
        const out = await (target.query as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        await sleep(LOOKUP_MS);
        return out;
      };
    },
  }) as Pool;
  auth = new Authenticator(slow, { mode: 'keys', cacheMs: 100, log: silentLog });
  ({ url, server } = await startBodyBudgetApi(stack, auth, BODY));
  key = (await createKey(stack.pool, { tenant: 'gone', scopes: ['tasks:write'], expiresInMs: null })).key;
});
afterAll(async () => {
  await server.stop();
  await auth.close();
  await stack.close();
});

/** Sends a request's head declaring a full-size body, then hangs up before its key is looked up. */
async function leave(path: string): Promise<void> {
  (await trickleBody(server.address.port, path, { length: BODY, first: '{"t', authorization: `Bearer ${key}`, holdMs: LOOKUP_MS / 4 })).destroy();
}

async function submit(path: string, body: unknown): Promise<number> {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  await res.arrayBuffer();
  return res.status;
}

it.each([
  ['/tasks', { type: 'noop' }, 201],
  ['/tasks/batch', { tasks: [{ type: 'noop' }] }, 200],
])('clients of %s that hang up during the key lookup leave the body budget as it was', async (path, body, ok) => {
  // Past the cache: each round's requests wait for a lookup of their own.
  for (let round = 0; round < 3; round++) {
    await sleep(150);
    await Promise.all([leave(path), leave(path)]);
    await sleep(LOOKUP_MS * 2);
  }
  await sleep(150);
  expect(await submit(path, body)).toBe(ok);
});
