/**
 * Fair dispatch with real workers: tenants' settings reach Redis from Postgres, `max_running` holds
 * across two workers, and every end of an attempt (outcome, hand-back at shutdown, Redis data
 * loss) gives its place back.
 */
import { setTenant } from '../../services/core/tenancy/tenant-store';
import { submitTasks } from '../../services/core/tasks/submit';
import { TenantSync } from '../../services/worker/tenant-sync';
import type { Handler } from '../../services/worker/handlers';
import type { Worker } from '../../services/worker/worker';
import type { QueueKeys } from '../../services/core/queue/keys';
import { Stack, scriptUsec, silentLog, startWorker, waitFor } from '../support/stack';
import { resettableStack } from '../support/stack-reset';

let stack: Stack;
let workers: Worker[] = [];

const shared = resettableStack({ POLL_INTERVAL_MS: 20, REAPER_SCAN_INTERVAL_MS: 50, RECONCILE_INTERVAL_MS: 100, RECONCILE_GRACE_MS: 0 });
beforeEach(() => {
  stack = shared.current();
});
afterEach(async () => {
  await Promise.all(workers.map((w) => w.stop(0)));
  workers = [];
});

async function submit(tenant: string, count: number, type: string, payload: unknown = {}): Promise<string[]> {
  const res = await submitTasks(
    { pool: stack.pool, queue: stack.queue, log: silentLog, idempotencyTtlMs: 60_000 },
    Array.from({ length: count }, () => ({ type, priority: 'default' as const, payload, maxRetries: 5, tenant, idempotencyKey: null, canonical: '' })),
  );
  return res.map((r) => r.task.id);
}

const unfinished = async () => (await stack.pool.query("SELECT count(*)::int AS n FROM tasks WHERE status NOT IN ('succeeded', 'dead')")).rows[0].n as number;
/** Merged over the queue's partitions (one tenant is in one). */
const hashOverPartitions = async (key: (k: QueueKeys) => string) => Object.assign({}, ...(await Promise.all(stack.allKeys().map((k) => stack.inspect.hgetall(key(k)))))) as Record<string, string>;
const runningCounts = () => hashOverPartitions((k) => k.running);

/** A handler sleeping `ms`, counting how many attempts of each tenant (payload.t) run at once. */
function gauge(ms: number): { handler: Handler; peak: Map<string, number> } {
  const now = new Map<string, number>();
  const peak = new Map<string, number>();
  const handler: Handler = async (ctx) => {
    const t = (ctx.payload as { t: string }).t;
    now.set(t, (now.get(t) ?? 0) + 1);
    peak.set(t, Math.max(peak.get(t) ?? 0, now.get(t)!));
    try {
      await new Promise((r) => setTimeout(r, ms));
    } finally {
      now.set(t, now.get(t)! - 1);
    }
  };
  return { handler, peak };
}

it('tenant settings reach Redis from Postgres, changes within a pass, all of them again after Redis lost them', async () => {
  await setTenant(stack.pool, 'acme', { max_running: 2, weight: 5 });
  const sync = new TenantSync({ pool: stack.pool, queue: stack.queue }, 7, 1000, silentLog);
  const settings = () => hashOverPartitions((k) => k.tenantDispatch);
  await sync.runOnce();
  // `default` (from the migration) has no settings of its own: weight 1, the default cap (-1).
  expect(await settings()).toEqual({ '*': '7', acme: '5:2', default: '1:-1' });
  await setTenant(stack.pool, 'acme', { max_running: null });
  await setTenant(stack.pool, 'beta', { max_running: 0 });
  expect(await sync.runOnce()).toMatchObject({ changed: 2 });
  expect(await settings()).toMatchObject({ acme: '5:-1', beta: '1:0' });
  for (const k of stack.allKeys()) await stack.inspect.del(k.tenantDispatch);
  await sync.runOnce();
  expect(await settings()).toEqual({ '*': '7', acme: '5:-1', beta: '1:0', default: '1:-1' });
});

