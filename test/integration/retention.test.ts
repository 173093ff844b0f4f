/**
 * Retention against real Postgres and Redis: final tasks and their runs are deleted per their own
 * status's age, young and unfinished ones never; a dead task being redriven is not deleted under
 * the redrive; batches are bounded; one sweep at a time; deleted dead tasks leave Redis's
 * dead-letter lists; a replay of a deleted task's idempotency key; the metrics. Workflows (deleted
 * whole): test/integration/workflow-retention.test.ts.
 */
import { Client, Pool } from 'pg';
import { createRegistry, workerMetrics, WorkerMetrics } from '../../services/core/observability/metrics';
import { retryTasks } from '../../services/core/operator/retry-tasks';
import type { RetentionPolicy } from '../../services/core/retention/retention-store';
import { submitTasks } from '../../services/core/tasks/submit';
import { RetentionOptions, RetentionSweeper } from '../../services/worker/retention';
import type { Worker } from '../../services/worker/worker';
import { runsOf, scriptUsec, silentLog, Stack, startApi, startWorker, taskStatus, waitFor } from '../support/stack';
import { resettableStack } from '../support/stack-reset';
import { expectEqual } from '../support/expect-equal';

const DAY = 86_400_000;
const DEFAULTS: RetentionPolicy = { succeeded: 7 * DAY, dead: 30 * DAY, cancelled: 30 * DAY };

let stack: Stack;
let metrics: WorkerMetrics;
const sweepers: RetentionSweeper[] = [];
let worker: Worker | null = null;

const shared = resettableStack({ POLL_INTERVAL_MS: 10 });
beforeEach(() => {
  stack = shared.current();
  metrics = workerMetrics(createRegistry('worker'));
});
afterEach(async () => {
  await worker?.stop(0);
  worker = null;
  await Promise.all(sweepers.splice(0).map((s) => s.stop()));
});

function sweeper(opts: Partial<RetentionOptions> = {}, m: WorkerMetrics = metrics, pool: Pool = stack.pool): RetentionSweeper {
  const s = new RetentionSweeper({ pool, queue: stack.queue, metrics: m }, { intervalMs: 60_000, policy: DEFAULTS, batch: 1000, pauseMs: 0, ...opts }, silentLog);
  sweepers.push(s);
  return s;
}

const deps = () => ({ pool: stack.pool, queue: stack.queue, log: silentLog, idempotencyTtlMs: 60_000 });

/** Submits `n` tasks through the real path (Postgres and Redis); their ids. */
async function submit(n: number, key?: string): Promise<string[]> {
  const reqs = Array.from({ length: n }, (_, i) => ({
    tenant: 'default',
    type: 'noop',
    priority: 'default' as const,
    payload: { i },
    maxRetries: 0,
    idempotencyKey: key ?? null,
    canonical: JSON.stringify({ type: 'noop', payload: { i } }),
  }));
  return (await submitTasks(deps(), reqs)).map((r) => r.task.id);
}

/**
 * Makes tasks `status` as if they had finished `agoMs` ago (created a minute before that), with two
 * runs each; an unfinished status gets no finish time, its creation is `agoMs` ago.
 */
async function age(ids: string[], status: string, agoMs: number): Promise<void> {
  const final = ['succeeded', 'dead', 'cancelled'].includes(status);
  await stack.pool.query(
    `UPDATE tasks SET status = $2::task_status, attempts = 2,
            finished_at = CASE WHEN $4 THEN now() - $3 * interval '1 millisecond' END,
            created_at = now() - $3 * interval '1 millisecond' - interval '1 minute',
            updated_at = now() - $3 * interval '1 millisecond'
      WHERE id = ANY($1::uuid[])`,
    [ids, status, agoMs, final],
  );
  await stack.pool.query(
    `INSERT INTO task_runs (task_id, attempt, worker_id, lease_token, started_at, finished_at, outcome)
     SELECT id, a, 'w', id::text || ':' || a, now(), now(), CASE WHEN a = 2 AND $2 = 'succeeded' THEN 'succeeded' ELSE 'failed' END
       FROM unnest($1::uuid[]) AS id, generate_series(1, 2) AS a`,
    [ids, status],
  );
}

async function made(status: string, agoMs: number, n = 1): Promise<string[]> {
  const ids = await submit(n);
  await age(ids, status, agoMs);
  return ids;
}

async function present(ids: string[]): Promise<string[]> {
  const { rows } = await stack.pool.query<{ id: string }>('SELECT id FROM tasks WHERE id = ANY($1::uuid[])', [ids]);
  return rows.map((r) => r.id).sort();
}

