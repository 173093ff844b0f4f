/**
 * The API's memory follows settings, not what clients send at once: with a 64 MB heap, 100
 * concurrent POST /tasks of 900 KB each (1.4 times the heap) and as many batches leave it up,
 * every answer is a 201 or a 503 with Retry-After, and every 201 is exactly one task. (Before, the
 * coalescer joined them all into one statement and the process died of heap exhaustion, resetting
 * every client.)
 * Spawns the built api and worker: run `npm run build` first.
 */
import { Pool } from 'pg';
import { freePort, killAllChildren, spawnService, type ChildHandle } from '../support/processes';
import { waitFor } from '../support/stack';
import { createTestDatabase, testRedisAddr, uniqueRedisPrefix, type TestDatabase } from '../support/test-env';
import { AUTH_ENV, AUTH_HEADER } from '../support/auth';

const CONCURRENT = 100;
const PAYLOAD_CHARS = 900_000;

let db: TestDatabase;
let pool: Pool;
let api: ChildHandle | undefined;
let worker: ChildHandle | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new Pool({ connectionString: db.url, max: 2 });
});

afterAll(async () => {
  await api?.stop();
  await worker?.stop();
  await killAllChildren();
  await pool?.end();
  await db?.drop();
});

it('an api with a 64 MB heap takes 100 concurrent 900 KB submissions, twice over, and stays up; a worker with 64 MB runs them', async () => {
  const env = { POSTGRES_URL: db.url, REDIS_ADDR: testRedisAddr(), REDIS_KEY_PREFIX: uniqueRedisPrefix('apimem'), LOG_LEVEL: 'info' };
  const port = await freePort();
  api = await spawnService('dist/services/api/main.js', { ...env, ...AUTH_ENV, API_ADDR: `127.0.0.1:${port}`, METRICS_ADDR: `127.0.0.1:${await freePort()}` }, { nodeArgs: ['--max-old-space-size=64'] });
  let exited = false;
  void api.exited.then(() => (exited = true));
  const url = `http://127.0.0.1:${port}`;
  const blob = 'x'.repeat(PAYLOAD_CHARS);
  const created = new Set<string>();
  const statuses: number[] = [];

  const send = async (path: string, body: string) => {
    const res = await fetch(`${url}${path}`, { method: 'POST', headers: { ...AUTH_HEADER, 'content-type': 'application/json' }, body });
    statuses.push(res.status);
    if (res.status === 503) {
      expect(res.headers.get('retry-after')).toBeTruthy();
      await res.arrayBuffer();
      return;
    }
    const answer = (await res.json()) as { id?: string; results?: { status: number; task?: { id: string } }[] };
    if (res.status === 201) created.add(answer.id!);
    for (const r of answer.results ?? []) if (r.status === 201) created.add(r.task!.id);
  };
  await Promise.all(Array.from({ length: CONCURRENT }, (_, i) => send('/tasks', JSON.stringify({ type: 'noop', payload: { i, blob } }))));
  await Promise.all(Array.from({ length: CONCURRENT }, (_, i) => send('/tasks/batch', JSON.stringify({ tasks: [{ type: 'noop', payload: { i, blob } }] }))));

  expect(exited).toBe(false);
  expect(statuses.every((s) => s === 201 || s === 200 || s === 503)).toBe(true);
  expect(created.size).toBeGreaterThan(0);
  const { rows } = await pool.query<{ id: string }>('SELECT id FROM tasks');
  expect(rows.map((r) => r.id).sort()).toEqual([...created].sort());

  // The API still answers normally afterwards.
  const res = await fetch(`${url}/tasks`, { method: 'POST', headers: { ...AUTH_HEADER, 'content-type': 'application/json' }, body: '{"type":"noop"}' });
  expect(res.status).toBe(201);

  worker = await spawnService('dist/services/worker/main.js', { ...env, METRICS_ADDR: `127.0.0.1:${await freePort()}`, WORKER_POOL: '4' }, { nodeArgs: ['--max-old-space-size=64'] });
  await waitFor(async () => (await pool.query("SELECT count(*)::int AS n FROM tasks WHERE status <> 'succeeded'")).rows[0].n === 0, 60_000, 'every task to succeed');
  expect(exited).toBe(false);
}, 180_000);
