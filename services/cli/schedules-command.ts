/** `schedules list|get|create|pause|resume|trigger|delete`: cron schedules through the API, scoped to the key's tenant. */
import { parseTaskBody } from '../api/input/read-json';
import { ProblemError } from '../api/problem';
import type { NewSchedule, Schedule, ScheduleDetail } from '../client';
import { CronError, validateCron } from '../core/schedules/cron';
import { MISFIRE_POLICIES, OVERLAP_POLICIES } from '../core/schedules/schedule';
import { PRIORITIES } from '../core/tasks/priority';
import { API_OPTIONS, apiClient } from './api-client';
import { parse, UsageError } from './args';
import type { Io } from './io';
import { fields as showFields, json, table } from './output';
import { mayHaveHappened } from './lost-answer';
import { parseCount } from './tasks-command';

export const SCHEDULES_USAGE = `schedules list [--json]
  schedules get NAME [--preview N] [--json]
  schedules create NAME --cron EXPR --type TYPE [--timezone TZ] [--payload JSON] [--priority P] [--max-retries N]
      [--timeout-ms N] [--misfire skip|run_once|catch_up] [--catch-up-limit N] [--overlap allow|skip] [--paused] [--json]
  schedules pause NAME | resume NAME | trigger NAME | delete NAME [--json]`;

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const TYPE = /^[A-Za-z0-9_.:-]{1,128}$/;

function scheduleName(text: string): string {
  if (!NAME.test(text)) throw new UsageError(`NAME must be 1-128 letters, digits, . _ - (starting with a letter or digit), got ${JSON.stringify(text)}`);
  return text;
}

function oneOf<T extends string>(v: string | boolean | undefined, option: string, values: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) throw new UsageError(`${option} must be one of ${values.join(', ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

/** A whole number in [min, max], or undefined when the option is absent. */
function bounded(v: string | boolean | undefined, option: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^\d{1,10}$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`${option} must be a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return Number(v);
}

const CREATE_OPTIONS = {
  ...API_OPTIONS,
  cron: { type: 'string' },
  timezone: { type: 'string' },
  type: { type: 'string' },
  payload: { type: 'string' },
  priority: { type: 'string' },
  'max-retries': { type: 'string' },
  'timeout-ms': { type: 'string' },
  misfire: { type: 'string' },
  'catch-up-limit': { type: 'string' },
  overlap: { type: 'string' },
  paused: { type: 'boolean' },
  json: { type: 'boolean' },
} as const;

/** The body of POST /schedules from the options; the expression and zone are checked here first (exit 2). */
function newSchedule(name: string, v: Record<string, string | boolean | undefined>): NewSchedule {
  if (typeof v.cron !== 'string') throw new UsageError('create needs --cron EXPR (5 fields, 6 with seconds, or @daily …)');
  if (typeof v.type !== 'string') throw new UsageError('create needs --type TYPE (the task each tick creates)');
  if (!TYPE.test(v.type)) throw new UsageError(`--type must be 1-128 letters, digits, _ . : -, got ${JSON.stringify(v.type)}`);
  const timezone = typeof v.timezone === 'string' ? v.timezone : 'UTC';
  try {
    validateCron({ cron: v.cron, timezone });
  } catch (err) {
    if (err instanceof CronError) throw new UsageError(`--${err.field}: ${err.message}`);
    throw err;
  }
  let payload: unknown;
  if (typeof v.payload === 'string') {
    try {
      JSON.parse(v.payload);
    } catch {
      throw new UsageError(`--payload must be JSON (e.g. '{"to": "a@b.c"}'), got ${JSON.stringify(v.payload)}`);
    }
    try {
      // As the API reads it: JSON.parse would send 1e400 as null and 12345678901234567890 rounded.
      payload = parseTaskBody(Buffer.from(v.payload, 'utf8'), { maxPayloadDepth: 512 }); // depth: the API checks its own MAX_PAYLOAD_DEPTH
    } catch (err) {
      if (err instanceof ProblemError) throw new UsageError(`--payload: ${err.message}`);
      throw err;
    }
    if (payload === null) throw new UsageError('--payload must not be null (leave it out for {})');
  }
  const task: NewSchedule['task'] = { type: v.type };
  if (payload !== undefined) task.payload = payload;
  const priority = oneOf(v.priority, '--priority', PRIORITIES);
  if (priority) task.priority = priority;
  const maxRetries = bounded(v['max-retries'], '--max-retries', 0, 100);
  if (maxRetries !== undefined) task.max_retries = maxRetries;
  const timeoutMs = bounded(v['timeout-ms'], '--timeout-ms', 1, 86_400_000);
  if (timeoutMs !== undefined) task.timeout_ms = timeoutMs;
  const body: NewSchedule = { name, cron: v.cron, timezone, task };
  const misfire = oneOf(v.misfire, '--misfire', MISFIRE_POLICIES);
  if (misfire) body.misfire = misfire;
  const catchUp = bounded(v['catch-up-limit'], '--catch-up-limit', 1, 1000);
  if (catchUp !== undefined) body.catch_up_limit = catchUp;
  const overlap = oneOf(v.overlap, '--overlap', OVERLAP_POLICIES);
  if (overlap) body.overlap = overlap;
  if (v.paused === true) body.paused = true;
  return body;
}