async function runCount(ids: string[]): Promise<number> {
  const { rows } = await stack.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM task_runs WHERE task_id = ANY($1::uuid[])', [ids]);
  return rows[0]!.n;
}

async function deletedCounter(m: WorkerMetrics = metrics): Promise<Record<string, number>> {
  return Object.fromEntries((await m.deleted.get()).values.map((v) => [v.labels.status, v.value]));
}

it('deletes old finished tasks and their runs per their own status age; young and unfinished ones stay; the metrics count it', async () => {
  const oldSucceeded = await made('succeeded', 8 * DAY, 3);
  const youngSucceeded = await made('succeeded', 6 * DAY);
  // Between the two ages: gone if succeeded, kept if dead or cancelled.
  const deadMid = await made('dead', 8 * DAY);
  const cancelledMid = await made('cancelled', 8 * DAY);
  const oldDead = await made('dead', 31 * DAY, 2);
  const oldCancelled = await made('cancelled', 31 * DAY);
  // Unfinished tasks created a year ago (a stale record), with runs: never deleted.
  const unfinished = [...(await made('queued', 365 * DAY)), ...(await made('running', 365 * DAY)), ...(await made('retrying', 365 * DAY))];
  // Even with a finish time (no writer leaves one on an unfinished task): the status decides.
  await stack.pool.query(`UPDATE tasks SET finished_at = now() - interval '365 days' WHERE id = $1`, [unfinished[2]]);

  const s = sweeper();
  const res = await s.runOnce();
  expect(res).toMatchObject({ leader: true, deleted: { succeeded: 3, dead: 2, cancelled: 1 }, cut: false });
  const gone = [...oldSucceeded, ...oldDead, ...oldCancelled];
  expect(await present(gone)).toEqual([]);
  expect(await runCount(gone)).toBe(0);
  const kept = [...youngSucceeded, ...deadMid, ...cancelledMid, ...unfinished];
  expect(await present(kept)).toEqual([...kept].sort());
  expect(await runCount(kept)).toBe(2 * kept.length);
  for (const id of unfinished) expect((await runsOf(stack.pool, id)).length).toBe(2);

  expect(await deletedCounter()).toEqual({ succeeded: 3, dead: 2, cancelled: 1 });
  // The oldest left of each status: the young succeeded (6 days), the middle dead and cancelled (8 days).
  const ages = Object.fromEntries((await metrics.oldestFinished.get()).values.map((v) => [v.labels.status, v.value / 86400]));
  expect(ages.succeeded).toBeCloseTo(6, 1);
  expect(ages.dead).toBeCloseTo(8, 1);
  expect(ages.cancelled).toBeCloseTo(8, 1);

  // Nothing left to do: a second pass deletes nothing, in one short batch for workflows and one per status.
  expect(await s.runOnce()).toMatchObject({ deleted: { succeeded: 0, dead: 0, cancelled: 0 }, batches: 4 });
});

it('takes each status at its own setting; 0 keeps a status forever', async () => {
  const policy: RetentionPolicy = { succeeded: 3_600_000, dead: 0, cancelled: 2 * 3_600_000 };
  const succeeded = await made('succeeded', 90 * 60_000);
  const cancelled = await made('cancelled', 90 * 60_000);
  const ancientDead = await made('dead', 3650 * DAY);
  const oldCancelled = await made('cancelled', 3 * 3_600_000);
  const res = await sweeper({ policy }).runOnce();
  expect(res.deleted).toEqual({ succeeded: 1, dead: 0, cancelled: 1 });
  // The dead status is not even read: two statuses and the (succeeded) workflows, one batch each.
  expect(res.batches).toBe(3);
  expect(await present([...succeeded, ...oldCancelled])).toEqual([]);
  expect(await present([...cancelled, ...ancientDead])).toEqual([...cancelled, ...ancientDead].sort());
});

it('with every status kept forever the sweep does nothing, not even take the lock', async () => {
  const ancient = await made('succeeded', 3650 * DAY);
  const s = sweeper({ policy: { succeeded: 0, dead: 0, cancelled: 0 } });
  expect(s.enabled).toBe(false);
  expect(await s.runOnce()).toMatchObject({ leader: false, batches: 0 });
  expect(await stack.inspect.exists(stack.queue.keys.lock('retention'))).toBe(0);
  expect(await present(ancient)).toEqual(ancient);
});

