/**
 * Plain tasks under concurrent operators: flaky tasks of three tenants, a quarter of them delayed,
 * run on two in-process workers while three operators cancel, retry and redrive at random, more
 * tasks arrive, and the retention sweep deletes finished tasks with ages of a few hundred
 * milliseconds, against real Postgres and Redis, with the reconciler off (it would repair what this
 * test looks for). Once all is quiet, Redis must agree with Postgres by the normal paths alone:
 * nothing leased or counted as running, nothing ready or due, every dead task in its dead-letter
 * list once with its message, no message for a task that is final otherwise or was deleted; and no
 * task succeeded twice. CHAOS_SEED=… replays the operators' choices (not the timing).
 */
import type { TaskContext } from '../../services/worker/handlers';
import type { Worker } from '../../services/worker/worker';
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import { cancelTasks } from '../../services/core/operator/cancel-tasks';
import { retryTasks } from '../../services/core/operator/retry-tasks';
import { PRIORITIES } from '../../services/core/tasks/priority';
import { submitTasks } from '../../services/core/tasks/submit';
import { prng } from '../../services/load/plan';
import { RetentionSweeper } from '../../services/worker/retention';
import { createStack, silentLog, Stack, startWorker, waitFor } from '../support/stack';

const SEED = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000);
const TENANTS = ['a', 'b', 'c'];
let stack: Stack;
let workers: Worker[] = [];
let sweeper: RetentionSweeper | null = null;

