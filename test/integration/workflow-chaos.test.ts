/**
 * Workflows under concurrent operators: random graphs of flaky steps run on two in-process
 * workers (one of them stopped at once and replaced every second or so) while three operators
 * retry dead steps, cancel steps and cancel workflows at random, against real Postgres and
 * Redis. Every committed state is checked as it goes (counters, waiting counts, no step past
 * waiting before its dependencies succeeded), and at the end every workflow has ended and no
 * step ran before its dependencies or succeeded twice. The seed is printed on a failure
 * (CHAOS_SEED=… replays the graphs and the operators' choices, not the timing).
 */
import pino from 'pino';
import type { Worker } from '../../services/worker/worker';
import { READ_SNAPSHOT, inTransaction } from '../../services/core/db/transaction';
import { cancelTasks } from '../../services/core/operator/cancel-tasks';
import { retryTasks } from '../../services/core/operator/retry-tasks';
import { prng as random } from '../../services/load/plan';
import type { StepSpec, WorkflowSpec } from '../../services/core/workflows/workflow';
import { cancelWorkflow, createWorkflow } from '../../services/core/workflows/workflow-store';
import { chaosSeed, chaosWorkers } from '../support/chaos';
import { createStack, silentLog, Stack, waitFor } from '../support/stack';

const TENANT = 'default';
const SEED = chaosSeed();
// The workers' warnings and errors (the last 200), printed if a workflow never ends.
const warnings: string[] = [];
const log = pino(
  { level: 'warn' },
  {
    write(line: string) {
      warnings.push(line.trimEnd().slice(0, 2000));
      if (warnings.length > 200) warnings.shift();
    },
  },
);
let stack: Stack;
let workers: Worker[] = [];

afterEach(async () => {
  await Promise.all(workers.map((w) => w.stop(0)));
  workers = [];
  await stack?.close();
});

function graph(rnd: () => number, n: number): StepSpec[] {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
  return Array.from({ length: n }, (_, i) => {
    const deps = new Set<string>();
    if (i > 0 && rnd() < 0.8) for (let k = 1 + Math.floor(rnd() * 3); k > 0; k--) deps.add(`s${Math.floor(rnd() * i)}`);
    return {
      key: `s${i}`,
      type: 'chaos',
      // Attempts that fail before one succeeds, and how long each takes.
      payload: { fail: pick([0, 0, 0, 1, 3]), sleep_ms: pick([0, 0, 5, 20]) },
      priority: 'default',
      max_retries: pick([0, 1, 2]),
      retry: null,
      timeout_ms: null,
      depends_on: [...deps],
    };
  });
}

/**
 * What must hold in every committed state of these workflows (one snapshot): each workflow's
 * counters and status agree with its steps; a waiting step counts exactly its dependencies not
 * succeeded, and none of them has failed (the failure's cascade would have cancelled it); a step
 * past waiting (other than cancelled) has all its dependencies succeeded.
 */
async function violations(ids: string[]): Promise<unknown[]> {
  return inTransaction(
    stack.pool,
    async (c) => {
      const counters = await c.query(
        `SELECT w.id, w.status, w.unfinished, w.failed, s.unfinished AS steps_unfinished, s.failed AS steps_failed
           FROM workflows w JOIN (
             SELECT workflow_id,
                    count(*) FILTER (WHERE status NOT IN ('succeeded', 'dead', 'cancelled'))::int AS unfinished,
                    count(*) FILTER (WHERE status IN ('dead', 'cancelled'))::int AS failed
               FROM tasks WHERE workflow_id = ANY($1::uuid[]) GROUP BY workflow_id) s ON s.workflow_id = w.id
          WHERE w.unfinished <> s.unfinished OR w.failed <> s.failed OR (w.status = 'running') <> (s.unfinished > 0)`,
        [ids],
      );
      const steps = await c.query(
        `SELECT t.workflow_id, t.step_key, t.status::text AS status, t.deps_waiting,
                string_agg(p.step_key || ':' || p.status::text, ' ') AS parents,
                count(p.id) FILTER (WHERE p.status <> 'succeeded')::int AS parents_unfinished,
                count(p.id) FILTER (WHERE p.status IN ('dead', 'cancelled'))::int AS parents_failed
           FROM tasks t LEFT JOIN workflow_edges e ON e.child = t.id LEFT JOIN tasks p ON p.id = e.parent
          WHERE t.workflow_id = ANY($1::uuid[])
          GROUP BY t.id
         HAVING (t.status = 'waiting' AND (t.deps_waiting <> count(p.id) FILTER (WHERE p.status <> 'succeeded') OR t.deps_waiting = 0
                                           OR count(p.id) FILTER (WHERE p.status IN ('dead', 'cancelled')) > 0))
             OR (t.status NOT IN ('waiting', 'cancelled') AND count(p.id) FILTER (WHERE p.status <> 'succeeded') > 0)`,
        [ids],
      );
      return [...counters.rows, ...steps.rows];
    },
    READ_SNAPSHOT,
  );
}

