/**
 * Every route of the API, as the OpenAPI document shows it: the one place a route is described.
 *
 * To add a route: add one entry to `apiRoutes` below, with its request schemas (from
 * ../schemas/ or core; the same objects its validator reads) and its answers. The problems every
 * route of its kind can give (401/403 and the tenant's 400 for a route with a scope; 400, 413 and
 * 415 for a route with a body; 503; 500) are added by document.ts, so list only those particular to
 * it (404, 409, 429). Then add the route to app.ts and to method-not-allowed.ts's table (a test
 * checks that the table and this list agree). To add a field, change its schema; nothing here.
 */
import { TObject, TSchema, Type } from '@sinclair/typebox';
import type { Scope } from '../../core/tenancy/api-key';
import { BulkResultSchema, bulkBodySchema } from '../schemas/bulk';
import { BatchResultSchema, HealthSchema, QueuesSchema, ReadinessSchema, TaskSchema } from '../schemas/responses';
import { BatchBodySchema, IdempotencyKeySchema, TaskInputSchema } from '../schemas/task-input';
import { ListQuerySchema, TaskPageSchema } from '../schemas/task-list';
import { WorkflowCancelledSchema, WorkflowCreatedSchema, WorkflowDetailSchema, WorkflowInputSchema, WorkflowListQuerySchema, WorkflowPageSchema } from '../schemas/workflows';
import { CreatedKeySchema, KeyIdSchema, KeyInputSchema, KeyListSchema, KeySchema, TenantListSchema } from '../schemas/admin';
import { ScheduleDetailSchema, ScheduleGetQuerySchema, ScheduleInputSchema, ScheduleListQuerySchema, ScheduleNameSchema, SchedulePageSchema, SchedulePatchSchema, ScheduleSchema } from '../schemas/schedules';

/** Headers the document describes (components.headers); X-Request-Id is on every answer. */
export type HeaderName = 'Location' | 'Retry-After' | 'RateLimit' | 'RateLimit-Policy' | 'WWW-Authenticate' | 'Allow';

export interface Answer {
  description: string;
  /** A JSON body (application/json). */
  schema: TSchema;
  /** Headers it carries: required ones, and `?`-suffixed ones it may carry. */
  headers?: (HeaderName | `${HeaderName}?`)[];
}

export interface Route {
  method: 'get' | 'post' | 'patch' | 'delete';
  /** An OpenAPI path template: /tasks/{id}. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tag: 'tasks' | 'operator' | 'schedules' | 'workflows' | 'admin' | 'service';
  /** The scope a key needs; absent: no key needed. */
  scope?: Scope;
  pathParams?: TObject;
  query?: TObject;
  /** Request headers other than Authorization and Tenant (which go with `scope`). */
  headers?: TObject;
  /** An application/json body. */
  body?: { schema: TSchema; description: string };
  /** Successful answers (and readiness's 503, which is not a problem) by status. */
  answers: Record<number, Answer>;
  /** Problems particular to this route, by status, with when they happen. */
  problems?: Record<number, string>;
}

export interface RouteOptions {
  /** BULK_MAX_LIMIT (the bulk bodies' `limit` maximum); default its default. */
  bulkMaxLimit?: number;
}

const TaskId = Type.Object({ id: Type.String({ format: 'uuid', description: 'The task id (a 400 when it is not a UUID).' }) });
const rated: NonNullable<Answer['headers']> = ['RateLimit?', 'RateLimit-Policy?'];
const ScheduleName = Type.Object({ name: { ...ScheduleNameSchema, description: 'The schedule (a 400 when it cannot be a name).' } });
const NO_SCHEDULE = "No such schedule (another tenant's schedule is not found either).";
const WorkflowId = Type.Object({ id: Type.String({ format: 'uuid', description: 'The workflow id (a 400 when it is not a UUID).' }) });
const NO_WORKFLOW = "No such workflow (another tenant's workflow is not found either).";

