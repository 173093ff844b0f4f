/**
 * Validation of the POST /tasks body: every problem is reported with the field it concerns. Hand
 * written because it is the hot path (see the header of schemas/task-input.ts); its patterns, bounds
 * and enums come from the schemas, and a property test checks that it agrees with them.
 */
import type { Priority } from '../core/tasks/priority';
import type { RetryPolicy } from '../core/tasks/backoff';
import { checkRetryPolicy, checkTimeoutMs } from '../core/tasks/policy-check';
import { parseTime } from '../core/tasks/task-fields';
import { BatchBodySchema, IdempotencyKeySchema, MAX_DELAY_MS, TaskInputSchema } from './schemas/task-input';
import { badRequest, FieldError, ProblemError } from './problem';

export interface TaskInput {
  type: string;
  priority: Priority;
  payload: unknown;
  max_retries: number;
  /** Whether the client gave max_retries (else it is DEFAULT_MAX_RETRIES, which may differ at a replay). */
  max_retries_given: boolean;
  idempotency_key: string | null;
  /** The task's own retry policy and timeout, when it gave them. */
  retry: RetryPolicy | null;
  timeout_ms: number | null;
  /** When it is due, if that is later than now (null: queued at once). */
  run_at: Date | null;
  /** `run_at` or `delay_ms` as given, for the idempotency hash (a replay gives the same). */
  delay: { run_at: string } | { delay_ms: number } | null;
}

const FIELDS = TaskInputSchema.properties;
const KNOWN = new Set(Object.keys(FIELDS));
const TYPE_PATTERN = new RegExp(FIELDS.type.pattern!);
const KEY_PATTERN = new RegExp(IdempotencyKeySchema.pattern!);
const PRIORITY_VALUES: readonly string[] = FIELDS.priority.enum;
const RETRIES_MIN = FIELDS.max_retries.minimum!;
const RETRIES_MAX = FIELDS.max_retries.maximum!;
export function validateTaskInput(body: unknown, headerKey: string | undefined, defaultMaxRetries: number): TaskInput {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw badRequest('the request body must be a JSON object', [{ field: '(body)', message: 'must be a JSON object' }]);
  }
  const b = body as Record<string, unknown>;
  const errors: FieldError[] = [];
  for (const k of Object.keys(b)) if (!KNOWN.has(k)) errors.push({ field: k, message: 'is not a known field' });

  if (b.type === undefined) errors.push({ field: 'type', message: 'is required' });
  else if (typeof b.type !== 'string') errors.push({ field: 'type', message: 'must be a string' });
  else if (!TYPE_PATTERN.test(b.type)) errors.push({ field: 'type', message: 'must be 1-128 characters of letters, digits, _ . : -' });

  if (b.priority !== undefined && !(typeof b.priority === 'string' && PRIORITY_VALUES.includes(b.priority))) {
    errors.push({ field: 'priority', message: `must be one of ${PRIORITY_VALUES.join(', ')}` });
  }
  if (b.max_retries !== undefined && (typeof b.max_retries !== 'number' || !Number.isInteger(b.max_retries) || b.max_retries < RETRIES_MIN || b.max_retries > RETRIES_MAX)) {
    errors.push({ field: 'max_retries', message: `must be an integer between ${RETRIES_MIN} and ${RETRIES_MAX}` });
  }
  // What the payload may hold (no NUL, no lone surrogate, exact numbers, bounded nesting) was checked
  // on the body's text before it was parsed (input/read-json.ts).
  if (b.payload === null) errors.push({ field: 'payload', message: 'must not be null (omit it for an empty object)' });

  let key: string | null = null;
  if (b.idempotency_key !== undefined) {
    if (typeof b.idempotency_key !== 'string' || !KEY_PATTERN.test(b.idempotency_key)) {
      errors.push({ field: 'idempotency_key', message: 'must be 1-255 printable ASCII characters' });
    } else key = b.idempotency_key;
  }
  if (headerKey !== undefined) {
    if (!KEY_PATTERN.test(headerKey)) errors.push({ field: 'Idempotency-Key', message: 'must be 1-255 printable ASCII characters' });
    else if (key !== null && key !== headerKey) errors.push({ field: 'Idempotency-Key', message: 'differs from idempotency_key in the body' });
    else key = headerKey;
  }
  // The policy's bounds are shared with handlers' defaults (core/tasks/policy-check.ts).
  const retry = b.retry === undefined ? null : checkRetryPolicy(b.retry, errors);
  const timeoutMs = b.timeout_ms === undefined ? null : checkTimeoutMs(b.timeout_ms, errors);
  const { runAt, delay } = checkDelay(b, errors);
  if (errors.length) throw badRequest(errors.map((e) => `${e.field} ${e.message}`).join('; '), errors);
  return {
    retry,
    timeout_ms: timeoutMs,
    type: b.type as string,
    priority: (b.priority as Priority | undefined) ?? 'default',
    payload: b.payload === undefined ? {} : b.payload,
    max_retries: (b.max_retries as number | undefined) ?? defaultMaxRetries,
    max_retries_given: b.max_retries !== undefined,
    idempotency_key: key,
    run_at: runAt,
    delay,
  };
}

