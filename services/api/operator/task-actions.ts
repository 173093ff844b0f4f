/**
 * POST /tasks/:id/cancel and POST /tasks/:id/retry: one task, scoped to the caller's tenant (another
 * tenant's task is not found). The answer carries the task as it is afterwards. A retry makes tasks
 * unfinished again, so it is admitted under the tenant's limits like a submission (429 otherwise).
 */
import type { Pool } from 'pg';
import type { Logger } from '../../core/observability/logger';
import type { ApiMetrics } from '../../core/observability/metrics';
import { cancelTasks } from '../../core/operator/cancel-tasks';
import { retryCost, retryTasksCounted } from '../../core/operator/retry-tasks';
import type { TaskQueue } from '../../core/queue/queue';
import { taskToJson } from '../../core/tasks/task';
import { getTask } from '../../core/tasks/task-store';
import { UUID_PATTERN } from '../../core/tasks/uuid';
import type { UnderLimits } from '../limits/request-admission';
import { badRequest, notFound, wrongState } from '../problem';

export interface ActionDeps {
  pool: Pool;
  queue: TaskQueue;
  log: Logger;
  metrics: ApiMetrics;
}

export interface ActionAnswer {
  status: 200 | 202;
  body: Record<string, unknown>;
  /** A retry's RateLimit headers (request-admission.ts). */
  headers?: Record<string, string>;
}

export function taskIdParam(id: string): string {
  if (!UUID_PATTERN.test(id)) throw badRequest('id must be a UUID', [{ field: 'id', message: 'must be a UUID' }]);
  return id.toLowerCase();
}

async function current(deps: ActionDeps, tenant: string, id: string): Promise<Record<string, unknown>> {
  const found = await getTask(deps.pool, id, tenant);
  if (!found) throw notFound(`no task with id ${id}`);
  return taskToJson(found.task, found.runs);
}

/** 200: cancelled (now, or before: cancelling twice is harmless); 202: its running attempt was asked to stop; 409: it finished otherwise. */
export async function cancelOne(deps: ActionDeps, tenant: string, rawId: string): Promise<ActionAnswer> {
  const id = taskIdParam(rawId);
  const [outcome] = await cancelTasks(deps, tenant, [id]);
  switch (outcome!.kind) {
    case 'missing':
      throw notFound(`no task with id ${id}`);
    case 'final':
      if (outcome!.status !== 'cancelled') throw wrongState(`task ${id} is ${outcome!.status} already; only a waiting or running task can be cancelled`, [{ field: 'status', message: `is ${outcome!.status}` }]);
      return { status: 200, body: await current(deps, tenant, id) };
    case 'cancelled':
      deps.metrics.cancelled.inc({ how: 'waiting' });
      return { status: 200, body: await current(deps, tenant, id) };
    case 'cancelling':
      deps.metrics.cancelled.inc({ how: 'running' });
      return { status: 202, body: await current(deps, tenant, id) };
    case 'unmatched':
      // Only a call that names statuses gets it, and this one names none.
      throw new Error(`task ${id} was left ${outcome!.status} by a cancel without a status filter`);
  }
}

/**
 * 200: queued again with a fresh attempt budget; 409: it is not dead or cancelled, a step whose
 * dependencies have not all succeeded, one of a workflow not stored whole, or one of a workflow
 * whose cancel is under way (a recorded cancel wins over a later retry); 429: the tenant's
 * limits refuse the task and the steps downstream that its retry would reopen (they wait again, and
 * count as a new workflow's waiting steps do). A task that cannot be retried needs no admission, so
 * its 404 or 409 is answered at the cap too.
 */
export async function retryOne(deps: ActionDeps & { underLimits: UnderLimits }, tenant: string, rawId: string): Promise<ActionAnswer> {
  const id = taskIdParam(rawId);
  const cost = await retryCost(deps.pool, tenant, [id]);
  const retry = () => retryTasksCounted(deps, tenant, [id]);
  const used = (r: { outcomes: { kind: string }[]; reopened: number }) => r.outcomes.filter((o) => o.kind === 'retried').length + r.reopened;
  const { result, headers } = cost > 0 ? await deps.underLimits(tenant, cost, retry, used, undefined, true) : { result: await retry(), headers: {} };
  const [outcome] = result.outcomes;
  switch (outcome!.kind) {
    case 'missing':
      throw notFound(`no task with id ${id}`);
    case 'not_retryable':
      throw wrongState(`task ${id} is ${outcome!.status}; only a dead or cancelled task can be retried`, [{ field: 'status', message: `is ${outcome!.status}` }]);
    case 'dependencies_unfinished': {
      const { workflowId, stepKey, dependencies } = outcome!;
      const named = dependencies.map((d) => `${d.key} (${d.status})`).join(', ');
      throw wrongState(`task ${id} is step ${stepKey} of workflow ${workflowId}, which depends on steps that have not succeeded: ${named}; retry those first, and it waits for them again`, [
        { field: 'depends_on', message: `has steps that have not succeeded: ${named}` },
      ]);
    }
    case 'incomplete_workflow': {
      const { workflowId, stored, steps } = outcome!;
      throw wrongState(`task ${id} is a step of workflow ${workflowId}, of which only ${stored} of ${steps} steps are stored (the others were deleted); it cannot be resumed`, [
        { field: 'workflow_id', message: `has ${stored} of ${steps} steps stored` },
      ]);
    }
    case 'workflow_cancelling':
      throw wrongState(`task ${id} is a step of workflow ${outcome!.workflowId}, whose cancel is under way; once the workflow has ended cancelled, a retry resumes it`, [
        { field: 'workflow_id', message: 'is being cancelled' },
      ]);
    case 'retried':
      deps.metrics.redriven.inc({ from: outcome!.from });
      return { status: 200, body: await current(deps, tenant, id), headers };
  }
}
