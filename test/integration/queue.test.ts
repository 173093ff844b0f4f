/** The Redis queue's scripts against a real Redis: ordering, selection, fencing, reaping. */
import { PRIORITIES, Priority } from '../../services/core/tasks/priority';
import { RedisQueue } from '../../services/core/queue/redis-queue';
import { EnqueueItem, Lease } from '../../services/core/queue/queue';
import { createRedis } from '../../services/core/db/redis';
import { queueKeys } from '../../services/core/queue/keys';
import { testRedisAddr, uniqueRedisPrefix } from '../support/test-env';
import Redis from 'ioredis';
import { AddressInfo, connect, createServer, Socket } from 'node:net';

const weights = { critical: 8, high: 4, default: 2, low: 1 };
let redis: Redis;
let prefix: string;

function item(id: string, priority: Priority = 'default', maxAttempts = 3): EnqueueItem {
  return { id, tenant: 'default', type: 'noop', priority, payload: { n: id }, maxAttempts, createdAtMs: Date.now(), attempts: 0 };
}

function queue(strategy: 'weighted' | 'strict' = 'weighted'): RedisQueue {
  return new RedisQueue(redis, { prefix, strategy, weights });
}

/** Every key of the namespace with its full content, to prove a rejected call changed nothing. */
async function snapshot(): Promise<Record<string, unknown>> {
  const keys = (await redis.keys(`{${prefix}}:*`)).sort();
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    const t = await redis.type(k);
    if (t === 'list') out[k] = await redis.lrange(k, 0, -1);
    else if (t === 'hash') out[k] = await redis.hgetall(k);
    else if (t === 'zset') out[k] = await redis.zrange(k, 0, -1, 'WITHSCORES');
    else if (t === 'set') out[k] = (await redis.smembers(k)).sort();
    else out[k] = await redis.get(k);
  }
  return out;
}

beforeAll(() => {
  redis = createRedis({ addr: testRedisAddr(), name: 'queue-test', offlineQueue: true });
});
beforeEach(() => {
  prefix = uniqueRedisPrefix();
});
afterEach(async () => {
  const keys = await redis.keys(`{${prefix}}:*`);
  if (keys.length) await redis.del(...keys);
});
afterAll(async () => {
  await redis.quit();
});

describe('keys', () => {
  it('puts every key of a namespace under one hash tag', () => {
    const k = queueKeys('ts');
    const all = [...k.tenantBlock, k.tenantDispatch, ...k.retries, ...k.deadLetters, k.processing, k.messages, k.meta, k.attempts, k.tokens, k.readyAt, k.wrr, k.doorbell];
    for (const key of [...all, k.tenantQueue('low', 'acme')]) expect(key.startsWith('{ts}:')).toBe(true);
    expect(new Set(all).size).toBe(all.length);
    // A tenant's ready list is built from the prefix the scripts get in KEYS.
    expect(k.tenantQueue('low', 'acme')).toBe(`${k.tenantQueuePrefix}low:acme`);
  });
});

