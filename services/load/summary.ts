/**
 * The numbers of the final table, computed from the tasks this run created and their runs (as the
 * API shows them; its times are Postgres's clock). Pure functions over plain rows, so they are
 * unit-tested without a service.
 */
import { maxConcurrent, spread, Spread } from './stats';

export interface TaskFact {
  id: string;
  type: string;
  status: string;
  attempts: number;
  /** Epoch ms (Postgres clock). */
  created: number;
  finished: number | null;
}

export interface RunFact {
  taskId: string;
  attempt: number;
  workerId: string;
  started: number;
  finished: number | null;
  outcome: string;
  durationMs: number | null;
}

export interface TableSummary {
  /** Tasks the API accepted in this run (client count). */
  burst: number;
  /** Of those, found when read back. */
  found: number;
  final: number;
  succeeded: number;
  dead: number;
  unfinished: number;
  byStatus: Record<string, number>;
  byType: Record<string, { tasks: number; succeeded: number; dead: number; runs: number }>;
  /** Distinct task_runs.worker_id. */
  workers: number;
  slots: number | null;
  /** Most attempts running at once (sweep over the runs' [started_at, finished_at), at most `slots` per worker). */
  inFlight: number;
  /** Last finished_at of a final task − first created_at; null until a task is final. */
  drainTimeMs: number | null;
  /** Final tasks per second of drain time. */
  throughputPerS: number | null;
  runMs: Spread;
  waitMs: Spread;
  /** dead / final, in percent. */
  failPct: number | null;
  /** Failed attempts that were followed by another attempt of the same task. */
  retries: number;
  /** Σ(attempts − 1) over the tasks that ran: every attempt after the first, whatever ended the previous one. */
  extraAttempts: number;
  /** Attempts whose lease expired (outcome 'expired'). */
  reaped: number;
  runs: number;
  runOutcomes: Record<string, number>;
  /** Epoch ms of the first created_at and the last finished_at (for the report's time axis). */
  firstCreated: number | null;
  lastFinished: number | null;
}

// An operator may cancel tasks of a run: those are final too (neither succeeded nor dead).
const FINAL = new Set(['succeeded', 'dead', 'cancelled']);

export function computeSummary(tasks: TaskFact[], runs: RunFact[], opts: { accepted: number; slots: number | null; nowMs: number }): TableSummary {
  const byStatus: Record<string, number> = {};
  const byType: TableSummary['byType'] = {};
  let final = 0;
  let succeeded = 0;
  let dead = 0;
  let firstCreated: number | null = null;
  let lastFinished: number | null = null;
  let extraAttempts = 0;
  for (const t of tasks) {
    byStatus[t.status] = (byStatus[t.status] ?? 0) + 1;
    const ty = (byType[t.type] ??= { tasks: 0, succeeded: 0, dead: 0, runs: 0 });
    ty.tasks++;
    if (t.status === 'succeeded') {
      succeeded++;
      ty.succeeded++;
    } else if (t.status === 'dead') {
      dead++;
      ty.dead++;
    }
    if (FINAL.has(t.status)) {
      final++;
      if (t.finished !== null && (lastFinished === null || t.finished > lastFinished)) lastFinished = t.finished;
    }
    if (firstCreated === null || t.created < firstCreated) firstCreated = t.created;
    if (t.attempts > 0) extraAttempts += t.attempts - 1;
  }

  const taskById = new Map(tasks.map((t) => [t.id, t]));
  const firstStart = new Map<string, number>();
  const lastAttempt = new Map<string, number>();
  const workers = new Set<string>();
  const runOutcomes: Record<string, number> = {};
  const durations: number[] = [];
  let reaped = 0;
  for (const r of runs) {
    workers.add(r.workerId);
    runOutcomes[r.outcome] = (runOutcomes[r.outcome] ?? 0) + 1;
    if (r.outcome === 'expired') reaped++;
    if (r.durationMs !== null) durations.push(r.durationMs);
    const fs = firstStart.get(r.taskId);
    if (fs === undefined || r.started < fs) firstStart.set(r.taskId, r.started);
    lastAttempt.set(r.taskId, Math.max(lastAttempt.get(r.taskId) ?? 0, r.attempt));
    const t = taskById.get(r.taskId);
    if (t) byType[t.type]!.runs++;
  }
  let retries = 0;
  for (const r of runs) if (r.outcome === 'failed' && (lastAttempt.get(r.taskId) ?? 0) > r.attempt) retries++;

  const waits: number[] = [];
  for (const [id, start] of firstStart) {
    const t = taskById.get(id);
    if (t) waits.push(Math.max(0, start - t.created));
  }

  const drainTimeMs = firstCreated !== null && lastFinished !== null ? Math.max(0, lastFinished - firstCreated) : null;
  return {
    burst: opts.accepted,
    found: tasks.length,
    final,
    succeeded,
    dead,
    unfinished: tasks.length - final,
    byStatus,
    byType,
    workers: workers.size,
    slots: opts.slots,
    // Per worker at most its slots (see maxConcurrent): the API shows times to the millisecond.
    inFlight: maxConcurrent(runs.map((r) => ({ start: r.started, end: r.finished, group: r.workerId })), opts.nowMs, opts.slots ?? Infinity),
    drainTimeMs,
    throughputPerS: drainTimeMs !== null && drainTimeMs > 0 ? final / (drainTimeMs / 1000) : null,
    runMs: spread(durations),
    waitMs: spread(waits),
    failPct: final > 0 ? (dead / final) * 100 : null,
    retries,
    extraAttempts,
    reaped,
    runs: runs.length,
    runOutcomes,
    firstCreated,
    lastFinished,
  };
}

/** Per-task times for the report's time series (epoch ms, Postgres clock). */
export interface Timeline {
  created: number[];
  started: number[];
  finished: number[];
}

export function timelineOf(tasks: TaskFact[], runs: RunFact[]): Timeline {
  const firstStart = new Map<string, number>();
  for (const r of runs) {
    const fs = firstStart.get(r.taskId);
    if (fs === undefined || r.started < fs) firstStart.set(r.taskId, r.started);
  }
  return {
    created: tasks.map((t) => t.created),
    started: [...firstStart.values()],
    finished: tasks.filter((t) => FINAL.has(t.status) && t.finished !== null).map((t) => t.finished!),
  };
}
