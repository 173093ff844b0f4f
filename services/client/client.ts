/**
 * The typed client of the task-scheduler API. Every method is one call (list: one per page) with
 * the retries of transport.ts; a submission always carries an idempotency key, generated when the
 * caller gave none, so a retried submission never creates a second task.
 */
import { randomUUID } from 'node:crypto';
import { ApiError, ConnectionError, ResponseError } from './errors';
import { Transport, TransportOptions } from './transport';
import type {
  BatchResponse,
  BulkRequest,
  BulkResult,
  ListQuery,
  NewSchedule,
  NewTask,
  NewWorkflow,
  QueuesResponse,
  Schedule,
  ScheduleChanges,
  ScheduleDetail,
  ScheduleListQuery,
  SchedulePage,
  ScheduleTick,
  Task,
  TaskFilter,
  TaskPage,
  WorkflowCancelled,
  WorkflowCreated,
  WorkflowDetail,
  WorkflowListQuery,
  WorkflowPage,
} from './types';

export type ClientOptions = TransportOptions;

export interface Submitted {
  task: Task;
  /** false: the idempotency key had been used before with the same request, and this is that task. */
  created: boolean;
}

/** `tasks:write` calls that change a task answer with the task as it is afterwards. */
export interface Changed {
  task: Task;
  /** 200: done; 202: a running task was asked to stop and becomes cancelled when its attempt ends. */
  status: number;
}

const newKey = () => `client-${randomUUID()}`;
const taskPath = (id: string) => `tasks/${encodeURIComponent(id)}`;
const schedulePath = (name: string) => `schedules/${encodeURIComponent(name)}`;
const workflowPath = (id: string) => `workflows/${encodeURIComponent(id)}`;

export interface SubmittedWorkflow extends WorkflowCreated {
  /** false: the idempotency key had been used before with the same request, and this is that workflow. */
  created: boolean;
}

export class TaskSchedulerClient {
  private readonly http: Transport;

  constructor(opts: ClientOptions) {
    this.http = new Transport(opts);
  }

  /** POST /tasks. The key is sent as Idempotency-Key; a replay of the same request answers with the first task. */
  async submit(task: NewTask, opts: { signal?: AbortSignal } = {}): Promise<Submitted> {
    const { idempotency_key: given, ...body } = task;
    const key = given ?? newKey();
    const a = await this.http.call<Task>('POST', 'tasks', { body, headers: { 'idempotency-key': key }, repeat: 'safe', signal: opts.signal }).catch(withKeys(key));
    return { task: expectTask(a.body, a.status, 'POST /tasks'), created: a.status === 201 };
  }

  /** POST /tasks/batch: each item gets its own result (201, 200 replayed, or its error), in order. */
  async submitBatch(tasks: NewTask[], opts: { signal?: AbortSignal } = {}): Promise<BatchResponse> {
    const keyed = tasks.map((t) => ({ ...t, idempotency_key: t.idempotency_key ?? newKey() }));
    const a = await this.http.call<BatchResponse>('POST', 'tasks/batch', { body: { tasks: keyed }, repeat: 'safe', signal: opts.signal }).catch(withKeys(keyed.map((t) => t.idempotency_key)));
    if (!Array.isArray(a.body?.results) || a.body.results.length !== tasks.length) {
      throw new ResponseError(`POST /tasks/batch answered without ${tasks.length} results`, a.status, 'POST /tasks/batch');
    }
    return a.body;
  }

  /** GET /tasks/:id, with its runs. */
  async get(id: string, opts: { signal?: AbortSignal } = {}): Promise<Task> {
    const a = await this.http.call<Task>('GET', taskPath(id), { repeat: 'safe', signal: opts.signal });
    return expectTask(a.body, a.status, 'GET /tasks/:id');
  }

