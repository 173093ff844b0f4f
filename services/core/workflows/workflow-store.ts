/**
 * Workflows in Postgres (migration 0016; docs/workflows.md). A workflow is accepted all or nothing:
 * its row, a task per step and the edges are inserted in one transaction; steps without
 * dependencies are queued (and pushed to Redis after the commit, as POST /tasks does), the others
 * are `waiting`. From then on the trigger `tasks_workflow_step_changed` moves steps along in the
 * transaction of whatever changes a step's status.
 */
import type { Pool, PoolClient } from 'pg';
import { numberArray, textArray } from '../db/pg-arrays';
import { LOCKED_PUSH_TIMEOUT_MS } from '../db/share-locked-push';
import { inTransaction, READ_SNAPSHOT, retryingDeadlocks } from '../db/transaction';
import type { Logger } from '../observability/logger';
import { cancelTasks } from '../operator/cancel-tasks';
import { withTimeout } from '../process/with-timeout';
import type { TaskQueue } from '../queue/queue';
import { enqueueItem } from '../tasks/submit';
import { TASK_COLUMNS, TaskRow } from '../tasks/task';
import type { TaskCursor } from '../tasks/task-cursor';
import { DEFAULT_SCAN_ROWS } from '../tasks/task-list';
import { uuidv7 } from '../tasks/uuid';
import type { StepRow, WorkflowIdempotency, WorkflowRow, WorkflowSpec, WorkflowStatus } from './workflow';

export type CreateWorkflowOutcome =
  | { kind: 'created' | 'replayed'; workflow: WorkflowRow; steps: { key: string; task_id: string }[] }
  | { kind: 'conflict'; workflow: WorkflowRow };

const WORKFLOW_COLUMNS = 'id, tenant, name, status, on_failure, steps, unfinished, failed, idempotency_key, cancel_requested_at, created_at, updated_at, finished_at';

/**
 * Ids for `n` steps in submission order: UUIDv7 whose 12-bit rand_a field counts (RFC 9562's
 * method 1), so steps list in the order they were given.
 */
function stepIds(n: number, nowMs = Date.now()): string[] {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = uuidv7(nowMs + Math.floor(i / 4096));
    ids.push(`${id.slice(0, 15)}${(i % 4096).toString(16).padStart(3, '0')}${id.slice(18)}`);
  }
  return ids;
}

/** IDEMPOTENCY_TTL_MS's default: how long a workflow's key is kept live when the caller does not say. */
const DEFAULT_IDEMPOTENCY_TTL_MS = 86_400_000;