describe('enqueue and lease', () => {
  it('is FIFO within a priority and hands the payload to the worker', async () => {
    const q = queue();
    await q.enqueue(['a', 'b', 'c', 'd'].map((id) => item(id)));
    const first = await q.lease({ max: 2, visibilityMs: 10000 });
    const second = await q.lease({ max: 10, visibilityMs: 10000 });
    expect(first.map((l) => l.message.id)).toEqual(['a', 'b']);
    expect(second.map((l) => l.message.id)).toEqual(['c', 'd']);
    expect(first[0]!.message.payload).toEqual({ n: 'a' });
    expect(first[0]!.attempt).toBe(1);
  });

  it('does not index a task twice', async () => {
    const q = queue();
    expect(await q.enqueue([item('a'), item('a')])).toEqual([true, false]);
    expect(await q.enqueue([item('a')])).toEqual([false]);
    expect((await q.stats()).ready.default).toBe(1);
  });

  it('takes the deadline from the Redis clock and gives each lease a unique token', async () => {
    const q = queue();
    await q.enqueue(['a', 'b'].map((id) => item(id)));
    const [t] = await redis.time();
    const leases = await q.lease({ max: 2, visibilityMs: 5000 });
    const serverNowMs = Number(t) * 1000;
    for (const l of leases) {
      expect(l.deadlineMs - l.leasedAtMs).toBe(5000);
      expect(Math.abs(l.leasedAtMs - serverNowMs)).toBeLessThan(2000);
      expect(Number(await redis.zscore(q.keys.processing, l.message.id))).toBe(l.deadlineMs);
    }
    expect(leases[0]!.token).not.toBe(leases[1]!.token);
    const again = await q.lease({ max: 1, visibilityMs: 5000 });
    expect(again).toEqual([]);
  });

  it('leases a task once per call even if its id sits in a queue twice', async () => {
    const q = queue();
    await q.enqueue([item('a'), item('b')]);
    await redis.rpush(q.keys.tenantQueue('default', 'default'), 'a'); // a stray duplicate, as no script would leave one
    const leases = await q.lease({ max: 10, visibilityMs: 5000 });
    expect(leases.map((l) => [l.message.id, l.attempt])).toEqual([
      ['a', 1],
      ['b', 1],
    ]);
    expect(await redis.llen(q.keys.tenantQueue('default', 'default'))).toBe(0);
  });

  it('never repeats a token: across calls, and across queue instances (processes) with the same owner', async () => {
    const [q1, q2] = [queue(), queue()];
    await q1.enqueue(Array.from({ length: 6 }, (_, i) => item(`t${i}`)));
    const tokens: string[] = [];
    for (const q of [q1, q2, q1, q2, q1, q2]) tokens.push(...(await q.lease({ max: 1, visibilityMs: 5000, owner: 'worker-a' })).map((l) => l.token));
    expect(tokens).toHaveLength(6);
    expect(new Set(tokens).size).toBe(6);
    // The owner stays readable in front of `~` (task_runs names the worker from it).
    expect(tokens.every((t) => t.startsWith('worker-a~'))).toBe(true);
  });

  it('weighted: serves low while critical is saturated, in proportion to the weights', async () => {
    const q = queue('weighted');
    await q.enqueue(Array.from({ length: 100 }, (_, i) => item(`c${i}`, 'critical')));
    await q.enqueue(Array.from({ length: 20 }, (_, i) => item(`l${i}`, 'low')));
    const leased = await q.lease({ max: 45, visibilityMs: 10000 });
    const low = leased.filter((l) => l.message.priority === 'low').length;
    // weights 8:1 over 45 leases → 5 low, spread out rather than all at the end.
    expect(low).toBe(5);
    expect(leased.slice(0, 9).some((l) => l.message.priority === 'low')).toBe(true);
  });

  it('weighted: keeps the rotation across calls (one lease at a time still reaches low)', async () => {
    const q = queue('weighted');
    await q.enqueue(Array.from({ length: 30 }, (_, i) => item(`c${i}`, 'critical')));
    await q.enqueue([item('l0', 'low')]);
    const ids: string[] = [];
    for (let i = 0; i < 9; i++) ids.push(...(await q.lease({ max: 1, visibilityMs: 10000 })).map((l) => l.message.id));
    expect(ids).toContain('l0');
  });

  it('strict: never serves low while critical has work', async () => {
    const q = queue('strict');
    await q.enqueue(Array.from({ length: 50 }, (_, i) => item(`c${i}`, 'critical')));
    await q.enqueue([item('h0', 'high'), item('l0', 'low')]);
    const leased = await q.lease({ max: 50, visibilityMs: 10000 });
    expect(leased.every((l) => l.message.priority === 'critical')).toBe(true);
    const next = await q.lease({ max: 2, visibilityMs: 10000 });
    expect(next.map((l) => l.message.id)).toEqual(['h0', 'l0']);
  });
});

