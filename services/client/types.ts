/**
 * The names the client and its callers use for the API's shapes: aliases of the types generated
 * from the OpenAPI document (api-schema.ts, `npm run client:types`), so they follow the API's
 * schemas and a change there that breaks a caller fails the type check.
 */
import type { components, operations } from './api-schema';

type Schemas = components['schemas'];

export type Priority = Schemas['Priority'];
export type TaskStatus = Schemas['TaskStatus'];
export type TaskRun = Schemas['Run'];
/** A task as GET /tasks/:id and the single-task actions answer it, with its runs. */
export type Task = Schemas['Task'];
/** A task as GET /tasks lists it: without its payload and runs (GET /tasks/:id has them). */
export type ListedTask = Schemas['TaskSummary'];
export type TaskPage = Schemas['TaskPage'];
/** POST /tasks's body (and a batch item); the idempotency key may go here or be left to the client. */
export type NewTask = Schemas['TaskInput'];
export type BatchResponse = Schemas['BatchResult'];
export type BatchItemResult = BatchResponse['results'][number];
export type BulkResult = Schemas['BulkResult'];
export type QueuesResponse = Schemas['Queues'];
/** RFC 9457 problem details, as every error answer of the API carries. */
export type Problem = Schemas['Problem'];

/** GET /tasks's query: the filter, limit (1-500) and cursor; the tenant goes in the client's options. */
export type ListQuery = Omit<NonNullable<operations['listTasks']['parameters']['query']>, 'tenant'>;
/** The task filter of GET /tasks and the bulk calls (status and priority: one, a list, or comma-separated). */
export type TaskFilter = Omit<ListQuery, 'limit' | 'cursor'>;
/** POST /tasks/cancel's and POST /tasks/retry's body. */
export type BulkRequest = operations['bulkRetry']['requestBody']['content']['application/json'];

/** A cron schedule (GET /schedules lists these). */
export type Schedule = Schemas['Schedule'];
/** GET /schedules/{name}: the schedule, its next fire times and its latest tasks. */
export type ScheduleDetail = Schemas['ScheduleDetail'];
export type SchedulePage = Schemas['SchedulePage'];
/** POST /schedules's body. */
export type NewSchedule = Schemas['ScheduleInput'];
/** PATCH /schedules/{name}'s body: the fields to change. */
export type ScheduleChanges = Schemas['SchedulePatch'];
export type ScheduleTick = Schemas['ScheduleTick'];
export type ScheduleRun = Schemas['ScheduleRun'];
/** GET /schedules's query: limit (1-500) and cursor. */
export type ScheduleListQuery = Omit<NonNullable<operations['listSchedules']['parameters']['query']>, 'tenant'>;

/** POST /workflows's body: a name, the failure policy and the steps (tasks with a key and depends_on). */
export type NewWorkflow = Schemas['WorkflowInput'];
export type NewWorkflowStep = Schemas['WorkflowStepInput'];
/** A workflow as POST /workflows, GET /workflows and the cancel answer it. */
export type Workflow = Schemas['Workflow'];
/** POST /workflows's answer: the workflow and each step's task id. */
export type WorkflowCreated = Schemas['WorkflowCreated'];
/** GET /workflows/{id}: the workflow with its steps counted per status, and every step. */
export type WorkflowDetail = Schemas['WorkflowDetail'];
export type WorkflowStep = Schemas['WorkflowStep'];
export type WorkflowPage = Schemas['WorkflowPage'];
export type WorkflowCancelled = Schemas['WorkflowCancelled'];
export type FailurePolicy = Schemas['FailurePolicy'];
/** GET /workflows's query: status (one, a list, or comma-separated), name, created_after, created_before, limit and cursor. */
export type WorkflowListQuery = Omit<NonNullable<operations['listWorkflows']['parameters']['query']>, 'tenant'>;

/** GET /admin/tenants: a tenant with its limits and usage (admin keys). */
export type AdminTenant = operations['listTenants']['responses']['200']['content']['application/json']['tenants'][number];
/** GET /admin/keys: a key as listed (never its secret). */
export type ApiKeyInfo = operations['listKeys']['responses']['200']['content']['application/json']['keys'][number];
