/**
 * The reconciler reads a task it found missing from Redis again (unfinished?) before pushing it.
 * Another push may index it between that read and the reconciler's (an idempotent replay's, its
 * first push having been lost), and a worker run and end it: Redis has forgotten it by the time
 * the reconciler's push lands, which would index it afresh, to run a second time. The push holds
 * a share lock on the rows still unfinished, so a worker's outcome write waits for it.
 */
import type { Pool } from 'pg';
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import type { TaskQueue } from '../../services/core/queue/queue';
import { Reconciler } from '../../services/worker/reconciler';
import { endedOrWaiting, leaseAndRun } from '../support/push-race';
import { silentLog, stackWithApi } from '../support/stack';

const fx = stackWithApi();
afterAll(() => jest.restoreAllMocks());
const post = (body: unknown) => fx.post('/tasks', body);

it('a reconciler push of a task found missing does not index it again once another push indexed it and a worker ran and ended it meanwhile', async () => {
  // The first push is lost: the task is queued in Postgres only, and settled past the grace period.
  const lost = jest.spyOn(fx.stack.queue, 'enqueue').mockImplementationOnce(async (items) => items.map(() => false));
  const first = await post({ type: 'noop', idempotency_key: 'reconcile-race' });
  expect(first.status).toBe(201);
  const { id } = (await first.json()) as { id: string };
  expect(lost).toHaveBeenCalledTimes(1);
  lost.mockRestore();
  await fx.stack.pool.query(`UPDATE tasks SET updated_at = now() - interval '1 minute' WHERE id = $1`, [id]);
  const keys = fx.stack.keysOf('default');
  expect(await fx.stack.inspect.hexists(keys.meta, id)).toBe(0);
  // The reconciler found the task missing and read it unfinished again; its push waits (at the
  // lock renewal before it) until the task has been indexed by a replay and a worker has run it.
  let stalled!: () => void;
  const stalledNow = new Promise<void>((r) => (stalled = r));
  let resume!: () => void;
  const gate = new Promise<void>((r) => (resume = r));
  let reread = false;
  let stall = true;
  const query = async (config: unknown, values?: unknown[]) => {
    const r = await fx.stack.pool.query(config as never, values as never);
    if (typeof config === 'string' && config.includes('octet_length(payload::text) AS bytes')) reread = true;
    return r;
  };
  const slow = new Proxy(fx.stack.pool, { get: (target, prop, receiver) => (prop === 'query' ? query : Reflect.get(target, prop, receiver)) }) as Pool;
  const queue = fx.stack.queue as TaskQueue;
  const lock = queue.lock.bind(queue);
  jest.spyOn(queue, 'lock').mockImplementation(async (...args: Parameters<typeof lock>) => {
    const held = await lock(...args);
    if (reread && stall) {
      stall = false;
      stalled();
      await gate;
    }
    return held;
  });
  const reconciler = new Reconciler({ pool: slow, queue: fx.stack.queue, metrics: workerMetrics(createRegistry('worker')) }, { intervalMs: 10_000, graceMs: 1000, batchSize: 100 }, silentLog);
  const pass = reconciler.runOnce();
  await stalledNow;
  const pushed = jest.spyOn(fx.stack.queue, 'enqueue');
  const replay = await post({ type: 'noop', idempotency_key: 'reconcile-race' });
  expect(replay.status).toBe(200);
  // (The replay's push follows its answer.)
  await new Promise<void>((resolve, reject) => {
    const check = async (): Promise<void> => {
      if (pushed.mock.results.length > 0) return void (await (pushed.mock.results[0]!.value as Promise<unknown>).then(() => resolve(), reject));
      setImmediate(() => void check());
    };
    void check();
  });
  expect(await fx.stack.inspect.hexists(keys.meta, id)).toBe(1);
  // A worker runs it and writes its outcome: all the way (Redis forgets it), or until that write waits.
  const { ran } = await leaseAndRun(fx.stack, id);
  await endedOrWaiting(fx.stack, id);
  resume();
  await pass;
  await ran;
  expect((await fx.stack.pool.query("SELECT 1 FROM tasks WHERE id = $1 AND status = 'succeeded'", [id])).rowCount).toBe(1);
  expect(await fx.stack.inspect.hexists(keys.meta, id)).toBe(0);
  expect(await fx.stack.queue.lease({ max: 1, visibilityMs: 60_000, owner: 'w2' })).toEqual([]);
}, 30_000);
