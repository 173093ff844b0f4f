/**
 * Property-based test: random interleavings of enqueue, lease, complete (current and stale
 * tokens), lease expiry, reaping, retry promotion, Redis data loss and reconciler runs, among
 * several simulated workers, against real Redis and Postgres. After every step: each task is in
 * at most one place in Redis and, unless Redis just lost data, exactly where Postgres says it is;
 * a stale token changes nothing; attempts never decrease.
 */
import fc from 'fast-check';
import { markRunning, recordOutcomes } from '../../services/core/tasks/attempt-store';
import { maxAttempts } from '../../services/core/tasks/backoff';
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import type { Lease } from '../../services/core/queue/queue';
import { PRIORITIES } from '../../services/core/tasks/priority';
import { submitTask } from '../../services/core/tasks/submit';
import { Reaper } from '../../services/worker/reaper';
import { Reconciler } from '../../services/worker/reconciler';
import { RetryPump } from '../../services/worker/retry-pump';
import { Stack, createStack, silentLog } from '../support/stack';

let stack: Stack;
beforeAll(async () => {
  stack = await createStack();
});
afterAll(async () => {
  await stack.close();
});

type Action =
  | { kind: 'enqueue'; n: number; priority: number; maxRetries: number }
  | { kind: 'lease'; worker: number; n: number }
  | { kind: 'lease-unstarted'; n: number }
  | { kind: 'complete'; worker: number; pick: number; ok: boolean }
  | { kind: 'stale'; pick: number; ok: boolean }
  | { kind: 'expire'; worker: number; pick: number }
  | { kind: 'reap' }
  | { kind: 'promote' }
  | { kind: 'reconcile' }
  | { kind: 'lose-redis' };

const action: fc.Arbitrary<Action> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('enqueue' as const), n: fc.integer({ min: 1, max: 3 }), priority: fc.integer({ min: 0, max: 3 }), maxRetries: fc.integer({ min: 0, max: 2 }) }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constant('lease' as const), worker: fc.integer({ min: 0, max: 1 }), n: fc.integer({ min: 1, max: 3 }) }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constant('lease-unstarted' as const), n: fc.integer({ min: 1, max: 2 }) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('complete' as const), worker: fc.integer({ min: 0, max: 1 }), pick: fc.nat(), ok: fc.boolean() }), weight: 4 },
  { arbitrary: fc.record({ kind: fc.constant('stale' as const), pick: fc.nat(), ok: fc.boolean() }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('expire' as const), worker: fc.integer({ min: 0, max: 1 }), pick: fc.nat() }), weight: 3 },
  { arbitrary: fc.constant({ kind: 'reap' as const }), weight: 3 },
  { arbitrary: fc.constant({ kind: 'promote' as const }), weight: 2 },
  { arbitrary: fc.constant({ kind: 'reconcile' as const }), weight: 1 },
  { arbitrary: fc.constant({ kind: 'lose-redis' as const }), weight: 1 },
);

interface Model {
  held: Lease[][];
  /** Every token ever issued, for stale writes. */
  tokens: { id: string; token: string; attempt: number; maxAttempts: number; priority: (typeof PRIORITIES)[number] }[];
  attempts: Map<string, number>;
  /** Redis lost data since the last reconciler pass. */
  redisLost: boolean;
  /** Leased by a worker that died before recording the start; in flux until the reaper reclaims them. */
  unstarted: Set<string>;
}

async function pgTasks(): Promise<{ id: string; status: string; attempts: number; lease_token: string | null }[]> {
  return (await stack.pool.query('SELECT id, status, attempts, lease_token FROM tasks ORDER BY id')).rows;
}

/** Where each task id sits in Redis: a list of places (more than one is a bug). */
async function redisPlaces(): Promise<Map<string, string[]>> {
  const k = stack.queue.keys;
  const places = new Map<string, string[]>();
  const add = (id: string, where: string) => places.set(id, [...(places.get(id) ?? []), where]);
  for (let p = 0; p < 4; p++) {
    for (const id of await stack.inspect.lrange(k.queues[p]!, 0, -1)) add(id, 'queue');
    for (const id of await stack.inspect.zrange(k.retries[p]!, 0, -1)) add(id, 'retry');
    for (const id of await stack.inspect.lrange(k.deadLetters[p]!, 0, -1)) add(id, 'dlq');
  }
  for (const id of await stack.inspect.zrange(k.processing, 0, -1)) add(id, 'processing');
  return places;
}