export async function createWorkflow(
  // idempotencyTtlMs: IDEMPOTENCY_TTL_MS. Retention keeps a workflow submitted with a key until
  // then, as it keeps a task, so a repeat within the key's life is answered with it.
  deps: { pool: Pool; queue: TaskQueue; log: Logger; idempotencyTtlMs?: number },
  tenant: string,
  spec: WorkflowSpec,
  idem: WorkflowIdempotency | null,
  // The key's expired holder was let go once already (see below): a second conflict is an error.
  keyFreed = false,
): Promise<CreateWorkflowOutcome> {
  const id = uuidv7();
  const ids = stepIds(spec.steps.length);
  const idOf = new Map(spec.steps.map((s, i) => [s.key, ids[i]!]));
  const s = spec.steps;
  const parents: string[] = [];
  const children: string[] = [];
  for (const step of s) for (const d of step.depends_on) (parents.push(idOf.get(d)!), children.push(idOf.get(step.key)!));
  // One statement, so one round trip and atomic on its own: the workflow, its steps and its edges,
  // or (a key used before) none of them. It answers with the workflow beside each step to push now.
  const { rows } = await deps.pool.query<Record<string, unknown>>(
    `WITH w AS (
       INSERT INTO workflows (id, tenant, name, on_failure, steps, unfinished, idempotency_key, request_hash, idempotency_expires_at)
       VALUES ($2, $1, $13, $14, $15, $15, $16, $17, CASE WHEN $16::text IS NOT NULL THEN now() + $19::bigint * interval '1 millisecond' END)
       ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
       RETURNING ${WORKFLOW_COLUMNS}
     ), t AS (
       INSERT INTO tasks (id, tenant, type, priority, payload, status, max_retries, retry, timeout_ms, workflow_id, step_key, deps_waiting, created_at, updated_at)
       SELECT i.id, $1, i.type, i.priority, i.payload::jsonb,
              CASE WHEN i.deps = 0 THEN 'queued' ELSE 'waiting' END::task_status,
              i.max_retries, i.retry::jsonb, i.timeout_ms, $2, i.key, i.deps, w.created_at, w.created_at
         FROM unnest($3::uuid[], $4::text[], $5::text[], $6::text[], $7::int[], $8::text[], $9::int[], $10::text[], $11::int[])
           AS i(id, type, priority, payload, max_retries, retry, timeout_ms, key, deps), w
       RETURNING ${TASK_COLUMNS}
     ), e AS (
       INSERT INTO workflow_edges (parent, child) SELECT p, c FROM unnest($12::uuid[], $18::uuid[]) AS x(p, c) WHERE EXISTS (SELECT 1 FROM w)
     )
     SELECT ${WORKFLOW_COLUMNS.split(', ').map((c) => `w.${c} AS w_${c}`).join(', ')}, r.*
       FROM w LEFT JOIN (SELECT * FROM t WHERE status = 'queued') r ON true`,
    [
      tenant,
      id,
      textArray(ids),
      textArray(s.map((x) => x.type)),
      textArray(s.map((x) => x.priority)),
      textArray(s.map((x) => JSON.stringify(x.payload === undefined ? {} : x.payload))),
      numberArray(s.map((x) => x.max_retries)),
      textArray(s.map((x) => (x.retry ? JSON.stringify(x.retry) : null))),
      textArray(s.map((x) => (x.timeout_ms ? String(x.timeout_ms) : null))),
      textArray(s.map((x) => x.key)),
      numberArray(s.map((x) => x.depends_on.length)),
      textArray(parents),
      spec.name,
      spec.on_failure,
      s.length,
      idem?.key ?? null,
      idem?.hash ?? null,
      textArray(children),
      deps.idempotencyTtlMs ?? DEFAULT_IDEMPOTENCY_TTL_MS,
    ],
  );
  // The key was used before (a concurrent first use waited for the other's commit). Once its life
  // (IDEMPOTENCY_TTL_MS) is over it is free again, as a task's is: the old workflow lets go of it.
  if (rows.length === 0) {
    const prior = await priorWorkflow(deps.pool, tenant, idem!);
    if (prior) return prior;
    if (keyFreed) throw new Error(`idempotency key of tenant ${tenant} kept conflicting after its expired holder let go of it`);
    await deps.pool.query(`UPDATE workflows SET idempotency_key = NULL WHERE tenant = $1 AND idempotency_key = $2 AND idempotency_expires_at <= now()`, [tenant, idem!.key]);
    return createWorkflow(deps, tenant, spec, idem, true);
  }
  const workflow = Object.fromEntries(WORKFLOW_COLUMNS.split(', ').map((c) => [c, rows[0]![`w_${c}`]])) as unknown as WorkflowRow;
  const roots = rows.filter((r) => r.id !== null) as unknown as TaskRow[];
  await pushSteps(deps, roots);
  return { kind: 'created', workflow, steps: spec.steps.map((x) => ({ key: x.key, task_id: idOf.get(x.key)! })) };
}

/**
 * What POST /workflows with this key answers without creating anything (a replay, or a conflict),
 * or null when the key is not in use, or no longer (its life ended; workflows from before keys
 * had one, migration 0025, keep theirs).
 */