  /** GET /tasks: one page, newest first. */
  async listPage(query: ListQuery = {}, opts: { signal?: AbortSignal } = {}): Promise<TaskPage> {
    // Lists of statuses or priorities go comma-separated in the query.
    const params = Object.fromEntries(Object.entries(query).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : (v as string | number | undefined)]));
    const a = await this.http.call<TaskPage>('GET', 'tasks', { query: params, repeat: 'safe', signal: opts.signal });
    if (!Array.isArray(a.body?.tasks)) throw new ResponseError('GET /tasks answered without a tasks array', a.status, 'GET /tasks');
    return { tasks: a.body.tasks, next_cursor: a.body.next_cursor ?? null };
  }

  /** Every page of GET /tasks from `query.cursor` (or the newest) on, following next_cursor. */
  async *list(query: ListQuery = {}, opts: { signal?: AbortSignal } = {}): AsyncGenerator<TaskPage, void, undefined> {
    let cursor = query.cursor;
    for (;;) {
      const page = await this.listPage({ ...query, cursor }, opts);
      yield page;
      if (page.next_cursor === null) return;
      cursor = page.next_cursor;
    }
  }

  /** POST /tasks/:id/cancel. Cancelling twice is harmless, so this call is retried like a read. */
  async cancel(id: string, opts: { signal?: AbortSignal } = {}): Promise<Changed> {
    const a = await this.http.call<Task>('POST', `${taskPath(id)}/cancel`, { repeat: 'safe', signal: opts.signal });
    return { task: expectTask(a.body, a.status, 'POST /tasks/:id/cancel'), status: a.status };
  }

  /**
   * POST /tasks/:id/retry. Retried after a 429 only: after a lost answer, sending it again would
   * answer 409 for a task this very call had queued.
   */
  async retry(id: string, opts: { signal?: AbortSignal } = {}): Promise<Changed> {
    const a = await this.http.call<Task>('POST', `${taskPath(id)}/retry`, { repeat: 'refusals', signal: opts.signal });
    return { task: expectTask(a.body, a.status, 'POST /tasks/:id/retry'), status: a.status };
  }

  /**
   * POST /tasks/cancel: cancels up to `limit` tasks matching `filter` (dry_run: only counts them).
   * One call reads a bounded number of tasks: while `has_more`, call again with `cursor: next_cursor`.
   */
  bulkCancel(req: BulkRequest, opts: { signal?: AbortSignal } = {}): Promise<BulkResult> {
    return this.bulk('tasks/cancel', req, opts.signal);
  }

  /** POST /tasks/retry: the dead-letter redrive (filter e.g. `{ status: 'dead' }`). */
  bulkRetry(req: BulkRequest, opts: { signal?: AbortSignal } = {}): Promise<BulkResult> {
    return this.bulk('tasks/retry', req, opts.signal);
  }

  /** GET /queues: per-priority counts and rates, and the workers. */
  async queues(opts: { signal?: AbortSignal } = {}): Promise<QueuesResponse> {
    const a = await this.http.call<QueuesResponse>('GET', 'queues', { repeat: 'safe', signal: opts.signal });
    const b = a.body as Partial<QueuesResponse> | null;
    if (typeof b?.tenant !== 'string' || typeof b.priorities !== 'object' || b.priorities === null || !Array.isArray(b.workers)) {
      throw new ResponseError(`GET /queues answered ${a.status} without a tenant, its priorities and the workers`, a.status, 'GET /queues');
    }
    return a.body;
  }

  /**
   * POST /schedules. Retried after a 429 only: after a lost answer, sending it again would answer
   * 409 for the schedule this very call created.
   */
  async createSchedule(schedule: NewSchedule, opts: { signal?: AbortSignal } = {}): Promise<Schedule> {
    const a = await this.http.call<Schedule>('POST', 'schedules', { body: schedule, repeat: 'refusals', signal: opts.signal });
    return expectSchedule(a.body, a.status, 'POST /schedules');
  }

  /** GET /schedules: one page, by name. */
  async listSchedulesPage(query: ScheduleListQuery = {}, opts: { signal?: AbortSignal } = {}): Promise<SchedulePage> {
    const a = await this.http.call<SchedulePage>('GET', 'schedules', { query: { ...query }, repeat: 'safe', signal: opts.signal });
    if (!Array.isArray(a.body?.schedules)) throw new ResponseError('GET /schedules answered without a schedules array', a.status, 'GET /schedules');
    return { schedules: a.body.schedules, next_cursor: a.body.next_cursor ?? null };
  }

  /** Every schedule of the tenant, by name (following next_cursor). */
  async listSchedules(opts: { signal?: AbortSignal; pageSize?: number } = {}): Promise<Schedule[]> {
    const out: Schedule[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await this.listSchedulesPage({ limit: opts.pageSize, cursor }, opts);
      out.push(...page.schedules);
      if (page.next_cursor === null) return out;
      cursor = page.next_cursor;
    }
  }

  /** GET /schedules/{name}: with its next `preview` fire times (default 5, at most 100) and its latest tasks. */
  async getSchedule(name: string, opts: { signal?: AbortSignal; preview?: number } = {}): Promise<ScheduleDetail> {
    const a = await this.http.call<ScheduleDetail>('GET', schedulePath(name), { query: { preview: opts.preview }, repeat: 'safe', signal: opts.signal });
    return expectSchedule(a.body, a.status, 'GET /schedules/:name');
  }

  /** The next `n` fire times (1-100) of a schedule, in UTC and in its zone with the offset. */
  async previewSchedule(name: string, n: number, opts: { signal?: AbortSignal } = {}): Promise<ScheduleTick[]> {
    return (await this.getSchedule(name, { ...opts, preview: n })).next_ticks;
  }

  /** PATCH /schedules/{name}: the fields given change (`paused: true` pauses, `paused: false` resumes). Setting the same fields twice is harmless, so it is retried like a read. */
  async updateSchedule(name: string, changes: ScheduleChanges, opts: { signal?: AbortSignal } = {}): Promise<Schedule> {
    const a = await this.http.call<Schedule>('PATCH', schedulePath(name), { body: changes, repeat: 'safe', signal: opts.signal });
    return expectSchedule(a.body, a.status, 'PATCH /schedules/:name');
  }

  /** DELETE /schedules/{name}: the schedule as it was (its tasks stay). Retried after a 429 only (a second delete is a 404). */
  async deleteSchedule(name: string, opts: { signal?: AbortSignal } = {}): Promise<Schedule> {
    const a = await this.http.call<Schedule>('DELETE', schedulePath(name), { repeat: 'refusals', signal: opts.signal });
    return expectSchedule(a.body, a.status, 'DELETE /schedules/:name');
  }

  /** POST /schedules/{name}/trigger: one task of the schedule's, now. Retried after a 429 only: sent again, it would create a second task. */
  async triggerSchedule(name: string, opts: { signal?: AbortSignal } = {}): Promise<Task> {
    const a = await this.http.call<Task>('POST', `${schedulePath(name)}/trigger`, { repeat: 'refusals', signal: opts.signal });
    return expectTask(a.body, a.status, 'POST /schedules/:name/trigger');
  }

  /**
   * POST /workflows: every step created together, or none. The key (the caller's or a generated
   * one) is sent as Idempotency-Key, so a submission sent again after a lost answer is answered
   * with the workflow the first one created (created: false) instead of creating another.
   */
  async submitWorkflow(workflow: NewWorkflow, opts: { signal?: AbortSignal; idempotencyKey?: string } = {}): Promise<SubmittedWorkflow> {
    const key = opts.idempotencyKey ?? newKey();
    const a = await this.http.call<WorkflowCreated>('POST', 'workflows', { body: workflow, headers: { 'idempotency-key': key }, repeat: 'safe', signal: opts.signal }).catch(withKeys(key));
    if (typeof a.body?.workflow?.id !== 'string' || !Array.isArray(a.body?.steps)) throw new ResponseError(`POST /workflows answered ${a.status} without a workflow and its steps`, a.status, 'POST /workflows');
    return { ...a.body, created: a.status === 201 };
  }

  /** GET /workflows/{id}: the workflow, its steps per status, and every step with its dependencies. */
  async getWorkflow(id: string, opts: { signal?: AbortSignal } = {}): Promise<WorkflowDetail> {
    const a = await this.http.call<WorkflowDetail>('GET', workflowPath(id), { repeat: 'safe', signal: opts.signal });
    if (typeof a.body?.workflow?.id !== 'string' || !Array.isArray(a.body?.steps)) throw new ResponseError(`GET /workflows/:id answered ${a.status} without a workflow`, a.status, 'GET /workflows/:id');
    return a.body;
  }

  /** GET /workflows: one page, newest first. */
  async listWorkflowsPage(query: WorkflowListQuery = {}, opts: { signal?: AbortSignal } = {}): Promise<WorkflowPage> {
    const params = Object.fromEntries(Object.entries(query).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : (v as string | number | undefined)]));
    const a = await this.http.call<WorkflowPage>('GET', 'workflows', { query: params, repeat: 'safe', signal: opts.signal });
    if (!Array.isArray(a.body?.workflows)) throw new ResponseError('GET /workflows answered without a workflows array', a.status, 'GET /workflows');
    return { workflows: a.body.workflows, next_cursor: a.body.next_cursor ?? null };
  }

  /** Every page of GET /workflows from `query.cursor` (or the newest) on, following next_cursor. */
  async *listWorkflows(query: WorkflowListQuery = {}, opts: { signal?: AbortSignal } = {}): AsyncGenerator<WorkflowPage, void, undefined> {
    let cursor = query.cursor;
    for (;;) {
      const page = await this.listWorkflowsPage({ ...query, cursor }, opts);
      yield page;
      if (page.next_cursor === null) return;
      cursor = page.next_cursor;
    }
  }

  /** POST /workflows/{id}/cancel. Cancelling twice is harmless, so this call is retried like a read. */
  async cancelWorkflow(id: string, opts: { signal?: AbortSignal } = {}): Promise<WorkflowCancelled> {
    const a = await this.http.call<WorkflowCancelled>('POST', `${workflowPath(id)}/cancel`, { repeat: 'safe', signal: opts.signal });
    if (typeof a.body?.workflow?.id !== 'string' || typeof a.body?.cancelled !== 'number') throw new ResponseError(`POST /workflows/:id/cancel answered ${a.status} without a workflow`, a.status, 'POST /workflows/:id/cancel');
    return a.body;
  }

  private async bulk(path: string, req: BulkRequest, signal?: AbortSignal): Promise<BulkResult> {
    // A change sent again after a lost answer would change up to `limit` more tasks than asked;
    // a dry run only counts.
    const a = await this.http.call<BulkResult>('POST', path, { body: { filter: cleanFilter(req.filter ?? {}), limit: req.limit, dry_run: req.dry_run ?? false, cursor: req.cursor }, repeat: req.dry_run ? 'safe' : 'refusals', signal });
    const b = a.body;
    if (typeof b?.matched !== 'number' || typeof b?.changed !== 'number' || typeof b?.has_more !== 'boolean' || !(typeof b?.next_cursor === 'string' || b?.next_cursor === null)) {
      throw new ResponseError(`POST /${path} answered without matched, changed, has_more and next_cursor`, a.status, `POST /${path}`);
    }
    return a.body;
  }
}

/** A failed submission's error carries the key(s) it was sent with: without them, sending it again safely is impossible. */
function withKeys(keys: string | string[]) {
  return (err: unknown): never => {
    if (err instanceof ConnectionError || err instanceof ApiError) {
      if (typeof keys === 'string') err.idempotencyKey = keys;
      else err.idempotencyKeys = keys;
    }
    throw err;
  };
}

function cleanFilter(f: TaskFilter): TaskFilter {
  return Object.fromEntries(Object.entries(f).filter(([, v]) => v !== undefined)) as TaskFilter;
}

function expectTask(body: Task, status: number, request: string): Task {
  if (typeof body?.id !== 'string' || typeof body?.status !== 'string') throw new ResponseError(`${request} answered ${status} without a task`, status, request);
  return body;
}

function expectSchedule<T extends Schedule>(body: T, status: number, request: string): T {
  if (typeof body?.name !== 'string' || typeof body?.cron !== 'string') throw new ResponseError(`${request} answered ${status} without a schedule`, status, request);
  return body;
}