const expectedPlaces: Record<string, string[]> = {
  queued: ['queue'],
  running: ['processing'],
  retrying: ['retry', 'queue'],
  dead: ['dlq'],
};

async function checkInvariants(m: Model): Promise<void> {
  const tasks = await pgTasks();
  const places = await redisPlaces();
  for (const t of tasks) {
    const where = places.get(t.id) ?? [];
    expect({ id: t.id, where: where.length > 1 ? where : 'ok' }).toEqual({ id: t.id, where: 'ok' });
    const before = m.attempts.get(t.id) ?? 0;
    expect(t.attempts).toBeGreaterThanOrEqual(before);
    m.attempts.set(t.id, t.attempts);
    if (m.redisLost || m.unstarted.has(t.id)) continue;
    if (t.status === 'succeeded') expect({ id: t.id, status: t.status, where }).toEqual({ id: t.id, status: t.status, where: [] });
    else if (t.status === 'dead') expect(where.every((w) => w === 'dlq')).toBe(true);
    else expect({ id: t.id, status: t.status, ok: where.length === 1 && expectedPlaces[t.status]!.includes(where[0]!) }).toEqual({ id: t.id, status: t.status, ok: true });
  }
}

async function snapshot(id: string): Promise<unknown> {
  const row = (await stack.pool.query('SELECT status, attempts, lease_token, last_error, run_after FROM tasks WHERE id = $1', [id])).rows[0];
  return { row, places: (await redisPlaces()).get(id) ?? [] };
}

/** The completer's write path for one outcome: Postgres first, Redis only when Postgres applied it. */
async function complete(l: { id: string; token: string; attempt: number; maxAttempts: number; priority: (typeof PRIORITIES)[number] }, ok: boolean): Promise<boolean> {
  const dead = !ok && l.attempt >= l.maxAttempts;
  const applied = await recordOutcomes(stack.pool, [{ id: l.id, token: l.token, attempt: l.attempt, workerId: 'w', startedAtMs: Date.now(), durationMs: 1, error: ok ? null : 'failed', dead, delayMs: 0 }]);
  if (!applied.has(l.id)) return false;
  const held = { id: l.id, token: l.token, priority: l.priority };
  if (ok) await stack.queue.ack([held]);
  else if (dead) await stack.queue.bury([held]);
  else await stack.queue.retry([{ ...held, delayMs: 60_000 }]);
  return true;
}

/** Stale writes attempted while the task ran under a newer lease: the case fencing exists for. */
let staleOnRunning = 0;
let reaped = 0;

/** Completes with a token; when the token is not the task's current one, nothing may change. */
async function completeChecked(l: Parameters<typeof complete>[0], ok: boolean): Promise<void> {
  const { rows } = await stack.pool.query('SELECT lease_token, status FROM tasks WHERE id = $1', [l.id]);
  const isCurrent = rows[0]?.lease_token === l.token;
  if (!isCurrent && rows[0]?.status === 'running') staleOnRunning++;
  const before = isCurrent ? null : await snapshot(l.id);
  const applied = await complete(l, ok);
  if (!isCurrent) {
    expect(applied).toBe(false);
    expect(await snapshot(l.id)).toEqual(before);
  }
}

const flat = (l: Lease) => ({ id: l.message.id, token: l.token, attempt: l.attempt, maxAttempts: l.message.maxAttempts, priority: l.message.priority });

