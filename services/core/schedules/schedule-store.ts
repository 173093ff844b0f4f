/**
 * Schedules in Postgres (migration 0014): create, read, list, change and delete, per tenant. Every
 * "now" is the database's (`now()` in the statement's transaction), the clock the ticker fires by,
 * so an API replica whose clock drifts cannot set a next tick the ticker reads differently.
 *
 * next_tick is computed here when a schedule is created, when its cron or timezone changes, and
 * when it is resumed: each time the first tick strictly after now. Ticks missed while a schedule
 * was paused are never run (resuming is not a misfire). Deleting a schedule keeps its tasks.
 */
import type { Pool, PoolClient } from 'pg';
import { CronSpec, nextTick, validateCron } from './cron';
import { SCHEDULE_COLUMNS, ScheduleRow, ScheduleSpec } from './schedule';
import type { TaskStatus } from '../tasks/priority';

/** A schedule as created (defaults filled in by the caller). */
export type NewSchedule = ScheduleSpec;

/** The fields a change may set; an absent one is kept. */
export type ScheduleChanges = Partial<Omit<NewSchedule, 'name'>>;

export type CreateScheduleOutcome = { kind: 'created'; schedule: ScheduleRow } | { kind: 'exists' } | { kind: 'full'; max: number };

/** One of the schedule's latest tasks. */
export interface ScheduleRun {
  id: string;
  status: TaskStatus;
  scheduled_for: Date | null;
  created_at: Date;
  finished_at: Date | null;
}

async function inTransaction<T>(pool: Pool, work: (c: PoolClient) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    const out = await work(c);
    await c.query('COMMIT');
    return out;
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    c.release();
  }
}

/**
 * The database's clock now, not at the transaction's start (now()): read after the row or lock a
 * change waited for, so a schedule resumed or changed while the ticker held it starts after the
 * wait, not at a time the wait has passed (whose ticks would then fire within the grace).
 */
async function dbNow(c: PoolClient): Promise<Date> {
  return (await c.query<{ now: Date }>('SELECT clock_timestamp() AS now')).rows[0]!.now;
}

/** The first tick after `now`, having checked the expression and zone (CronError names the one at fault). */
function firstTickAfter(spec: CronSpec, now: Date): Date | null {
  validateCron(spec, now);
  return nextTick(spec, now);
}

/**
 * Creates a schedule unless the tenant has one of that name (`exists`) or already holds
 * `maxPerTenant` (`full`). Throws CronError for an expression or zone that cannot fire.
 */
export async function createSchedule(pool: Pool, tenant: string, s: NewSchedule, maxPerTenant: number): Promise<CreateScheduleOutcome> {
  return inTransaction(pool, async (c) => {
    // Creations of one tenant take turns, so two at once cannot both pass the count at its bound.
    await c.query({ name: 'lock-tenant-schedules', text: "SELECT pg_advisory_xact_lock(hashtextextended('schedules:' || $1, 0))", values: [tenant] });
    const now = await dbNow(c);
    const next = firstTickAfter(s, now);
    const { rows: counted } = await c.query<{ n: number; taken: boolean }>({
      name: 'count-tenant-schedules',
      text: 'SELECT count(*)::int AS n, bool_or(name = $2) AS taken FROM schedules WHERE tenant = $1',
      values: [tenant, s.name],
    });
    if (counted[0]!.taken) return { kind: 'exists' };
    if (counted[0]!.n >= maxPerTenant) return { kind: 'full', max: maxPerTenant };
    const { rows } = await c.query<ScheduleRow>({
      name: 'create-schedule',
      text: `INSERT INTO schedules (tenant, name, cron, timezone, task, misfire, catch_up_limit, overlap, paused, next_tick, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11, $11)
             ON CONFLICT (tenant, name) DO NOTHING
             RETURNING ${SCHEDULE_COLUMNS}`,
      values: [tenant, s.name, s.cron, s.timezone, JSON.stringify(s.task), s.misfire, s.catch_up_limit, s.overlap, s.paused, next, now],
    });
    return rows[0] ? { kind: 'created', schedule: rows[0] } : { kind: 'exists' };
  });
}

/** The schedule, with the database's clock now (for the ticks to come); null when the tenant has none of that name. */
export async function getSchedule(pool: Pool, tenant: string, name: string): Promise<{ schedule: ScheduleRow; now: Date } | null> {
  const { rows } = await pool.query<ScheduleRow & { db_now: Date }>({
    name: 'get-schedule',
    text: `SELECT ${SCHEDULE_COLUMNS}, now() AS db_now FROM schedules WHERE tenant = $1 AND name = $2`,
    values: [tenant, name],
  });
  if (!rows[0]) return null;
  const { db_now: now, ...schedule } = rows[0];
  return { schedule, now };
}

