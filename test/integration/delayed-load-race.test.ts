/**
 * The delayed loader reads tasks due soon from Postgres, then pushes them to Redis. A task the API
 * indexed already may come due, run and end between that read and the push (a pass slowed within
 * its lock, not past it): Redis has forgotten it by then, so the push would index it afresh and it
 * would run a second time. The push holds a share lock on the rows still scheduled, so it pushes
 * only tasks not ended, and a worker's outcome write waits for it.
 */
import type { Pool } from 'pg';
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import { DelayedLoader } from '../../services/worker/delayed-loader';
import { leaseAndRun } from '../support/push-race';
import { silentLog, stackWithApi } from '../support/stack';

const fx = stackWithApi();

it('a loader pass that read a task due soon does not index it again once it ran and ended before the push', async () => {
  // Due within the API's horizon: indexed in Redis at once, by due time.
  const res = await fetch(`${fx.api.url}/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'noop', delay_ms: 60_000 }) });
  expect(res.status).toBe(201);
  const { id } = (await res.json()) as { id: string };
  const keys = fx.stack.keysOf('default');
  expect(await fx.stack.inspect.hexists(keys.meta, id)).toBe(1);
  // The loader's read of the due tasks answers once the task has run and ended (well within the
  // pass's lock: no other loader takes over).
  let read: string[] = [];
  let stalled!: () => void;
  const stalledNow = new Promise<void>((r) => (stalled = r));
  let resume!: () => void;
  const gate = new Promise<void>((r) => (resume = r));
  const query = async (config: unknown, values?: unknown[]) => {
    const r = await fx.stack.pool.query(config as never, values as never);
    if ((config as { name?: string }).name?.startsWith('delayed-due-soon') && read.length === 0) {
      read = (r.rows as unknown as { id: string | null }[]).flatMap((x) => (x.id ? [x.id] : []));
      stalled();
      await gate;
    }
    return r;
  };
  const slow = new Proxy(fx.stack.pool, { get: (target, prop, receiver) => (prop === 'query' ? query : Reflect.get(target, prop, receiver)) }) as Pool;
  const loader = new DelayedLoader(
    { pool: slow, queue: fx.stack.queue, metrics: workerMetrics(createRegistry('worker')) },
    { intervalMs: 10_000, horizonMs: 300_000, batch: 100, maxPages: 5, countEveryMs: 60_000 },
    silentLog,
  );
  const pass = loader.runOnce();
  await stalledNow;
  expect(read).toEqual([id]);
  // Meanwhile it comes due (moved up here), a worker runs it, records its outcome and Redis forgets it.
  await fx.stack.inspect.zadd(keys.retries[2]!, 0, id);
  await fx.stack.queue.promoteDue(10);
  await (await leaseAndRun(fx.stack, id)).ran;
  expect(await fx.stack.inspect.hexists(keys.meta, id)).toBe(0);
  // The pass goes on with what it read: it must not index the ended task again.
  resume();
  await pass;
  expect(await fx.stack.inspect.hexists(keys.meta, id)).toBe(0);
  expect(await fx.stack.queue.lease({ max: 1, visibilityMs: 60_000, owner: 'w2' })).toEqual([]);
}, 30_000);