describe('fencing', () => {
  it('ack, retry, bury, release and extend succeed only with the current token', async () => {
    const q = queue();
    await q.enqueue([item('a')]);
    const [l] = await q.lease({ max: 1, visibilityMs: 10000 });
    const stale = { id: 'a', token: `${l!.token}-stale`, priority: 'default' as Priority };
    const before = await snapshot();
    expect(await q.ack([stale])).toEqual([false]);
    expect(await q.retry([{ ...stale, delayMs: 0 }])).toEqual([false]);
    expect(await q.bury([stale])).toEqual([false]);
    expect(await q.release([stale])).toEqual([false]);
    expect(await q.extend([stale], 10000)).toEqual([false]);
    expect(await snapshot()).toEqual(before);
    expect(await q.ack([{ id: 'a', token: l!.token }])).toEqual([true]);
    // Only the round-robin state, the tenant (until a sweep), the last minute's counts (until
    // their bucket expires) and the lease call's record (until the next call) are left: the acked
    // task is gone from every structure, and its tenant runs nothing.
    const left = Object.keys(await snapshot()).filter((k) => !k.startsWith(q.keys.ratesPrefix) && !k.startsWith(q.keys.leaseCallPrefix));
    expect(left).toEqual([q.keys.tenants, q.keys.wrr]);
  });

  it('a token is dead once its lease was reaped and the task leased again', async () => {
    const q = queue();
    await q.enqueue([item('a')]);
    const [first] = await q.lease({ max: 1, visibilityMs: 1 });
    await new Promise((r) => setTimeout(r, 10));
    expect((await q.reap(10, 60_000)).map((r) => [r.id, r.expiredToken, r.destination])).toEqual([['a', first!.token, 'queued']]);
    const [second] = await q.lease({ max: 1, visibilityMs: 10000 });
    expect(second!.attempt).toBe(2);
    const before = await snapshot();
    expect(await q.ack([{ id: 'a', token: first!.token }])).toEqual([false]);
    expect(await snapshot()).toEqual(before);
  });
});

describe('finish', () => {
  it('ends a batch of mixed outcomes in one call: forgotten, retrying, dead; a stale token changes nothing', async () => {
    const q = queue();
    await q.enqueue([item('a'), item('b', 'high'), item('c', 'low'), item('d')]);
    const leases = await q.lease({ max: 4, visibilityMs: 10000 });
    const token = (id: string) => leases.find((l) => l.message.id === id)!.token;
    const done = await q.finish([
      { id: 'a', token: token('a'), priority: 'default', outcome: 'succeeded', settleAttempts: 1 },
      { id: 'b', token: token('b'), priority: 'high', outcome: 'retrying', delayMs: 60_000, settleAttempts: 1 },
      { id: 'c', token: token('c'), priority: 'low', outcome: 'dead', settleAttempts: 1 },
      { id: 'd', token: `${token('d')}-stale`, priority: 'default', outcome: 'succeeded', settleAttempts: 1 },
    ]);
    expect(done).toEqual(['finished', 'finished', 'finished', 'stale']);
    const k = q.keys;
    expect(await redis.hexists(k.messages, 'a')).toBe(0);
    expect(await redis.zrange(k.retries[1]!, 0, -1)).toEqual(['b']);
    expect(Number(await redis.zscore(k.retries[1]!, 'b')) - Date.now()).toBeGreaterThan(50_000);
    expect(await q.deadLetterIds('low')).toEqual(['c']);
    // d is still leased under its real token.
    expect(await redis.zrange(k.processing, 0, -1)).toEqual(['d']);
    expect(await redis.hget(k.tokens, 'd')).toBe(token('d'));
  });

  it('an outcome Postgres applied settles a rebuilt copy whose lease is gone, unless a lease holds it now', async () => {
    const q = queue();
    await q.enqueue([item('a'), item('b')]);
    const old = await q.lease({ max: 2, visibilityMs: 1 });
    const held = (id: string) => ({ id, token: old.find((l) => l.message.id === id)!.token, priority: 'default' as Priority });
    await new Promise((r) => setTimeout(r, 5));
    expect(await q.reap(10, 60_000)).toHaveLength(2); // both wait again; their old tokens are dead
    const before = await snapshot();
    // Only ending the lease (Postgres did not apply the outcome): nothing to do.
    expect(await q.finish([{ ...held('a'), outcome: 'succeeded', settleAttempts: 0 }])).toEqual(['stale']);
    expect(await snapshot()).toEqual(before);
    // Applied: the waiting copy of a goes where Postgres says (retrying, attempt 1 counted).
    expect(await q.finish([{ ...held('a'), outcome: 'retrying', delayMs: 60_000, settleAttempts: 1 }])).toEqual(['settled']);
    expect(await q.readyIds('default')).toEqual(['b']);
    expect(await redis.zrange(q.keys.retries[2]!, 0, -1)).toEqual(['a']);
    expect(await redis.hget(q.keys.attempts, 'a')).toBe('1');
    // b is leased again by someone else: its holder decides, the late outcome does not.
    const [again] = await q.lease({ max: 1, visibilityMs: 10000 });
    expect(again!.message.id).toBe('b');
    const leasedB = await snapshot();
    expect(await q.finish([{ ...held('b'), outcome: 'succeeded', settleAttempts: 1 }])).toEqual(['stale']);
    expect(await snapshot()).toEqual(leasedB);
  });

  it('settle ends a lease still held under the given token as it moves the task, leaves other leases alone, and never queues a tombstoned task', async () => {
    const q = queue();
    const k = q.keys;
    await q.enqueue([item('a'), item('b'), item('c'), item('d')]);
    const leases = await q.lease({ max: 4, visibilityMs: 60_000 });
    const tokenOf = (id: string) => leases.find((l) => l.message.id === id)!.token;
    // An operator cancelled d while it ran.
    await q.cancel([{ id: 'd', tenant: 'default' }]);
    const at = { tenant: 'default', priority: 'default' as Priority, attempts: 1 };
    const dueAtMs = Date.now() + 60_000;
    expect(
      await q.settle([
        { id: 'a', ...at, state: 'cancelled', token: tokenOf('a') },
        { id: 'b', ...at, state: 'retrying', dueAtMs, token: tokenOf('b') },
        { id: 'c', ...at, state: 'queued', token: 'stale' },
        { id: 'd', ...at, state: 'queued', token: tokenOf('d') },
      ]),
    ).toBe(3);
    expect(await redis.zrange(k.processing, 0, -1)).toEqual(['c']);
    expect(await redis.hget(k.running, 'default')).toBe('1');
    expect(await redis.zrange(k.retries[2]!, 0, -1, 'WITHSCORES')).toEqual(['b', String(dueAtMs)]);
    expect(await q.readyIds('default')).toEqual([]);
    // a (cancelled in Postgres) and d (tombstoned) are forgotten.
    expect(await q.indexed(['a', 'b', 'c', 'd'].map((id) => ({ id, tenant: 'default' })))).toEqual([null, { deadLetteredAfter: null }, { deadLetteredAfter: null }, null]);
  });
});