/** Bytes of schedules (their tasks as JSON text) a page holds at most, past its first schedule. */
export const SCHEDULE_PAGE_BYTES = 8 * 1048576;

/**
 * A page of the tenant's schedules by name, strictly after `after`; `next` when more may follow.
 * A task's payload may be up to MAX_BODY_BYTES: the page also ends before SCHEDULE_PAGE_BYTES of
 * tasks (sizes read first, rendered by Postgres), so what a page costs does not depend on `limit`
 * times what was stored.
 */
export async function listSchedules(pool: Pool, tenant: string, limit: number, after: string | null): Promise<{ schedules: ScheduleRow[]; next: string | null }> {
  const { rows: sizes } = await pool.query<{ name: string; bytes: number }>({
    name: 'list-schedule-sizes',
    // Measured after the limit: a sort by name (where the index's collation is not "C") would
    // otherwise render every schedule of the tenant to measure it.
    text: `SELECT name, octet_length(task::text) AS bytes
             FROM (SELECT name, task FROM schedules WHERE tenant = $1 AND ($2::text IS NULL OR name > $2 COLLATE "C") ORDER BY name COLLATE "C" LIMIT $3) p
            ORDER BY name COLLATE "C"`,
    values: [tenant, after, limit + 1],
  });
  const names: string[] = [];
  let bytes = 0;
  for (const r of sizes) {
    if (names.length === limit || (names.length > 0 && bytes + r.bytes > SCHEDULE_PAGE_BYTES)) break;
    names.push(r.name);
    bytes += r.bytes;
  }
  const more = names.length < sizes.length;
  // A schedule deleted since its size was read is left out; the page still ends at the last name read.
  const { rows: schedules } = await pool.query<ScheduleRow>({
    name: 'list-schedules',
    text: `SELECT ${SCHEDULE_COLUMNS} FROM schedules WHERE tenant = $1 AND name = ANY($2::text[]) ORDER BY name COLLATE "C"`,
    values: [tenant, names],
  });
  return { schedules, next: more ? names[names.length - 1]! : null };
}

/** The schedule's latest tasks, newest first (through tasks_tenant_schedule_idx). */
export async function lastRuns(pool: Pool, tenant: string, name: string, n: number): Promise<ScheduleRun[]> {
  const { rows } = await pool.query<ScheduleRun>({
    name: 'schedule-last-runs',
    text: `SELECT id::text AS id, status::text AS status, scheduled_for, created_at, finished_at FROM tasks
            WHERE tenant = $1 AND schedule = $2 ORDER BY created_at DESC, id DESC LIMIT $3`,
    values: [tenant, name, n],
  });
  return rows;
}

/**
 * Changes a schedule; null when the tenant has none of that name. A new cron or timezone, or a
 * resume (paused true → false), sets next_tick to the first tick after now: ticks missed while
 * paused never run. Throws CronError for an expression or zone that cannot fire.
 */
export async function updateSchedule(pool: Pool, tenant: string, name: string, changes: ScheduleChanges): Promise<ScheduleRow | null> {
  return inTransaction(pool, async (c) => {
    const { rows } = await c.query<ScheduleRow>({
      name: 'lock-schedule',
      text: `SELECT ${SCHEDULE_COLUMNS} FROM schedules WHERE tenant = $1 AND name = $2 FOR UPDATE`,
      values: [tenant, name],
    });
    const old = rows[0];
    if (!old) return null;
    const now = await dbNow(c);
    const next: ScheduleRow = { ...old, ...changes };
    const respecified = (changes.cron !== undefined && changes.cron !== old.cron) || (changes.timezone !== undefined && changes.timezone !== old.timezone);
    const resumed = old.paused && changes.paused === false;
    if (respecified || resumed) next.next_tick = firstTickAfter(next, now);
    const { rows: updated } = await c.query<ScheduleRow>({
      name: 'update-schedule',
      text: `UPDATE schedules SET cron = $3, timezone = $4, task = $5::jsonb, misfire = $6, catch_up_limit = $7, overlap = $8, paused = $9, next_tick = $10, updated_at = $11
              WHERE tenant = $1 AND name = $2
              RETURNING ${SCHEDULE_COLUMNS}`,
      values: [tenant, name, next.cron, next.timezone, JSON.stringify(next.task), next.misfire, next.catch_up_limit, next.overlap, next.paused, next.next_tick, now],
    });
    return updated[0]!;
  });
}

/** Deletes a schedule (its tasks stay, naming it) and returns it as it was; null when the tenant has none of that name. */
export async function deleteSchedule(pool: Pool, tenant: string, name: string): Promise<ScheduleRow | null> {
  const { rows } = await pool.query<ScheduleRow>({ name: 'delete-schedule', text: `DELETE FROM schedules WHERE tenant = $1 AND name = $2 RETURNING ${SCHEDULE_COLUMNS}`, values: [tenant, name] });
  return rows[0] ?? null;
}
