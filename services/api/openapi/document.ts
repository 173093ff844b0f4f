/**
 * The OpenAPI 3.1 document of the API, built from routes.ts (every route) and the schemas the
 * validators read, so it cannot be a hand-kept copy that drifts. GET /openapi.json serves it;
 * `npm run -s openapi` prints it without a server (for the typed client's generator).
 *
 * A route is added in routes.ts, a field in its schema (../schemas/, core/tasks/); nothing here
 * changes for either. Schemas listed in NAMED become components (and `$ref`s wherever they occur),
 * which gives generated clients their type names.
 */
import { TObject, TSchema } from '@sinclair/typebox';
import { PrioritySchema, StatusSchema } from '../../core/tasks/task-fields';
import { TENANT_PATTERN } from '../../core/tenancy/tenant';
import { BulkResultSchema } from '../schemas/bulk';
import { BatchResultSchema, FieldErrorSchema, HealthSchema, ProblemSchema, QueuesSchema, ReadinessSchema, RunSchema, TaskSchema } from '../schemas/responses';
import { BatchBodySchema, TaskInputSchema } from '../schemas/task-input';
import { TaskPageSchema, TaskSummarySchema } from '../schemas/task-list';
import { ScheduleDetailSchema, ScheduleInputSchema, SchedulePageSchema, SchedulePatchSchema, ScheduleRunSchema, ScheduleSchema, ScheduleTaskSchema, ScheduleTickSchema } from '../schemas/schedules';
import { FailurePolicySchema, WorkflowCancelledSchema, WorkflowCreatedSchema, WorkflowDetailSchema, WorkflowInputSchema, WorkflowPageSchema, WorkflowSchema, WorkflowStepInputSchema, WorkflowStepSchema } from '../schemas/workflows';
import { Answer, apiRoutes, HeaderName, Route, RouteOptions } from './routes';
import { MAX_WAITING } from '../pipelining';

export type OpenApiDocument = Record<string, unknown> & { paths: Record<string, Record<string, unknown>> };

const NAMED: Record<string, TSchema> = {
  Task: TaskSchema,
  Run: RunSchema,
  TaskSummary: TaskSummarySchema,
  TaskPage: TaskPageSchema,
  TaskInput: TaskInputSchema,
  BatchBody: BatchBodySchema,
  BatchResult: BatchResultSchema,
  BulkResult: BulkResultSchema,
  Queues: QueuesSchema,
  Problem: ProblemSchema,
  FieldError: FieldErrorSchema,
  Priority: PrioritySchema,
  TaskStatus: StatusSchema,
  Health: HealthSchema,
  Readiness: ReadinessSchema,
  Schedule: ScheduleSchema,
  ScheduleDetail: ScheduleDetailSchema,
  SchedulePage: SchedulePageSchema,
  ScheduleInput: ScheduleInputSchema,
  SchedulePatch: SchedulePatchSchema,
  ScheduleTask: ScheduleTaskSchema,
  ScheduleTick: ScheduleTickSchema,
  ScheduleRun: ScheduleRunSchema,
  Workflow: WorkflowSchema,
  WorkflowInput: WorkflowInputSchema,
  WorkflowStepInput: WorkflowStepInputSchema,
  WorkflowCreated: WorkflowCreatedSchema,
  WorkflowDetail: WorkflowDetailSchema,
  WorkflowStep: WorkflowStepSchema,
  WorkflowPage: WorkflowPageSchema,
  WorkflowCancelled: WorkflowCancelledSchema,
  FailurePolicy: FailurePolicySchema,
};

/** What each problem status means wherever it occurs; a route's own `problems` say more. */
const PROBLEMS: Record<number, { description: string; headers?: Answer['headers'] }> = {
  400: { description: 'Invalid input: `errors` names each field (body fields, path and query parameters, headers, `tenant`).' },
  401: { description: 'No API key, or one that is unknown, malformed, revoked or expired.', headers: ['WWW-Authenticate'] },
  403: { description: 'The key lacks the scope, or names another tenant without being an admin key.' },
  404: { description: 'No such resource, or no route with this path.' },
  408: { description: 'The request line and headers did not arrive within HTTP_HEADERS_TIMEOUT_MS, or the whole request within HTTP_REQUEST_TIMEOUT_MS; the connection is closed.' },
  405: { description: 'The path exists, with other methods (listed in Allow).', headers: ['Allow'] },
  409: { description: 'The request conflicts with the state of the resource.' },
  413: { description: 'The body is larger than MAX_BODY_BYTES.' },
  415: { description: 'The body is not application/json in UTF-8 (or its encoding is not supported).' },
  417: { description: 'An Expect header other than 100-continue; the connection is closed.' },
  429: { description: "The tenant's limits refused the tasks.", headers: ['Retry-After?', 'RateLimit?', 'RateLimit-Policy?'] },
  431: { description: 'The request line and headers are larger than 16 KiB; the connection is closed.' },
  500: { description: 'An unexpected error; it has been logged.' },
  503: { description: 'Postgres or Redis is unreachable, the API holds as many request bodies as it may, or too many requests are pipelined on the connection; retry after Retry-After.', headers: ['Retry-After'] },
};