it('deletes in bounded batches: 35 old tasks with batches of 10 take four statements; a pass stops at its batch bound', async () => {
  const ids = await made('succeeded', 8 * DAY, 35);
  const first = sweeper({ batch: 10, policy: { succeeded: 7 * DAY, dead: 0, cancelled: 0 } });
  // And one first for workflows (none here).
  expect(await first.runOnce()).toMatchObject({ deleted: { succeeded: 35 }, batches: 5, cut: false });
  expect(await present(ids)).toEqual([]);
  // (It holds the lock until it stops.)
  await first.stop();

  // With at most three batches a pass (the workflows' and two), 25 tasks take two passes, the first cut short.
  const more = await made('succeeded', 8 * DAY, 25);
  const bounded = sweeper({ batch: 10, maxBatches: 3, policy: { succeeded: 7 * DAY, dead: 0, cancelled: 0 } });
  expect(await bounded.runOnce()).toMatchObject({ deleted: { succeeded: 20 }, batches: 3, cut: true });
  expect((await present(more)).length).toBe(5);
  expect(await bounded.runOnce()).toMatchObject({ deleted: { succeeded: 5 }, batches: 2, cut: false });
});

it('the oldest finished go first', async () => {
  const older = await made('succeeded', 20 * DAY, 5);
  const newer = await made('succeeded', 10 * DAY, 5);
  // Two batches: the workflows' (none here) and one of 5 tasks.
  const res = await sweeper({ batch: 5, maxBatches: 2, policy: { succeeded: 7 * DAY, dead: 0, cancelled: 0 } }).runOnce();
  expect(res).toMatchObject({ deleted: { succeeded: 5 }, cut: true });
  expect(await present(older)).toEqual([]);
  expect(await present(newer)).toEqual([...newer].sort());
});

describe('what a pass reads', () => {
  /** Entries of tasks_final_finished_idx read so far (idx_tup_read), after `p`'s one connection reported its counts. */
  async function indexReads(p: Pool): Promise<number> {
    // Postgres 15+: the connection reports its counts before it answers (when idle, forced).
    await p.query('SELECT pg_stat_force_next_flush()');
    const { rows } = await stack.pool.query<{ n: number }>(`SELECT idx_tup_read::int AS n FROM pg_stat_user_indexes WHERE indexrelname = 'tasks_final_finished_idx'`);
    return rows[0]!.n;
  }

  it('each task of a due range a few times a pass at most, however many are kept ahead of the due ones; the next pass only what became due since', async () => {
    // A failed workflow, kept 30 days (the longest setting), whose 1,000 succeeded steps finished
    // 10 days ago: in the succeeded range ahead of 100 plain tasks due (8 days).
    const { rows: [wf] } = await stack.pool.query<{ id: string }>(
      `INSERT INTO workflows (id, tenant, name, on_failure, steps, unfinished, failed, status, finished_at, created_at)
       VALUES (gen_random_uuid(), 'default', 'kept', 'continue', 1001, 0, 1, 'failed', now() - interval '10 days', now() - interval '10 days') RETURNING id`,
    );
    await stack.pool.query(
      `INSERT INTO tasks (id, tenant, type, priority, payload, status, max_retries, workflow_id, step_key, finished_at, created_at, updated_at)
       SELECT gen_random_uuid(), 'default', 'noop', 'default', '{}'::jsonb, 'succeeded'::task_status, 0, $1::uuid, 's' || g, now() - interval '10 days' + g * interval '1 ms', now() - interval '11 days', now()
         FROM generate_series(1, 1000) g
       UNION ALL
       SELECT gen_random_uuid(), 'default', 'noop', 'default', '{}'::jsonb, 'dead'::task_status, 0, $1::uuid, 'dead', now() - interval '10 days', now() - interval '11 days', now()`,
      [wf!.id],
    );
    const due = await made('succeeded', 8 * DAY, 100);
    // Each at its own time (tasks ended by one statement share one: a window reads such a group whole).
    await stack.pool.query(`UPDATE tasks t SET finished_at = t.finished_at + o.n * interval '1 ms' FROM unnest($1::uuid[]) WITH ORDINALITY AS o(id, n) WHERE t.id = o.id`, [due]);
    const one = new Pool({ connectionString: stack.dbUrl, max: 1 });
    try {
      const s = sweeper({ batch: 10 }, metrics, one);
      const before = await indexReads(one);
      expect(await s.runOnce()).toMatchObject({ deleted: { succeeded: 100, dead: 0 }, cut: false });
      const first = (await indexReads(one)) - before;
      expect(await present(due)).toEqual([]);
      // 1,101 in the ranges: each read about twice (a window's end is found first), and the last
      // windows a little more (2,621 here). Each batch of 10 read all 1,000 kept steps again
      // before: 23,332 entries for the pass.
      expect(first).toBeLessThan(4 * 1101);
      const { rows } = await stack.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM tasks WHERE workflow_id = $1', [wf!.id]);
      expect(rows[0]!.n).toBe(1001);
      // Nothing became due since: the next pass reads no kept step again (3 here; 2,062 before).
      expect(await s.runOnce()).toMatchObject({ deleted: { succeeded: 0 } });
      expect((await indexReads(one)) - before - first).toBeLessThan(30);
    } finally {
      await Promise.all(sweepers.splice(0).map((x) => x.stop()));
      await one.end();
    }
  });
});

