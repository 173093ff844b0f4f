/**
 * The schedule routes (issue 19), each scoped to the caller's tenant (an admin's: `?tenant=`):
 * `tasks:read` for GET /schedules and GET /schedules/{name}, `tasks:write` for the changes. A
 * schedule of another tenant is not found, like one that does not exist. What a request costs is
 * bounded: a page holds at most 500 schedules (and a tenant at most MAX_SCHEDULES_PER_TENANT), a
 * preview at most 100 ticks, the last runs 10 tasks.
 */
import type { Express, Request, RequestHandler, Response } from 'express';
import type { Pool } from 'pg';
import { CronError, inZone, nextTicks, validateCron } from '../../core/schedules/cron';
import type { ScheduleRow } from '../../core/schedules/schedule';
import { createSchedule, deleteSchedule, getSchedule, lastRuns, listSchedules, ScheduleRun, updateSchedule } from '../../core/schedules/schedule-store';
import type { Scope } from '../../core/tenancy/api-key';
import { taskToJson, TaskRow } from '../../core/tasks/task';
import type { Principal } from '../auth/principal';
import { badRequest, FieldError, notFound, ProblemError } from '../problem';
import { PREVIEW_DEFAULT, ScheduleGetQuerySchema, ScheduleListQuerySchema } from '../schemas/schedules';
import { scheduleNameParam, validateScheduleInput, validateSchedulePatch } from './schedule-input';

/** How many of a schedule's latest tasks GET /schedules/{name} shows. */
export const LAST_RUNS = 10;
export const DEFAULT_MAX_SCHEDULES_PER_TENANT = 1000;

const LIST = ScheduleListQuerySchema.properties;
const PREVIEW = ScheduleGetQuerySchema.properties.preview;

export interface ScheduleRouteDeps {
  pool: Pool;
  defaultMaxRetries: number;
  /** MAX_SCHEDULES_PER_TENANT. */
  maxSchedulesPerTenant: number;
  /** Creates the schedule's task now, outside its ticks; null when the tenant has no such schedule. */
  trigger(tenant: string, name: string): Promise<TaskRow | null>;
}

/** What app.ts hands over: its middleware for scopes and JSON bodies, and the parsed body. */
export interface RouteKit {
  authorized(scope: Scope): RequestHandler;
  /** Content type, body budget and raw body, as POST /tasks/cancel has them. */
  jsonBody: RequestHandler[];
  /** The body parsed and checked as a task payload is (nesting, NUL, surrogates, exact numbers). */
  parseBody(req: Request): unknown;
}

const tenantOf = (res: Response): string => (res.locals.principal as Principal).tenant;
const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

export function scheduleToJson(s: ScheduleRow): Record<string, unknown> {
  return {
    tenant: s.tenant,
    name: s.name,
    cron: s.cron,
    timezone: s.timezone,
    task: s.task,
    misfire: s.misfire,
    catch_up_limit: s.catch_up_limit,
    overlap: s.overlap,
    paused: s.paused,
    next_tick: iso(s.next_tick),
    last_tick: iso(s.last_tick),
    last_outcome: s.last_outcome,
    created_at: s.created_at.toISOString(),
    updated_at: s.updated_at.toISOString(),
  };
}

/**
 * The next `n` fire times: from next_tick on while the schedule runs, or, when it is paused, the
 * first ones after now (what resuming would give). A stored expression this runtime cannot read
 * any more (a zone its ICU lost) shows none rather than failing the read.
 */
export function upcomingTicks(s: ScheduleRow, now: Date, n: number): { at: string; local: string }[] {
  let ticks: Date[];
  try {
    if (s.paused) ticks = nextTicks(s, now, n);
    else ticks = s.next_tick ? [s.next_tick, ...nextTicks(s, s.next_tick, n - 1)] : [];
  } catch (err) {
    if (err instanceof CronError) return [];
    throw err;
  }
  return ticks.map((t) => ({ at: t.toISOString(), local: inZone(t, s.timezone) }));
}

function runToJson(r: ScheduleRun): Record<string, unknown> {
  return { id: r.id, status: r.status, scheduled_for: iso(r.scheduled_for), created_at: r.created_at.toISOString(), finished_at: iso(r.finished_at) };
}

/** A 400 for an expression or zone cron.ts refused, naming the field. */
function cronProblem(err: unknown): unknown {
  return err instanceof CronError ? badRequest(`${err.field} ${err.message}`, [{ field: err.field, message: err.message }]) : err;
}

const missing = (name: string) => notFound(`no schedule named ${name}`);

/** Every parameter known and given once; `tenant` is every scoped route's. */
function checkQuery(query: Record<string, unknown>, known: string[]): FieldError[] {
  const errors: FieldError[] = [];
  for (const [k, v] of Object.entries(query)) {
    if (k !== 'tenant' && !known.includes(k)) errors.push({ field: k, message: 'is not a known parameter' });
    else if (Array.isArray(v)) errors.push({ field: k, message: 'must be given once' });
  }
  return errors;
}

