/**
 * Validation of the schedule bodies (POST /schedules, PATCH /schedules/{name}) and of the name in a
 * path: every problem is reported with the field it concerns. The names, bounds and enums come from
 * schemas/schedules.ts; a schedule's `task` is checked by POST /tasks's own validator, so a schedule
 * can hold no task that POST /tasks would refuse. Whether the expression and the zone mean anything
 * is cron.ts's to say (validateCron), once both are known.
 */
import { MisfirePolicy, OverlapPolicy, ScheduleSpec, ScheduleTask } from '../../core/schedules/schedule';
import { badRequest, FieldError, ProblemError } from '../problem';
import { ScheduleInputSchema, SCHEDULE_NAME_PATTERN, SCHEDULE_TASK_OMITS, SchedulePatchSchema } from '../schemas/schedules';
import { prefixFields, validateTaskInput } from '../validation';

export type ScheduleInput = ScheduleSpec;

export type SchedulePatch = Partial<Omit<ScheduleInput, 'name'>>;

const FIELDS = ScheduleInputSchema.properties;
const CREATE_KNOWN = new Set(Object.keys(FIELDS));
const PATCH_KNOWN = new Set(Object.keys(SchedulePatchSchema.properties));
const NAME = new RegExp(SCHEDULE_NAME_PATTERN);
const MISFIRE: readonly string[] = FIELDS.misfire.enum;
const OVERLAP: readonly string[] = FIELDS.overlap.enum;
const CATCH_UP = { min: FIELDS.catch_up_limit.minimum!, max: FIELDS.catch_up_limit.maximum! };
const CRON_MAX = FIELDS.cron.maxLength!;
const TZ_MAX = FIELDS.timezone.maxLength!;

export function isScheduleName(s: string): boolean {
  return NAME.test(s);
}

/** The name in a path (/schedules/{name}): a 400 naming `name` when it cannot be one. */
export function scheduleNameParam(name: string): string {
  if (!isScheduleName(name)) throw badRequest('name must be 1-128 characters of letters, digits, . _ - (starting with a letter or digit)', [{ field: 'name', message: 'must be 1-128 characters of letters, digits, . _ - (starting with a letter or digit)' }]);
  return name;
}

function object(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw badRequest('the request body must be a JSON object', [{ field: '(body)', message: 'must be a JSON object' }]);
  }
  return body as Record<string, unknown>;
}

/** Checks the fields present in `b` (all but name), pushing problems; returns what they say. */
function fields(b: Record<string, unknown>, errors: FieldError[], defaultMaxRetries: number): SchedulePatch {
  const out: SchedulePatch = {};
  if (b.cron !== undefined) {
    if (typeof b.cron !== 'string' || b.cron.length < 1 || b.cron.length > CRON_MAX) errors.push({ field: 'cron', message: `must be a string of 1-${CRON_MAX} characters` });
    else out.cron = b.cron;
  }
  if (b.timezone !== undefined) {
    if (typeof b.timezone !== 'string' || b.timezone.length < 1 || b.timezone.length > TZ_MAX) errors.push({ field: 'timezone', message: `must be a string of 1-${TZ_MAX} characters` });
    else out.timezone = b.timezone;
  }
  if (b.task !== undefined) {
    const task = scheduleTask(b.task, errors, defaultMaxRetries);
    if (task) out.task = task;
  }
  if (b.misfire !== undefined) {
    if (typeof b.misfire !== 'string' || !MISFIRE.includes(b.misfire)) errors.push({ field: 'misfire', message: `must be one of ${MISFIRE.join(', ')}` });
    else out.misfire = b.misfire as MisfirePolicy;
  }
  if (b.catch_up_limit !== undefined) {
    const n = b.catch_up_limit;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < CATCH_UP.min || n > CATCH_UP.max) errors.push({ field: 'catch_up_limit', message: `must be an integer between ${CATCH_UP.min} and ${CATCH_UP.max}` });
    else out.catch_up_limit = n;
  }
  if (b.overlap !== undefined) {
    if (typeof b.overlap !== 'string' || !OVERLAP.includes(b.overlap)) errors.push({ field: 'overlap', message: `must be one of ${OVERLAP.join(', ')}` });
    else out.overlap = b.overlap as OverlapPolicy;
  }
  if (b.paused !== undefined) {
    if (typeof b.paused !== 'boolean') errors.push({ field: 'paused', message: 'must be true or false' });
    else out.paused = b.paused;
  }
  return out;
}