/** `run_at` or `delay_ms` (not both): the due time when it is in the future. */
function checkDelay(b: Record<string, unknown>, errors: FieldError[]): Pick<TaskInput, 'delay'> & { runAt: Date | null } {
  const now = Date.now();
  if (b.run_at !== undefined && b.delay_ms !== undefined) {
    errors.push({ field: 'delay_ms', message: 'must not be given with run_at (give one of them)' });
    return { runAt: null, delay: null };
  }
  if (b.delay_ms !== undefined) {
    const ms = b.delay_ms;
    if (typeof ms !== 'number' || !Number.isInteger(ms) || ms < 0 || ms > MAX_DELAY_MS) {
      errors.push({ field: 'delay_ms', message: `must be an integer between 0 and ${MAX_DELAY_MS} (366 days)` });
      return { runAt: null, delay: null };
    }
    return { runAt: ms > 0 ? new Date(now + ms) : null, delay: { delay_ms: ms } };
  }
  if (b.run_at !== undefined) {
    const at = typeof b.run_at === 'string' ? parseTime(b.run_at) : null;
    if (!at) errors.push({ field: 'run_at', message: 'must be an RFC 3339 time with a zone, e.g. 2026-12-05T10:00:00Z' });
    else if (at.getTime() - now > MAX_DELAY_MS) errors.push({ field: 'run_at', message: 'must be at most 366 days ahead' });
    else return { runAt: at.getTime() > now ? at : null, delay: { run_at: b.run_at as string } };
  }
  return { runAt: null, delay: null };
}

export const MAX_BATCH = BatchBodySchema.properties.tasks.maxItems!;
const MIN_BATCH = BatchBodySchema.properties.tasks.minItems!;

/** The batch body: `{"tasks": [...]}` with 1 to MAX_BATCH items; anything else fails the whole request. */
export function validateBatch(body: unknown): unknown[] {
  const tasks = body && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>).tasks : undefined;
  if (!Array.isArray(tasks)) throw badRequest('the body must be {"tasks": [...]}', [{ field: 'tasks', message: 'must be an array of tasks' }]);
  if (tasks.length < MIN_BATCH || tasks.length > MAX_BATCH) {
    throw badRequest(`a batch holds ${MIN_BATCH} to ${MAX_BATCH} tasks, got ${tasks.length}`, [{ field: 'tasks', message: `must hold ${MIN_BATCH} to ${MAX_BATCH} tasks` }]);
  }
  const extra = Object.keys(body as object).filter((k) => k !== 'tasks');
  if (extra.length) throw badRequest(`unknown fields: ${extra.join(', ')}`, extra.map((f) => ({ field: f, message: 'is not a known field' })));
  return tasks;
}

/** The same problem with its field names placed under `prefix` (e.g. `tasks[3].priority`). */
export function prefixFields(err: ProblemError, prefix: string): ProblemError {
  const errors = err.errors.map((e) => ({ field: e.field === '(body)' ? prefix : `${prefix}.${e.field}`, message: e.message }));
  return new ProblemError(err.status, err.title, errors.map((e) => `${e.field} ${e.message}`).join('; '), errors);
}

/** JSON with object keys sorted, so equal requests hash equally whatever their key order. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}
