/** Fair dispatch between tenants in the Redis queue: round-robin order, weights, running caps. */
import Redis from 'ioredis';
import { createRedis } from '../../services/core/db/redis';
import type { EnqueueItem, Lease } from '../../services/core/queue/queue';
import { RedisQueue } from '../../services/core/queue/redis-queue';
import type { Priority } from '../../services/core/tasks/priority';
import { testRedisAddr, uniqueRedisPrefix } from '../support/test-env';

let redis: Redis;
let q: RedisQueue;
let prefix: string;

function item(id: string, tenant: string, priority: Priority = 'default'): EnqueueItem {
  return { id, tenant, type: 'noop', priority, payload: {}, maxAttempts: 3, createdAtMs: Date.now(), attempts: 0 };
}

/** `count` tasks of `tenant`, ids `<tenant>-<i>`. */
function items(tenant: string, count: number, priority: Priority = 'default'): EnqueueItem[] {
  return Array.from({ length: count }, (_, i) => item(`${tenant}-${i}`, tenant, priority));
}

const tenantsOf = (leases: Lease[]) => leases.map((l) => l.message.tenant);
const held = (l: Lease) => ({ id: l.message.id, token: l.token, priority: l.message.priority });
async function running(): Promise<Record<string, number>> {
  return Object.fromEntries(Object.entries(await redis.hgetall(q.keys.running)).map(([t, n]) => [t, Number(n)]));
}

beforeAll(() => {
  redis = createRedis({ addr: testRedisAddr(), name: 'queue-tenants-test', offlineQueue: true });
});
beforeEach(() => {
  prefix = uniqueRedisPrefix('tenants');
  q = new RedisQueue(redis, { prefix, strategy: 'weighted', weights: { critical: 8, high: 4, default: 2, low: 1 } });
});
afterEach(async () => {
  const keys = await redis.keys(`{${prefix}}:*`);
  if (keys.length) await redis.del(...keys);
});
afterAll(async () => {
  await redis.quit();
});