/** POST /tasks's rules for the task, without an idempotency key; problems named `task.<field>`. */
function scheduleTask(v: unknown, errors: FieldError[], defaultMaxRetries: number): ScheduleTask | null {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    errors.push({ field: 'task', message: 'must be an object: {"type", "payload", "priority", "max_retries", "retry", "timeout_ms"}' });
    return null;
  }
  const found: FieldError[] = [];
  const rest: Record<string, unknown> = { ...(v as Record<string, unknown>) };
  for (const k of SCHEDULE_TASK_OMITS) {
    if (!(k in rest)) continue;
    found.push({ field: `task.${k}`, message: k === 'idempotency_key' ? 'is not a known field' : 'is not a known field (a tick runs at its time: shift the expression instead)' });
    delete rest[k];
  }
  try {
    const t = validateTaskInput(rest, undefined, defaultMaxRetries);
    if (found.length === 0) return { type: t.type, payload: t.payload, priority: t.priority, max_retries: t.max_retries, retry: t.retry, timeout_ms: t.timeout_ms };
  } catch (err) {
    if (!(err instanceof ProblemError)) throw err;
    found.push(...prefixFields(err, 'task').errors);
  }
  errors.push(...found);
  return null;
}

function refuse(errors: FieldError[]): never {
  throw badRequest(errors.map((e) => `${e.field} ${e.message}`).join('; '), errors);
}

/** POST /schedules's body, defaults filled in. */
export function validateScheduleInput(body: unknown, defaultMaxRetries: number): ScheduleInput {
  const b = object(body);
  const errors: FieldError[] = [];
  for (const k of Object.keys(b)) if (!CREATE_KNOWN.has(k)) errors.push({ field: k, message: 'is not a known field' });
  if (b.name === undefined) errors.push({ field: 'name', message: 'is required' });
  else if (typeof b.name !== 'string' || !isScheduleName(b.name)) errors.push({ field: 'name', message: 'must be 1-128 characters of letters, digits, . _ - (starting with a letter or digit)' });
  for (const required of ['cron', 'task'] as const) if (b[required] === undefined) errors.push({ field: required, message: 'is required' });
  const f = fields(b, errors, defaultMaxRetries);
  if (errors.length) refuse(errors);
  return {
    name: b.name as string,
    cron: f.cron!,
    timezone: f.timezone ?? (FIELDS.timezone.default as string),
    task: f.task!,
    misfire: f.misfire ?? (FIELDS.misfire.default as MisfirePolicy),
    catch_up_limit: f.catch_up_limit ?? (FIELDS.catch_up_limit.default as number),
    overlap: f.overlap ?? (FIELDS.overlap.default as OverlapPolicy),
    paused: f.paused ?? (FIELDS.paused.default as boolean),
  };
}

/** PATCH /schedules/{name}'s body: at least one field, each checked as on create. */
export function validateSchedulePatch(body: unknown, defaultMaxRetries: number): SchedulePatch {
  const b = object(body);
  const errors: FieldError[] = [];
  const keys = Object.keys(b);
  for (const k of keys) if (!PATCH_KNOWN.has(k)) errors.push({ field: k, message: k === 'name' ? 'cannot be changed (create a schedule with the new name, then delete this one)' : 'is not a known field' });
  if (keys.length === 0) errors.push({ field: '(body)', message: `must name at least one field to change: ${[...PATCH_KNOWN].join(', ')}` });
  const patch = fields(b, errors, defaultMaxRetries);
  if (errors.length) refuse(errors);
  return patch;
}
