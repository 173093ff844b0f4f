/**
 * The partitioned queue (REDIS_PARTITIONS > 1) with one partition unreachable: its commands fail
 * (here: an ACL user refused that partition's keys, as a master failing over refuses its slots
 * with CLUSTERDOWN) while the others answer. The passes over the whole queue that change Redis
 * (reap, promote, sweep) must still hand the caller what they did in the partitions that answered:
 * those partitions' scripts have run, and a pass that throws drops their results (a reclaimed lease
 * whose lost attempt Postgres never records, promoted retries the metrics never count).
 */
import { createHash, randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { createRedis } from '../../services/core/db/redis';
import { PartitionedQueue } from '../../services/core/queue/partitioned-queue';
import { partitionOf, partitionTags } from '../../services/core/queue/partitions';
import type { EnqueueItem } from '../../services/core/queue/queue';
import { createTestDatabase, testRedisAddr, uniqueRedisPrefix } from '../support/test-env';
import { Pool } from 'pg';
import { createTask } from '../../services/core/tasks/task-store';
import { uuidv7 } from '../../services/core/tasks/uuid';
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import { Reconciler } from '../../services/worker/reconciler';
import { silentLog } from '../support/stack';

const N = 3;
const WEIGHTS = { critical: 8, high: 4, default: 2, low: 1 };
const prefix = uniqueRedisPrefix('pdown');
const user = `pdown-${randomBytes(4).toString('hex')}`;
const password = randomBytes(12).toString('hex');
let admin: Redis;
let limited: Redis;
let queue: PartitionedQueue;
let seq = 0;

/** One tenant per partition: tenants[p] lives in partition p. */
const tenants: string[] = [];
for (let i = 0; tenants.filter(Boolean).length < N; i++) tenants[partitionOf(`t${i}`, N)] ??= `t${i}`;
/** The partition made unreachable. */
const DOWN = 1;

beforeAll(async () => {
  admin = createRedis({ addr: testRedisAddr(), name: 'partition-down-admin', offlineQueue: true });
  // Every key of the namespace but the keys of partition DOWN.
  const tags = partitionTags(prefix, N);
  const allowed = [`~{${prefix}}:*`, ...tags.filter((_, p) => p !== DOWN).map((t) => `~${t}:*`)];
  await admin.call('ACL', 'SETUSER', user, 'reset', 'on', `#${createHash('sha256').update(password).digest('hex')}`, ...allowed, '&*', '+@all');
  limited = createRedis({ addr: testRedisAddr(), username: user, password, name: 'partition-down-limited', offlineQueue: true });
});
afterEach(async () => {
  for (const pattern of [`{${prefix}}:*`, `{${prefix}:k*`]) {
    const keys = await admin.keys(pattern);
    if (keys.length) await admin.del(...keys);
  }
});
afterAll(async () => {
  limited.disconnect();
  await admin.call('ACL', 'DELUSER', user);
  await admin.quit();
});

function item(tenant: string): EnqueueItem {
  return { id: `task-${++seq}`, tenant, type: 'noop', priority: 'default', payload: {}, maxAttempts: 3, createdAtMs: Date.now(), attempts: 0 };
}

const queueOn = (redis: Redis) => new PartitionedQueue(redis, { prefix, strategy: 'weighted', weights: WEIGHTS, partitions: N });

beforeEach(() => {
  queue = queueOn(admin);
});

test('a reap with one partition down hands back the expired leases it reclaimed in the others', async () => {
  const items = tenants.map(item);
  await queue.enqueue(items);
  const leases = await queue.lease({ max: 10, visibilityMs: 50 });
  expect(leases).toHaveLength(N);
  await new Promise((r) => setTimeout(r, 100));

  const reaped = await queueOn(limited).reap(100, 30_000);
  const up = items.filter((it) => partitionOf(it.tenant, N) !== DOWN).map((it) => it.id);
  expect(reaped.map((r) => r.id).sort()).toEqual(up.sort());
  // Reclaimed there (queued again), so a second pass does not find them: only what this one returned tells of them.
  expect(await queueOn(limited).reap(100, 30_000)).toEqual([]);
  // The partition that was down is reaped once it answers.
  expect((await queue.reap(100, 30_000)).map((r) => r.id)).toEqual(items.filter((it) => partitionOf(it.tenant, N) === DOWN).map((it) => it.id));
});

test('a promote with one partition down counts the retries it moved in the others', async () => {
  const items = tenants.map(item);
  await queue.enqueue(items);
  const leases = await queue.lease({ max: 10, visibilityMs: 60_000 });
  await queue.finish(leases.map((l) => ({ id: l.message.id, token: l.token, priority: 'default', outcome: 'retrying', delayMs: 1, settleAttempts: 1 })));
  await new Promise((r) => setTimeout(r, 20));

  const promoted = await queueOn(limited).promoteDue(100);
  expect(promoted.moved.default).toBe(N - 1);
  expect((await queue.stats()).ready.default).toBe(N - 1);
});

test('a sweep with one partition down reports the tasks it forgot in the others', async () => {
  const items = tenants.map(item);
  await queue.enqueue(items);
  // Each task loses its ready-list entry (as after a partial write): known, held nowhere.
  for (const [p, tenant] of tenants.entries()) await admin.del(queue.parts[p]!.keys.tenantQueue('default', tenant));

  const swept = await queueOn(limited).sweep(1000);
  expect(swept.forgotten.sort()).toEqual(items.filter((it) => partitionOf(it.tenant, N) !== DOWN).map((it) => it.id).sort());
});

test('a lease round with the partition of the critical work down leases the others\' work instead of failing', async () => {
  // The user may reach every partition at first: the queue learns where the critical work is.
  const tags = partitionTags(prefix, N);
  const setKeys = (down: number | null) =>
    admin.call('ACL', 'SETUSER', user, 'resetkeys', `~{${prefix}}:*`, ...tags.filter((_, p) => p !== down).map((t) => `~${t}:*`));
  await setKeys(null);
  try {
    const q = new PartitionedQueue(limited, { prefix, strategy: 'strict', weights: WEIGHTS, partitions: N });
    const critical = Array.from({ length: 20 }, () => ({ ...item(tenants[DOWN]!), priority: 'critical' as const }));
    const low = tenants.filter((_, p) => p !== DOWN).flatMap((t) => Array.from({ length: 20 }, () => ({ ...item(t), priority: 'low' as const })));
    await queue.enqueue([...critical, ...low]);
    for (let i = 0; i < 3; i++) await q.lease({ max: 1, visibilityMs: 60_000 });
    await setKeys(DOWN);
    let leased = 0;
    let failed = 0;
    for (let i = 0; i < 20; i++) {
      try {
        leased += (await q.lease({ max: 1, visibilityMs: 60_000 })).length;
      } catch {
        failed++;
      }
    }
    expect({ leased, failed }).toEqual({ leased: 20, failed: 0 });
  } finally {
    await setKeys(DOWN);
  }
});

/** Lets the limited user reach every partition (null) or all but `down`. */
const setKeys = (down: number | null) => {
  const tags = partitionTags(prefix, N);
  return admin.call('ACL', 'SETUSER', user, 'resetkeys', `~{${prefix}}:*`, ...tags.filter((_, p) => p !== down).map((t) => `~${t}:*`));
};

describe('the reconciler with one partition down', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let pool: Pool;
  beforeEach(async () => {
    db = await createTestDatabase();
    pool = new Pool({ connectionString: db.url });
  });
  afterEach(async () => {
    await setKeys(DOWN);
    await pool.end();
    await db.drop();
  });
  const reconcilerOn = (redis: Redis, batchSize = 100) =>
    new Reconciler({ pool, queue: queueOn(redis), metrics: workerMetrics(createRegistry('worker')) }, { intervalMs: 1000, graceMs: 0, batchSize }, silentLog);
  /** A task committed in Postgres whose push to Redis never happened. */
  const storedOnly = async (tenant: string) => {
    const id = uuidv7();
    await createTask(pool, { id, type: 'noop', priority: 'default', payload: {}, maxRetries: 3, tenant, idempotencyKey: null }, null, 1000);
    return id;
  };

  test('repairs the tasks of the partitions that answer; the down one\'s are left alone, then repaired once it answers', async () => {
    const lost = await Promise.all(tenants.map(storedOnly));
    // A task of the down partition Redis holds (leased): it must not be queued a second time.
    const held = await storedOnly(tenants[DOWN]!);
    await queue.enqueue([{ ...item(tenants[DOWN]!), id: held }]);
    expect(await queue.lease({ max: 1, visibilityMs: 60_000 })).toHaveLength(1);
    const r = reconcilerOn(limited);
    // Before: the pass threw (NOPERM from the down partition) and repaired nothing anywhere.
    expect(await r.runOnce()).toMatchObject({ leader: true, requeued: N - 1, vanishedLeases: 0 });
    expect((await queue.indexed(tenants.map((tenant, p) => ({ id: lost[p]!, tenant })))).map((e) => e !== null)).toEqual(tenants.map((_, p) => p !== DOWN));
    await setKeys(null);
    expect(await r.runOnce()).toMatchObject({ requeued: 1, vanishedLeases: 0 });
    const stats = await queue.stats();
    expect({ ready: stats.ready.default, processing: stats.processing }).toEqual({ ready: N, processing: 1 });
  });

  test('a task of the down partition is checked again at the start of the next pass, not when the walk comes round', async () => {
    // The down partition's task sorts first (tenant order); 101 tasks of a tenant of another
    // partition after it make the walk stop (100 pages of one) before it goes round.
    let other = '';
    for (let i = 0; !other; i++) if (`zz${i}` > tenants[DOWN]! && partitionOf(`zz${i}`, N) !== DOWN) other = `zz${i}`;
    const down = await storedOnly(tenants[DOWN]!);
    await pool.query(
      `INSERT INTO tasks (id, tenant, type, priority, payload, status, max_retries, updated_at)
       SELECT gen_random_uuid(), $1, 'noop', 'default', '{}', 'queued', 3, now() - interval '1 minute' FROM generate_series(1, 101)`,
      [other],
    );
    const r = reconcilerOn(limited, 1);
    expect(await r.runOnce()).toMatchObject({ requeued: 99 });
    await setKeys(null);
    // Before (the walk going on from its cursor): only the 2 left of the other tenant.
    expect(await r.runOnce()).toMatchObject({ requeued: 3 });
    expect(await queue.indexed([{ id: down, tenant: tenants[DOWN]! }])).toEqual([{ deadLetteredAfter: null }]);
  });
});

test('every partition down is an outage: the pass fails', async () => {
  const none = createRedis({ addr: '127.0.0.1:1', name: 'partition-down-none', offlineQueue: false });
  none.on('error', () => undefined);
  try {
    await expect(queueOn(none).reap(100, 30_000)).rejects.toThrow();
  } finally {
    none.disconnect();
  }
});
