/**
 * What the load generator reads back, through the API (GET /tasks, GET /tasks/:id, GET /queues) with
 * the run's own key: which accepted tasks are final yet (-wait), and the rows of every task this run
 * created with their runs (the summary). No database credentials: a load tester needs only a key
 * with tasks:write and tasks:read. The tasks are found in the window of creation times this run's
 * answers showed (GET /tasks is newest first, keyset-paged: every task older than the first page
 * is listed exactly once however many are added meanwhile), and picked out by id.
 */
import type { ListedTask, Task, TaskSchedulerClient } from '../client';
import type { RunFact, TaskFact } from './summary';

const PAGE = 500;
const NOT_FINAL = ['waiting', 'scheduled', 'queued', 'running', 'retrying'];
/** GET /tasks/:id requests in flight while reading runs. */
const RUN_READS = 16;

/** RFC 3339 one microsecond before `ms` (created_after is exclusive; the API shows milliseconds, Postgres keeps microseconds). */
export function justBefore(ms: number): string {
  return `${new Date(ms - 1).toISOString().slice(0, -1)}999Z`;
}

/** Every task of the key's tenant created after `after` (and with `statuses`, when given), page by page. */
async function* tasksSince(client: TaskSchedulerClient, after: string, statuses?: string[]): AsyncGenerator<ListedTask[]> {
  for await (const page of client.list({ created_after: after, status: statuses?.join(','), limit: PAGE })) yield page.tasks;
}

/** Tracks the accepted tasks that are not final yet; each poll lists only the tasks that are not final. */
export class FinalTracker {
  private pending = new Set<string>();
  final = 0;
  lastError: string | null = null;
  /** How long the last poll took: the caller waits longer between polls when they are slow. */
  lastPollMs = 0;

  constructor(
    private readonly client: TaskSchedulerClient,
    /** The start of the run's window: the earliest created_at an answer showed (null: none yet). */
    private readonly windowStart: () => number | null,
  ) {}

  add(ids: string[]): void {
    for (const id of ids) this.pending.add(id);
  }

  get unfinished(): number {
    return this.pending.size;
  }

  /** One pass; returns how many became final. Errors are kept, not thrown. */
  async poll(): Promise<number> {
    const start = this.windowStart();
    if (start === null || this.pending.size === 0) return 0;
    // Only tasks accepted before the listing began can be judged by it: a later one may sit above its first page.
    const candidates = new Set(this.pending);
    const t0 = Date.now();
    let found = 0;
    try {
      const open = new Set<string>();
      for await (const tasks of tasksSince(this.client, justBefore(start), NOT_FINAL)) for (const t of tasks) if (candidates.has(t.id)) open.add(t.id);
      for (const id of candidates) {
        if (!open.has(id) && this.pending.delete(id)) found++;
      }
      this.lastError = null;
    } catch (err) {
      this.lastError = (err as Error).message;
    }
    this.lastPollMs = Date.now() - t0;
    this.final += found;
    return found;
  }
}

/** The run's tasks (by id, among those created since windowStart) and every run of those that ran. */
export async function fetchFacts(client: TaskSchedulerClient, ids: string[], windowStart: number, onRead: (n: number) => void = () => undefined): Promise<{ tasks: TaskFact[]; runs: RunFact[]; nowMs: number }> {
  const wanted = new Set(ids);
  const found: ListedTask[] = [];
  for await (const tasks of tasksSince(client, justBefore(windowStart))) for (const t of tasks) if (wanted.has(t.id)) found.push(t);
  const facts = found.map(toTaskFact);
  const runs: RunFact[] = [];
  const ran = found.filter((t) => t.attempts > 0).map((t) => t.id);
  // Pages leave runs out, so each task that ran is read on its own (after the run: it costs the
  // measurement nothing).
  let next = 0;
  let read = found.length - ran.length;
  onRead(read);
  await Promise.all(
    Array.from({ length: Math.min(RUN_READS, ran.length) }, async () => {
      while (next < ran.length) {
        const task = await client.get(ran[next++]!);
        for (const r of task.runs ?? []) runs.push(toRunFact(task.id, r));
        onRead(++read);
      }
    }),
  );
  return { tasks: facts, runs, nowMs: Date.now() };
}

const ms = (iso: string | null) => (iso === null ? null : Date.parse(iso));

function toTaskFact(t: ListedTask): TaskFact {
  return { id: t.id, type: t.type, status: t.status, attempts: t.attempts, created: Date.parse(t.created_at), finished: ms(t.finished_at) };
}

function toRunFact(taskId: string, r: NonNullable<Task['runs']>[number]): RunFact {
  return { taskId, attempt: r.attempt, workerId: r.worker_id, started: Date.parse(r.started_at), finished: ms(r.finished_at), outcome: r.outcome, durationMs: r.duration_ms };
}
