/**
 * One fault scenario (test/faults, test/cluster): real api and worker processes on a Postgres and
 * a Redis (single or Cluster) the test may break, a few thousand mixed tasks posted by 16 retrying
 * clients, one fault injected part way; afterwards Postgres must show every accepted task final,
 * in its expected state, with its executions recorded.
 */
import path from 'node:path';
import { Pool } from 'pg';
import { ServiceSet } from './fault-cluster';
import { ChildHandle } from './processes';
import { drive, mixedPlan, PlannedTask } from './load-driver';
import { uniqueRedisPrefix } from './test-env';

const ROOT = path.resolve(__dirname, '../..');
export const TASKS = Number(process.env.FAULT_TASKS ?? 2000);
export const VIS_MS = 2000;

export interface ScenarioOptions {
  plan?: PlannedTask[];
  faultAt?: number;
  workers?: number;
  env?: Record<string, string>;
  check?: (o: Map<string, TaskOutcome>) => Promise<void>;
}

/** Where a scenario's processes find their databases and Redis. */
export interface ScenarioServices {
  /** A new, migrated database. */
  createDatabase(): Promise<string>;
  /** REDIS_ADDR, or REDIS_CLUSTER_NODES and REDIS_PARTITIONS. */
  redisEnv(): Record<string, string>;
}

export interface Row {
  scenario: string;
  accepted: number;
  final: number;
  lost: number;
  duplicates: number;
  recoverySeconds: number;
  clientRetries: number;
}

export interface Ctx<S extends ScenarioServices = ScenarioServices> {
  set: ServiceSet;
  svc: S;
  /** Restart workers that die, as a Deployment would. */
  supervise: boolean;
  extras: Record<string, unknown>;
}

export interface TaskOutcome {
  id: string;
  status: string;
  attempts: number;
  max_retries: number;
  succeeded_runs: number;
  executed_runs: number;
  discarded_runs: number;
}

export async function outcomes(pool: Pool): Promise<Map<string, TaskOutcome>> {
  const { rows: r } = await pool.query<TaskOutcome>(`
    SELECT t.id, t.status, t.attempts, t.max_retries,
           count(*) FILTER (WHERE r.outcome = 'succeeded')::int AS succeeded_runs,
           count(*) FILTER (WHERE r.outcome IN ('succeeded', 'failed', 'expired', 'discarded'))::int AS executed_runs,
           count(*) FILTER (WHERE r.outcome = 'discarded')::int AS discarded_runs
      FROM tasks t LEFT JOIN task_runs r ON r.task_id = t.id GROUP BY t.id`);
  return new Map(r.map((o) => [o.id, o]));
}