describe('round-robin across tenants', () => {
  it('serves the tenants with work in turn, each FIFO, in one call and across calls', async () => {
    await q.enqueue([...items('a', 4), ...items('b', 4), ...items('c', 2)]);
    const first = await q.lease({ max: 5, visibilityMs: 60_000 });
    const rest = await q.lease({ max: 10, visibilityMs: 60_000 });
    expect(tenantsOf(first)).toEqual(['a', 'b', 'c', 'a', 'b']);
    // c runs out; a and b keep alternating where the first call left them.
    expect(tenantsOf(rest)).toEqual(['c', 'a', 'b', 'a', 'b']);
    const order = (t: string) => [...first, ...rest].filter((l) => l.message.tenant === t).map((l) => l.message.id);
    expect(order('a')).toEqual(['a-0', 'a-1', 'a-2', 'a-3']);
  });

  it('shares leases in proportion to the tenants\' weights, interleaved', async () => {
    await q.configureTenants(0, [
      { tenant: 'heavy', weight: 3, maxRunning: null },
      { tenant: 'light', weight: 1, maxRunning: null },
    ]);
    await q.enqueue([...items('heavy', 200), ...items('light', 200)]);
    const leases = await q.lease({ max: 16, visibilityMs: 60_000 });
    expect(tenantsOf(leases).filter((t) => t === 'heavy')).toHaveLength(12);
    // Never more than three of heavy in a row: light is served every round.
    expect(tenantsOf(leases).join(',')).not.toContain('heavy,heavy,heavy,heavy');
    // A bigger lease gives each turn several tasks (up to ⌈n/16⌉), in the same proportion.
    const big = await q.lease({ max: 160, visibilityMs: 60_000 });
    expect(tenantsOf(big).filter((t) => t === 'heavy').length).toBeGreaterThanOrEqual(120 - 10);
    expect(tenantsOf(big).filter((t) => t === 'heavy').length).toBeLessThanOrEqual(120 + 10);
    // And the shares hold across one-at-a-time calls too.
    const single: string[] = [];
    for (let i = 0; i < 20; i++) single.push(...tenantsOf(await q.lease({ max: 1, visibilityMs: 60_000 })));
    expect(single.filter((t) => t === 'heavy')).toHaveLength(15);
  });

  it('a task of another tenant waits at most one round behind a 10k backlog', async () => {
    for (let i = 0; i < 10_000; i += 2000) await q.enqueue(Array.from({ length: 2000 }, (_, j) => item(`big-${i + j}`, 'big')));
    // Workers are busy with the backlog…
    for (let i = 0; i < 5; i++) expect(tenantsOf(await q.lease({ max: 100, visibilityMs: 60_000 }))).toEqual(Array(100).fill('big'));
    // …when another tenant's task arrives: the next pick is it, whether a worker takes one or many.
    await q.enqueue([item('small-0', 'small')]);
    expect(tenantsOf(await q.lease({ max: 1, visibilityMs: 60_000 }))).toEqual(['small']);
    // small, served just now, comes back behind big's turn (test/integration/queue-tenants-rejoin.test.ts)…
    await q.enqueue([item('small-1', 'small')]);
    expect(tenantsOf(await q.lease({ max: 16, visibilityMs: 60_000 }))).toEqual(['big', 'small', ...Array(14).fill('big')]);
    // …while a tenant new to the ring is the next pick of a big lease too.
    await q.enqueue([item('other-0', 'other'), item('other-1', 'other')]);
    expect(tenantsOf(await q.lease({ max: 100, visibilityMs: 60_000 })).slice(0, 3)).toEqual(['other', 'other', 'big']);
  });

  it('with many tenants backlogged, a newcomer is served before any of them gets a second turn', async () => {
    for (let t = 0; t < 100; t++) await q.enqueue(items(`t${t}`, 40));
    const served = new Set(tenantsOf(await q.lease({ max: 250, visibilityMs: 60_000 })));
    expect(served.size).toBeLessThan(100);
    // Named to come last among equal passes.
    await q.enqueue([item('new-0', 'zz-newcomer')]);
    const before: string[] = [];
    for (;;) {
      const got = tenantsOf(await q.lease({ max: 16, visibilityMs: 60_000 }));
      const at = got.indexOf('zz-newcomer');
      before.push(...(at < 0 ? got : got.slice(0, at)));
      if (at >= 0) break;
    }
    expect(before.filter((t) => served.has(t))).toEqual([]);
  });

  it('keeps the priorities\' weighted choice above the tenants', async () => {
    await q.enqueue([...items('a', 50, 'critical'), ...items('b', 50, 'critical'), ...items('c', 20, 'low')]);
    const leases = await q.lease({ max: 45, visibilityMs: 60_000 });
    // Weights 8:1 over 45 leases → 5 low, as with one tenant; critical alternates between a and b.
    expect(leases.filter((l) => l.message.priority === 'low')).toHaveLength(5);
    const critical = tenantsOf(leases.filter((l) => l.message.priority === 'critical'));
    // Shared within one turn (⌈45/16⌉ = 3 tasks).
    expect(Math.abs(critical.filter((t) => t === 'a').length - critical.filter((t) => t === 'b').length)).toBeLessThanOrEqual(3);
    const strict = new RedisQueue(redis, { prefix, strategy: 'strict', weights: { critical: 8, high: 4, default: 2, low: 1 } });
    expect((await strict.lease({ max: 50, visibilityMs: 60_000 })).every((l) => l.message.priority === 'critical')).toBe(true);
  });

  it('a task handed back or reclaimed goes to the head of its tenant\'s list', async () => {
    await q.enqueue([...items('a', 3), ...items('b', 3)]);
    const [a0] = await q.lease({ max: 1, visibilityMs: 60_000 });
    expect(await q.release([held(a0!)])).toEqual([true]);
    const next = await q.lease({ max: 4, visibilityMs: 1 });
    expect(next.map((l) => l.message.id)).toEqual(['b-0', 'a-0', 'b-1', 'a-1']);
    await new Promise((r) => setTimeout(r, 5));
    expect(await q.reap(10, 60_000)).toHaveLength(4);
    expect((await q.readyIds('default')).sort()).toEqual(['a-0', 'a-1', 'a-2', 'b-0', 'b-1', 'b-2']);
    // Each reclaimed task went to the head of its own tenant's list.
    expect(await redis.lrange(q.keys.tenantQueue('default', 'a'), 2, 2)).toEqual(['a-2']);
    expect(await running()).toEqual({});
  });
});