describe('a dead task being redriven', () => {
  it('is skipped while another transaction holds its row (not waited for), and ends queued', async () => {
    const [id] = await made('dead', 31 * DAY);
    const [other] = await made('dead', 31 * DAY);
    // An operator's retry in progress: its row is locked, and it is about to be queued again.
    const s = sweeper();
    const c = new Client({ connectionString: stack.dbUrl });
    await c.connect();
    try {
      await c.query('BEGIN');
      await c.query('SELECT id FROM tasks WHERE id = $1 FOR UPDATE', [id]);
      let timer: NodeJS.Timeout | undefined;
      const res = await Promise.race([s.runOnce(), new Promise<'waited'>((r) => (timer = setTimeout(() => r('waited'), 5000)))]);
      clearTimeout(timer);
      expect(res).toMatchObject({ deleted: { dead: 1 } });
      await c.query(`UPDATE tasks SET status = 'queued', finished_at = NULL, retry_base = attempts WHERE id = $1`, [id]);
      await c.query('COMMIT');
    } finally {
      await c.end();
    }
    expect(await present([id!, other!])).toEqual([id]);
    expect(await runCount([id!])).toBe(2);
    // Queued now: later passes leave it alone however old it is.
    expect(await s.runOnce()).toMatchObject({ deleted: { dead: 0 } });
    expect((await taskStatus(stack.pool, id!)).status).toBe('queued');
  });

  it('by retryTasks racing the sweep: every task the retry put back stays, queued; the rest are deleted', async () => {
    const ids = await made('dead', 31 * DAY, 60);
    const redriven = ids.filter((_, i) => i % 2 === 0);
    const [outcomes, res] = await Promise.all([
      // In small calls, so the retries interleave with the sweep's batches.
      (async () => {
        const out = [];
        for (let i = 0; i < redriven.length; i += 3) out.push(...(await retryTasks({ pool: stack.pool, queue: stack.queue, log: silentLog }, 'default', redriven.slice(i, i + 3))));
        return out;
      })(),
      sweeper({ batch: 4 }).runOnce(),
    ]);
    const retried = redriven.filter((_, i) => outcomes[i]!.kind === 'retried');
    const missing = redriven.filter((_, i) => outcomes[i]!.kind === 'missing');
    // Each redriven task was either retried (and kept) or deleted before its retry came (404).
    expect(retried.length + missing.length).toBe(redriven.length);
    for (const id of retried) expect((await taskStatus(stack.pool, id)).status).toBe('queued');
    expect(await runCount(retried)).toBe(2 * retried.length);
    expect(res.deleted.dead).toBe(ids.length - retried.length);
    expect((await present(ids)).sort()).toEqual([...retried].sort());
  });
});

it('one sweep at a time across workers: the lock holder sweeps, the other passes; after a stop the other takes over', async () => {
  await made('succeeded', 8 * DAY, 5);
  const m2 = workerMetrics(createRegistry('worker'));
  const a = sweeper();
  const b = sweeper({}, m2);
  const [ra, rb] = await Promise.all([a.runOnce(), b.runOnce()]);
  expect([ra.leader, rb.leader].sort()).toEqual([false, true]);
  expect(ra.deleted.succeeded + rb.deleted.succeeded).toBe(5);
  const [leader, follower] = ra.leader ? [a, b] : [b, a];
  // The follower keeps passing while the leader holds the lock…
  await made('succeeded', 8 * DAY, 2);
  expect(await follower.runOnce()).toMatchObject({ leader: false, batches: 0 });
  // …and sweeps once the leader stopped (a worker shutting down gives the lock back).
  await leader.stop();
  expect(await follower.runOnce()).toMatchObject({ leader: true, deleted: { succeeded: 2 } });
});