const HEADERS: Record<HeaderName | 'X-Request-Id', { description: string; schema: Record<string, unknown> }> = {
  'X-Request-Id': { description: 'The request id (the one sent, when it is sane, or a new one); in the logs too.', schema: { type: 'string' } },
  Location: { description: 'What was created: /tasks/{id}, or /workflows/{id}.', schema: { type: 'string', pattern: '^/(tasks|workflows)/[0-9a-f-]{36}$' } },
  'Retry-After': { description: 'Seconds to wait before trying again.', schema: { type: 'string', pattern: '^[0-9]+$' } },
  RateLimit: { description: 'draft-ietf-httpapi-ratelimit-headers-08: tasks left (r) and seconds until the bucket is full (t).', schema: { type: 'string' } },
  'RateLimit-Policy': { description: "draft-ietf-httpapi-ratelimit-headers-08: the tenant's burst (q) and window (w).", schema: { type: 'string' } },
  'WWW-Authenticate': { description: 'RFC 6750 Bearer challenge.', schema: { type: 'string', pattern: '^Bearer ' } },
  Allow: { description: 'The methods the path allows.', schema: { type: 'string' } },
};

/** What the HTTP server answers itself (server.ts), before routing: on any path, with any method. */
const SERVER_RESPONSES = { RequestTimeout: 408, ExpectationFailed: 417, HeadersTooLarge: 431, PipelineFull: 503 } as const;

/** The document, as GET /openapi.json serves it. */
export function buildOpenApiDocument(opts: RouteOptions = {}): OpenApiDocument {
  const refs = new Map(Object.entries(NAMED).map(([name, s]) => [JSON.stringify(s), name]));
  /** Plain JSON (TypeBox's symbols dropped), a NAMED schema anywhere inside replaced by its $ref. */
  const json = (schema: unknown, top?: string): unknown => {
    if (Array.isArray(schema)) return schema.map((s) => json(s));
    if (schema === null || typeof schema !== 'object') return schema;
    const name = refs.get(JSON.stringify(schema));
    if (name !== undefined && name !== top) return { $ref: `#/components/schemas/${name}` };
    return Object.fromEntries(Object.entries(schema).map(([k, v]) => [k, json(v)]));
  };

  const SERVER_ANSWERS = Object.fromEntries(Object.entries(SERVER_RESPONSES).map(([name, status]) => [name, problem(status)]));
  const paths: OpenApiDocument['paths'] = {};
  for (const route of apiRoutes(opts)) (paths[route.path] ??= {})[route.method] = operation(route, json);

  return {
    openapi: '3.1.0',
    info: {
      title: 'task-scheduler',
      version: '1',
      description: [
        'Submit tasks, read them, act on them as an operator (cancel, retry, the dead-letter redrive), schedule them with cron expressions, and submit workflows of tasks that depend on each other.',
        'Errors are RFC 9457 problem details (application/problem+json). Every answer carries X-Request-Id.',
        'A route asked with a method it does not have answers 405 (components.responses.MethodNotAllowed); an unknown path 404 (components.responses.NotFound).',
        `The HTTP server itself answers, before any route and whatever the path: 408 to a request that does not arrive in time, 417 to an Expect other than 100-continue, 431 to headers over 16 KiB, 503 to a request pipelined on a connection where ${MAX_WAITING} already wait their turn (pipelined requests are handled one at a time) (components.responses.RequestTimeout, ExpectationFailed, HeadersTooLarge, PipelineFull; every operation lists them too).`,
        'Authentication: Authorization: Bearer <API key> (tsk_…) when the service runs with AUTH_MODE=keys; with AUTH_MODE=off every request acts as the tenant `default` with every scope.',
        'A key acts on its own tenant; an admin key may name another with ?tenant= or the Tenant header.',
      ].join('\n\n'),
    },
    tags: [
      { name: 'tasks', description: 'Submit and read tasks.' },
      { name: 'operator', description: 'Cancel and retry tasks, one or many.' },
      { name: 'schedules', description: 'Cron schedules: tasks created on the ticks of an expression.' },
      { name: 'workflows', description: 'Workflows: tasks that run when the tasks they depend on have succeeded.' },
      { name: 'admin', description: 'Tenants and API keys (admin keys only): what the CLI\'s tenants and keys commands show.' },
      { name: 'service', description: 'Health, readiness and this document.' },
    ],
    paths,
    components: {
      schemas: Object.fromEntries(Object.entries(NAMED).map(([name, s]) => [name, json(s, name)])),
      securitySchemes: {
        apiKey: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'tsk_<16 hex digits>_<43 base64url characters>',
          description: 'An API key (npm run cli -- keys create). Scopes: tasks:read for reads, tasks:write for changes, admin for everything on any tenant.',
        },
      },
      parameters: {
        tenantQuery: { name: 'tenant', in: 'query', required: false, description: 'Act on this tenant (admin keys only; a key may always name its own). A tenant that does not exist (made with its first API key, or by the CLI\'s tenants set) is a 400.', schema: { type: 'string', pattern: TENANT_PATTERN.source } },
        tenantHeader: { name: 'Tenant', in: 'header', required: false, description: 'As ?tenant= (which wins when both are given).', schema: { type: 'string', pattern: TENANT_PATTERN.source } },
      },
      headers: Object.fromEntries(Object.entries(HEADERS).map(([name, h]) => [name, { description: h.description, schema: h.schema }])),
      responses: {
        NotFound: problem(404),
        MethodNotAllowed: problem(405),
        ...SERVER_ANSWERS,
      },
    },
  };
}

