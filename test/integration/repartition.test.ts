/**
 * Repartitioning the queue's Redis state (core/queue/repartition.ts) on one Redis: state built
 * through the real queue in one layout is found whole in another (ready lists per tenant in order,
 * retries with their due times, dead letters, tombstones, tenant settings, admission counters),
 * the old keys are gone, a rerun changes nothing, and leases refuse the move unless forced.
 */
import Redis from 'ioredis';
import { createRedis } from '../../services/core/db/redis';
import { createQueue, AnyQueue } from '../../services/core/queue/create-queue';
import { PartitionedQueue } from '../../services/core/queue/partitioned-queue';
import { assertLayout, partitionOf, partitionTags } from '../../services/core/queue/partitions';
import type { EnqueueItem } from '../../services/core/queue/queue';
import { RedisQueue } from '../../services/core/queue/redis-queue';
import { repartition, RepartitionRefused } from '../../services/core/queue/repartition';
import { TenantAdmission } from '../../services/core/tenancy/admission';
import { PRIORITIES, Priority } from '../../services/core/tasks/priority';
import { testRedisAddr, uniqueRedisPrefix } from '../support/test-env';

const WEIGHTS = { critical: 8, high: 4, default: 2, low: 1 };
let redis: Redis;
let prefix: string;
const tenantOf = new Map<string, string>();

beforeAll(() => {
  redis = createRedis({ addr: testRedisAddr(), name: 'repartition-test', offlineQueue: true });
});
afterEach(async () => {
  for (const pattern of [`{${prefix}}:*`, `{${prefix}:k*`]) {
    const keys = await redis.keys(pattern);
    if (keys.length) await redis.del(...keys);
  }
});
afterAll(() => redis.quit());

const queue = (partitions: number): AnyQueue => createQueue(redis, { prefix, strategy: 'weighted', weights: WEIGHTS, partitions });
const partsOf = (q: AnyQueue): RedisQueue[] => (q instanceof PartitionedQueue ? q.parts : [q]);

function item(id: string, tenant: string, priority: Priority): EnqueueItem {
  tenantOf.set(id, tenant);
  return { id, tenant, type: 'noop', priority, payload: { id }, maxAttempts: 3, createdAtMs: Date.now(), attempts: 0 };
}

/**
 * 30 tenants, mixed priorities; some leased then retried (half due at once, half in an hour),
 * buried or handed back; some cancelled; dispatch settings and admission counters.
 */
async function buildState(q: AnyQueue): Promise<void> {
  const items: EnqueueItem[] = [];
  for (let t = 0; t < 30; t++) {
    const tenant = t === 0 ? 'default' : `tenant-${t}`;
    for (let i = 0; i < 8; i++) items.push(item(`${tenant}-${i}`, tenant, PRIORITIES[(t + i) % 4]!));
  }
  await q.enqueue(items);
  await q.configureTenants(40, [
    { tenant: 'tenant-1', weight: 3, maxRunning: 2 },
    { tenant: 'tenant-2', weight: 1, maxRunning: null },
    { tenant: 'tenant-7', weight: 5, maxRunning: 0 },
    { tenant: 'tenant-9', weight: 1, maxRunning: 4 },
  ]);
  const leases = await q.lease({ max: 60, visibilityMs: 60_000 });
  expect(leases).toHaveLength(60);
  const held = (i: number) => ({ id: leases[i]!.message.id, token: leases[i]!.token, priority: leases[i]!.message.priority, settleAttempts: 1 });
  await q.finish([
    ...Array.from({ length: 20 }, (_, i) => ({ ...held(i), outcome: 'retrying' as const, delayMs: i % 2 === 0 ? 1 : 3_600_000 })),
    ...Array.from({ length: 15 }, (_, i) => ({ ...held(20 + i), outcome: 'dead' as const })),
    ...Array.from({ length: 10 }, (_, i) => ({ ...held(35 + i), outcome: 'succeeded' as const })),
  ]);
  await q.release(leases.slice(45).map((l) => ({ id: l.message.id, token: l.token, priority: l.message.priority })));
  // Cancel a few waiting tasks: one ready, one retrying, one dead.
  const readyId = (await q.readyIds('low'))[0]!;
  const cancelled = [{ id: readyId, tenant: tenantOf.get(readyId)! }, ...[leases[1]!.message, leases[21]!.message].map((m) => ({ id: m.id, tenant: m.tenant }))];
  expect(await q.cancel(cancelled)).toEqual(['removed', 'removed', 'removed']);
  const admission = new TenantAdmission(redis, prefix, partsOf(q).length);
  for (const t of ['tenant-3', 'tenant-4', 'default']) {
    expect((await admission.admit(t, 2, { rate: 10, burst: 20, maxUnfinished: 100 })).admitted).toBe(true);
  }
  await admission.trueUp(new Map([['tenant-3', 5], ['tenant-5', 1]]), new Map([['tenant-3', 2]]));
}