it('a dead task that went through a worker leaves Redis too: its dead-letter entry and message', async () => {
  ({ worker } = startWorker(stack));
  const [submitted] = await submitTasks(deps(), [{ tenant: 'default', type: 'always_fail', priority: 'high', payload: { big: 'x'.repeat(100) }, maxRetries: 0, idempotencyKey: null, canonical: '' }]);
  const id = submitted!.task.id;
  const k = stack.queue.keys;
  await waitFor(async () => (await stack.inspect.lrange(k.deadLetters[1]!, 0, -1)).includes(id), 15000, 'the task in the dead-letter list');
  await waitFor(async () => (await taskStatus(stack.pool, id)).status === 'dead');
  await stack.pool.query(`UPDATE tasks SET finished_at = now() - interval '31 days' WHERE id = $1`, [id]);
  const res = await sweeper().runOnce();
  expect(res).toMatchObject({ deleted: { dead: 1 }, purged: 1 });
  expect(await stack.inspect.lrange(k.deadLetters[1]!, 0, -1)).not.toContain(id);
  expect(await stack.inspect.hexists(k.messages, id)).toBe(0);
  expect(await stack.inspect.hexists(k.meta, id)).toBe(0);
  expect(await stack.inspect.hexists(k.attempts, id)).toBe(0);
  expect((await stack.queue.stats()).dead.high).toBe(0);
  // Redis's check of what it holds finds nothing amiss afterwards.
  expect(await stack.queue.sweep(100)).toMatchObject({ forgotten: [], orphans: 0 });
  expect(await present([id])).toEqual([]);
  expect(await runsOf(stack.pool, id)).toEqual([]);
});

it('purging dead tasks behind dead-letter entries that retention keeps reads the list once, not once per task', async () => {
  // Entries retention keeps (a live idempotency key, a workflow not due) can sit at the head of a
  // dead-letter list, or ones a failed purge left behind: every deleted task behind them was
  // searched for from the head, one full scan each (1,000 behind 50,000: about a second of Redis).
  const k = stack.queue.keys;
  const list = k.deadLetters[2]!;
  const kept = Array.from({ length: 50_000 }, (_, i) => `kept-${i}`);
  for (let i = 0; i < kept.length; i += 10_000) await stack.inspect.rpush(list, ...kept.slice(i, i + 10_000));
  const gone = Array.from({ length: 1000 }, (_, i) => `gone-${i}`);
  await stack.inspect.rpush(list, ...gone.slice(0, 500), 'kept-tail', ...gone.slice(500));
  await stack.inspect.hset(k.meta, ...[...gone, 'leased', 'elsewhere'].flatMap((id) => [id, '2:1:default']));
  await stack.inspect.hset(k.messages, ...gone.flatMap((id) => [id, '{}']));
  // One a lease holds, and one in no dead-letter list, are left alone.
  await stack.inspect.rpush(list, 'leased');
  await stack.inspect.zadd(k.processing, Date.now() + 60_000, 'leased');
  const before = await scriptUsec(stack);
  expect(await stack.queue.purge([...gone, 'leased', 'elsewhere', 'unknown'].map((id) => ({ id, tenant: 'default' })))).toBe(1000);
  expect((await scriptUsec(stack)) - before).toBeLessThan(250_000);
  expectEqual(await stack.inspect.lrange(list, 0, -1), [...kept, 'kept-tail', 'leased']);
  expect(await stack.inspect.hmget(k.meta, 'gone-0', 'gone-999', 'leased', 'elsewhere')).toEqual([null, null, '2:1:default', '2:1:default']);
  expect(await stack.inspect.hexists(k.messages, 'gone-500')).toBe(0);
}, 60_000);

it('the running worker sweeps on its own (RETENTION_* settings)', async () => {
  const ids = await made('succeeded', 2 * 3_600_000, 3);
  const young = await made('succeeded', 10 * 60_000);
  let m: WorkerMetrics;
  ({ worker, metrics: m } = startWorker(stack, { cfg: { RETENTION_SUCCEEDED_MS: 3_600_000, RETENTION_INTERVAL_MS: 100 } }));
  await waitFor(async () => (await present(ids)).length === 0, 10_000, 'the old tasks deleted');
  expect(await present(young)).toEqual(young);
  expect((await deletedCounter(m)).succeeded).toBe(3);
});

