/**
 * A replay is the same request sent again: a field the client left out must not make it a conflict
 * when the default behind it changed meanwhile (DEFAULT_MAX_RETRIES changed between the two
 * requests, or two API replicas with different settings during a rollout).
 */
import type { RunningServer } from '../../services/api/server';
import { startServer } from '../../services/api/server';
import { createApp } from '../../services/api/app';
import { apiMetrics, createRegistry } from '../../services/core/observability/metrics';
import { createStack, silentLog, Stack } from '../support/stack';

let stack: Stack;
const servers: RunningServer[] = [];

beforeAll(async () => {
  stack = await createStack();
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await stack.close();
});

/** An API over the shared Postgres and Redis with its own DEFAULT_MAX_RETRIES. */
async function api(defaultMaxRetries: number): Promise<string> {
  const app = createApp({ pool: stack.pool, queue: stack.queue, log: silentLog, metrics: apiMetrics(createRegistry('api')), maxBodyBytes: 1 << 20, defaultMaxRetries, idempotencyTtlMs: 60_000 });
  const server = await startServer(app, '127.0.0.1:0');
  servers.push(server);
  return `http://127.0.0.1:${server.address.port}`;
}

const post = async (url: string, path: string, body: unknown, headers: Record<string, string> = {}) => {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

it('a replay leaving out max_retries replays the task after DEFAULT_MAX_RETRIES changed; another request still conflicts', async () => {
  const [before, after] = [await api(5), await api(3)];
  const first = await post(before, '/tasks', { type: 'noop', payload: { n: 1 } }, { 'idempotency-key': 'd-1' });
  expect([first.status, first.body.max_retries]).toEqual([201, 5]);
  const again = await post(after, '/tasks', { type: 'noop', payload: { n: 1 } }, { 'idempotency-key': 'd-1' });
  expect([again.status, again.body.id]).toEqual([200, first.body.id]);
  // Stated as the task has it: the same request. Another value, or another payload: a conflict.
  expect((await post(after, '/tasks', { type: 'noop', payload: { n: 1 }, max_retries: 5 }, { 'idempotency-key': 'd-1' })).status).toBe(200);
  expect((await post(after, '/tasks', { type: 'noop', payload: { n: 1 }, max_retries: 3 }, { 'idempotency-key': 'd-1' })).status).toBe(409);
  expect((await post(after, '/tasks', { type: 'noop', payload: { n: 2 } }, { 'idempotency-key': 'd-1' })).status).toBe(409);
  // The same in a batch, and with the key repeated inside the batch.
  const batch = await post(after, '/tasks/batch', { tasks: [{ type: 'noop', payload: { n: 1 }, idempotency_key: 'd-1' }, { type: 'noop', payload: { n: 1 }, idempotency_key: 'd-1' }] });
  expect((batch.body.results as { status: number }[]).map((r) => r.status)).toEqual([200, 200]);
  const mixed = await post(after, '/tasks/batch', { tasks: [{ type: 'noop', payload: { n: 1 }, idempotency_key: 'd-1' }, { type: 'noop', payload: { n: 1 }, max_retries: 5, idempotency_key: 'd-1' }, { type: 'noop', payload: { n: 1 }, max_retries: 3, idempotency_key: 'd-1' }] });
  expect((mixed.body.results as { status: number }[]).map((r) => r.status)).toEqual([200, 200, 409]);
  expect((await stack.pool.query('SELECT count(*)::int AS n FROM tasks')).rows[0].n).toBe(1);
});

it('a POST /workflows replay whose steps leave out max_retries replays the workflow after DEFAULT_MAX_RETRIES changed; another request still conflicts', async () => {
  const [before, after] = [await api(5), await api(3)];
  const body = (third: Record<string, unknown> = {}) => ({
    name: 'defaults',
    tasks: [
      { key: 'a', type: 'noop' },
      { key: 'b', type: 'noop', max_retries: 1, depends_on: ['a'] },
      { key: 'c', type: 'noop', depends_on: ['a'], ...third },
    ],
  });
  const key = { 'idempotency-key': 'wf-defaults-1' };
  const first = await post(before, '/workflows', body(), key);
  expect(first.status).toBe(201);
  const id = (first.body.workflow as { id: string }).id;
  const again = await post(after, '/workflows', body(), key);
  expect(again.status).toBe(200);
  expect((again.body.workflow as { id: string }).id).toBe(id);
  // Stated as the steps have it: the same request. Another value: a conflict.
  expect((await post(after, '/workflows', body({ max_retries: 5 }), key)).status).toBe(200);
  expect((await post(after, '/workflows', body({ max_retries: 3 }), key)).status).toBe(409);
  expect((await post(after, '/workflows', { ...body(), name: 'other' }, key)).status).toBe(409);
  expect((await stack.pool.query('SELECT count(*)::int AS n FROM workflows')).rows[0].n).toBe(1);
  expect((await post(after, `/workflows/${id}/cancel`, {})).status).toBe(200);
});
