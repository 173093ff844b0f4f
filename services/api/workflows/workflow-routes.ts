/**
 * The workflow routes (issue 20), each scoped to the caller's tenant (an admin's: `?tenant=`):
 * `tasks:write` to submit and cancel, `tasks:read` to read. Another tenant's workflow is not
 * found, like one that does not exist. A workflow is admitted under the tenant's limits as a batch
 * of as many tasks as it has steps, whole or not at all.
 */
import type { Express, Request, Response } from 'express';
import type { Pool } from 'pg';
import type { Logger } from '../../core/observability/logger';
import type { ApiMetrics } from '../../core/observability/metrics';
import type { TaskQueue } from '../../core/queue/queue';
import { encodeCursor } from '../../core/tasks/task-cursor';
import { UUID_PATTERN } from '../../core/tasks/uuid';
import { cancelWorkflow, createWorkflow, priorWorkflow, CreateWorkflowOutcome, getWorkflow, listWorkflows } from '../../core/workflows/workflow-store';
import type { Principal } from '../auth/principal';
import { badRequest, notFound, ProblemError, toProblem } from '../problem';
import type { RouteKit } from '../schedules/schedule-routes';
import { validateWorkflowInput } from './workflow-input';
import { workflowDetailToJson, workflowToJson } from './workflow-json';
import { parseWorkflowQuery } from './workflow-query';

export interface WorkflowRouteDeps {
  pool: Pool;
  queue: TaskQueue;
  log: Logger;
  metrics: Pick<ApiMetrics, 'workflowsStarted' | 'enqueued' | 'cancelled'>;
  defaultMaxRetries: number;
  /** IDEMPOTENCY_TTL_MS: a workflow submitted with a key is kept (not deleted by retention) this long. */
  idempotencyTtlMs: number;
  /** LIST_SCAN_ROWS: workflows one GET /workflows page reads at most. */
  listScanRows?: number;
  /**
   * Runs `work` once `n` tasks of `tenant` are admitted under its limits (429 otherwise), giving
   * back what `created` says was not used; the answer's RateLimit headers come with the result.
   */
  underLimits<T>(tenant: string, n: number, work: () => Promise<T>, created: (r: T) => number, onFailure?: () => number, indivisible?: boolean): Promise<{ result: T; headers: Record<string, string> }>;
}

const tenantOf = (res: Response): string => (res.locals.principal as Principal).tenant;

/** The id in a path: a 400 naming `id` when it is not a UUID (as GET /tasks/{id}). */
function workflowId(raw: string): string {
  if (!UUID_PATTERN.test(raw)) throw badRequest('id must be a UUID', [{ field: 'id', message: 'must be a UUID' }]);
  return raw.toLowerCase();
}

const missing = (id: string) => notFound(`no workflow with id ${id}`);

function created(res: Response, r: Exclude<CreateWorkflowOutcome, { kind: 'conflict' }>, headers: Record<string, string>): void {
  res
    .status(r.kind === 'created' ? 201 : 200)
    .set(headers)
    .location(`/workflows/${r.workflow.id}`)
    .json({ workflow: workflowToJson(r.workflow), steps: r.steps.map((s) => ({ key: s.key, task_id: s.task_id })) });
}

export function addWorkflowRoutes(app: Express, deps: WorkflowRouteDeps, kit: RouteKit): void {
  const { authorized, jsonBody, parseBody } = kit;

  app.post('/workflows', authorized('tasks:write'), ...jsonBody, async (req: Request, res: Response) => {
    const tenant = tenantOf(res);
    const { spec, idem } = validateWorkflowInput(parseBody(req), req.get('Idempotency-Key'), deps.defaultMaxRetries);
    const n = spec.steps.length;
    const { result, headers } = await deps.underLimits(tenant, n, () => createWorkflow(deps, tenant, spec, idem), (r) => (r.kind === 'created' ? n : 0), undefined, true).catch(async (err: unknown) => {
      // A replay takes no place: answered even when the tenant's limits refuse a new workflow.
      const prior = err instanceof ProblemError && err.status === 429 && idem ? await priorWorkflow(deps.pool, tenant, idem) : null;
      if (!prior) throw err;
      return { result: prior, headers: {} };
    });
    if (result.kind === 'conflict') {
      throw new ProblemError(409, 'Idempotency key conflict', `idempotency key was already used with a different request (workflow ${result.workflow.id})`, [
        { field: 'Idempotency-Key', message: 'already used with a different request body' },
      ]);
    }
    if (result.kind === 'created') {
      deps.metrics.workflowsStarted.inc();
      deps.metrics.enqueued.inc(n);
    }
    created(res, result, headers);
  });

  app.get('/workflows', authorized('tasks:read'), async (req, res) => {
    const q = parseWorkflowQuery(req.query as Record<string, unknown>);
    const page = await listWorkflows(deps.pool, tenantOf(res), q, deps.listScanRows);
    res.json({ workflows: page.workflows.map(workflowToJson), next_cursor: page.next ? encodeCursor(page.next) : null });
  });

  app.get('/workflows/:id', authorized('tasks:read'), async (req, res) => {
    const id = workflowId(String(req.params.id));
    const found = await getWorkflow(deps.pool, tenantOf(res), id);
    if (!found) throw missing(id);
    res.json(workflowDetailToJson(found.workflow, found.steps));
  });

  app.post('/workflows/:id/cancel', authorized('tasks:write'), async (req, res) => {
    const id = workflowId(String(req.params.id));
    // Its steps are tasks an operator cancelled, counted as POST /tasks/{id}/cancel counts one
    // (else tasks_cancelled_running_total outgrew tasks_cancelled_total{how="running"}); counted
    // as they commit, so a call that fails part way counts what it cancelled.
    const done: { cancelled: number; cancelling: number; recorded?: boolean } = { cancelled: 0, cancelling: 0 };
    let outcome;
    try {
      outcome = await cancelWorkflow(deps, tenantOf(res), id, done);
    } catch (err) {
      // Its first statement committed: the problem says so (not "nothing was written"), and what
      // the statements before the failure cancelled; sent again, the call cancels the rest.
      const problem = toProblem(err);
      if (problem.status < 500 || !done.recorded) throw err;
      const detail = `${problem.message.split(';')[0]}. The workflow's cancel was recorded before it: ${done.cancelled} step(s) cancelled, ${done.cancelling} asked to stop; send the call again to cancel the rest`;
      throw Object.assign(new ProblemError(problem.status, problem.title, detail, [], problem.headers, { changed: done.cancelled + done.cancelling }), { cause: err });
    } finally {
      deps.metrics.cancelled.inc({ how: 'waiting' }, done.cancelled);
      deps.metrics.cancelled.inc({ how: 'running' }, done.cancelling);
    }
    switch (outcome.kind) {
      case 'missing':
        throw missing(id);
      case 'final':
        // As for a task: cancelling twice is harmless, cancelling what ended otherwise is a conflict.
        if (outcome.workflow.status === 'cancelled') {
          res.json({ workflow: workflowToJson(outcome.workflow), cancelled: 0, cancelling: 0 });
          return;
        }
        throw new ProblemError(409, 'Conflict with the workflow status', `workflow ${id} is ${outcome.workflow.status} already; only a running workflow can be cancelled`, [{ field: 'status', message: `is ${outcome.workflow.status}` }]);
      case 'cancelled':
        res.json({ workflow: workflowToJson(outcome.workflow), cancelled: outcome.cancelled, cancelling: outcome.cancelling });
    }
  });
}