interface Snapshot {
  /** `priority|tenant` → ready ids in list order. */
  ready: Record<string, string[]>;
  /** id → priority and due time. */
  retries: Record<string, string>;
  /** priority → tenant → dead ids in list order; and the ids. */
  deadByTenant: Record<string, string[]>;
  dead: Record<string, string[]>;
  tombstones: Record<string, string>;
  dispatch: Record<string, string>;
  admission: Record<string, string>;
  stats: unknown;
}

async function snapshot(q: AnyQueue): Promise<Snapshot> {
  const s: Snapshot = { ready: {}, retries: {}, deadByTenant: {}, dead: {}, tombstones: {}, dispatch: {}, admission: {}, stats: null };
  const parts = partsOf(q);
  for (const [index, part] of parts.entries()) {
    const k = part.keys;
    const tag = k.meta.slice(0, k.meta.indexOf('}') + 1);
    const registered = new Set(await redis.smembers(k.tenants));
    for (const [i, p] of PRIORITIES.entries()) {
      // A tenant with a ready list is in its ring (not parked: no leases are held) and registered.
      expect(await redis.zcard(k.parked[i]!)).toBe(0);
      for (const t of await redis.zrange(k.rings[i]!, 0, -1)) {
        const ids = await redis.lrange(k.tenantQueue(p, t), 0, -1);
        if (ids.length === 0) continue;
        expect(registered.has(t)).toBe(true);
        expect(partitionOf(t, parts.length)).toBe(index);
        s.ready[`${p}|${t}`] = ids;
      }
      const flat = await redis.zrange(k.retries[i]!, 0, -1, 'WITHSCORES');
      for (let j = 0; j < flat.length; j += 2) s.retries[flat[j]!] = `${p}@${flat[j + 1]}`;
      const dead = await redis.lrange(k.deadLetters[i]!, 0, -1);
      s.dead[p] = [...(s.dead[p] ?? []), ...dead];
      for (const id of dead) (s.deadByTenant[`${p}|${tenantOf.get(id)}`] ??= []).push(id);
    }
    // Every task known here belongs here (nothing of a tenant that moved is left behind).
    for (const meta of Object.values(await redis.hgetall(k.meta))) expect(partitionOf(meta.split(':')[2] ?? 'default', parts.length)).toBe(index);
    const tomb = await redis.zrange(k.tombstones, 0, -1, 'WITHSCORES');
    for (let j = 0; j < tomb.length; j += 2) s.tombstones[tomb[j]!] = tomb[j + 1]!;
    for (const [f, v] of Object.entries(await redis.hgetall(k.tenantDispatch))) {
      if (f !== '*') expect(partitionOf(f, parts.length)).toBe(index);
      s.dispatch[f] = v;
    }
    const own = Object.entries(await redis.hgetall(k.tenantDispatch)).filter(([f, v]) => f !== '*' && v !== '1:-1').length;
    expect(Number(await redis.hget(k.wrr, 'custom'))).toBe(own);
    for (const name of ['bucket', 'admitted', 'unfinished', 'admitted_at_count']) {
      for (const [f, v] of Object.entries(await redis.hgetall(`${tag}:tenant:${name}`))) s.admission[`${name}|${f}`] = name === 'bucket' && f.endsWith(':at') ? 'at' : v;
    }
  }
  for (const p of PRIORITIES) s.dead[p]!.sort();
  s.tombstones = Object.fromEntries(Object.entries(s.tombstones).sort());
  const st = await q.stats();
  s.stats = { ready: st.ready, retrying: st.retrying, dead: st.dead, processing: st.processing };
  return s;
}

/** A repartitioned queue has every tombstone in every partition (a cancelled task's tenant is not known any more). */
async function expectTombstonesEverywhere(q: AnyQueue, all: Record<string, string>): Promise<void> {
  for (const part of partsOf(q)) {
    const flat = await redis.zrange(part.keys.tombstones, 0, -1, 'WITHSCORES');
    const mine: Record<string, string> = {};
    for (let j = 0; j < flat.length; j += 2) mine[flat[j]!] = flat[j + 1]!;
    expect(mine).toEqual(all);
  }
}