export function apiRoutes(opts: RouteOptions = {}): Route[] {
  return [
    {
      method: 'get',
      path: '/healthz',
      operationId: 'health',
      summary: 'Liveness: the process answers',
      tag: 'service',
      answers: { 200: { description: 'Alive.', schema: HealthSchema } },
    },
    {
      method: 'get',
      path: '/readyz',
      operationId: 'readiness',
      summary: 'Readiness: Postgres answers (Redis is reported, not required)',
      tag: 'service',
      answers: {
        200: { description: 'Ready.', schema: ReadinessSchema },
        503: { description: 'Not ready: Postgres does not answer.', schema: ReadinessSchema },
      },
    },
    {
      method: 'get',
      path: '/openapi.json',
      operationId: 'openapi',
      summary: 'This document',
      tag: 'service',
      answers: { 200: { description: 'The OpenAPI 3.1 document of every route.', schema: Type.Object({ openapi: Type.String() }) } },
    },
    {
      method: 'post',
      path: '/tasks',
      operationId: 'submitTask',
      summary: 'Submit a task',
      tag: 'tasks',
      scope: 'tasks:write',
      headers: Type.Object({ 'Idempotency-Key': Type.Optional({ ...IdempotencyKeySchema, description: `${IdempotencyKeySchema.description} The same as idempotency_key in the body (both may be given, equal).` }) }),
      body: { schema: TaskInputSchema, description: 'The task.' },
      answers: {
        201: { description: 'Created.', schema: TaskSchema, headers: ['Location', ...rated] },
        200: { description: 'An idempotent replay: the task this key created before.', schema: TaskSchema, headers: ['Location', ...rated] },
      },
      problems: {
        409: 'The idempotency key was used with a different request.',
        429: "The tenant's rate limit, burst or max_unfinished quota.",
      },
    },
    {
      method: 'post',
      path: '/tasks/batch',
      operationId: 'submitBatch',
      summary: 'Submit up to 1,000 tasks',
      description: 'Each task is validated, deduplicated and created on its own; only a malformed request as a whole fails as a whole. Admitted whole or refused whole (429) under the tenant\'s limits.',
      tag: 'tasks',
      scope: 'tasks:write',
      body: { schema: BatchBodySchema, description: 'The tasks.' },
      answers: { 200: { description: 'One result per task, in request order.', schema: BatchResultSchema, headers: rated } },
      problems: { 429: "The tenant's rate limit, burst or max_unfinished quota." },
    },
    {
      method: 'get',
      path: '/tasks',
      operationId: 'listTasks',
      summary: "The tenant's tasks, newest first, a page at a time",
      description: 'Filters combine. Keyset pages: paging on while tasks are added returns every older task exactly once. status and priority may be repeated or comma-separated. A page reads at most LIST_SCAN_ROWS tasks, so a filter that matches few may give a short or empty page that still has a next_cursor: page on until next_cursor is null.',
      tag: 'tasks',
      scope: 'tasks:read',
      query: ListQuerySchema,
      answers: { 200: { description: 'A page.', schema: TaskPageSchema } },
    },
    {
      method: 'get',
      path: '/tasks/{id}',
      operationId: 'getTask',
      summary: 'A task and its runs',
      tag: 'tasks',
      scope: 'tasks:read',
      pathParams: TaskId,
      answers: { 200: { description: 'The task.', schema: TaskSchema } },
      problems: { 404: "No such task (another tenant's task is not found either)." },
    },
    {
      method: 'post',
      path: '/tasks/{id}/cancel',
      operationId: 'cancelTask',
      summary: 'Cancel a task',
      description: 'A waiting task (queued, retrying) is cancelled at once and never runs; a running one has its handler\'s signal aborted and becomes cancelled when that attempt ends (unless it succeeds first). Cancelling twice is harmless.',
      tag: 'operator',
      scope: 'tasks:write',
      pathParams: TaskId,
      answers: {
        200: { description: 'Cancelled (now or before).', schema: TaskSchema },
        202: { description: 'Running: its attempt was asked to stop.', schema: TaskSchema },
      },
      problems: { 404: 'No such task.', 409: 'The task finished otherwise (succeeded or dead).' },
    },
    {
      method: 'post',
      path: '/tasks/{id}/retry',
      operationId: 'retryTask',
      summary: 'Retry a dead or cancelled task',
      description:
        "Queued again with a fresh budget of max_retries + 1 attempts; its runs are kept. A delayed task retried before its run_at is scheduled again, and starts no earlier. The task is unfinished again, so the retry is admitted under the tenant's limits like a submission: it counts against the rate limit and max_unfinished, and so do the steps downstream that a workflow step's retry reopens (they wait again, as a new workflow's waiting steps count). A task that cannot be retried (404, 409) needs no admission.",
      tag: 'operator',
      scope: 'tasks:write',
      pathParams: TaskId,
      answers: { 200: { description: 'Queued again.', schema: TaskSchema, headers: rated } },
      problems: { 404: 'No such task.', 409: 'The task is neither dead nor cancelled; or it is a workflow step whose dependencies have not all succeeded, of a workflow not stored whole, or of a workflow whose cancel is under way (retry once the workflow has ended).', 429: "The tenant's rate limit, burst or max_unfinished quota; nothing changed." },
    },
    {
      method: 'get',
      path: '/queues',
      operationId: 'queues',
      summary: "The tenant's queues per priority, and the live workers",
      description: 'Counts, the oldest wait and the last minute\'s rates from the service itself; reused for QUEUES_CACHE_MS.',
      tag: 'operator',
      scope: 'tasks:read',
      answers: { 200: { description: 'The queues.', schema: QueuesSchema } },
    },
    ...(['cancel', 'retry'] as const).map(
      (action): Route => ({
        method: 'post',
        path: `/tasks/${action}`,
        operationId: `bulk${action === 'cancel' ? 'Cancel' : 'Retry'}`,
        summary: action === 'cancel' ? 'Cancel the tasks a filter matches' : 'Retry the dead or cancelled tasks a filter matches (the dead-letter redrive)',
        description:
          'In committed batches, newest first, at most `limit` tasks and BULK_SCAN_ROWS rows read per call; while `has_more` is true, carry on with another call that sends `next_cursor` as `cursor` (a filter that matches few tasks may match none in one call and still have more). Following the cursor visits every matching task once, even while tasks are added. Each task changes at most once, even when calls race.' +
          (action === 'retry'
            ? " A retry (not a dry run) is admitted under the tenant's limits like a batch submission: the tasks it matches, and the workflow steps downstream their retry would reopen, are admitted whole or refused whole (429, nothing changed); places of tasks it then did not change are given back. A call refused for its size (burst) or the quota succeeds with a smaller `limit`; a call that matches one task (with the steps its retry reopens) is admitted past the burst once the tenant's bucket is full, and leaves it owing."
            : ''),
        tag: 'operator',
        scope: 'tasks:write',
        body: { schema: bulkBodySchema(action, opts.bulkMaxLimit), description: 'Which tasks, how many, whether only to count them, and where to carry on from.' },
        answers: { 200: { description: 'What matched and what changed.', schema: BulkResultSchema, ...(action === 'retry' ? { headers: rated } : {}) } },
        problems: {
          ...(action === 'retry' ? { 429: "The tenant's rate limit, burst or max_unfinished quota; nothing changed." } : ({} as Record<number, string>)),
          503: 'Postgres or Redis is unreachable, or a statement was cancelled at its statement_timeout; retry after Retry-After. Batches committed before the failure stay done: `changed` says how many tasks they changed and `next_cursor` where to carry on.',
        },
      }),
    ),
    {
      method: 'post',
      path: '/schedules',
      operationId: 'createSchedule',
      summary: 'Create a cron schedule',
      description: 'Each tick of the expression, in its time zone, creates the task. The next tick is the first after now (on the database\'s clock). A task body is held to the rules of POST /tasks.',
      tag: 'schedules',
      scope: 'tasks:write',
      body: { schema: ScheduleInputSchema, description: 'The schedule.' },
      answers: { 201: { description: 'Created.', schema: ScheduleSchema } },
      problems: { 409: 'The tenant has a schedule of that name, or MAX_SCHEDULES_PER_TENANT schedules already.' },
    },
    {
      method: 'get',
      path: '/schedules',
      operationId: 'listSchedules',
      summary: "The tenant's schedules, by name, a page at a time",
      tag: 'schedules',
      scope: 'tasks:read',
      query: ScheduleListQuerySchema,
      answers: { 200: { description: 'A page.', schema: SchedulePageSchema } },
    },
    {
      method: 'get',
      path: '/schedules/{name}',
      operationId: 'getSchedule',
      summary: 'A schedule, its next fire times and its latest tasks',
      description: 'next_ticks lists the next ?preview=N fire times (1-100, default 5) in UTC and in the schedule\'s zone with its offset; last_runs its latest tasks, ticks and triggers.',
      tag: 'schedules',
      scope: 'tasks:read',
      pathParams: ScheduleName,
      query: ScheduleGetQuerySchema,
      answers: { 200: { description: 'The schedule.', schema: ScheduleDetailSchema } },
      problems: { 404: NO_SCHEDULE },
    },
    {
      method: 'patch',
      path: '/schedules/{name}',
      operationId: 'updateSchedule',
      summary: 'Change, pause or resume a schedule',
      description: 'Fields left out are kept; `task` is replaced whole. A new cron or timezone, or resuming a paused schedule, sets the next tick to the first after now: ticks missed while paused never run.',
      tag: 'schedules',
      scope: 'tasks:write',
      pathParams: ScheduleName,
      body: { schema: SchedulePatchSchema, description: 'What to change.' },
      answers: { 200: { description: 'The schedule as it is now.', schema: ScheduleSchema } },
      problems: { 404: NO_SCHEDULE },
    },
    {
      method: 'delete',
      path: '/schedules/{name}',
      operationId: 'deleteSchedule',
      summary: 'Delete a schedule (its tasks stay)',
      tag: 'schedules',
      scope: 'tasks:write',
      pathParams: ScheduleName,
      answers: { 200: { description: 'Deleted: the schedule as it was.', schema: ScheduleSchema } },
      problems: { 404: NO_SCHEDULE },
    },
    {
      method: 'post',
      path: '/schedules/{name}/trigger',
      operationId: 'triggerSchedule',
      summary: "Run a schedule's task now, outside its ticks",
      description: 'Creates one task (schedule set, scheduled_for null), paused schedule or not; it counts against the tenant\'s limits like a submission.',
      tag: 'schedules',
      scope: 'tasks:write',
      pathParams: ScheduleName,
      answers: { 201: { description: 'The task created.', schema: TaskSchema, headers: ['Location'] } },
      problems: { 404: NO_SCHEDULE, 429: "The tenant's rate limit, burst or max_unfinished quota." },
    },
    {
      method: 'post',
      path: '/workflows',
      operationId: 'submitWorkflow',
      summary: 'Submit a workflow: up to 10,000 tasks and their dependencies',
      description:
        'Every step is created in one transaction, or none is. Steps without dependencies are queued at once, the others wait until every step they depend on has succeeded. Admitted whole or refused whole (429) under the tenant\'s limits, as a batch of as many tasks as it has steps. An unknown, repeated or self dependency, a repeated key or a cycle is a 400 naming the step.',
      tag: 'workflows',
      scope: 'tasks:write',
      headers: Type.Object({ 'Idempotency-Key': Type.Optional({ ...IdempotencyKeySchema, description: '1-255 printable ASCII characters. The same request again with the same key answers with the workflow it created (200); the same key with a different request is a 409.' }) }),
      body: { schema: WorkflowInputSchema, description: 'The workflow.' },
      answers: {
        201: { description: 'Created: the workflow and the task of each step.', schema: WorkflowCreatedSchema, headers: ['Location', ...rated] },
        200: { description: 'An idempotent replay: the workflow this key created before.', schema: WorkflowCreatedSchema, headers: ['Location', ...rated] },
      },
      problems: {
        409: 'The idempotency key was used with a different request.',
        413: 'The body is larger than MAX_WORKFLOW_BODY_BYTES.',
        429: "The tenant's rate limit, burst or max_unfinished quota.",
      },
    },
    {
      method: 'get',
      path: '/workflows',
      operationId: 'listWorkflows',
      summary: "The tenant's workflows, newest first, a page at a time",
      description: 'Filters combine; status may be repeated or comma-separated. Keyset pages, as GET /tasks: a page reads at most LIST_SCAN_ROWS workflows, so a filter that matches few may give a short or empty page that still has a next_cursor: page on until next_cursor is null.',
      tag: 'workflows',
      scope: 'tasks:read',
      query: WorkflowListQuerySchema,
      answers: { 200: { description: 'A page.', schema: WorkflowPageSchema } },
    },
    {
      method: 'get',
      path: '/workflows/{id}',
      operationId: 'getWorkflow',
      summary: 'A workflow, its steps per status, and every step with its dependencies',
      tag: 'workflows',
      scope: 'tasks:read',
      pathParams: WorkflowId,
      answers: { 200: { description: 'The workflow and its steps.', schema: WorkflowDetailSchema } },
      problems: { 404: NO_WORKFLOW },
    },
    {
      method: 'post',
      path: '/workflows/{id}/cancel',
      operationId: 'cancelWorkflow',
      summary: 'Cancel a running workflow',
      description: 'Steps not started are cancelled at once and never run; running steps have their attempts asked to stop, as POST /tasks/{id}/cancel does. Cancelling a cancelled workflow again is harmless (200, nothing more cancelled).',
      tag: 'workflows',
      scope: 'tasks:write',
      pathParams: WorkflowId,
      answers: { 200: { description: 'Cancelled (now or before): how many steps ended at once, and how many running ones were asked to stop.', schema: WorkflowCancelledSchema } },
      problems: {
        404: NO_WORKFLOW,
        409: 'The workflow ended otherwise (succeeded or failed).',
        503: "Postgres or Redis is unreachable, or a statement was cancelled at its statement_timeout; retry after Retry-After. When the workflow's cancel was recorded before the failure, the detail says so and `changed` counts the steps cancelled or asked to stop; sent again, the call cancels the rest.",
      },
    },
    {
      method: 'get',
      path: '/admin/tenants',
      operationId: 'listTenants',
      summary: 'Every tenant with its limits and its unfinished tasks',
      description: 'Its own settings (null: the TENANT_* setting applies), the limits in effect, and how many of its tasks are not final now.',
      tag: 'admin',
      scope: 'admin',
      answers: { 200: { description: 'The tenants by name.', schema: TenantListSchema } },
    },
    {
      method: 'get',
      path: '/admin/keys',
      operationId: 'listKeys',
      summary: "Every API key (never a key's text), or one tenant's with ?tenant=",
      tag: 'admin',
      scope: 'admin',
      answers: { 200: { description: 'The keys by tenant and creation.', schema: KeyListSchema } },
    },
    {
      method: 'post',
      path: '/admin/keys',
      operationId: 'createKey',
      summary: 'Create an API key for a tenant; its text is in this answer only',
      tag: 'admin',
      scope: 'admin',
      body: { schema: KeyInputSchema, description: 'The tenant (created when missing), the scopes, and optionally when it expires and a description.' },
      answers: { 201: { description: 'Created: the key, with its text (key) shown this once.', schema: CreatedKeySchema } },
    },
    {
      method: 'post',
      path: '/admin/keys/{id}/revoke',
      operationId: 'revokeKey',
      summary: 'Revoke an API key',
      description: 'Every API replica refuses it within AUTH_CACHE_MS. Revoking twice keeps the first time.',
      tag: 'admin',
      scope: 'admin',
      pathParams: Type.Object({ id: KeyIdSchema }),
      answers: { 200: { description: 'The key, revoked.', schema: KeySchema } },
      problems: { 404: 'No key with this id.' },
    },
  ];
}
