/**
 * A worker cut off from Redis without an error (a partition: its calls neither fail nor return)
 * cannot extend its leases. Once a lease may have run out, another worker's reaper may hand the
 * task out again: the cut-off worker's handler must be aborted by then, not run on beside the
 * second attempt until the connection comes back.
 */
import { createRedis } from '../../services/core/db/redis';
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import { createQueue } from '../../services/core/queue/create-queue';
import { partitionOf, partitionTags } from '../../services/core/queue/partitions';
import { submitTask } from '../../services/core/tasks/submit';
import { defaultHandlers } from '../../services/worker/handlers';
import { LeaseLostError } from '../../services/worker/errors';
import { Worker } from '../../services/worker/worker';
import { clusterMode } from '../support/cluster-mode';
import { Stack, createStack, silentLog, startWorker, taskStatus, waitFor } from '../support/stack';
import { startStallProxy, StallProxy } from '../support/stall-proxy';

let stack: Stack;
let user: string | null = null;
let proxy: StallProxy | null = null;
const workers: Worker[] = [];
const closers: (() => Promise<unknown>)[] = [];

beforeEach(async () => {
  stack = await createStack({ REAPER_SCAN_INTERVAL_MS: 50, POLL_INTERVAL_MS: 10 });
});
afterEach(async () => {
  proxy?.resume();
  await Promise.all(workers.splice(0).map((w) => w.stop(0)));
  for (const close of closers.splice(0)) await close().catch(() => undefined);
  await proxy?.close();
  proxy = null;
  if (user) await stack.inspect.call('ACL', 'DELUSER', user);
  user = null;
  await stack.close();
});

// One Redis behind one proxy (the cluster's nodes announce their own addresses).
const single = clusterMode() ? it.skip : it;

single('a handler whose lease could not be extended is aborted before its lease runs out, not when Redis answers again', async () => {
  proxy = await startStallProxy(stack.cfg.REDIS_ADDR);
  const redis = createRedis({ addr: proxy.addr, name: 'cut-off-worker', offlineQueue: true });
  closers.push(() => redis.quit());
  const queue = createQueue(redis, { prefix: stack.cfg.REDIS_KEY_PREFIX, strategy: stack.cfg.QUEUE_STRATEGY, weights: stack.cfg.QUEUE_WEIGHTS, partitions: stack.cfg.REDIS_PARTITIONS });
  const cfg = { ...stack.cfg, VIS_TIMEOUT_MS: 1500, HEARTBEAT_INTERVAL_MS: 300, TASK_TIMEOUT_MS: 60_000, START_RECORD_DELAY_MS: 100 };
  let startedAt = 0;
  let aborted: { at: number; reason: unknown } | null = null;
  const cutOff = {
    long: ({ signal }: { signal: AbortSignal }) =>
      new Promise<void>((_, reject) => {
        startedAt = Date.now();
        signal.addEventListener('abort', () => {
          aborted = { at: Date.now(), reason: signal.reason };
          reject(signal.reason);
        });
      }),
  };
  const a = new Worker({ cfg, pool: stack.pool, queue, handlers: defaultHandlers(cutOff), log: silentLog, metrics: workerMetrics(createRegistry('worker')) });
  workers.push(a);
  a.start();
  const res = await submitTask(
    { pool: stack.pool, queue: stack.queue, log: silentLog, idempotencyTtlMs: 60000 },
    { type: 'long', priority: 'default', payload: {}, maxRetries: 3, tenant: 'default', idempotencyKey: null, canonical: '' },
  );
  if (res.kind === 'conflict') throw new Error('unexpected conflict');
  const id = res.task.id;
  await waitFor(async () => (await taskStatus(stack.pool, id)).status === 'running' || null, 10_000, 'the attempt to be recorded running');
  // A heartbeat or two went through; then the path to Redis goes silent.
  await new Promise((r) => setTimeout(r, 400));
  proxy.stall();
  const stalledAt = Date.now();
  // Another worker (reaching Redis) reclaims the lease once it runs out, and runs the task.
  let secondAt = 0;
  const { worker: b } = startWorker(stack, { handlers: { long: async () => void (secondAt ||= Date.now()) }, cfg: { VIS_TIMEOUT_MS: 1500, HEARTBEAT_INTERVAL_MS: 300 } });
  workers.push(b);
  await waitFor(async () => secondAt > 0 || null, 10_000, 'the second worker to run the task');
  // Well past the lease: still cut off from Redis, the first handler must have been told to stop.
  await new Promise((r) => setTimeout(r, 500));
  expect(startedAt).toBeGreaterThan(0);
  expect(aborted).not.toBeNull();
  const got = aborted as unknown as { at: number; reason: unknown };
  expect(got.reason).toBeInstanceOf(LeaseLostError);
  // No later than a lease after the last heartbeat that reached Redis, and before the task ran again.
  expect(got.at - stalledAt).toBeLessThan(1500);
  expect(got.at).toBeLessThanOrEqual(secondAt);
  proxy.resume();
  expect(await waitFor(async () => ((await taskStatus(stack.pool, id)).status === 'succeeded' ? taskStatus(stack.pool, id) : null))).toMatchObject({ status: 'succeeded' });
});