function scheduleTable(schedules: Schedule[]): string {
  const rows = schedules.map((s) => ({ ...s, type: s.task.type, state: s.paused ? 'paused' : 'active' }));
  return table(rows, ['name', 'cron', 'timezone', 'type', 'state', 'next_tick', 'last_tick', 'last_outcome']);
}

function scheduleDetail(s: ScheduleDetail): string {
  const fields: [string, unknown][] = [
    ['name', s.name],
    ['tenant', s.tenant],
    ['cron', s.cron],
    ['timezone', s.timezone],
    ['state', s.paused ? 'paused' : 'active'],
    ['task', JSON.stringify(s.task)],
    ['misfire', s.misfire === 'catch_up' ? `catch_up (at most ${s.catch_up_limit})` : s.misfire],
    ['overlap', s.overlap],
    ['next_tick', s.next_tick],
    ['last_tick', s.last_tick ? `${s.last_tick} (${s.last_outcome})` : null],
    ['created_at', s.created_at],
    ['updated_at', s.updated_at],
  ];
  const ticks = s.next_ticks.length ? `\nNEXT TICKS${s.paused ? ' (if resumed now)' : ''}\n${table(s.next_ticks, ['at', 'local'])}` : '\nNEXT TICKS\nnone: the expression fires no more\n';
  const runs = s.last_runs.length ? `\nLAST RUNS\n${table(s.last_runs.map((r) => ({ ...r, scheduled_for: r.scheduled_for ?? '(trigger)' })), ['id', 'status', 'scheduled_for', 'created_at', 'finished_at'])}` : '';
  return `${showFields(fields)}\n${ticks}${runs}`;
}

export async function schedulesCommand(args: string[], env: NodeJS.ProcessEnv, io: Io): Promise<number> {
  const [sub, ...rest] = args;
  const one = { min: 1, max: 1, names: 'the schedule NAME' };
  switch (sub) {
    case 'list': {
      const { values } = parse(rest, { ...API_OPTIONS, json: { type: 'boolean' } }, { min: 0, max: 0, names: '' });
      const schedules = await apiClient(values, env).listSchedules({ pageSize: 500 });
      io.out(values.json ? json({ schedules }) : scheduleTable(schedules));
      return 0;
    }
    case 'get': {
      const { values, positionals } = parse(rest, { ...API_OPTIONS, preview: { type: 'string' }, json: { type: 'boolean' } }, one);
      const name = scheduleName(positionals[0]!);
      const preview = parseCount(values.preview, '--preview', 5, 100);
      const s = await apiClient(values, env).getSchedule(name, { preview });
      io.out(values.json ? json(s) : scheduleDetail(s));
      return 0;
    }
    case 'create': {
      const { values, positionals } = parse(rest, CREATE_OPTIONS, one);
      const body = newSchedule(scheduleName(positionals[0]!), values);
      const s = await apiClient(values, env).createSchedule(body).catch((err) => mayHaveHappened(err, `it may have been created: see schedules get ${body.name} before running create again`));
      io.out(values.json ? json(s) : `${s.name} created; next tick ${s.paused ? '(paused)' : s.next_tick ?? 'none'}\n`);
      return 0;
    }
    case 'pause':
    case 'resume': {
      const { values, positionals } = parse(rest, { ...API_OPTIONS, json: { type: 'boolean' } }, one);
      const s = await apiClient(values, env).updateSchedule(scheduleName(positionals[0]!), { paused: sub === 'pause' });
      io.out(values.json ? json(s) : sub === 'pause' ? `${s.name} paused\n` : `${s.name} resumed; next tick ${s.next_tick ?? 'none'} (ticks missed while paused are not run)\n`);
      return 0;
    }
    case 'trigger': {
      const { values, positionals } = parse(rest, { ...API_OPTIONS, json: { type: 'boolean' } }, one);
      const name = scheduleName(positionals[0]!);
      // The API takes no idempotency key here: run again, a trigger that had worked makes a second task.
      const task = await apiClient(values, env).triggerSchedule(name).catch((err) => mayHaveHappened(err, `a task may have been created: see LAST RUNS of schedules get ${name} before triggering again`));
      io.out(values.json ? json(task) : `${task.id} ${task.status}\n`);
      return 0;
    }
    case 'delete': {
      const { values, positionals } = parse(rest, { ...API_OPTIONS, json: { type: 'boolean' } }, one);
      const name = scheduleName(positionals[0]!);
      const s = await apiClient(values, env).deleteSchedule(name).catch((err) => mayHaveHappened(err, `it may have been deleted: see schedules get ${name}`));
      io.out(values.json ? json(s) : `${s.name} deleted (its tasks stay)\n`);
      return 0;
    }
    default:
      throw new UsageError(sub === undefined ? 'schedules needs a subcommand: list, get, create, pause, resume, trigger or delete' : `unknown schedules subcommand ${JSON.stringify(sub)}`);
  }
}