describe('retry, bury, reap, promote', () => {
  it('retry waits in the retry set until due, then promote moves it to the tail of its queue', async () => {
    const q = queue();
    await q.enqueue([item('a', 'high'), item('b', 'high')]);
    const [a] = await q.lease({ max: 1, visibilityMs: 10000 });
    expect(await q.retry([{ id: 'a', token: a!.token, priority: 'high', delayMs: 300 }])).toEqual([true]);
    expect((await q.stats()).retrying.high).toBe(1);
    const early = await q.promoteDue(10);
    expect(early.moved).toEqual({ critical: 0, high: 0, default: 0, low: 0 });
    // It says when to come back: when the retry is due (Redis clock).
    expect(early.nextDueInMs).toBeGreaterThan(200);
    expect(early.nextDueInMs).toBeLessThanOrEqual(300);
    await new Promise((r) => setTimeout(r, 350));
    expect(await q.promoteDue(10)).toEqual({ moved: { critical: 0, high: 1, default: 0, low: 0 }, nextDueInMs: null });
    const next = await q.lease({ max: 2, visibilityMs: 10000 });
    expect(next.map((l) => [l.message.id, l.attempt])).toEqual([['b', 1], ['a', 2]]);
  });

  it('bury keeps the task in its priority dead-letter list', async () => {
    const q = queue();
    await q.enqueue([item('a', 'low')]);
    const [a] = await q.lease({ max: 1, visibilityMs: 10000 });
    expect(await q.bury([{ id: 'a', token: a!.token, priority: 'low' }])).toEqual([true]);
    expect(await q.deadLetterIds('low')).toEqual(['a']);
    const s = await q.stats();
    expect(s.dead.low).toBe(1);
    expect(s.processing).toBe(0);
  });

  it('reap counts the lost attempt; a task out of attempts stays held under its token until it is buried', async () => {
    const q = queue();
    await q.enqueue([item('a', 'critical', 2)]);
    let last = '';
    for (let attempt = 1; attempt <= 2; attempt++) {
      const [l] = await q.lease({ max: 1, visibilityMs: 1 });
      expect(l!.attempt).toBe(attempt);
      last = l!.token;
      await new Promise((r) => setTimeout(r, 5));
      const [r] = await q.reap(10, 60_000);
      expect(r).toMatchObject({ id: 'a', attempt, destination: attempt < 2 ? 'queued' : 'dead', priority: 'critical', type: 'noop' });
    }
    // Not buried yet: still leased (for a minute) by the expired token, so nothing else takes it.
    expect(await q.deadLetterIds('critical')).toEqual([]);
    expect(await redis.hget(q.keys.tokens, 'a')).toBe(last);
    expect(Number(await redis.zscore(q.keys.processing, 'a')) - Date.now()).toBeGreaterThan(50_000);
    expect(await q.reap(10, 60_000)).toEqual([]);
    expect(await q.lease({ max: 1, visibilityMs: 1 })).toEqual([]);
    // Postgres has the lost attempt: the reaper buries it with the same token.
    expect(await q.bury([{ id: 'a', token: last, priority: 'critical' }])).toEqual([true]);
    expect(await q.deadLetterIds('critical')).toEqual(['a']);
  });

  it('a task out of attempts whose burial never came is reaped again when its hold runs out', async () => {
    const q = queue();
    await q.enqueue([item('a', 'low', 1)]);
    const [l] = await q.lease({ max: 1, visibilityMs: 1 });
    await new Promise((r) => setTimeout(r, 5));
    expect((await q.reap(10, 1)).map((r) => [r.destination, r.expiredToken])).toEqual([['dead', l!.token]]);
    // The reaper died before burying it; the hold (1 ms) runs out and the next pass finds it again.
    await new Promise((r) => setTimeout(r, 5));
    expect((await q.reap(10, 60_000)).map((r) => [r.destination, r.expiredToken, r.attempt])).toEqual([['dead', l!.token, 1]]);
  });

  it('reap leaves live leases alone, and extend keeps a lease alive', async () => {
    const q = queue();
    await q.enqueue([item('a'), item('b')]);
    const leases = await q.lease({ max: 2, visibilityMs: 150 });
    await new Promise((r) => setTimeout(r, 100));
    expect(await q.extend([{ id: 'a', token: leases[0]!.token }], 10000)).toEqual([true]);
    await new Promise((r) => setTimeout(r, 100));
    expect((await q.reap(10, 60_000)).map((r) => r.id)).toEqual(['b']);
  });

  it('release hands a task back to the front without counting the attempt', async () => {
    const q = queue();
    await q.enqueue([item('a'), item('b')]);
    const [a] = await q.lease({ max: 1, visibilityMs: 10000 });
    expect(await q.release([{ id: 'a', token: a!.token, priority: 'default' }])).toEqual([true]);
    const [again] = await q.lease({ max: 1, visibilityMs: 10000 });
    expect([again!.message.id, again!.attempt]).toEqual(['a', 1]);
  });

  it('every script that makes tasks ready rings the doorbell (idle workers lease only when told)', async () => {
    const q = queue();
    const bell = q.doorbell();
    // Whether `step` left a ring (the doorbell holds at most one; a short wait takes what is there).
    const rings = async (step: () => Promise<unknown>) => {
      while (await bell.wait(1));
      await step();
      return bell.wait(1);
    };
    try {
      expect(await rings(() => q.enqueue([item('a'), item('b'), item('c')]))).toBe(true);
      // A lease that takes everything leaves nothing to announce.
      let leased: Lease[] = [];
      expect(await rings(async () => (leased = await q.lease({ max: 3, visibilityMs: 1 })))).toBe(false);
      const [a, b, c] = leased;
      // A rejected hand-back makes nothing ready, so it says nothing.
      expect(await rings(() => q.release([{ id: 'a', token: 'stale', priority: 'default' }]))).toBe(false);
      expect(await rings(() => q.release([{ id: 'a', token: a!.token, priority: 'default' }]))).toBe(true);
      expect(await q.retry([{ id: 'b', token: b!.token, priority: 'default', delayMs: 1 }])).toEqual([true]);
      await new Promise((r) => setTimeout(r, 5));
      expect(await rings(() => q.promoteDue(10))).toBe(true);
      expect(c!.message.id).toBe('c');
      await new Promise((r) => setTimeout(r, 5));
      expect(await rings(() => q.reap(10, 60_000))).toBe(true);
      expect(await rings(() => q.promoteDue(10))).toBe(false);
      // Settling a task no lease holds back to `queued` (the reaper does, for an attempt Postgres
      // had counted already) rings; settling it anywhere else does not.
      const [again] = await q.lease({ max: 1, visibilityMs: 60_000 });
      await q.release([{ id: again!.message.id, token: again!.token, priority: 'default' }]);
      expect(await rings(() => q.settle([{ id: again!.message.id, tenant: 'default', priority: 'default', state: 'retrying', attempts: 1, dueAtMs: Date.now() + 60_000 }]))).toBe(false);
      expect(await rings(() => q.settle([{ id: again!.message.id, tenant: 'default', priority: 'default', state: 'queued', attempts: 1 }]))).toBe(true);
    } finally {
      bell.close();
    }
  });

  it('each ring wakes one waiting worker, not all of them; a big batch rings once', async () => {
    const q = queue();
    const bells = [q.doorbell(), q.doorbell(), q.doorbell()];
    try {
      const waits = bells.map((b) => b.wait(400));
      await new Promise((r) => setTimeout(r, 50)); // all three blocked
      await q.enqueue(Array.from({ length: 50 }, (_, i) => item(`t${i}`)));
      expect((await Promise.all(waits)).filter(Boolean)).toHaveLength(1);
    } finally {
      bells.forEach((b) => b.close());
    }
  });

  it('a lease that leaves work behind rings again, so the next idle worker comes for it, and says how much it left', async () => {
    const q = queue();
    const bell = q.doorbell();
    try {
      await q.enqueue([item('a'), item('b'), item('c')]);
      expect(await bell.wait(1)).toBe(true);
      const waiting = bell.wait(400);
      await q.lease({ max: 2, visibilityMs: 10_000 });
      expect(await waiting).toBe(true);
      // The last one taken: nothing left, no ring.
      const idle = bell.wait(100);
      expect(await q.leaseBatch({ max: 2, visibilityMs: 10_000 })).toMatchObject({ leases: [{ message: { id: 'c' } }], left: 0 });
      expect(await idle).toBe(false);
      // A ring nobody answered is taken back by the lease that empties the queue: it would only
      // cost the next waiter an empty lease.
      await q.enqueue([item('d'), item('e')]);
      expect(await q.leaseBatch({ max: 5, visibilityMs: 10_000 })).toMatchObject({ left: 0 });
      expect(await bell.wait(1)).toBe(false);
    } finally {
      bell.close();
    }
  });

  it('a closed doorbell ends its wait at once, and a ring passed on reaches another waiter', async () => {
    const q = queue();
    const [mine, other] = [q.doorbell(), q.doorbell()];
    try {
      const t0 = Date.now();
      const pending = mine.wait(10_000);
      await new Promise((r) => setTimeout(r, 20));
      mine.close();
      expect(await pending).toBe(false);
      expect(Date.now() - t0).toBeLessThan(10_000); // not the wait's own timeout
      const theirs = other.wait(400);
      await new Promise((r) => setTimeout(r, 20));
      await mine.ring();
      expect(await theirs).toBe(true);
    } finally {
      mine.close();
      other.close();
    }
  });

  it('stats report every priority, the age of the oldest waiting task, and live workers', async () => {
    const q = queue();
    await q.enqueue(PRIORITIES.map((p, i) => item(`t${i}`, p)));
    await new Promise((r) => setTimeout(r, 120));
    await q.enqueue([item('late', 'low')]);
    await q.announceWorker('w1', 10000);
    await q.announceWorker('w2', 1);
    await new Promise((r) => setTimeout(r, 5));
    const s = await q.stats();
    expect(s.ready).toEqual({ critical: 1, high: 1, default: 1, low: 2 });
    expect(s.oldestWaitingSeconds.low).toBeGreaterThanOrEqual(0.1);
    expect(s.oldestWaitingSeconds.low).toBeLessThan(5);
    expect(s.liveWorkers).toBe(1);
    await q.lease({ max: 10, visibilityMs: 10000 });
    const after = await q.stats();
    expect(after.oldestWaitingSeconds).toEqual({ critical: 0, high: 0, default: 0, low: 0 });
    expect(after.processing).toBe(5);
    await q.announceWorker('w1', 0);
    expect((await q.stats()).liveWorkers).toBe(0);
  });
});