describe('idempotency keys', () => {
  const post = async (url: string, body: unknown) => {
    const res = await fetch(`${url}/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as { id: string; status: string } };
  };

  it('a task whose key is still live stays however old, and a replay answers with it; once the key expired both go, and the same request creates a new task', async () => {
    const api = await startApi(stack);
    try {
      const body = { type: 'noop', payload: { order: 1 }, idempotency_key: 'order-1' };
      const first = await post(api.url, body);
      expect(first.status).toBe(201);
      const id = first.body.id;
      await age([id], 'succeeded', 8 * DAY);
      // The key was given 24 h (IDEMPOTENCY_TTL_MS): the task outlives its own retention. (Passed
      // over by the walk, it goes once the walk starts again from the oldest: at every pass here,
      // within an hour by default.)
      const s = sweeper({ rescanMs: 0 });
      expect(await s.runOnce()).toMatchObject({ deleted: { succeeded: 0 } });
      const replay = await post(api.url, body);
      expect(replay).toMatchObject({ status: 200, body: { id, status: 'succeeded' } });

      await stack.pool.query(`UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = 'order-1'`);
      expect(await s.runOnce()).toMatchObject({ deleted: { succeeded: 1 } });
      expect(await present([id])).toEqual([]);
      // As after any key's expiry: the request is new again.
      const again = await post(api.url, body);
      expect(again.status).toBe(201);
      expect(again.body.id).not.toBe(id);
      expect(again.body.status).toBe('queued');
    } finally {
      await api.server.stop();
    }
  });

  it('a live key whose task was deleted by hand: the replay creates the task again (201), not a 500', async () => {
    const api = await startApi(stack);
    try {
      const body = { type: 'noop', payload: { order: 2 }, idempotency_key: 'order-2' };
      const first = await post(api.url, body);
      await stack.pool.query('DELETE FROM tasks WHERE id = $1', [first.body.id]);
      const replays = await Promise.all([post(api.url, body), post(api.url, body), post(api.url, body)]);
      expect(replays.map((r) => r.status).sort()).toEqual([200, 200, 201]);
      const created = replays.find((r) => r.status === 201)!.body.id;
      expect(new Set(replays.map((r) => r.body.id))).toEqual(new Set([created]));
      const { rows } = await stack.pool.query(`SELECT task_id FROM idempotency_keys WHERE key = 'order-2'`);
      expect(rows).toEqual([{ task_id: created }]);
    } finally {
      await api.server.stop();
    }
  });
});

it('a purge that Redis fails leaves neither side behind: the dead task stays until a later pass deletes it with its dead-letter entry', async () => {
  ({ worker } = startWorker(stack));
  const [submitted] = await submitTasks(deps(), [{ tenant: 'default', type: 'always_fail', priority: 'high', payload: {}, maxRetries: 0, idempotencyKey: null, canonical: '' }]);
  const id = submitted!.task.id;
  const k = stack.keysOf('default');
  await waitFor(async () => (await stack.inspect.lrange(k.deadLetters[1]!, 0, -1)).includes(id), 15000, 'the task in the dead-letter list');
  await waitFor(async () => (await taskStatus(stack.pool, id)).status === 'dead');
  await worker!.stop(0);
  worker = null;
  await stack.pool.query(`UPDATE tasks SET finished_at = now() - interval '31 days' WHERE id = $1`, [id]);
  // Redis refuses the purge (as in a failover or a dropped connection): its tasks' meta hash is,
  // for this pass, a key of another type, so the script fails at its first read, writing nothing.
  const saved = `${k.meta}:saved`;
  await stack.inspect.rename(k.meta, saved);
  await stack.inspect.set(k.meta, 'not a hash');
  const s = sweeper({ policy: { succeeded: 0, dead: 30 * DAY, cancelled: 0 } });
  const failed = await s.runOnce();
  await stack.inspect.del(k.meta);
  await stack.inspect.rename(saved, k.meta);
  expect(failed.purged).toBe(0);
  // Whatever that pass did, the next one (Redis answering again) leaves Postgres and Redis agreeing:
  // the task and its dead-letter entry both gone.
  await s.runOnce();
  expect(await present([id])).toEqual([]);
  expect(await stack.inspect.lrange(k.deadLetters[1]!, 0, -1)).not.toContain(id);
  expect(await stack.inspect.hexists(k.messages, id)).toBe(0);
  expect(await stack.inspect.hexists(k.meta, id)).toBe(0);
  expect((await stack.queue.stats()).dead.high).toBe(0);
});