export async function runScenario<S extends ScenarioServices>(
  svc: S,
  rows: Row[],
  name: string,
  fault: (ctx: Ctx<S>) => Promise<void>,
  opts: ScenarioOptions = {},
): Promise<Row> {
  const dbUrl = await svc.createDatabase();
  const env = {
    POSTGRES_URL: dbUrl,
    ...svc.redisEnv(),
    REDIS_KEY_PREFIX: uniqueRedisPrefix(name),
    LOG_LEVEL: 'info',
    VIS_TIMEOUT_MS: String(VIS_MS),
    REAPER_SCAN_INTERVAL_MS: '200',
    RECONCILE_INTERVAL_MS: '500',
    RECONCILE_GRACE_MS: '1500',
    RETRY_BASE_MS: '20',
    RETRY_MAX_MS: '200',
    RETRY_JITTER_MS: '20',
    RETRY_SCAN_INTERVAL_MS: '50',
    WORKER_POOL: '16',
    TASK_TIMEOUT_MS: '3000',
    SHUTDOWN_GRACE_MS: '3000',
    HANDLERS_MODULE: path.join(ROOT, 'test/fixtures/fault-handlers.js'),
    ...opts.env,
  };
  const set = new ServiceSet(env);
  const ctx: Ctx<S> = { set, svc, supervise: false, extras: {} };
  // Side by side: each process spends half a second loading before it is ready.
  await Promise.all([set.startApi(), ...Array.from({ length: opts.workers ?? 2 }, () => set.startWorker())]);
  const restarting = superviseWorkers(ctx);

  const plan = opts.plan ?? mixedPlan(TASKS, name);
  // The tenants the plan names exist first, as `tenants set` makes them (an admin key acts only on tenants that exist).
  const named = [...new Set(plan.flatMap((p) => (p.tenant ? [p.tenant] : [])))];
  if (named.length > 0) {
    const setup = new Pool({ connectionString: dbUrl, max: 1 });
    try {
      await setup.query('INSERT INTO tenants (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING', [named]);
    } finally {
      await setup.end();
    }
  }
  const faultAfter = Math.floor(plan.length * (opts.faultAt ?? 0.3));
  let faultStarted = 0;
  let faultDone: Promise<void> | null = null;
  const driven = await drive(`http://127.0.0.1:${set.apiPort}`, plan, {
    clients: 16,
    onProgress: (sent) => {
      if (sent >= faultAfter && !faultDone) {
        faultStarted = Date.now();
        faultDone = fault(ctx);
      }
    },
  });
  await faultDone;

  const pool = new Pool({ connectionString: dbUrl, max: 2 });
  try {
    const deadline = Date.now() + 90_000;
    let unfinished = -1;
    while (Date.now() < deadline) {
      const { rows: r } = await pool.query("SELECT count(*)::int AS n FROM tasks WHERE status NOT IN ('succeeded', 'dead', 'cancelled')");
      unfinished = r[0].n;
      if (unfinished === 0) break;
      await new Promise((res) => setTimeout(res, 200));
    }
    const recoverySeconds = (Date.now() - faultStarted) / 1000;
    ctx.supervise = false;
    const all = await outcomes(pool);
    const wrong: string[] = [];
    let duplicates = 0;
    let final = 0;
    // Tasks an operator cancelled during the fault (cancelScenario), by the cancel's answer.
    const cancels = (ctx.extras.cancels as Map<string, number> | undefined) ?? new Map<string, number>();
    for (const { id, plan: p } of driven.accepted.values()) {
      const o = all.get(id);
      if (!o) {
        wrong.push(`${p.key}: accepted but not in Postgres`);
        continue;
      }
      if (o.status === 'succeeded' || o.status === 'dead' || o.status === 'cancelled') final++;
      const answer = cancels.get(id);
      if (answer === 200 || answer === 202) {
        // 200: it was waiting and never ran to an end after; 202: it was running, and ends cancelled
        // unless that attempt finished first (then as planned).
        const problems = [
          answer === 200 && o.status !== 'cancelled' && `cancelled (200) but ${o.status}`,
          answer === 200 && o.succeeded_runs > 0 && `cancelled (200) but it succeeded`,
          answer === 202 && o.status !== 'cancelled' && o.status !== p.expect.status && `cancelling (202) but ${o.status}`,
          o.succeeded_runs > 1 && `${o.succeeded_runs} successful runs recorded`,
        ].filter(Boolean);
        if (problems.length) wrong.push(`${p.key} ${JSON.stringify(p.body)}: ${problems.join('; ')}`);
        continue;
      }
      duplicates += Math.max(0, o.executed_runs - p.expect.attempts);
      const problems = [
        o.status !== p.expect.status && `status ${o.status}, expected ${p.expect.status}`,
        o.status === 'succeeded' && o.succeeded_runs !== 1 && `${o.succeeded_runs} successful runs recorded`,
        o.attempts < p.expect.attempts && `attempts ${o.attempts} < ${p.expect.attempts}`,
        o.attempts > o.max_retries + 1 && `attempts ${o.attempts} beyond max_retries+1`,
        o.status === 'dead' && o.attempts !== o.max_retries + 1 && p.expect.status === 'dead' && `dead after ${o.attempts} attempts`,
      ].filter(Boolean);
      if (problems.length) wrong.push(`${p.key} ${JSON.stringify(p.body)}: ${problems.join('; ')}`);
    }
    expect(driven.gaveUp).toBe(0);
    expect(wrong.slice(0, 20)).toEqual([]);
    await opts.check?.(all);
    const row: Row = {
      scenario: name,
      accepted: driven.accepted.size,
      final,
      lost: driven.accepted.size - final,
      duplicates,
      recoverySeconds,
      clientRetries: driven.retriedRequests,
    };
    rows.push(row);
    return row;
  } finally {
    ctx.supervise = false;
    await restarting.stop();
    await set.stopAll();
    await pool.end();
  }
}

/** Restarts a worker that exits while supervision is on (poison tasks, kills). */
function superviseWorkers(ctx: Ctx<ScenarioServices>): { stop(): Promise<void> } {
  let on = true;
  const pending: Promise<unknown>[] = [];
  const watch = (w: ChildHandle) =>
    void w.exited.then(() => {
      if (!on || !ctx.supervise) return;
      // startWorker is wrapped below, so the replacement is watched too.
      pending.push(ctx.set.startWorker().catch(() => undefined));
    });
  ctx.set.workers.forEach(watch);
  const origStart = ctx.set.startWorker.bind(ctx.set);
  ctx.set.startWorker = async (extra) => {
    const w = await origStart(extra);
    watch(w);
    return w;
  };
  return {
    async stop() {
      on = false;
      await Promise.all(pending);
    },
  };
}