describe('the oldest waiting task after a reap', () => {
  const readyAt = async (id: string) => Number(await redis.hget(`{${prefix}}:ready_at`, id));
  const redisMs = async () => {
    const [sec, usec] = await redis.time();
    return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
  };
  async function until<T>(probe: () => Promise<T | undefined>): Promise<T> {
    for (;;) {
      const got = await probe();
      if (got !== undefined) return got;
      await new Promise((r) => setImmediate(r));
    }
  }

  it('is the task waiting longest, not the reaped task put back at the head (stats and overview)', async () => {
    const q = queue();
    await q.enqueue(['a', 'b', 'c', 'd'].map((id) => item(id)));
    const since = await readyAt('c');
    // Redis's clock moves on, then the leases of a and b (one call, one reap: equal ready times) run out.
    await until(async () => ((await redisMs()) > since + 50 ? true : undefined));
    expect((await q.lease({ max: 2, visibilityMs: 1 })).map((l) => l.message.id).sort()).toEqual(['a', 'b']);
    const reaped = await until(async () => {
      const r = await q.reap(10, 60_000);
      return r.length > 0 ? r : undefined;
    });
    expect(reaped.map((r) => [r.id, r.destination]).sort()).toEqual([['a', 'queued'], ['b', 'queued']]);
    const back = await readyAt('a');
    expect(back - since).toBeGreaterThan(50);
    // c and d have waited since `since`; a and b only since the reap.
    const waited = (back - since) / 1000;
    expect((await q.stats()).oldestWaitingSeconds.default).toBeGreaterThanOrEqual(waited);
    expect((await q.overview('default')).priorities.default.oldestWaitingSeconds).toBeGreaterThanOrEqual(waited);
    // The next attempt's wait counts from the reap (its lost attempt ran meanwhile), not from its enqueue.
    const [next] = await q.lease({ max: 1, visibilityMs: 60_000 });
    expect(['a', 'b']).toContain(next!.message.id);
    expect(next!.readyAtMs).toBe(back);
    expect((await q.stats()).oldestWaitingSeconds.default).toBeGreaterThanOrEqual(waited);
  });

  it('a workflow step the reaper held and then handed back waits from then on, not from before its lost attempt', async () => {
    const q = queue();
    await q.enqueue([{ ...item('s'), stepKey: 'build' }]);
    const before = await readyAt('s');
    await until(async () => ((await redisMs()) > before + 50 ? true : undefined));
    const [lost] = await q.lease({ max: 1, visibilityMs: 1 });
    const [held] = await until(async () => {
      const r = await q.reap(10, 60_000);
      return r.length > 0 ? r : undefined;
    });
    expect(held!.destination).toBe('held');
    // Postgres took the lost attempt; the step's workflow goes on: the reaper hands it back.
    expect(await q.release([{ id: 's', token: lost!.token, priority: 'default', attemptCounted: true }])).toEqual([true]);
    const back = await readyAt('s');
    expect(back - before).toBeGreaterThan(50);
    expect((await q.stats()).oldestWaitingSeconds.default).toBeLessThan((back - before) / 1000);
    const [next] = await q.lease({ max: 1, visibilityMs: 60_000 });
    expect(next!.attempt).toBe(2);
    expect(next!.readyAtMs).toBe(back);
  });
});