it('a row written while the database clock ran ahead (a forward step, corrected) does not hide the changes made after it', async () => {
  const sync = new TenantSync({ pool: stack.pool, queue: stack.queue }, 0, 1000, silentLog);
  await sync.runOnce();
  // Set during the step: its updated_at lies a day ahead of the corrected clock.
  await stack.pool.query(`INSERT INTO tenants (name, weight, updated_at) VALUES ('ahead', 4, now() + interval '1 day')`);
  await sync.runOnce();
  const settings = () => hashOverPartitions((k) => k.tenantDispatch);
  expect((await settings()).ahead).toBe('4:-1');
  // Changes on the corrected clock: before, each pass read only rows after the newest it had sent
  // (a day ahead), so these never reached Redis (until a worker restarted or Redis lost them).
  await setTenant(stack.pool, 'later', { max_running: 3 });
  await setTenant(stack.pool, 'ahead', { weight: 6 });
  await sync.runOnce();
  expect(await settings()).toMatchObject({ later: '1:3', ahead: '6:-1' });
  // And the next change on a pass of its own.
  await setTenant(stack.pool, 'later', { max_running: 4 });
  await sync.runOnce();
  expect((await settings()).later).toBe('1:4');
});

it('after Redis lost the settings, a pass whose resend of every row fails leaves the resend to the next pass', async () => {
  await setTenant(stack.pool, 'acme', { max_running: 2, weight: 5 });
  const settings = () => hashOverPartitions((k) => k.tenantDispatch);
  await new TenantSync({ pool: stack.pool, queue: stack.queue }, 0, 1000, silentLog).runOnce();
  await setTenant(stack.pool, 'gamma', { weight: 2 });
  // The rows were written long ago: a pass reads only those changed since the newest it sent (with
  // 5 s of overlap), here gamma's.
  await stack.pool.query(`UPDATE tenants SET updated_at = now() - CASE name WHEN 'gamma' THEN interval '1 hour' ELSE interval '2 hours' END`);
  let failNext = false;
  const flaky = new Proxy(stack.pool, {
    get: (target, prop, receiver) =>
      prop === 'query'
        ? (config: { values?: unknown[] }, ...rest: unknown[]) => {
            // The read of every row (no `since`) fails once: Postgres went away for a moment.
            if (failNext && config.values?.[0] === null) {
              failNext = false;
              return Promise.reject(new Error('Connection terminated unexpectedly'));
            }
            return (target.query as (...a: unknown[]) => Promise<unknown>)(config, ...rest);
          }
        : Reflect.get(target, prop, receiver),
  }) as typeof stack.pool;
  const sync = new TenantSync({ pool: flaky, queue: stack.queue }, 0, 1000, silentLog);
  await sync.runOnce();
  await setTenant(stack.pool, 'beta', { weight: 3 });
  for (const k of stack.allKeys()) await stack.inspect.del(k.tenantDispatch);
  failNext = true;
  await expect(sync.runOnce()).rejects.toThrow('Connection terminated unexpectedly');
  // Postgres is back: the next pass sends every row, acme's too.
  await sync.runOnce();
  expect(await settings()).toMatchObject({ acme: '5:2', beta: '3:-1', gamma: '2:-1' });
});