afterEach(async () => {
  await Promise.all(workers.map((w) => w.stop(0)));
  workers = [];
  await sweeper?.stop();
  await stack?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it(`plain tasks under concurrent cancels, retries, redrives and retention: Redis agrees with Postgres once quiet (seed ${SEED})`, async () => {
  const rnd = prng(SEED);
  stack = await createStack({ RETRY_SCAN_INTERVAL_MS: 50, POLL_INTERVAL_MS: 50, RETRY_BASE_MS: 5, RETRY_JITTER_MS: 0, RECONCILE_INTERVAL_MS: 3_600_000 });
  for (let i = 0; i < 2; i++) {
    const { worker } = startWorker(stack, {
      handlers: {
        chaos: async (ctx: TaskContext) => {
          const p = ctx.payload as { fail: number; sleep_ms: number };
          if (p.sleep_ms > 0) await sleep(p.sleep_ms);
          if (ctx.attempt <= p.fail) throw new Error(`planned failure ${ctx.attempt} of ${p.fail}`);
          return null;
        },
      },
    });
    workers.push(worker);
  }
  const deps = { pool: stack.pool, queue: stack.queue, log: silentLog, idempotencyTtlMs: 60_000 };
  const submit = async (r: () => number, n: number) => {
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
    const reqs = Array.from({ length: n }, () => ({
      tenant: pick(TENANTS),
      type: 'chaos',
      priority: pick(PRIORITIES),
      payload: { fail: pick([0, 0, 1, 3]), sleep_ms: pick([0, 0, 5, 30]) },
      maxRetries: pick([0, 1, 2]),
      idempotencyKey: null,
      canonical: '',
      // A quarter delayed by up to half a second: cancels and retries meet them scheduled too.
      runAt: r() < 0.25 ? new Date(Date.now() + 50 + Math.floor(r() * 450)) : null,
    }));
    await submitTasks(deps, reqs);
  };
  await submit(rnd, 300);
  // Retention at a few hundred milliseconds, every 100 ms: it deletes tasks operators are retrying.
  sweeper = new RetentionSweeper(
    { pool: stack.pool, queue: stack.queue, metrics: workerMetrics(createRegistry('worker')) },
    { intervalMs: 100, policy: { succeeded: 300, dead: 600, cancelled: 300 }, batch: 50, pauseMs: 0 },
    silentLog,
  );
  sweeper.start();

  const done = { cancelled: 0, retried: 0 };
  const some = async (r: () => number, sql: string, n: number) => {
    const { rows } = await stack.pool.query<{ id: string; tenant: string }>(sql);
    return Array.from({ length: Math.min(n, rows.length) }, () => rows[Math.floor(r() * rows.length)]!);
  };
  const until = Date.now() + 6000;
  const operator = async (r: () => number) => {
    while (Date.now() < until) {
      const roll = r();
      if (roll < 0.35) {
        // Cancels: scheduled, queued, running or retrying tasks.
        const picked = await some(r, `SELECT id, tenant FROM tasks WHERE status IN ('scheduled', 'queued', 'running', 'retrying')`, 1 + Math.floor(r() * 4));
        for (const t of TENANTS) {
          const ids = picked.filter((x) => x.tenant === t).map((x) => x.id);
          if (ids.length > 0) done.cancelled += (await cancelTasks(deps, t, ids)).filter((o) => o.kind === 'cancelled' || o.kind === 'cancelling').length;
        }
      } else if (roll < 0.75) {
        // Retries and redrives: dead or cancelled tasks back to work.
        const picked = await some(r, `SELECT id, tenant FROM tasks WHERE status IN ('dead', 'cancelled')`, 1 + Math.floor(r() * 4));
        for (const t of TENANTS) {
          const ids = picked.filter((x) => x.tenant === t).map((x) => x.id);
          if (ids.length > 0) done.retried += (await retryTasks(deps, t, ids)).filter((o) => o.kind === 'retried').length;
        }
      } else {
        await submit(r, 1 + Math.floor(r() * 20));
      }
      await sleep(5 + Math.floor(r() * 25));
    }
  };
  await Promise.all([1, 2, 3].map((k) => operator(prng(SEED * 7 + k))));
  expect(done.cancelled).toBeGreaterThan(0);
  expect(done.retried).toBeGreaterThan(0);
  await sweeper.stop();
  sweeper = null;

  // Quiet: every task final in Postgres, and Redis holding no lease.
  await waitFor(async () => {
    const { rows } = await stack.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM tasks WHERE status NOT IN ('succeeded', 'dead', 'cancelled')`);
    let leased = 0;
    for (const k of stack.allKeys()) leased += await stack.inspect.zcard(k.processing);
    return rows[0]!.n === 0 && leased === 0;
  }, 30_000, 'every task final');
  await Promise.all(workers.map((w) => w.stop(0)));
  workers = [];

  const { rows: tasks } = await stack.pool.query<{ id: string; status: string; priority: string; ok: number }>(
    `SELECT t.id, t.status::text AS status, t.priority, (SELECT count(*) FROM task_runs r WHERE r.task_id = t.id AND r.outcome = 'succeeded')::int AS ok FROM tasks t`,
  );
  const byId = new Map(tasks.map((t) => [t.id, t]));
  expect(tasks.filter((t) => t.ok > 1 || (t.status === 'succeeded' && t.ok !== 1))).toEqual([]);
  // In every partition: nothing leased, running, ready or due; every dead task in its priority's
  // dead-letter list once, with its message, and nothing else there; messages exactly the dead
  // tasks' (a final task is forgotten, a deleted one too).
  const listed = new Map<string, number>();
  const messages: string[] = [];
  for (const k of stack.allKeys()) {
    expect(Object.entries(await stack.inspect.hgetall(k.running)).filter(([, n]) => n !== '0')).toEqual([]);
    for (let p = 0; p < 4; p++) {
      expect(await stack.inspect.zcard(k.retries[p]!)).toBe(0);
      for (const id of await stack.inspect.lrange(k.deadLetters[p]!, 0, -1)) {
        listed.set(id, (listed.get(id) ?? 0) + 1);
        const t = byId.get(id);
        expect({ id, status: t?.status, priority: t?.priority }).toEqual({ id, status: 'dead', priority: PRIORITIES[p] });
      }
    }
    messages.push(...(await stack.inspect.hkeys(k.messages)));
  }
  for (const t of TENANTS) for (const p of PRIORITIES) expect(await stack.inspect.llen(stack.keysOf(t).tenantQueue(p, t))).toBe(0);
  const dead = tasks.filter((t) => t.status === 'dead');
  expect(dead.filter((t) => listed.get(t.id) !== 1).map((t) => ({ id: t.id, listed: listed.get(t.id) ?? 0 }))).toEqual([]);
  expect(messages.filter((id) => byId.get(id)?.status !== 'dead')).toEqual([]);
  expect(dead.filter((t) => !messages.includes(t.id)).map((t) => t.id)).toEqual([]);
  if (process.env.CHAOS_VERBOSE === '1') console.log({ seed: SEED, ...done, tasks: tasks.length, dead: dead.length });
}, 90_000);