export async function priorWorkflow(pool: Pool, tenant: string, idem: WorkflowIdempotency): Promise<CreateWorkflowOutcome | null> {
  const prior = await pool.query<WorkflowRow & { request_hash: string }>(
    `SELECT ${WORKFLOW_COLUMNS}, request_hash FROM workflows
      WHERE tenant = $1 AND idempotency_key = $2 AND (idempotency_expires_at IS NULL OR idempotency_expires_at > now())`,
    [tenant, idem.key],
  );
  if (prior.rows.length === 0) return null;
  const { request_hash, ...row } = prior.rows[0]!;
  if (request_hash !== idem.hash && !(idem.hashWith && idem.hashWith(await stepMaxRetries(pool, row.id)) === request_hash)) return { kind: 'conflict', workflow: row };
  return { kind: 'replayed', workflow: row, steps: await stepIdsOf(pool, row.id) };
}

/**
 * Pushes a new workflow's steps without dependencies to Redis; a failed or late push (bounded as
 * POST /tasks's is: the answer must not wait on a stalled partition) leaves them to the reconciler,
 * which finds them queued in Postgres.
 */
async function pushSteps(deps: { queue: TaskQueue; log: Logger }, steps: TaskRow[]): Promise<void> {
  if (steps.length === 0) return;
  try {
    // Steps without dependencies: nothing to read before they start.
    await withTimeout(deps.queue.enqueue(steps.map((t) => ({ ...enqueueItem(t), parentsJson: '{}' }))), LOCKED_PUSH_TIMEOUT_MS, 'pushing workflow steps: no answer');
  } catch (err) {
    deps.log.error({ err, count: steps.length, taskIds: steps.slice(0, 10).map((t) => t.id) }, 'workflow steps queued in Postgres but not in Redis; the reconciler will queue them');
  }
}

/** Each step's max_retries as stored, by step key. */
async function stepMaxRetries(pool: Pool, workflowId: string): Promise<Map<string, number>> {
  const { rows } = await pool.query<{ key: string; max_retries: number }>(`SELECT step_key AS key, max_retries FROM tasks WHERE workflow_id = $1`, [workflowId]);
  return new Map(rows.map((r) => [r.key, r.max_retries]));
}

async function stepIdsOf(db: Pool | PoolClient, workflowId: string): Promise<{ key: string; task_id: string }[]> {
  const { rows } = await db.query<{ key: string; task_id: string }>(`SELECT step_key AS key, id AS task_id FROM tasks WHERE workflow_id = $1 ORDER BY id`, [workflowId]);
  return rows;
}

export async function getWorkflow(pool: Pool, tenant: string, id: string): Promise<{ workflow: WorkflowRow; steps: StepRow[] } | null> {
  // One snapshot for the workflow and its steps, so the counts and the steps agree.
  return inTransaction(
    pool,
    async (client) => {
      const wf = await client.query<WorkflowRow>(`SELECT ${WORKFLOW_COLUMNS} FROM workflows WHERE id = $1 AND tenant = $2`, [id, tenant]);
      if (wf.rows.length === 0) return null;
      // Dependencies and causes are steps of the same workflow: joined among its steps, not read from
      // tasks once per step (a plan that, on a new table's missing statistics, scanned tasks per step).
      const steps = await client.query<StepRow>(
        `WITH s AS (
           SELECT id, step_key, type, priority, status::text AS status, attempts, deps_waiting, cancelled_by, last_error, created_at, first_started_at, finished_at
             FROM tasks WHERE workflow_id = $1
         ), d AS (
           SELECT e.child, array_agg(p.step_key ORDER BY p.id) AS keys FROM s p JOIN workflow_edges e ON e.parent = p.id GROUP BY e.child
         )
         SELECT s.step_key AS key, s.id AS task_id, s.type, s.priority, s.status, s.attempts, s.deps_waiting,
                cb.step_key AS cancelled_by, s.last_error, s.created_at, s.first_started_at, s.finished_at,
                COALESCE(d.keys, '{}') AS depends_on
           FROM s LEFT JOIN d ON d.child = s.id LEFT JOIN s cb ON cb.id = s.cancelled_by
          ORDER BY s.id`,
        [id],
      );
      return { workflow: wf.rows[0]!, steps: steps.rows };
    },
    READ_SNAPSHOT,
  );
}

