/**
 * The API's shapes as the client sees them. Hand-written until GET /openapi.json lands; then these
 * names become aliases of the generated schema (npm run client:types), so callers keep importing
 * them from here.
 */
export type Priority = 'critical' | 'high' | 'default' | 'low';
export type TaskStatus = 'queued' | 'running' | 'retrying' | 'succeeded' | 'dead' | 'cancelled';

export interface TaskRun {
  attempt: number;
  worker_id: string;
  outcome: string;
  error: string | null;
  started_at: string;
  finished_at: string | null;
  duration_ms: number | null;
}

export interface Task {
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
  next_attempt_at: string | null;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
  cancel_requested_at: string | null;
  /** Only on GET /tasks/:id and the answers of cancel and retry. */
  runs?: TaskRun[];
}

export interface NewTask {
  type: string;
  priority?: Priority;
  payload?: unknown;
  max_retries?: number;
  idempotency_key?: string;
}

export interface BatchItemResult {
  status: number;
  task?: Task;
  error?: Problem;
}

export interface BatchResponse {
  results: BatchItemResult[];
}

export interface TaskFilter {
  /** One status, or several (a list, or comma-separated). */
  status?: TaskStatus | TaskStatus[] | string;
  type?: string;
  priority?: Priority | Priority[] | string;
  /** RFC 3339 times with a zone; both bounds are exclusive. */
  created_after?: string;
  created_before?: string;
}

export interface ListQuery extends TaskFilter {
  /** Tasks per page, 1-500 (the API's default is 50). */
  limit?: number;
  cursor?: string;
}

/** A task as GET /tasks lists it: without its payload and runs (GET /tasks/:id has them). */
export type ListedTask = Omit<Task, 'payload' | 'runs'>;

export interface TaskPage {
  tasks: ListedTask[];
  next_cursor: string | null;
}

export interface BulkRequest {
  filter: TaskFilter;
  limit?: number;
  dry_run?: boolean;
}

export interface BulkResult {
  /** Tasks that matched, up to `limit`. */
  matched: number;
  /** Of those, the ones this call changed (a racing call may have changed the others first). */
  changed: number;
  /** More tasks match beyond `limit`: call again to carry on. */
  has_more: boolean;
  dry_run: boolean;
}

export interface PriorityQueue {
  queued: number;
  scheduled: number;
  retrying: number;
  running: number;
  dead: number;
  cancelled: number;
  oldest_waiting_seconds: number;
  last_minute: { enqueued: number; succeeded: number; retried: number; dead: number; cancelled: number };
}

export interface QueuesResponse {
  tenant: string;
  priorities: Record<Priority, PriorityQueue>;
  /** Every lease the tenant holds now. */
  running_now: number;
  /** The live workers (any tenant's) with their slots (WORKER_POOL). */
  workers: { id: string; slots: number }[];
  as_of: string;
}

/** RFC 9457 problem details, as every error answer of the API carries. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  instance?: string;
  errors?: { field: string; message: string }[];
}