describe('running caps', () => {
  it('a tenant at its cap is held back while others are served; each end of a lease frees a place', async () => {
    await q.configureTenants(0, [{ tenant: 'capped', weight: 1, maxRunning: 2 }]);
    await q.enqueue([...items('capped', 6), ...items('free', 6)]);
    const batch = await q.leaseBatch({ max: 20, visibilityMs: 60_000 });
    expect(tenantsOf(batch.leases).filter((t) => t === 'capped')).toHaveLength(2);
    expect(tenantsOf(batch.leases).filter((t) => t === 'free')).toHaveLength(6);
    // Nothing a worker may take is left (the capped tenant's four wait for room).
    expect(batch.left).toBe(0);
    expect(await running()).toEqual({ capped: 2, free: 6 });
    expect(await q.lease({ max: 20, visibilityMs: 60_000 })).toEqual([]);
    expect((await q.stats()).ready.default).toBe(4);
    // None of them a worker may take: the autoscaler's depth (queue_depth_leasable) leaves them out.
    expect((await q.stats()).leasable).toEqual({ critical: 0, high: 0, default: 0, low: 0 });
    await q.enqueue(items('late', 3, 'low'));
    expect((await q.stats()).leasable).toEqual({ critical: 0, high: 0, default: 0, low: 3 });
    expect(tenantsOf(await q.lease({ max: 20, visibilityMs: 60_000 }))).toEqual(['late', 'late', 'late']);

    const capped = batch.leases.filter((l) => l.message.tenant === 'capped');
    // An outcome ends a lease: one more may start, and no more.
    expect(await q.ack([held(capped[0]!)])).toEqual([true]);
    const afterAck = await q.lease({ max: 20, visibilityMs: 1 });
    expect(tenantsOf(afterAck)).toEqual(['capped']);
    // A reclaimed lease ends one too.
    await new Promise((r) => setTimeout(r, 5));
    expect((await q.reap(10, 60_000)).map((r) => r.id)).toEqual([afterAck[0]!.message.id]);
    const afterReap = await q.lease({ max: 20, visibilityMs: 60_000 });
    expect(tenantsOf(afterReap)).toEqual(['capped']);
    // So does a hand-back; the released task is first in line again.
    expect(await q.release([held(afterReap[0]!)])).toEqual([true]);
    expect((await q.lease({ max: 20, visibilityMs: 60_000 })).map((l) => l.message.id)).toEqual([afterReap[0]!.message.id]);
    // A retry and a burial end leases too.
    expect(await q.retry([{ ...held(capped[1]!), delayMs: 60_000 }])).toEqual([true]);
    expect(tenantsOf(await q.lease({ max: 20, visibilityMs: 60_000 }))).toEqual(['capped']);
    expect(await running()).toMatchObject({ capped: 2 });
  });

  it('the default cap applies to tenants without their own; 0 is unlimited; a changed setting applies at once', async () => {
    await q.configureTenants(1, [{ tenant: 'own', weight: 1, maxRunning: 3 }, { tenant: 'unlimited', weight: 1, maxRunning: 0 }]);
    await q.enqueue([...items('own', 5), ...items('unlimited', 5), ...items('other', 5)]);
    const leases = await q.lease({ max: 20, visibilityMs: 60_000, defaultMaxRunning: 1 });
    const count = (t: string) => tenantsOf(leases).filter((x) => x === t).length;
    expect([count('own'), count('unlimited'), count('other')]).toEqual([3, 5, 1]);
    // Raising a cap brings the parked tenant back without waiting for one of its leases to end.
    expect((await q.configureTenants(1, [{ tenant: 'own', weight: 1, maxRunning: 4 }])).changed).toBe(1);
    expect(tenantsOf(await q.lease({ max: 20, visibilityMs: 60_000, defaultMaxRunning: 1 }))).toEqual(['own']);
    // The same settings again change nothing.
    expect((await q.configureTenants(1, [{ tenant: 'own', weight: 1, maxRunning: 4 }])).changed).toBe(0);
  });

  it('the cap holds across leases of several workers and across priorities', async () => {
    await q.configureTenants(0, [{ tenant: 'x', weight: 1, maxRunning: 3 }]);
    await q.enqueue([...items('x', 10, 'critical'), ...items('y', 10, 'low')]);
    await q.enqueue(Array.from({ length: 10 }, (_, i) => item(`x-low-${i}`, 'x', 'low')));
    const other = new RedisQueue(redis, { prefix, strategy: 'weighted', weights: { critical: 8, high: 4, default: 2, low: 1 } });
    const leases = [...(await q.lease({ max: 2, visibilityMs: 60_000 })), ...(await other.lease({ max: 30, visibilityMs: 60_000 }))];
    expect(tenantsOf(leases).filter((t) => t === 'x')).toHaveLength(3);
    expect(tenantsOf(leases).filter((t) => t === 'y')).toHaveLength(10);
  });

  it('a tenant parked while its ring empties and others join is served in turn once unparked, not after their backlog', async () => {
    await q.configureTenants(0, [{ tenant: 'capped', weight: 1, maxRunning: 1 }]);
    await q.enqueue([...items('capped', 200), ...items('other', 100)]);
    // 100 turns each: capped's pass grows with other's.
    for (let i = 0; i < 100; i++) {
      const got = await q.lease({ max: 2, visibilityMs: 60_000 });
      expect(tenantsOf(got).sort()).toEqual(['capped', 'other']);
      await q.ack(got.map(held));
    }
    // capped is parked holding its one lease; other has nothing left: the ring is empty.
    const [hold] = await q.lease({ max: 1, visibilityMs: 60_000 });
    expect(hold!.message.tenant).toBe('capped');
    expect(await redis.zcard(q.keys.rings[2]!)).toBe(0);
    // A tenant joins with a backlog while capped is parked, then capped's lease ends.
    await q.enqueue(items('fresh', 300));
    await q.ack([held(hold!)]);
    const order: string[] = [];
    for (let i = 0; i < 6; i++) {
      const got = await q.lease({ max: 1, visibilityMs: 60_000 });
      order.push(...tenantsOf(got));
      await q.ack(got.map(held));
    }
    // Level turns from here (which goes first is the join's rule), not 100 of fresh's first.
    expect(order.filter((t) => t === 'capped').length).toBeGreaterThanOrEqual(2);
  });

  it('a parked tenant\'s new tasks wait without waking workers; the end of one of its leases rings', async () => {
    await q.configureTenants(0, [{ tenant: 'capped', weight: 1, maxRunning: 1 }]);
    await q.enqueue(items('capped', 2));
    const [l] = await q.lease({ max: 5, visibilityMs: 60_000 });
    const bell = q.doorbell();
    try {
      while (await bell.wait(1));
      await q.enqueue([item('capped-late', 'capped')]);
      expect(await bell.wait(1)).toBe(false);
      await q.ack([held(l!)]);
      expect(await bell.wait(1)).toBe(true);
      expect((await q.lease({ max: 5, visibilityMs: 60_000 })).map((x) => x.message.id)).toEqual(['capped-1']);
    } finally {
      bell.close();
    }
  });
});

