/** Workflows and their steps as the API answers them (schemas/workflows.ts): snake_case, ISO times. */
import type { StepRow, WorkflowRow } from '../../core/workflows/workflow';
import { STEP_STATUSES } from '../schemas/workflows';

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

export function workflowToJson(w: WorkflowRow): Record<string, unknown> {
  return {
    id: w.id,
    tenant: w.tenant,
    name: w.name,
    status: w.status,
    on_failure: w.on_failure,
    steps_total: w.steps,
    steps_unfinished: w.unfinished,
    steps_failed: w.failed,
    idempotency_key: w.idempotency_key,
    cancel_requested_at: iso(w.cancel_requested_at),
    created_at: w.created_at.toISOString(),
    updated_at: w.updated_at.toISOString(),
    finished_at: iso(w.finished_at),
  };
}

export function stepToJson(s: StepRow): Record<string, unknown> {
  return {
    key: s.key,
    task_id: s.task_id,
    type: s.type,
    priority: s.priority,
    status: s.status,
    attempts: s.attempts,
    depends_on: s.depends_on,
    deps_waiting: s.deps_waiting,
    cancelled_by: s.cancelled_by,
    last_error: s.last_error,
    created_at: s.created_at.toISOString(),
    started_at: iso(s.first_started_at),
    finished_at: iso(s.finished_at),
  };
}

/** GET /workflows/{id}: the workflow with its steps counted per status (every status, 0 when none), and the steps. */
export function workflowDetailToJson(w: WorkflowRow, steps: StepRow[]): Record<string, unknown> {
  const counts: Record<string, number> = Object.fromEntries(STEP_STATUSES.map((s) => [s, 0]));
  for (const s of steps) counts[s.status] = (counts[s.status] ?? 0) + 1;
  return { workflow: { ...workflowToJson(w), counts }, steps: steps.map(stepToJson) };
}