/** Keys of the namespace outside the control slot's own (and lease-call records, which expire with their leases). */
async function namespaceKeys(): Promise<string[]> {
  const control = new Set([`{${prefix}}:layout`, `{${prefix}}:doorbell`, `{${prefix}}:workers`, `{${prefix}}:worker_slots`]);
  return [...(await redis.keys(`{${prefix}}:*`)), ...(await redis.keys(`{${prefix}:k*`))].filter((k) => !control.has(k) && !k.includes('}:lease-call:')).sort();
}

test('1 → 4 → 1 keeps every task where it was, in order; old keys go; a rerun is a no-op', async () => {
  prefix = uniqueRedisPrefix('repart');
  const q1 = queue(1);
  await buildState(q1);
  const before = await snapshot(q1);
  expect(Object.keys(before.retries)).toHaveLength(19);
  expect(Object.keys(before.tombstones)).toHaveLength(3);
  expect(Object.keys(before.dispatch)).toHaveLength(5);

  const up = await repartition(redis, { prefix, to: 4 });
  expect(up).toMatchObject({ from: 1, to: 4, changed: true, resumed: false, retrying: 19, dead: 14, tombstones: 3, leasesDropped: 0 });
  expect(up.ready).toBe(Object.values(before.ready).flat().length);
  expect(up.tasks).toBe(Object.values(before.ready).flat().length + 19 + 14);
  expect(up.tenants).toBe(30);
  expect(await redis.get(`{${prefix}}:layout`)).toBe('4');
  expect((await namespaceKeys()).filter((k) => k.startsWith(`{${prefix}}`))).toEqual([]);
  const q4 = queue(4) as PartitionedQueue;
  expect(await snapshot(q4)).toEqual(before);
  await expectTombstonesEverywhere(q4, before.tombstones);

  // Retries keep their due times: those due already are promoted, the rest wait an hour.
  const promoted = await q4.promoteDue(100);
  expect(Object.values(promoted.moved).reduce((a, b) => a + b, 0)).toBe(10);
  expect(promoted.nextDueInMs).toBeGreaterThan(3_500_000);
  const leased = await q4.lease({ max: 500, visibilityMs: 60_000 });
  expect(leased.length).toBeGreaterThan(100);
  await q4.release(leased.map((l) => ({ id: l.message.id, token: l.token, priority: l.message.priority })));
  const settled = await snapshot(q4);

  expect(await repartition(redis, { prefix, to: 4 })).toMatchObject({ changed: false, tasks: 0 });
  const down = await repartition(redis, { prefix, to: 1 });
  expect(down).toMatchObject({ from: 4, to: 1, changed: true, tombstones: 12 });
  expect(await redis.get(`{${prefix}}:layout`)).toBe('1');
  expect((await namespaceKeys()).filter((k) => k.startsWith(`{${prefix}:k`))).toEqual([]);
  // Dead letters of several partitions follow one another: each tenant's in order (deadByTenant).
  expect(await snapshot(queue(1))).toEqual(settled);
  expect(await repartition(redis, { prefix, to: 1 })).toMatchObject({ changed: false });
});

test('M > 1 to N > 1 where a tag is shared: what stays is kept in place, what moves is removed', async () => {
  // A prefix whose partition 0 has the same tag with 2 and with 4 partitions.
  let i = 0;
  while (partitionTags(`trepshared${i}`, 2)[0] !== partitionTags(`trepshared${i}`, 4)[0]) i++;
  prefix = `trepshared${i}`;
  await repartition(redis, { prefix, to: 2 });
  const q2 = queue(2);
  await buildState(q2);
  const before = await snapshot(q2);
  // Small chunks: every paging loop turns many times.
  const up = await repartition(redis, { prefix, to: 4, chunk: 7 });
  expect(up).toMatchObject({ from: 2, to: 4, changed: true });
  expect(up.tasks).toBeLessThan(Object.values(before.ready).flat().length + 33);
  const q4 = queue(4);
  expect(await snapshot(q4)).toEqual(before);
  await expectTombstonesEverywhere(q4, before.tombstones);
  const tags4 = new Set(partitionTags(prefix, 4));
  expect((await namespaceKeys()).filter((k) => !tags4.has(k.slice(0, k.indexOf('}') + 1)))).toEqual([]);
  // And back, through the shared tag the other way.
  await repartition(redis, { prefix, to: 2, chunk: 7 });
  expect(await snapshot(queue(2))).toEqual(before);
});