describe('stats and the sweep', () => {
  it("the oldest waiting task leaves out tenants held at their running cap: more workers would not start theirs (a cap is not a queue nobody serves)", async () => {
    await q.configureTenants(0, [{ tenant: 'capped', weight: 1, maxRunning: 1 }]);
    await q.enqueue(items('capped', 3));
    const [l] = await q.lease({ max: 5, visibilityMs: 60_000 });
    expect(l!.message.tenant).toBe('capped');
    await new Promise((r) => setTimeout(r, 1100));
    let s = await q.stats();
    // Its two tasks wait (and are counted), but only because of its cap.
    expect(s.ready.default).toBe(2);
    expect(s.oldestWaitingSeconds.default).toBe(0);
    // A tenant a worker may serve now is measured as before.
    await q.enqueue([item('free-0', 'free')]);
    await new Promise((r) => setTimeout(r, 200));
    s = await q.stats();
    expect(s.oldestWaitingSeconds.default).toBeGreaterThanOrEqual(0.15);
    expect(s.oldestWaitingSeconds.default).toBeLessThan(1);
    // Once its lease ends it may be served again, and its head counts with its whole wait.
    await q.ack([held(l!)]);
    s = await q.stats();
    expect(s.oldestWaitingSeconds.default).toBeGreaterThanOrEqual(1.1);
  });

  it('stats count every tenant\'s list, report the busiest tenants one by one and sum the rest', async () => {
    const few = new RedisQueue(redis, { prefix, strategy: 'weighted', weights: { critical: 8, high: 4, default: 2, low: 1 }, tenantStatsLimit: 2 });
    await q.enqueue([...items('a', 5), ...items('b', 3, 'high'), ...items('c', 1), ...items('d', 1, 'low')]);
    await q.lease({ max: 1, visibilityMs: 60_000 });
    const s = await few.stats();
    expect(s.ready).toEqual({ critical: 0, high: 2, default: 6, low: 1 });
    expect(s.processing).toBe(1);
    expect(s.oldestWaitingSeconds.default).toBeGreaterThanOrEqual(0);
    expect(s.tenants).toEqual([
      { tenant: 'a', ready: 5, running: 0 },
      { tenant: 'b', ready: 2, running: 1 },
      { tenant: null, ready: 2, running: 0 },
    ]);
  });

  it('puts back a ready list its ring lost, and recounts running attempts that do not add up', async () => {
    await q.enqueue([...items('a', 2), ...items('b', 2)]);
    const [l] = await q.lease({ max: 1, visibilityMs: 60_000 });
    await redis.del(q.keys.rings[2]!, q.keys.running);
    expect(await q.lease({ max: 5, visibilityMs: 60_000 })).toEqual([]);
    const s = await q.sweep(100);
    expect(s).toMatchObject({ known: 4, held: 4, forgotten: [], orphans: 0 });
    // Two lists back in the ring, and one recount.
    expect(s.tenantRepairs).toBe(3);
    expect(await running()).toEqual({ [l!.message.tenant]: 1 });
    expect(await q.lease({ max: 5, visibilityMs: 60_000 })).toHaveLength(3);
    expect((await q.sweep(100)).tenantRepairs).toBe(0);
  });
});
