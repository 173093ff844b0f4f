/**
 * A request whose statement Postgres cancels at its statement_timeout (57014: a role or database
 * setting, a lock held by a long transaction) wrote nothing and may be sent again: it is answered
 * 503 with Retry-After, like an outage, not 500.
 */
import { Client } from 'pg';
import { createPgPool } from '../../services/core/db/postgres';
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
