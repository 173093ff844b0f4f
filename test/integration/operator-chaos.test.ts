/**
 * Plain tasks under concurrent operators: flaky tasks of three tenants, a quarter of them
 * delayed, run on two in-process workers (one stopped at once and replaced every second or so)
 * while three operators cancel, retry and redrive at random, set and lift tenants' caps on
 * running tasks, more tasks arrive, and the retention sweep deletes finished tasks with ages of
 * a few hundred milliseconds, against real Postgres and Redis, with the reconciler off (it would
 * repair what this test looks for). Once all is quiet, one reconciler pass may only end cancels
 * it is meant to end, and Redis must agree with Postgres: nothing leased or counted as running,
 * nothing ready or due, every dead task in its dead-letter list once with its message, no
 * message for a task that is final otherwise or was deleted; and no task succeeded twice.
 * CHAOS_SEED=… replays the operators' choices (not the timing).
 */
import type { Worker } from '../../services/worker/worker';
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import { cancelTasks } from '../../services/core/operator/cancel-tasks';
import { retryTasks } from '../../services/core/operator/retry-tasks';
import { PRIORITIES } from '../../services/core/tasks/priority';
import { submitTasks } from '../../services/core/tasks/submit';
import { setTenant } from '../../services/core/tenancy/tenant-store';
import { prng } from '../../services/load/plan';
import { Reconciler } from '../../services/worker/reconciler';
import { RetentionSweeper } from '../../services/worker/retention';
import { chaosSeed, chaosWorkers } from '../support/chaos';
import { createStack, silentLog, Stack, waitFor } from '../support/stack';

