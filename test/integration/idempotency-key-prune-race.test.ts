/**
 * An expired idempotency key claimed again by a new request while the key pruner deletes expired
 * keys: the pruner must not delete the key its new task now holds, or a replay of that request
 * would create a second task.
 */
import type { Pool, PoolClient } from 'pg';
import { createTasks, pruneIdempotencyKeys } from '../../services/core/tasks/task-store';
import { uuidv7 } from '../../services/core/tasks/uuid';
import { createStack, Stack } from '../support/stack';

let stack: Stack;
beforeAll(async () => {
  stack = await createStack();
});
afterAll(async () => {
  await stack.close();
});

/** A pool whose transactions wait at COMMIT until `release` (statements before it have run). */
function commitGated(real: Pool): { pool: Pool; atCommit: Promise<void>; release: () => void } {
  let arrived: () => void = () => undefined;
  const atCommit = new Promise<void>((r) => (arrived = r));
  let open: () => void = () => undefined;
  const gate = new Promise<void>((r) => (open = r));
  const connect = async () => {
    const client = await real.connect();
    return new Proxy(client, {
      get: (target, prop, receiver) =>
        prop === 'query'
          ? async (config: unknown, values?: unknown) => {
              if (config === 'COMMIT') {
                arrived();
                await gate;
              }
              return (target.query as (c: unknown, v?: unknown) => Promise<unknown>)(config, values);
            }
          : Reflect.get(target, prop, receiver),
    }) as PoolClient;
  };
  const pool = new Proxy(real, { get: (target, prop, receiver) => (prop === 'connect' ? connect : Reflect.get(target, prop, receiver)) });
  return { pool, atCommit, release: () => open() };
}

const request = (key: string) => ({
  task: { id: uuidv7(), tenant: 'default', type: 'noop', priority: 'default' as const, payload: {}, maxRetries: 0, idempotencyKey: key, retry: null, timeoutMs: null, runAt: null },
  requestHash: 'h',
});

it('a key claimed again while the pruner runs keeps its new task, and a replay replays it', async () => {
  const [old] = await createTasks(stack.pool, [request('k-1')], 1);
  await stack.pool.query("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'");
  // A new request claims the expired key; its transaction is held open just before COMMIT.
  const gated = commitGated(stack.pool);
  const claiming = createTasks(gated.pool, [request('k-1')], 60_000);
  await gated.atCommit;
  // The pruner reads the key as expired and waits for the claim's row lock.
  const pruning = pruneIdempotencyKeys(stack.pool, 1000);
  for (let i = 0; i < 100; i++) {
    const { rows } = await stack.pool.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'DELETE FROM idempotency_keys%'");
    if (rows[0].n > 0) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  gated.release();
  const [claimed] = await claiming;
  expect(claimed!.kind).toBe('created');
  expect(claimed!.task.id).not.toBe(old!.task.id);
  await pruning;
  const { rows } = await stack.pool.query("SELECT task_id FROM idempotency_keys WHERE key = 'k-1'");
  expect(rows).toEqual([{ task_id: claimed!.task.id }]);
  const [replay] = await createTasks(stack.pool, [request('k-1')], 60_000);
  expect([replay!.kind, replay!.task.id]).toEqual(['replayed', claimed!.task.id]);
});