/** For a timeout's report: the steps not ended, as Postgres and Redis (its lease deadline) hold them. */
async function unfinishedSteps(ids: string[]): Promise<unknown[]> {
  const { rows } = await stack.pool.query<{ id: string }>(
    `SELECT id, step_key, status::text AS status, attempts, max_retries, deps_waiting, lease_token IS NOT NULL AS leased, updated_at, run_after
       FROM tasks WHERE workflow_id = ANY($1::uuid[]) AND status NOT IN ('succeeded', 'dead', 'cancelled') ORDER BY updated_at LIMIT 20`,
    [ids],
  );
  const keys = stack.keysOf(TENANT);
  return Promise.all(
    rows.map(async (r) => ({
      ...r,
      redis: {
        message: (await stack.inspect.hexists(keys.messages, r.id)) === 1,
        token: await stack.inspect.hget(keys.tokens, r.id),
        leaseDeadlineInMs: await stack.inspect.zscore(keys.processing, r.id).then((d) => (d === null ? null : Number(d) - Date.now())),
      },
    })),
  );
}

it(`random workflows under concurrent retries and cancels: every state consistent, every workflow ends (seed ${SEED})`, async () => {
  const rnd = random(SEED);
  stack = await createStack({ RETRY_SCAN_INTERVAL_MS: 50, POLL_INTERVAL_MS: 50, RETRY_BASE_MS: 5, RETRY_JITTER_MS: 0, RECONCILE_INTERVAL_MS: 1000 });
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  workers = chaosWorkers(stack, 2, log);
  const deps = { pool: stack.pool, queue: stack.queue, log: silentLog };
  const ids: string[] = [];
  for (let i = 0; i < 14; i++) {
    const spec: WorkflowSpec = { name: `chaos-${i}`, on_failure: rnd() < 0.5 ? 'continue' : 'cancel_dependents', steps: graph(rnd, 4 + Math.floor(rnd() * 17)) };
    const out = await createWorkflow(deps, TENANT, spec, null);
    if (out.kind !== 'created') throw new Error(out.kind);
    ids.push(out.workflow.id);
  }

  const seen: unknown[] = [];
  const actions = { retried: 0, cancelled: 0, workflowsCancelled: 0, checks: 0, restarts: 0 };
  const until = Date.now() + 6000;
  const operator = async (r: () => number) => {
    while (Date.now() < until) {
      const roll = r();
      if (roll < 0.55) {
        const { rows } = await stack.pool.query<{ id: string }>(`SELECT id FROM tasks WHERE workflow_id = ANY($1::uuid[]) AND status = 'dead'`, [ids]);
        if (rows.length > 0) {
          const [out] = await retryTasks(deps, TENANT, [rows[Math.floor(r() * rows.length)]!.id]);
          if (out!.kind === 'retried') actions.retried++;
        }
      } else if (roll < 0.65) {
        const { rows } = await stack.pool.query<{ id: string }>(`SELECT id FROM tasks WHERE workflow_id = ANY($1::uuid[]) AND status IN ('waiting', 'queued', 'running', 'retrying')`, [ids]);
        if (rows.length > 0) {
          const [out] = await cancelTasks(deps, TENANT, [rows[Math.floor(r() * rows.length)]!.id]);
          if (out!.kind !== 'final') actions.cancelled++;
        }
      } else if (roll < 0.67) {
        const out = await cancelWorkflow(deps, TENANT, ids[Math.floor(r() * ids.length)]!);
        if (out.kind === 'cancelled') actions.workflowsCancelled++;
      }
      const bad = await violations(ids);
      actions.checks++;
      if (bad.length > 0) seen.push(...bad);
      await sleep(5 + Math.floor(r() * 30));
    }
  };
  // Workers come and go: one stops at once (its running steps handed back unfinished, released in
  // Postgres and Redis) and a fresh one takes its place, every second or so.
  const restarts = async (r: () => number) => {
    while (Date.now() < until) {
      await sleep(700 + Math.floor(r() * 800));
      const i = Math.floor(r() * workers.length);
      const [gone] = workers.splice(i, 1, ...chaosWorkers(stack, 1, log));
      await gone!.stop(0);
      actions.restarts++;
    }
  };
  await Promise.all([...[1, 2, 3].map((k) => operator(random(SEED * 7 + k))), restarts(random(SEED * 7 + 4))]);
  if (seen.length > 0) {
    const wfIds = [...new Set(seen.map((v) => (v as { workflow_id?: string; id?: string }).workflow_id ?? (v as { id: string }).id))];
    const { rows } = await stack.pool.query(`SELECT id, on_failure, status, cancel_requested_at IS NOT NULL AS cancel_requested FROM workflows WHERE id = ANY($1::uuid[])`, [wfIds]);
    console.log(JSON.stringify({ first: seen.slice(0, 4), workflows: rows, now: await violations(ids) }, null, 1));
    await new Promise((r) => setTimeout(r, 3000));
    console.log(JSON.stringify({ later: await violations(ids) }));
  }
  expect(seen).toEqual([]);
  // Operators did what the test is about (a seed where none retried would prove little).
  expect(actions.retried).toBeGreaterThan(0);
  expect(actions.cancelled).toBeGreaterThan(0);

  // Nothing waits forever: with the operators gone, every workflow ends.
  await waitFor(async () => {
    const { rows } = await stack.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM workflows WHERE id = ANY($1::uuid[]) AND status = 'running'`, [ids]);
    return rows[0]!.n === 0;
  }, 30_000, 'every workflow to end').catch(async (err: unknown) => {
    console.log(JSON.stringify({ seed: SEED, actions, unfinished: await unfinishedSteps(ids) }, null, 1), `\nworkers' warnings:\n${warnings.join('\n')}`);
    throw err;
  });
  expect(await violations(ids)).toEqual([]);
  const { rows: ends } = await stack.pool.query<{ status: string; cancel_requested: boolean; failed: number; unfinished: number }>(
    `SELECT status, cancel_requested_at IS NOT NULL AS cancel_requested, failed, unfinished FROM workflows WHERE id = ANY($1::uuid[])`,
    [ids],
  );
  expect(ends.filter((w) => w.unfinished !== 0 || w.status !== (w.cancel_requested ? 'cancelled' : w.failed > 0 ? 'failed' : 'succeeded'))).toEqual([]);
  // No step ran before its dependencies had succeeded; none succeeded twice, and only succeeded
  // steps have a succeeded run; a step cancelled by another's failure names a step that failed.
  const { rows: bad } = await stack.pool.query(
    `SELECT t.step_key, t.status::text AS status,
            (SELECT count(*) FROM task_runs r WHERE r.task_id = t.id AND r.outcome = 'succeeded')::int AS ok,
            (SELECT min(r.started_at) FROM task_runs r WHERE r.task_id = t.id) AS first_run,
            (SELECT max(p.finished_at) FROM workflow_edges e JOIN tasks p ON p.id = e.parent WHERE e.child = t.id) AS deps_done,
            (SELECT count(*) FROM workflow_edges e JOIN tasks p ON p.id = e.parent WHERE e.child = t.id AND p.status <> 'succeeded')::int AS deps_unfinished,
            (SELECT c.status::text FROM tasks c WHERE c.id = t.cancelled_by) AS canceller
       FROM tasks t WHERE t.workflow_id = ANY($1::uuid[])`,
    [ids],
  );
  type Row = { step_key: string; status: string; ok: number; first_run: Date | null; deps_done: Date | null; deps_unfinished: number; canceller: string | null };
  const rows = bad as Row[];
  expect(rows.filter((s) => s.ok !== (s.status === 'succeeded' ? 1 : 0))).toEqual([]);
  // Run times are the worker's clock in whole milliseconds; a dependency's end is Postgres's.
  expect(rows.filter((s) => s.first_run && ((s.deps_done && s.first_run.getTime() + 1 < s.deps_done.getTime()) || s.deps_unfinished > 0))).toEqual([]);
  expect(rows.filter((s) => s.canceller !== null && !['dead', 'cancelled'].includes(s.canceller))).toEqual([]);
  expect(rows.filter((s) => !['succeeded', 'dead', 'cancelled'].includes(s.status))).toEqual([]);
  if (process.env.CHAOS_VERBOSE === '1') console.log({ seed: SEED, ...actions, steps: rows.length });
}, 90_000);