it('queue invariants hold under random interleavings', async () => {
  const metrics = workerMetrics(createRegistry('worker'));
  const reaper = new Reaper({ pool: stack.pool, queue: stack.queue, metrics, typeLabel: (t) => t }, 100, 1000, silentLog);
  const pump = new RetryPump({ queue: stack.queue, metrics }, 100, 1000, silentLog);
  await fc.assert(
    fc.asyncProperty(fc.array(action, { minLength: 25, maxLength: 60 }), async (actions) => {
      await stack.pool.query('TRUNCATE tasks, task_runs, idempotency_keys');
      const keys = await stack.inspect.keys(`{${stack.cfg.REDIS_KEY_PREFIX}}:*`);
      if (keys.length) await stack.inspect.del(...keys);
      const reconciler = new Reconciler({ pool: stack.pool, queue: stack.queue, metrics }, { intervalMs: 1000, graceMs: 0, batchSize: 50 }, silentLog);
      const m: Model = { held: [[], []], tokens: [], attempts: new Map(), redisLost: false, unstarted: new Set() };
      try {
        for (const a of actions) {
          switch (a.kind) {
            case 'enqueue':
              for (let i = 0; i < a.n; i++) {
                await submitTask(
                  { pool: stack.pool, queue: stack.queue, log: silentLog, idempotencyTtlMs: 1000 },
                  { type: 'noop', priority: PRIORITIES[a.priority]!, payload: {}, maxRetries: a.maxRetries, idempotencyKey: null, canonical: '' },
                );
              }
              break;
            case 'lease': {
              const leases = await stack.queue.lease({ max: a.n, visibilityMs: 600_000 });
              const { started } = await markRunning(stack.pool, leases.map((l) => ({ id: l.message.id, token: l.token, attempt: l.attempt })));
              await stack.queue.ack(leases.filter((l) => !started.has(l.message.id)).map((l) => ({ id: l.message.id, token: l.token })));
              const ours = leases.filter((l) => started.has(l.message.id));
              m.held[a.worker]!.push(...ours);
              m.tokens.push(...ours.map(flat));
              break;
            }
            case 'complete': {
              const held = m.held[a.worker]!;
              if (held.length === 0) break;
              const l = flat(held.splice(a.pick % held.length, 1)[0]!);
              await completeChecked(l, a.ok);
              break;
            }
            case 'stale': {
              const tasks = await pgTasks();
              const current = new Set(tasks.map((t) => t.lease_token).filter(Boolean));
              // Prefer tokens of tasks now running under a newer lease: the dangerous case.
              const runningIds = new Set(tasks.filter((t) => t.status === 'running').map((t) => t.id));
              const stale = m.tokens.filter((t) => !current.has(t.token));
              const preferred = stale.filter((t) => runningIds.has(t.id));
              const pool = preferred.length > 0 ? preferred : stale;
              if (pool.length === 0) break;
              await completeChecked(pool[a.pick % pool.length]!, a.ok);
              break;
            }
            case 'expire': {
              const held = m.held[a.worker]!;
              if (held.length === 0) break;
              // The lease's deadline passes; the worker does not know yet.
              const l = held[a.pick % held.length]!;
              await stack.inspect.zadd(stack.queue.keys.processing, 'XX', 0, l.message.id);
              break;
            }
            case 'lease-unstarted': {
              // A worker leases and dies before writing the start to Postgres: the handler never runs.
              const leases = await stack.queue.lease({ max: a.n, visibilityMs: 1 });
              for (const l of leases) m.unstarted.add(l.message.id);
              break;
            }
            case 'reap':
              await new Promise((r) => setTimeout(r, 2));
              reaped += (await reaper.runOnce()).reaped;
              // Every lease past its deadline was reclaimed: nothing is in flux any more.
              if ((await stack.inspect.zcount(stack.queue.keys.processing, '-inf', Date.now())) === 0) m.unstarted.clear();
              break;
            case 'promote': {
              for (const key of stack.queue.keys.retries) {
                for (const id of await stack.inspect.zrange(key, 0, -1)) await stack.inspect.zadd(key, 'XX', 0, id);
              }
              await pump.runOnce();
              break;
            }
            case 'reconcile':
              await reconciler.runOnce();
              m.redisLost = false;
              break;
            case 'lose-redis': {
              const lost = await stack.inspect.keys(`{${stack.cfg.REDIS_KEY_PREFIX}}:*`);
              if (lost.length) await stack.inspect.del(...lost);
              m.redisLost = true;
              break;
            }
          }
          await checkInvariants(m);
        }
        // Finally the reaper reclaims what dead workers held and the reconciler heals what was lost.
        await new Promise((r) => setTimeout(r, 2));
        await reaper.runOnce();
        m.unstarted.clear();
        await reconciler.runOnce();
        m.redisLost = false;
        await checkInvariants(m);
      } finally {
        await reconciler.stop();
      }
    }),
    { numRuns: Number(process.env.PROPERTY_RUNS ?? 40) },
  );
  // The runs must have exercised the dangerous interleaving, or they proved little.
  expect(staleOnRunning).toBeGreaterThan(0);
}, 300_000);