function intParam(v: unknown, field: string, min: number, max: number, fallback: number, errors: FieldError[]): number {
  if (v === undefined || Array.isArray(v)) return fallback;
  const n = typeof v === 'string' && /^\d{1,9}$/.test(v) ? Number(v) : NaN;
  if (n >= min && n <= max) return n;
  errors.push({ field, message: `must be an integer between ${min} and ${max}` });
  return fallback;
}

/** The page cursor: the last name of the page before, as base64url (names are ASCII). */
export const encodeScheduleCursor = (name: string): string => Buffer.from(name).toString('base64url');
function decodeScheduleCursor(token: string): string | null {
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(token)) return null;
  const name = Buffer.from(token, 'base64url').toString('utf8');
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name) && encodeScheduleCursor(name) === token ? name : null;
}

function refuse(errors: FieldError[]): void {
  if (errors.length) throw badRequest(errors.map((e) => `${e.field} ${e.message}`).join('; '), errors);
}

export function addScheduleRoutes(app: Express, deps: ScheduleRouteDeps, kit: RouteKit): void {
  const { authorized, jsonBody, parseBody } = kit;

  app.post('/schedules', authorized('tasks:write'), ...jsonBody, async (req, res) => {
    const input = validateScheduleInput(parseBody(req), deps.defaultMaxRetries);
    const created = await createSchedule(deps.pool, tenantOf(res), input, deps.maxSchedulesPerTenant).catch((err) => {
      throw cronProblem(err);
    });
    if (created.kind === 'exists') throw new ProblemError(409, 'Schedule exists', `a schedule named ${input.name} exists already`, [{ field: 'name', message: 'is taken' }]);
    if (created.kind === 'full') {
      throw new ProblemError(409, 'Too many schedules', `the tenant has ${created.max} schedules, as many as MAX_SCHEDULES_PER_TENANT allows; delete one first`, [{ field: 'name', message: `the tenant has ${created.max} schedules already` }]);
    }
    res.status(201).json(scheduleToJson(created.schedule));
  });

  app.get('/schedules', authorized('tasks:read'), async (req, res) => {
    const query = req.query as Record<string, unknown>;
    const errors = checkQuery(query, Object.keys(LIST));
    const limit = intParam(query.limit, 'limit', LIST.limit.minimum!, LIST.limit.maximum!, LIST.limit.default as number, errors);
    let after: string | null = null;
    if (query.cursor !== undefined && !Array.isArray(query.cursor)) {
      after = typeof query.cursor === 'string' ? decodeScheduleCursor(query.cursor) : null;
      if (after === null) errors.push({ field: 'cursor', message: 'is not a cursor this service gave (use next_cursor as it came)' });
    }
    refuse(errors);
    const page = await listSchedules(deps.pool, tenantOf(res), limit, after);
    res.json({ schedules: page.schedules.map(scheduleToJson), next_cursor: page.next === null ? null : encodeScheduleCursor(page.next) });
  });

  app.get('/schedules/:name', authorized('tasks:read'), async (req, res) => {
    const name = scheduleNameParam(String(req.params.name));
    const query = req.query as Record<string, unknown>;
    const errors = checkQuery(query, ['preview']);
    const n = intParam(query.preview, 'preview', PREVIEW.minimum!, PREVIEW.maximum!, PREVIEW_DEFAULT, errors);
    refuse(errors);
    const tenant = tenantOf(res);
    const found = await getSchedule(deps.pool, tenant, name);
    if (!found) throw missing(name);
    const runs = await lastRuns(deps.pool, tenant, name, LAST_RUNS);
    res.json({ ...scheduleToJson(found.schedule), next_ticks: upcomingTicks(found.schedule, found.now, n), last_runs: runs.map(runToJson) });
  });

  app.patch('/schedules/:name', authorized('tasks:write'), ...jsonBody, async (req, res) => {
    const name = scheduleNameParam(String(req.params.name));
    const patch = validateSchedulePatch(parseBody(req), deps.defaultMaxRetries);
    // A bad expression or zone is a 400 whether or not the schedule exists (the store checks the
    // two together again, with the schedule's own for the one not given).
    if (patch.cron !== undefined || patch.timezone !== undefined) {
      try {
        validateCron({ cron: patch.cron ?? '@yearly', timezone: patch.timezone ?? 'UTC' });
      } catch (err) {
        throw cronProblem(err);
      }
    }
    const updated = await updateSchedule(deps.pool, tenantOf(res), name, patch).catch((err) => {
      throw cronProblem(err);
    });
    if (!updated) throw missing(name);
    res.json(scheduleToJson(updated));
  });

  app.delete('/schedules/:name', authorized('tasks:write'), async (req, res) => {
    const name = scheduleNameParam(String(req.params.name));
    const deleted = await deleteSchedule(deps.pool, tenantOf(res), name);
    if (!deleted) throw missing(name);
    res.json(scheduleToJson(deleted));
  });

  app.post('/schedules/:name/trigger', authorized('tasks:write'), async (req, res) => {
    const name = scheduleNameParam(String(req.params.name));
    const task = await deps.trigger(tenantOf(res), name);
    if (!task) throw missing(name);
    res.status(201).location(`/tasks/${task.id}`).json(taskToJson(task));
  });
}