test('leases refuse the move (nothing changed) unless --force, which drops them', async () => {
  prefix = uniqueRedisPrefix('repartlease');
  const q1 = queue(1);
  await q1.enqueue(Array.from({ length: 10 }, (_, i) => item(`lease-${i}`, `t${i % 3}`, 'default')));
  const leases = await q1.lease({ max: 4, visibilityMs: 60_000 });
  await expect(repartition(redis, { prefix, to: 3 })).rejects.toThrow(RepartitionRefused);
  await expect(repartition(redis, { prefix, to: 3 })).rejects.toThrow(/4 lease\(s\) in \{.*--force/);
  expect(await redis.get(`{${prefix}}:layout`)).toBeNull();
  expect(await redis.exists(`{${prefix}}:repartition`)).toBe(0);
  expect((await q1.stats()).processing).toBe(4);

  const forced = await repartition(redis, { prefix, to: 3, force: true });
  expect(forced).toMatchObject({ leasesDropped: 4, ready: 6, tasks: 6 });
  const q3 = queue(3);
  const st = await q3.stats();
  expect(st.processing).toBe(0);
  expect(Object.values(st.ready).reduce((a, b) => a + b, 0)).toBe(6);
  // The dropped tasks are unknown to Redis: the reconciler indexes them again from Postgres.
  expect(await q3.indexed(leases.map((l) => ({ id: l.message.id, tenant: l.message.tenant })))).toEqual([null, null, null, null]);
});

test('while an interrupted run is pending, an api or worker is refused with either count: one on the old layout would change what the rerun resumes from', async () => {
  prefix = uniqueRedisPrefix('repartpending');
  const q1 = queue(1);
  await q1.enqueue(['a', 'b', 'c', 'd'].map((id) => item(id, 'acme', 'default')));
  // As if a run to 4 stopped after the ready lists: hashes and acme's list copied, the rest not.
  await redis.hset(`{${prefix}}:repartition`, 'from', 1, 'to', 4, 'phase', 'copy');
  await redis.set(`{${prefix}}:layout`, '1');
  const tag = partitionTags(prefix, 4)[partitionOf('acme', 4)]!;
  const src = (q1 as RedisQueue).keys;
  for (const h of ['msg', 'meta', 'attempts', 'ready_at']) await redis.hset(`${tag}:${h}`, await redis.hgetall(`{${prefix}}:${h}`));
  await redis.rpush(`${tag}:q:default:acme`, ...(await redis.lrange(src.tenantQueue('default', 'acme'), 0, -1)));
  // Before, the old count passed: its worker ran b and c, and the rerun (resuming acme's list at
  // its copied length) left them in the new layout's list, to be leased and run again.
  await expect(assertLayout(redis, prefix, 1)).rejects.toThrow(/being repartitioned from 1 to 4.*--to 4/);
  await expect(assertLayout(redis, prefix, 4)).rejects.toThrow(/being repartitioned from 1 to 4/);
  await repartition(redis, { prefix, to: 4 });
  await expect(assertLayout(redis, prefix, 4)).resolves.toBe(true);
  expect((await queue(4).lease({ max: 10, visibilityMs: 60_000 })).map((l) => l.message.id)).toEqual(['a', 'b', 'c', 'd']);
});

test('an interrupted run is finished by running it again; another --to is refused meanwhile', async () => {
  prefix = uniqueRedisPrefix('repartresume');
  const q1 = queue(1);
  await buildState(q1);
  const before = await snapshot(q1);
  // As if a run to 4 stopped midway: recorded, part of it copied.
  await redis.hset(`{${prefix}}:repartition`, 'from', 1, 'to', 4, 'phase', 'copy');
  const tag = partitionTags(prefix, 4)[partitionOf('tenant-5', 4)]!;
  const first = before.ready[Object.keys(before.ready).find((k) => k.endsWith('|tenant-5'))!]!;
  const [p] = Object.keys(before.ready).find((k) => k.endsWith('|tenant-5'))!.split('|');
  await redis.rpush(`${tag}:q:${p}:tenant-5`, first[0]!);
  await expect(repartition(redis, { prefix, to: 2 })).rejects.toThrow(/interrupted repartition from 1 to 4.*--to 4/);
  const done = await repartition(redis, { prefix, to: 4 });
  expect(done).toMatchObject({ resumed: true, changed: true });
  expect(done.ready).toBe(Object.values(before.ready).flat().length - 1);
  expect(await snapshot(queue(4))).toEqual(before);
  expect(await redis.exists(`{${prefix}}:repartition`)).toBe(0);
});
