/**
 * The Postgres pool when Postgres ends a connection a caller has checked out (a restart, a
 * failover, pg_terminate_backend): the caller's statement or transaction fails and the connection
 * leaves the pool, while the process goes on. pg emits the loss as an `error` event on the client,
 * and a checked-out client has no listener of the pool's: unhandled, that event killed the process.
 */
import { inTransaction } from '../../services/core/db/transaction';
import { analyzeStaleTables } from '../../services/core/tasks/table-stats';
import { createStack, Stack } from '../support/stack';

let stack: Stack;
beforeEach(async () => {
  stack = await createStack();
});
afterEach(async () => {
  await stack.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const terminate = (pid: number) => stack.pool.query('SELECT pg_terminate_backend($1)', [pid]);

it('a transaction whose connection Postgres ends while it waits between statements fails; the process and the pool go on', async () => {
  // As the workflow stopper's transaction waits for Redis between its statements.
  const tx = inTransaction(stack.pool, async (c) => {
    const { rows } = await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    await terminate(rows[0]!.pid);
    await sleep(200);
    await c.query('SELECT 1');
  });
  await expect(tx).rejects.toThrow(/not queryable|terminat/);
  expect((await stack.pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
});

it('a statement running on a checked-out connection that Postgres ends fails; the process and the pool go on', async () => {
  const client = await stack.pool.connect();
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  const sleeping = client.query('SELECT pg_sleep(5)');
  await sleep(100);
  await terminate(rows[0]!.pid);
  await expect(sleeping).rejects.toThrow(/terminat/);
  await sleep(100);
  client.release(new Error('connection lost'));
  // The stats refresher (a connection of its own) and plain queries still work.
  await expect(analyzeStaleTables(stack.pool)).resolves.toBeDefined();
  expect((await stack.pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
});
