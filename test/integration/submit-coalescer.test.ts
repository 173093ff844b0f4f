/**
 * The API's coalescer against real Postgres and Redis: concurrent submissions share a transaction,
 * and a batch is answered and gives up its Postgres slot once stored, so the next one's transaction
 * overlaps its Redis call; tasks are still indexed in the order they were stored, and settled()
 * waits for the pushes in flight.
 */
import type { TaskQueue } from '../../services/core/queue/queue';
import { SubmitCoalescer } from '../../services/core/tasks/submit-coalescer';
import type { SubmitRequest, SubmitResult } from '../../services/core/tasks/submit';
import { gatedPool } from '../support/gated-pool';
import { createStack, silentLog, Stack } from '../support/stack';

let stack: Stack;
beforeEach(async () => {
  stack = await createStack();
});
afterEach(async () => {
  await stack.close();
});

function req(n: number): SubmitRequest {
  return { type: 'noop', priority: 'default', payload: { n }, maxRetries: 0, tenant: 'default', idempotencyKey: null, canonical: '' };
}

const idOf = (r: SubmitResult) => (r.kind === 'conflict' ? r.taskId : r.task.id);

async function until(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

it('submissions arriving while a batch is in Postgres go together in the next transaction', async () => {
  const gated = gatedPool(stack.pool, 'create-tasks-unkeyed');
  const coalescer = new SubmitCoalescer(
    { pool: gated.pool, queue: stack.queue, log: silentLog, idempotencyTtlMs: 60_000 },
    { maxBatch: 500, maxConcurrent: 1, isOutage: () => false },
  );
  const first = coalescer.submit(req(0));
  await until(() => gated.stats.running === 1, 'the first batch to reach Postgres');
  const rest = Array.from({ length: 5 }, (_, i) => coalescer.submit(req(i + 1)));
  gated.release();
  const results = await Promise.all([first, ...rest]);
  expect(results.every((r) => r.kind === 'created')).toBe(true);
  expect(gated.stats.sizes).toEqual([1, 5]);
});

it("a batch is answered once stored; the next batch's transaction overlaps its Redis call, and Redis indexes them in order", async () => {
  let openRedis: () => void = () => undefined;
  const redisGate = new Promise<void>((r) => (openRedis = r));
  let enqueues = 0;
  // A slow Redis reply: the first enqueue is sent at once, but its answer waits at the gate.
  const queue = new Proxy(stack.queue, {
    get: (target, prop, receiver) =>
      prop === 'enqueue'
        ? async (...args: Parameters<TaskQueue['enqueue']>) => {
            const first = enqueues++ === 0;
            const res = await target.enqueue(...args);
            if (first) await redisGate;
            return res;
          }
        : Reflect.get(target, prop, receiver),
  }) as TaskQueue;
  const coalescer = new SubmitCoalescer(
    { pool: stack.pool, queue, log: silentLog, idempotencyTtlMs: 60_000 },
    { maxBatch: 500, maxConcurrent: 1, isOutage: () => false },
  );
  // Answered while its Redis reply is still held at the gate: Postgres has it.
  const a = await coalescer.submit(req(0));
  expect(a.kind).toBe('created');
  expect(enqueues).toBe(1);
  const second = coalescer.submit(req(1));
  // The second task is committed in Postgres while the first batch still waits for Redis.
  await until(async () => (await stack.pool.query('SELECT count(*)::int AS n FROM tasks')).rows[0].n === 2, 'the second transaction');
  let settled = false;
  const allPushed = coalescer.settled().then(() => (settled = true));
  await new Promise((r) => setTimeout(r, 50));
  expect(settled).toBe(false);
  openRedis();
  await allPushed;
  const b = await second;
  expect(await stack.inspect.lrange(stack.queue.keys.tenantQueue('default', 'default'), 0, -1)).toEqual([idOf(a), idOf(b)]);
});