it('every row is sent in pages of at most 1,000 (one query and one script call each), however many tenants; changes made meanwhile too', async () => {
  // 2,500 tenants, all committed at one moment (one updated_at): pages must not skip or repeat any.
  await stack.pool.query(`INSERT INTO tenants (name, weight, max_running, updated_at)
    SELECT 'p' || lpad(i::text, 4, '0'), 1 + i % 5, i % 7, '2026-01-01T00:00:00Z' FROM generate_series(1, 2500) i`);
  const sizes: number[] = [];
  const queue = new Proxy(stack.queue, {
    get: (target, prop, receiver) =>
      prop === 'configureTenants'
        ? (d: number, tenants: unknown[]) => {
            sizes.push(tenants.length);
            return target.configureTenants(d, tenants as never);
          }
        : Reflect.get(target, prop, receiver),
  });
  const sync = new TenantSync({ pool: stack.pool, queue }, 0, 1000, silentLog);
  expect(await sync.runOnce()).toMatchObject({ sent: 2501 });
  expect(Math.max(...sizes)).toBeLessThanOrEqual(1000);
  const settings = await hashOverPartitions((k) => k.tenantDispatch);
  expect(Object.keys(settings).filter((n) => n.startsWith('p'))).toHaveLength(2500);
  expect(settings.p0007).toBe('3:0');
  expect(settings.p2500).toBe(`${1 + (2500 % 5)}:${2500 % 7}`);
  // A change of many rows at once is paged too, and the next pass sends only later changes.
  sizes.length = 0;
  await stack.pool.query(`UPDATE tenants SET weight = 9, updated_at = now() WHERE name LIKE 'p%'`);
  // (`default`, from the migration, may be within the 5 s overlap and sent again.)
  const again = await sync.runOnce();
  expect(again.changed).toBe(2500);
  expect(again.sent - 2500).toBeLessThanOrEqual(1);
  expect(Math.max(...sizes)).toBeLessThanOrEqual(1000);
  expect((await hashOverPartitions((k) => k.tenantDispatch)).p1234).toBe(`9:${1234 % 7}`);
}, 60_000);

it('a sync pass costs Redis what it sends, not a read of every tenant\'s settings; the count of tenants with settings of their own stays exact', async () => {
  const custom = async () => (await Promise.all(stack.allKeys().map((k) => stack.inspect.hget(k.wrr, 'custom')))).reduce((a, n) => a + Number(n), 0);
  /** Redis's own time in scripts (EVALSHA) per call of `calls` passes with nothing to change, in µs. */
  async function quietPassUsec(calls: number): Promise<number> {
    const before = await scriptUsec(stack);
    for (let i = 0; i < calls; i++) await stack.queue.configureTenants(0, []);
    return (await scriptUsec(stack)) - before;
  }
  await stack.queue.configureTenants(0, [{ tenant: 'a', weight: 3, maxRunning: null }]);
  const few = await quietPassUsec(20);
  // 30,000 tenants, every third with settings of its own.
  const many = Array.from({ length: 30_000 }, (_, i) => ({ tenant: `t${i}`, weight: i % 3 === 0 ? 2 : 1, maxRunning: null }));
  for (let i = 0; i < many.length; i += 5000) await stack.queue.configureTenants(0, many.slice(i, i + 5000));
  expect(await custom()).toBe(10_001);
  const lots = await quietPassUsec(20);
  // Every worker makes such a pass every second: before, each read all 30,000 settings (about 30 ms).
  expect(lots).toBeLessThan(Math.max(5 * few, 20 * 1000));
  // Changes keep the count: one loses its own settings, one gains them, one changes them.
  await stack.queue.configureTenants(0, [
    { tenant: 't0', weight: 1, maxRunning: null },
    { tenant: 't1', weight: 1, maxRunning: 4 },
    { tenant: 't3', weight: 5, maxRunning: null },
    { tenant: 'new', weight: 1, maxRunning: null },
  ]);
  expect(await custom()).toBe(10_001);
  // Counted afresh when the settings were lost, or the count was.
  for (const k of stack.allKeys()) await stack.inspect.hdel(k.wrr, 'custom');
  await stack.queue.configureTenants(0, []);
  expect(await custom()).toBe(10_001);
  for (const k of stack.allKeys()) await stack.inspect.del(k.tenantDispatch);
  expect(await stack.queue.configureTenants(0, [{ tenant: 'b', weight: 2, maxRunning: 1 }])).toMatchObject({ complete: false });
  expect(await custom()).toBe(1);
});

it('max_running holds across two workers while other tenants use the free slots; counts end at zero', async () => {
  await setTenant(stack.pool, 'capped', { max_running: 3 });
  const { handler, peak } = gauge(30);
  for (let i = 0; i < 2; i++) workers.push(startWorker(stack, { handlers: { gauge: handler }, cfg: { WORKER_POOL: 8 } }).worker);
  // The first sync pass runs at start; give it a moment before the tasks arrive.
  await waitFor(async () => (await stack.inspect.hget(stack.keysOf('capped').tenantDispatch, 'capped')) === '1:3', 5000, 'the settings');
  // Eight rounds at the cap, while the free tenant's tasks keep the other slots wanted.
  await submit('capped', 24, 'gauge', { t: 'capped' });
  await submit('free', 40, 'gauge', { t: 'free' });
  await waitFor(async () => (await unfinished()) === 0, 30_000, 'every task');
  expect(peak.get('capped')).toBe(3);
  // The others were not held back: they filled the slots the capped tenant could not use.
  expect(peak.get('free')!).toBeGreaterThan(8);
  await waitFor(async () => Object.keys(await runningCounts()).length === 0, 5000, 'running counts at zero');
});

