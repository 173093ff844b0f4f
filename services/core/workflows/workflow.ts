/** Workflows (DAGs of tasks, migration 0016; docs/workflows.md): what a client submits and what is stored. */
import type { RetryPolicy } from '../tasks/backoff';
import type { Priority } from '../tasks/priority';

export const FAILURE_POLICIES = ['cancel_dependents', 'continue'] as const;
export type FailurePolicy = (typeof FAILURE_POLICIES)[number];

export const WORKFLOW_STATUSES = ['running', 'succeeded', 'failed', 'cancelled'] as const;
export type WorkflowStatus = (typeof WORKFLOW_STATUSES)[number];

/** Bounds of a submitted workflow (the issue's: up to 10,000 steps). */
export const MAX_WORKFLOW_STEPS = 10_000;
export const MAX_STEP_DEPENDENCIES = 10_000;
export const STEP_KEY_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$';

/** One step of POST /workflows with its defaults filled in (the fields of POST /tasks, plus its key and dependencies). */
export interface StepSpec {
  key: string;
  type: string;
  payload: unknown;
  priority: Priority;
  max_retries: number;
  retry: RetryPolicy | null;
  timeout_ms: number | null;
  depends_on: string[];
}

export interface WorkflowSpec {
  name: string;
  on_failure: FailurePolicy;
  steps: StepSpec[];
}

/** A POST /workflows Idempotency-Key with the request's hash. */
export interface WorkflowIdempotency {
  key: string;
  hash: string;
  /** The hash with these max_retries (by step key) for the steps that left it out; absent when none did. */
  hashWith?: (maxRetriesByKey: Map<string, number>) => string;
}

export interface WorkflowRow {
  id: string;
  tenant: string;
  name: string;
  status: WorkflowStatus;
  on_failure: FailurePolicy;
  /** Steps in all, steps not final yet, steps that ended dead or cancelled. */
  steps: number;
  unfinished: number;
  failed: number;
  idempotency_key: string | null;
  cancel_requested_at: Date | null;
  created_at: Date;
  updated_at: Date;
  finished_at: Date | null;
}

/** A step as GET /workflows/{id} shows it: its task's state and its edges. */
export interface StepRow {
  key: string;
  task_id: string;
  type: string;
  priority: Priority;
  status: string;
  attempts: number;
  depends_on: string[];
  /** Parents not succeeded yet (0 once it is queued). */
  deps_waiting: number;
  /** The step whose failure cancelled this one (its key), when that is why it is cancelled. */
  cancelled_by: string | null;
  last_error: string | null;
  created_at: Date;
  first_started_at: Date | null;
  finished_at: Date | null;
}