single('on a partitioned keyspace, a partition that refuses the extend does not get the leases the others extended aborted', async () => {
  // Two partitions on one Redis; the worker's user loses access to one of them mid-run, as when
  // that partition's master is gone: its calls fail, the other partition's go through.
  await stack.close();
  stack = await createStack({ REAPER_SCAN_INTERVAL_MS: 50, POLL_INTERVAL_MS: 10, REDIS_PARTITIONS: 2 });
  const prefix = stack.cfg.REDIS_KEY_PREFIX;
  const [tag0] = partitionTags(prefix, 2);
  user = `lease-deadline-${prefix}`;
  await stack.inspect.call('ACL', 'SETUSER', user, 'on', '>pw', '~*', '&*', '+@all');
  const redis = createRedis({ addr: stack.cfg.REDIS_ADDR, username: user, password: 'pw', name: 'partition-worker', offlineQueue: true });
  closers.push(() => redis.quit());
  const queue = createQueue(redis, { prefix, strategy: stack.cfg.QUEUE_STRATEGY, weights: stack.cfg.QUEUE_WEIGHTS, partitions: 2 });
  const cfg = { ...stack.cfg, VIS_TIMEOUT_MS: 1500, HEARTBEAT_INTERVAL_MS: 300, TASK_TIMEOUT_MS: 60_000, START_RECORD_DELAY_MS: 100 };
  const aborted = new Map<string, unknown>();
  const started = new Set<string>();
  const handlers = {
    long: ({ id, signal }: { id: string; signal: AbortSignal }) =>
      new Promise<void>((_, reject) => {
        started.add(id);
        signal.addEventListener('abort', () => {
          aborted.set(id, signal.reason);
          reject(signal.reason);
        });
      }),
  };
  const w = new Worker({ cfg, pool: stack.pool, queue, handlers: defaultHandlers(handlers), log: silentLog, metrics: workerMetrics(createRegistry('worker')) });
  workers.push(w);
  w.start();
  const ids: Record<number, string> = {};
  for (const tenant of ['default', 'acme']) {
    const res = await submitTask(
      { pool: stack.pool, queue: stack.queue, log: silentLog, idempotencyTtlMs: 60000 },
      { type: 'long', priority: 'default', payload: {}, maxRetries: 3, tenant, idempotencyKey: null, canonical: '' },
    );
    if (res.kind === 'conflict') throw new Error('unexpected conflict');
    ids[partitionOf(tenant, 2)] = res.task.id;
  }
  expect(Object.keys(ids).sort()).toEqual(['0', '1']);
  await waitFor(async () => started.size === 2 || null, 10_000, 'both handlers to start');
  // Partition 1 goes away for this worker: only partition 0's keys and the control keys are left.
  await stack.inspect.call('ACL', 'SETUSER', user, 'resetkeys', `~${tag0}:*`, `~{${prefix}}:*`);
  await new Promise((r) => setTimeout(r, 3000));
  // Partition 0 extended its lease all along: its handler runs on.
  expect(aborted.has(ids[0]!)).toBe(false);
  expect(await taskStatus(stack.pool, ids[0]!)).toMatchObject({ status: 'running' });
  // Partition 1's lease could not be extended: its handler was stopped before it could run out.
  expect(aborted.get(ids[1]!)).toBeInstanceOf(LeaseLostError);
});