const SEED = chaosSeed();
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
  workers = chaosWorkers(stack, 2);
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
  await setTenant(stack.pool, 'a', { max_running: 2 });
  await submit(rnd, 300);
  // Retention at a few hundred milliseconds, every 100 ms: it deletes tasks operators are retrying.
  sweeper = new RetentionSweeper(
    { pool: stack.pool, queue: stack.queue, metrics: workerMetrics(createRegistry('worker')) },
    { intervalMs: 100, policy: { succeeded: 300, dead: 600, cancelled: 300 }, batch: 50, pauseMs: 0 },
    silentLog,
  );
  sweeper.start();

  const done = { cancelled: 0, retried: 0, capped: 0, restarts: 0 };
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
      } else if (roll < 0.8) {
        // A tenant's cap on running tasks set, changed or lifted (workers sync it within a second).
        const cap = [null, 1, 2, 4][Math.floor(r() * 4)]!;
        await setTenant(stack.pool, TENANTS[Math.floor(r() * TENANTS.length)]!, { max_running: cap });
        done.capped++;
      } else {
        await submit(r, 1 + Math.floor(r() * 20));
      }
      await sleep(5 + Math.floor(r() * 25));
    }
  };
  // Workers come and go: one stops at once (its running attempts handed back unfinished) and a
  // fresh one takes its place, every second or so.
  const restarts = async (r: () => number) => {
    while (Date.now() < until) {
      await sleep(700 + Math.floor(r() * 800));
      const [gone] = workers.splice(Math.floor(r() * workers.length), 1, ...chaosWorkers(stack, 1));
      await gone!.stop(0);
      done.restarts++;
    }
  };
  await Promise.all([...[1, 2, 3].map((k) => operator(prng(SEED * 7 + k))), restarts(prng(SEED * 7 + 4))]);
  expect(done.cancelled).toBeGreaterThan(0);
  expect(done.retried).toBeGreaterThan(0);
  await sweeper.stop();
  sweeper = null;

  // Quiet: Redis holds no lease, and every task is final in Postgres, or one whose cancel was
  // asked for (202) while its failed attempt's retry was written but not yet applied in Redis, which
  // then forgot it (tombstoned): that cancel is finished by the reconciler, by design
  // (cancel-retry.test.ts, "a cancel meeting a retry Postgres wrote but Redis had not applied").
  const quiet = async () => {
    const { rows } = await stack.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM tasks WHERE status NOT IN ('succeeded', 'dead', 'cancelled') AND cancel_requested_at IS NULL`);
    let leased = 0;
    for (const k of stack.allKeys()) leased += await stack.inspect.zcard(k.processing);
    return rows[0]!.n === 0 && leased === 0;
  };
  try {
    await waitFor(quiet, 30_000, 'every task final');
  } catch (err) {
    // What is stuck, and where Redis has it.
    const { rows } = await stack.pool.query(`SELECT id, tenant, priority, status::text AS status, attempts, run_at, updated_at FROM tasks WHERE status NOT IN ('succeeded', 'dead', 'cancelled') LIMIT 20`);
    const redis = [];
    for (const k of stack.allKeys()) {
      redis.push({
        processing: await stack.inspect.zrange(k.processing, 0, -1, 'WITHSCORES'),
        running: await stack.inspect.hgetall(k.running),
        dispatch: await stack.inspect.hgetall(k.tenantDispatch),
        rings: await Promise.all(k.rings.map((r) => stack.inspect.zrange(r, 0, -1))),
        parked: await Promise.all(k.parked.map((r) => stack.inspect.zrange(r, 0, -1))),
        retries: await Promise.all(k.retries.map((r) => stack.inspect.zrange(r, 0, -1))),
        ready: Object.fromEntries(await Promise.all(TENANTS.flatMap((t) => PRIORITIES.map(async (p) => [`${t}/${p}`, await stack.inspect.lrange(stack.keysOf(t).tenantQueue(p, t), 0, -1)])))),
        messages: rows.length ? await stack.inspect.hmget(k.meta, ...rows.map((r) => r.id)) : [],
      });
    }
    console.log(JSON.stringify({ seed: SEED, stuck: rows, redis }, null, 1));
    throw err;
  }
  await Promise.all(workers.map((w) => w.stop(0)));
  workers = [];
  // One reconciler pass: it may end those cancels, and must find nothing else to repair.
  const reconciler = new Reconciler({ pool: stack.pool, queue: stack.queue, metrics: workerMetrics(createRegistry('worker')) }, { intervalMs: 1000, graceMs: 0, batchSize: 1000 }, silentLog);
  const repaired = await reconciler.runOnce();
  expect({ requeued: repaired.requeued, vanishedLeases: repaired.vanishedLeases, unheld: repaired.unheld }).toEqual({ requeued: 0, vanishedLeases: 0, unheld: 0 });
  const { rows: unfinished } = await stack.pool.query(`SELECT id, status::text AS status FROM tasks WHERE status NOT IN ('succeeded', 'dead', 'cancelled')`);
  expect(unfinished).toEqual([]);

  const { rows: tasks } = await stack.pool.query<{ id: string; status: string; priority: string; ok: number }>(
    `SELECT t.id, t.status::text AS status, t.priority, (SELECT count(*) FROM task_runs r WHERE r.task_id = t.id AND r.outcome = 'succeeded')::int AS ok FROM tasks t`,
  );
  const byId = new Map(tasks.map((t) => [t.id, t]));
  expect(tasks.filter((t) => t.ok > 1 || (t.status === 'succeeded' && t.ok !== 1))).toEqual([]);
  // No handler started on a task after its last cancel (a retry's push arriving after it).
  const { rows: late } = await stack.pool.query(
    `SELECT t.id, t.finished_at, r.started_at, r.outcome FROM tasks t JOIN task_runs r ON r.task_id = t.id
      WHERE t.status = 'cancelled' AND r.started_at > t.finished_at + interval '5 milliseconds'`,
  );
  expect(late).toEqual([]);
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
    // No tenant left parked at a cap it no longer reaches.
    for (let p = 0; p < 4; p++) expect(await stack.inspect.zrange(k.parked[p]!, 0, -1)).toEqual([]);
  }
  for (const t of TENANTS) for (const p of PRIORITIES) expect(await stack.inspect.llen(stack.keysOf(t).tenantQueue(p, t))).toBe(0);
  const dead = tasks.filter((t) => t.status === 'dead');
  expect(dead.filter((t) => listed.get(t.id) !== 1).map((t) => ({ id: t.id, listed: listed.get(t.id) ?? 0 }))).toEqual([]);
  expect(messages.filter((id) => byId.get(id)?.status !== 'dead')).toEqual([]);
  expect(dead.filter((t) => !messages.includes(t.id)).map((t) => t.id)).toEqual([]);
  if (process.env.CHAOS_VERBOSE === '1') console.log({ seed: SEED, ...done, tasks: tasks.length, dead: dead.length });
}, 90_000);