export interface WorkflowListQuery {
  statuses?: WorkflowStatus[];
  name?: string;
  /** Strict bounds on created_at, to the microsecond (microsecondTime in task-fields.ts). */
  createdAfter?: string;
  createdBefore?: string;
  limit: number;
  cursor?: TaskCursor;
}

/**
 * A tenant's workflows, newest first, a keyset page at a time (like GET /tasks): the page reads at
 * most `scanRows` of the tenant's workflows in (created_at, id) order (workflows_tenant_created_idx)
 * and checks the name and status on them, so a filter that matches few costs a bounded read, not
 * the tenant's whole history; such a page may come short (even empty) with a cursor to go on from.
 */
export async function listWorkflows(pool: Pool, tenant: string, q: WorkflowListQuery, scanRows = DEFAULT_SCAN_ROWS): Promise<{ workflows: WorkflowRow[]; next: TaskCursor | null }> {
  const values: unknown[] = [tenant];
  const param = (v: unknown) => (values.push(v), `$${values.length}`);
  // The creation window and the cursor bound the index scan; the rest is checked on the rows read.
  const window = ['tenant = $1'];
  if (q.createdAfter) window.push(`created_at > ${param(q.createdAfter)}::timestamptz`);
  if (q.createdBefore) window.push(`created_at < ${param(q.createdBefore)}::timestamptz`);
  if (q.cursor) window.push(`(created_at, id) < (${param(q.cursor.createdAt)}::timestamptz, ${param(q.cursor.id)}::uuid)`);
  const checked = ['TRUE'];
  if (q.statuses?.length) checked.push(`status = ANY(${param(q.statuses)}::text[])`);
  if (q.name !== undefined) checked.push(`name = ${param(q.name)}`);
  const { rows } = await pool.query<WorkflowRow & { created_at_text: string; hit: boolean; read: string }>(
    `SELECT * FROM (
       SELECT *, row_number() OVER (ORDER BY created_at DESC, id DESC) AS read FROM (
         SELECT ${WORKFLOW_COLUMNS}, created_at::text AS created_at_text, (${checked.join(' AND ')}) AS hit FROM workflows
          WHERE ${window.join(' AND ')} ORDER BY created_at DESC, id DESC LIMIT ${scanRows}) s
       ORDER BY created_at DESC, id DESC LIMIT ${scanRows}) r
      WHERE hit OR read = ${scanRows}
      LIMIT ${q.limit + 1}`,
    values,
  );
  const hits = rows.filter((r) => r.hit);
  const more = hits.length > q.limit;
  const page = more ? hits.slice(0, q.limit) : hits;
  // Fewer matches than a page: the read ended, at the tenant's oldest or at its bound (then the next
  // page starts after the last row it read).
  const last = more ? page[page.length - 1] : rows.find((r) => Number(r.read) === scanRows);
  return {
    workflows: page.map(({ created_at_text: _t, hit: _h, read: _r, ...w }) => w),
    next: last ? { createdAt: last.created_at_text, id: last.id } : null,
  };
}

export type CancelWorkflowOutcome = { kind: 'missing' } | { kind: 'final'; workflow: WorkflowRow } | { kind: 'cancelled'; workflow: WorkflowRow; cancelled: number; cancelling: number };

export const WORKFLOW_CANCEL_REASON = 'cancelled with its workflow';

/**
 * Cancels every unfinished step: the waiting ones (never in Redis) in one statement, then the
 * queued and running ones as POST /tasks/{id}/cancel does, in batches (running ones are asked to
 * stop; the workflow ends `cancelled` once they have). `done`, when given, is kept up to date as
 * each statement commits (`recorded`: the workflow's cancel), so a caller whose call fails part way
 * knows what it cancelled.
 */