it('TENANT_MAX_RUNNING caps tenants without their own setting', async () => {
  const { handler, peak } = gauge(20);
  workers.push(startWorker(stack, { handlers: { gauge: handler }, cfg: { WORKER_POOL: 10, TENANT_MAX_RUNNING: 2 } }).worker);
  await submit('a', 10, 'gauge', { t: 'a' });
  await submit('b', 10, 'gauge', { t: 'b' });
  await waitFor(async () => (await unfinished()) === 0, 30_000, 'every task');
  expect([peak.get('a'), peak.get('b')]).toEqual([2, 2]);
});

it('attempts handed back at shutdown give their places back: another worker runs the tenant up to its cap', async () => {
  await setTenant(stack.pool, 'capped', { max_running: 2 });
  // The first worker's handler outlasts its shutdown grace, so its attempts are handed back.
  const stuck: Handler = () => new Promise((r) => setTimeout(r, 60_000).unref());
  const first = startWorker(stack, { handlers: { gauge: stuck }, cfg: { WORKER_POOL: 4 } }).worker;
  await waitFor(async () => (await stack.inspect.hget(stack.keysOf('capped').tenantDispatch, 'capped')) === '1:2', 5000, 'the settings');
  await submit('capped', 4, 'gauge', { t: 'capped' });
  await waitFor(async () => (await runningCounts()).capped === '2', 5000, 'two running');
  expect(await first.stop(0)).toEqual({ handedBack: 2 });
  expect(await runningCounts()).toEqual({});
  const { handler, peak } = gauge(10);
  workers.push(startWorker(stack, { handlers: { gauge: handler }, cfg: { WORKER_POOL: 4 } }).worker);
  await waitFor(async () => (await unfinished()) === 0, 30_000, 'every task');
  expect(peak.get('capped')).toBe(2);
});

it('after Redis lost its data mid-run, counts are rebuilt from what is leased and nothing is lost', async () => {
  await setTenant(stack.pool, 'capped', { max_running: 2 });
  const { handler, peak } = gauge(40);
  workers.push(startWorker(stack, { handlers: { gauge: handler }, cfg: { WORKER_POOL: 6, VIS_TIMEOUT_MS: 1000 } }).worker);
  await waitFor(async () => (await stack.inspect.hget(stack.keysOf('capped').tenantDispatch, 'capped')) === '1:2', 5000, 'the settings');
  await submit('capped', 20, 'gauge', { t: 'capped' });
  await submit('free', 20, 'gauge', { t: 'free' });
  await waitFor(async () => (await runningCounts()).capped === '2', 5000, 'two running');
  await stack.flushRedis();
  await waitFor(async () => (await unfinished()) === 0, 60_000, 'every task, after the reconciler re-queued them');
  await waitFor(async () => Object.keys(await runningCounts()).length === 0, 5000, 'running counts at zero');
  // Until the next tenant sync (within a second) brings the settings back, the tenant is uncapped
  // (attempts that ran on when their leases vanished overlap the re-queued ones too); once they
  // are back, the cap holds again, counted from the leases taken since.
  await waitFor(async () => (await stack.inspect.hget(stack.keysOf('capped').tenantDispatch, 'capped')) === '1:2', 5000, 'the settings again');
  peak.clear();
  await submit('capped', 20, 'gauge', { t: 'capped' });
  await waitFor(async () => (await unfinished()) === 0, 30_000, 'the tasks submitted after');
  expect(peak.get('capped')).toBe(2);
  await waitFor(async () => Object.keys(await runningCounts()).length === 0, 5000, 'running counts at zero');
});
