/** A task as stored in Postgres and as the API shows it (snake_case, like the Go API). */
import type { RetryPolicy } from './backoff';
import type { Priority, TaskStatus } from './priority';

export interface TaskRow {
  id: string;
  tenant: string;
  type: string;
  priority: Priority;
  payload: unknown;
  status: TaskStatus;
  attempts: number;
  max_retries: number;
  idempotency_key: string | null;
  last_error: string | null;
  run_after: Date | null;
  created_at: Date;
  updated_at: Date;
  first_started_at: Date | null;
  finished_at: Date | null;
  /** When an operator asked to cancel it (null: nobody did). */
  cancel_requested_at: Date | null;
  /** Its own retry policy and timeout (null: the handler's or the environment's). */
  retry: RetryPolicy | null;
  timeout_ms: number | null;
  /** What its successful attempt's handler returned (JSON; null until then, or when it returned nothing). */
  result: unknown;
  /** When a delayed task is due (null: it was queued at once). */
  run_at: Date | null;
  /** The schedule that created it, and the tick it was created for (null for a manual trigger). */
  schedule: string | null;
  scheduled_for: Date | null;
  /** The workflow it is a step of, and its key there (null: not a step). */
  workflow_id: string | null;
  step_key: string | null;
}

export interface RunRow {
  attempt: number;
  worker_id: string;
  started_at: Date;
  finished_at: Date | null;
  outcome: string;
  error: string | null;
  /** The failed attempt's error name or code, and its stack (bounded). */
  error_type: string | null;
  error_stack: string | null;
  duration_ms: number | null;
}

export const TASK_COLUMNS =
  'id, tenant, type, priority, payload, status, attempts, max_retries, idempotency_key, last_error, run_after, created_at, updated_at, first_started_at, finished_at, cancel_requested_at, retry, timeout_ms, result, run_at, schedule, scheduled_for, workflow_id, step_key';

export interface NewTask {
  id: string;
  tenant: string;
  type: string;
  priority: Priority;
  payload: unknown;
  maxRetries: number;
  idempotencyKey: string | null;
  retry?: RetryPolicy | null;
  timeoutMs?: number | null;
  /** A delayed task's due time: it is `scheduled` until then (absent: queued at once). */
  runAt?: Date | null;
}

function iso(d: Date | null): string | null {
  return d ? d.toISOString() : null;
}

export function taskToJson(t: TaskRow, runs?: RunRow[]): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: t.id,
    tenant: t.tenant,
    type: t.type,
    priority: t.priority,
    payload: t.payload,
    status: t.status,
    attempts: t.attempts,
    max_retries: t.max_retries,
    idempotency_key: t.idempotency_key,
    last_error: t.last_error,
    next_attempt_at: iso(t.run_after),
    created_at: iso(t.created_at),
    updated_at: iso(t.updated_at),
    started_at: iso(t.first_started_at),
    finished_at: iso(t.finished_at),
    cancel_requested_at: iso(t.cancel_requested_at),
    retry: t.retry,
    timeout_ms: t.timeout_ms,
    result: t.result,
    run_at: iso(t.run_at),
    schedule: t.schedule,
    scheduled_for: iso(t.scheduled_for),
    workflow_id: t.workflow_id ?? null,
    step_key: t.step_key ?? null,
  };
  if (runs) {
    out.runs = runs.map((r) => ({
      attempt: r.attempt,
      worker_id: r.worker_id,
      outcome: r.outcome,
      error: r.error,
      error_type: r.error_type,
      error_stack: r.error_stack,
      started_at: iso(r.started_at),
      finished_at: iso(r.finished_at),
      duration_ms: r.duration_ms,
    }));
  }
  return out;
}