export async function cancelWorkflow(
  deps: { pool: Pool; queue: TaskQueue },
  tenant: string,
  id: string,
  done: { cancelled: number; cancelling: number; recorded?: boolean } = { cancelled: 0, cancelling: 0 },
): Promise<CancelWorkflowOutcome> {
  const first = await retryingDeadlocks(() => inTransaction(deps.pool, async (client) => {
    const wf = await client.query<WorkflowRow>(`SELECT ${WORKFLOW_COLUMNS} FROM workflows WHERE id = $1 AND tenant = $2`, [id, tenant]);
    const row = wf.rows[0];
    if (!row || row.status !== 'running') return row ? ({ kind: 'final', workflow: row } as const) : ({ kind: 'missing' } as const);
    // After a failure's cascade or a retry's reopening of this workflow, not beside it (migration
    // 0019): it cancels the steps it sees waiting, which one of those may be changing.
    await client.query('SELECT workflow_lock($1)', [id]);
    // The steps' rows before the workflow's, as every writer locks them; counted once for all of
    // them (workflow_quiet: the trigger leaves these rows alone).
    await client.query('SELECT workflow_quiet(true)');
    const res = await client.query(
      `UPDATE tasks SET status = 'cancelled', cancel_requested_at = now(), finished_at = now(), last_error = $2, updated_at = now(), cancelled_with_workflow = true
        WHERE id IN (SELECT id FROM tasks WHERE workflow_id = $1 AND status = 'waiting' ORDER BY id FOR UPDATE) AND status = 'waiting'`,
      [id, WORKFLOW_CANCEL_REASON],
    );
    await client.query('SELECT workflow_quiet(false)');
    const n = res.rowCount ?? 0;
    // Asked for: the workflow ends `cancelled` (now, if those were its last steps). Unless its last
    // step's success committed since the read above (successes take no workflow_lock): then it
    // has no waiting steps either, and it stays as it ended. Asked again (a repeat, or the rest of
    // a call that failed part way), it keeps when it was first asked.
    const asked = await client.query(`UPDATE workflows SET cancel_requested_at = COALESCE(cancel_requested_at, now()), updated_at = CASE WHEN cancel_requested_at IS NULL THEN now() ELSE updated_at END WHERE id = $1 AND finished_at IS NULL`, [id]);
    if (asked.rowCount === 0) {
      const ended = await client.query<WorkflowRow>(`SELECT ${WORKFLOW_COLUMNS} FROM workflows WHERE id = $1`, [id]);
      return { kind: 'final', workflow: ended.rows[0]! } as const;
    }
    if (n > 0) await client.query('SELECT workflow_counted($1, $2, $3)', [id, -n, n]);
    return { kind: 'cancelling', cancelled: n } as const;
  }));
  if (first.kind !== 'cancelling') return first;
  // The workflow's cancel is committed: it ends `cancelled` once its steps have.
  done.recorded = true;
  done.cancelled += first.cancelled;
  // Steps past waiting: far fewer than the workflow's steps (at most those queued or running).
  for (;;) {
    const { rows } = await deps.pool.query<{ id: string }>(
      `SELECT id FROM tasks WHERE workflow_id = $1 AND status IN ('queued', 'retrying', 'running', 'scheduled') AND cancel_requested_at IS NULL ORDER BY id LIMIT 500`,
      [id],
    );
    if (rows.length === 0) break;
    const outcomes = await cancelTasks(deps, tenant, rows.map((r) => r.id), { withWorkflow: true });
    for (const o of outcomes) {
      if (o.kind === 'cancelled') done.cancelled++;
      else if (o.kind === 'cancelling') done.cancelling++;
    }
    if (rows.length < 500) break;
  }
  const after = await deps.pool.query<WorkflowRow>(`SELECT ${WORKFLOW_COLUMNS} FROM workflows WHERE id = $1`, [id]);
  return { kind: 'cancelled', workflow: after.rows[0]!, cancelled: done.cancelled, cancelling: done.cancelling };
}

