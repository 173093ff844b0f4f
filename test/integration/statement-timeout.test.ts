/**
 * A request whose statement Postgres cancels at its statement_timeout (57014: a role or database
 * setting, a lock held by a long transaction) wrote nothing and may be sent again: it is answered
 * 503 with Retry-After, like an outage, not 500.
 */
import { Client } from 'pg';
import { createPgPool } from '../../services/core/db/postgres';
import { submitTasks } from '../../services/core/tasks/submit';
// The bulk answers are checked against the OpenAPI document (the contract test).
import { fetch as contractFetch } from '../support/contract';
import { createStack, silentLog, Stack, startApi } from '../support/stack';

let stack: Stack;
beforeEach(async () => {
  stack = await createStack();
});
afterEach(async () => {
  await stack.close();
});

it.each([
  ['POST /tasks', '/tasks', { type: 'noop' }],
  ['POST /tasks/batch', '/tasks/batch', { tasks: [{ type: 'noop' }, { type: 'noop' }] }],
])('%s cancelled by statement_timeout is a 503 (retry), and nothing was written', async (_, path, body) => {
  const db = new URL(stack.dbUrl).pathname.slice(1);
  await stack.pool.query(`ALTER DATABASE "${db}" SET statement_timeout = 300`);
  const pool = createPgPool(stack.dbUrl, 2, 'statement-timeout-test', silentLog);
  const api = await startApi({ ...stack, pool });
  const locker = new Client({ connectionString: stack.dbUrl });
  await locker.connect();
  try {
    await locker.query('SET statement_timeout = 0');
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE');
    const res = await fetch(`${api.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).not.toBeNull();
    await locker.query('ROLLBACK');
    expect((await stack.pool.query('SELECT count(*)::int AS n FROM tasks')).rows[0].n).toBe(0);
  } finally {
    await locker.end();
    await api.server.stop();
    await pool.end();
  }
});

/**
 * A bulk call commits a batch at a time: one whose later batch is cancelled at statement_timeout
 * has changed what the earlier batches did. Its 503 says how many and where to carry on.
 */
it('a bulk cancel or retry cut short by statement_timeout after a committed batch says what it changed and where to carry on', async () => {
  const ids = (await submitTasks(
    { pool: stack.pool, queue: stack.queue, log: silentLog, idempotencyTtlMs: 60000 },
    Array.from({ length: 5 }, () => ({ type: 'noop', priority: 'default' as const, payload: {}, maxRetries: 0, tenant: 'default', idempotencyKey: null, canonical: '' })),
  )).map((r) => r.task.id);
  // The order a bulk call walks: newest first.
  const walk = (await stack.pool.query<{ id: string }>('SELECT id FROM tasks WHERE id = ANY($1::uuid[]) ORDER BY created_at DESC, id DESC', [ids])).rows.map((r) => r.id);
  const statuses = async () => (await stack.pool.query<{ id: string; status: string }>('SELECT id, status::text AS status FROM tasks ORDER BY created_at DESC, id DESC')).rows;
  const db = new URL(stack.dbUrl).pathname.slice(1);
  await stack.pool.query(`ALTER DATABASE "${db}" SET statement_timeout = 300`);
  const pool = createPgPool(stack.dbUrl, 2, 'statement-timeout-test', silentLog);
  // Batches of 2: the first commits, the second waits for the third task's row lock until its statement is cancelled.
  const api = await startApi({ ...stack, cfg: { ...stack.cfg, BULK_BATCH: 2 }, pool });
  const post = async (path: string, body: unknown) => {
    const res = await contractFetch(`${api.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as Record<string, unknown> };
  };
  const locker = new Client({ connectionString: stack.dbUrl });
  await locker.connect();
  try {
    await locker.query('SET statement_timeout = 0');
    for (const [path, from, to] of [['/tasks/cancel', 'queued', 'cancelled'], ['/tasks/retry', 'cancelled', 'queued']] as const) {
      await locker.query('BEGIN');
      await locker.query('SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE', [walk[2]]);
      const cut = await post(path, { filter: { status: from } });
      expect(cut.status).toBe(503);
      expect(cut.retryAfter).not.toBeNull();
      expect((await statuses()).map((r) => r.status)).toEqual([to, to, from, from, from]);
      expect(cut.body).toMatchObject({ changed: 2, next_cursor: expect.any(String) });
      expect(cut.body.detail).not.toMatch(/nothing was written/);
      await locker.query('ROLLBACK');
      // Carried on from there: the rest, each once.
      const rest = await post(path, { filter: { status: from }, cursor: cut.body.next_cursor });
      expect(rest.body).toMatchObject({ matched: 3, changed: 3, has_more: false });
      expect((await statuses()).map((r) => r.status)).toEqual([to, to, to, to, to]);
    }
  } finally {
    await locker.end();
    await api.server.stop();
    await pool.end();
  }
});

it('a workflow cancel cut short by statement_timeout after its first commit says the cancel was recorded and what it cancelled', async () => {
  const db = new URL(stack.dbUrl).pathname.slice(1);
  await stack.pool.query(`ALTER DATABASE "${db}" SET statement_timeout = 300`);
  const pool = createPgPool(stack.dbUrl, 2, 'statement-timeout-test', silentLog);
  const api = await startApi({ ...stack, pool });
  const post = async (path: string, body?: unknown) => {
    const res = await contractFetch(`${api.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const made = await post('/workflows', { name: 'etl', tasks: [{ key: 'extract', type: 'noop' }, { key: 'clean', type: 'noop', depends_on: ['extract'] }, { key: 'load', type: 'noop', depends_on: ['clean'] }] });
  expect(made.status).toBe(201);
  const w = made.body.workflow as { id: string };
  const steps = async () => (await stack.pool.query<{ step_key: string; status: string }>('SELECT step_key, status::text AS status FROM tasks WHERE workflow_id = $1 ORDER BY step_key', [w.id])).rows;
  const root = (await stack.pool.query<{ id: string }>("SELECT id FROM tasks WHERE workflow_id = $1 AND step_key = 'extract'", [w.id])).rows[0]!.id;
  const locker = new Client({ connectionString: stack.dbUrl });
  await locker.connect();
  try {
    await locker.query('SET statement_timeout = 0');
    await locker.query('BEGIN');
    // The queued root's row is held: the waiting steps' statement commits, the root's cancel times out.
    await locker.query('SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE', [root]);
    const cut = await post(`/workflows/${w.id}/cancel`);
    expect(cut.status).toBe(503);
    expect(await steps()).toEqual([{ step_key: 'clean', status: 'cancelled' }, { step_key: 'extract', status: 'queued' }, { step_key: 'load', status: 'cancelled' }]);
    expect(cut.body).toMatchObject({ changed: 2 });
    expect(cut.body.detail).not.toMatch(/nothing was written/);
    await locker.query('ROLLBACK');
    // Sent again, it cancels the rest.
    const again = await post(`/workflows/${w.id}/cancel`);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ cancelled: 1, cancelling: 0 });
    expect((await steps()).map((s) => s.status)).toEqual(['cancelled', 'cancelled', 'cancelled']);
  } finally {
    await locker.end();
    await api.server.stop();
    await pool.end();
  }
});