function operation(route: Route, json: (s: unknown) => unknown): Record<string, unknown> {
  const op: Record<string, unknown> = { operationId: route.operationId, summary: route.summary, tags: [route.tag] };
  if (route.description) op.description = route.description;
  const parameters: unknown[] = [
    ...params(route.pathParams, 'path', json),
    ...params(route.query, 'query', json),
    ...params(route.headers, 'header', json),
  ];
  if (route.scope) parameters.push({ $ref: '#/components/parameters/tenantQuery' }, { $ref: '#/components/parameters/tenantHeader' });
  if (parameters.length) op.parameters = parameters;
  op.security = route.scope ? [{ apiKey: [route.scope] }] : [];
  if (route.body) op.requestBody = { required: true, description: route.body.description, content: { 'application/json': { schema: json(route.body.schema) } } };

  const responses: Record<string, unknown> = {};
  for (const [status, answer] of Object.entries(route.answers)) {
    responses[status] = { description: answer.description, headers: headers(answer.headers), content: { 'application/json': { schema: json(answer.schema) } } };
  }
  // The problems a route of its kind can give, then its own. The HTTP server answers 408, 417, 431
  // and 503 itself (server.ts), before any route, so every route may get them.
  const statuses = new Set<number>([408, 417, 431, 500, 503]);
  if (route.scope) [400, 401, 403, 503].forEach((s) => statuses.add(s));
  if (route.body) [400, 413, 415, 503].forEach((s) => statuses.add(s));
  if (route.pathParams || route.query || route.headers) statuses.add(400);
  for (const s of Object.keys(route.problems ?? {})) statuses.add(Number(s));
  for (const s of [...statuses].sort()) {
    if (responses[s] === undefined) responses[s] = problem(s, route.problems?.[s]);
  }
  op.responses = responses;
  return op;
}

function params(schema: TObject | undefined, where: 'path' | 'query' | 'header', json: (s: unknown) => unknown): unknown[] {
  if (!schema) return [];
  const required = new Set(schema.required ?? []);
  return Object.entries(schema.properties).map(([name, s]) => ({
    name,
    in: where,
    required: where === 'path' || required.has(name),
    ...(s.description ? { description: s.description } : {}),
    schema: json(s),
  }));
}

function headers(names: Answer['headers'] = []): Record<string, unknown> {
  const out: Record<string, unknown> = { 'X-Request-Id': { $ref: '#/components/headers/X-Request-Id' } };
  for (const n of names) {
    const optional = n.endsWith('?');
    const name = (optional ? n.slice(0, -1) : n) as HeaderName;
    // A header object cannot be made required through a $ref, so required ones are written out.
    out[name] = optional ? { $ref: `#/components/headers/${name}` } : { ...HEADERS[name], required: true };
  }
  return out;
}

function problem(status: number, description?: string): Record<string, unknown> {
  const p = PROBLEMS[status];
  if (!p) throw new Error(`no problem described for status ${status}`);
  return {
    description: description ?? p.description,
    headers: headers(p.headers),
    content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
  };
}