describe('a lease call whose answer is lost', () => {
  const leaseOpts = { max: 2, visibilityMs: 30_000 };
  const ends = (leases: Lease[]) => leases.map((l) => ({ id: l.message.id, token: l.token, priority: 'default' as const, outcome: 'succeeded' as const, settleAttempts: 0 }));
  const leased = () => redis.zrange(`{${prefix}}:processing`, 0, -1);

  it('made again by the worker (same token base): answers with the leases it made, not others under the same tokens', async () => {
    const q = queue();
    await q.enqueue(['a', 'b', 'c', 'd'].map((id) => item(id)));
    const run = (q as unknown as { run: { lease: (...a: unknown[]) => Promise<unknown> } }).run;
    const real = run.lease;
    // The script runs; its answer never arrives.
    run.lease = async (...a: unknown[]) => {
      run.lease = real;
      await real(...a);
      throw new Error('connection lost');
    };
    await expect(q.leaseBatch(leaseOpts)).rejects.toThrow('connection lost');
    expect((await leased()).sort()).toEqual(['a', 'b']);
    const again = await q.leaseBatch(leaseOpts);
    expect(again.leases.map((l) => l.message.id)).toEqual(['a', 'b']);
    expect(again.leases.map((l) => l.attempt)).toEqual([1, 1]);
    expect((await leased()).sort()).toEqual(['a', 'b']);
    // Its tokens are the ones Redis holds.
    expect(await q.finish(ends(again.leases))).toEqual(['finished', 'finished']);
    const next = await q.leaseBatch({ ...leaseOpts, max: 5 });
    expect(next.leases.map((l) => l.message.id)).toEqual(['c', 'd']);
    // A call's record goes with the next call, once its answer arrived; one that leased nothing leaves none.
    expect(await redis.keys(`{${prefix}}:lease-call:*`)).toHaveLength(1);
    expect((await q.leaseBatch(leaseOpts)).leases).toEqual([]);
    expect(await redis.keys(`{${prefix}}:lease-call:*`)).toEqual([]);
  });

  it('a lease of the repeated call that ended meanwhile is left out, the others keep their tokens', async () => {
    const q = queue();
    await q.enqueue(['a', 'b'].map((id) => item(id)));
    const run = (q as unknown as { run: { lease: (...a: unknown[]) => Promise<unknown> } }).run;
    const real = run.lease;
    let first: (string | number)[] = [];
    run.lease = async (...a: unknown[]) => {
      run.lease = real;
      first = (await real(...a)) as (string | number)[];
      throw new Error('connection lost');
    };
    await expect(q.leaseBatch(leaseOpts)).rejects.toThrow('connection lost');
    // The reaper took a's lease meanwhile (here: it ends as the first answer's token says).
    const tokenOfA = (await redis.hget(`{${prefix}}:tokens`, 'a'))!;
    expect(first[3]).toBe('a');
    expect(await q.finish([{ id: 'a', token: tokenOfA, priority: 'default', outcome: 'succeeded', settleAttempts: 0 }])).toEqual(['finished']);
    const again = await q.leaseBatch(leaseOpts);
    expect(again.leases.map((l) => [l.message.id, l.token])).toEqual([['b', await redis.hget(`{${prefix}}:tokens`, 'b')]]);
  });

  it('sent again by the client after the connection dropped before the answer: the same leases', async () => {
    const proxy = await replyDroppingProxy(testRedisAddr());
    const via = createRedis({ addr: `127.0.0.1:${proxy.port}`, name: 'queue-test-proxied', offlineQueue: true });
    try {
      const q = new RedisQueue(via, { prefix, strategy: 'weighted', weights });
      // Loads the script on this connection first.
      expect((await q.leaseBatch(leaseOpts)).leases).toEqual([]);
      await queue().enqueue(['a', 'b', 'c', 'd'].map((id) => item(id)));
      proxy.dropNextAnswer();
      const got = await q.leaseBatch(leaseOpts);
      expect(proxy.dropped()).toBe(1);
      expect(got.leases.map((l) => l.message.id)).toEqual(['a', 'b']);
      expect((await leased()).sort()).toEqual(['a', 'b']);
      expect(await q.finish(ends(got.leases))).toEqual(['finished', 'finished']);
    } finally {
      via.disconnect();
      await proxy.close();
    }
  });
});

/** A TCP proxy to Redis that can drop the connection right after the server answered a command (the answer lost). */
async function replyDroppingProxy(addr: string): Promise<{ port: number; dropNextAnswer: () => void; dropped: () => number; close: () => Promise<void> }> {
  const [host, port] = [addr.slice(0, addr.lastIndexOf(':')) || '127.0.0.1', Number(addr.slice(addr.lastIndexOf(':') + 1))];
  let armed = false;
  let dropped = 0;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(port, host);
    sockets.add(client).add(upstream);
    let dropping = false;
    client.on('data', (d) => {
      if (armed) {
        armed = false;
        dropping = true;
      }
      upstream.write(d);
    });
    upstream.on('data', (d) => {
      if (!dropping) return void client.write(d);
      dropped++;
      client.destroy();
      upstream.destroy();
    });
    for (const s of [client, upstream]) {
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    dropNextAnswer: () => (armed = true),
    dropped: () => dropped,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}
