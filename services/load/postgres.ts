/**
 * Postgres reads of the load generator: which accepted tasks are final yet (-wait), and the rows of
 * every task this run created with their task_runs (the summary). Ids go in as uuid[] in chunks, so
 * one statement never carries more than CHUNK ids.
 */
import { Pool } from 'pg';
import { postgresConnection } from '../core/db/postgres-connection';
import type { RunFact, TaskFact } from './summary';

export const CHUNK = 5000;

export function openPool(url: string): Pool {
  const pool = new Pool({
    // TLS parameters mean what they mean to the services.
    ...postgresConnection(url),
    max: 2,
    application_name: 'task-scheduler-load',
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 10_000,
    statement_timeout: 60_000,
  });
  pool.on('error', () => undefined); // an idle client that dies is replaced on the next query
  return pool;
}

export function chunks<T>(items: T[], size = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Tracks the accepted tasks that are not final yet; each poll asks only about those. */
export class FinalTracker {
  private pending = new Set<string>();
  final = 0;
  lastError: string | null = null;

  constructor(private readonly pool: Pool) {}

  add(ids: string[]): void {
    for (const id of ids) this.pending.add(id);
  }

  get unfinished(): number {
    return this.pending.size;
  }

  /** One pass over the pending ids; returns how many became final. Errors are kept, not thrown. */
  async poll(): Promise<number> {
    let found = 0;
    try {
      for (const part of chunks([...this.pending])) {
        const { rows } = await this.pool.query<{ id: string }>(
          "SELECT id::text AS id FROM tasks WHERE id = ANY($1::uuid[]) AND status IN ('succeeded', 'dead')",
          [part],
        );
        for (const r of rows) if (this.pending.delete(r.id)) found++;
      }
      this.lastError = null;
    } catch (err) {
      this.lastError = (err as Error).message;
    }
    this.final += found;
    return found;
  }
}

export async function fetchFacts(pool: Pool, ids: string[]): Promise<{ tasks: TaskFact[]; runs: RunFact[]; nowMs: number }> {
  const unique = [...new Set(ids)];
  const tasks: TaskFact[] = [];
  const runs: RunFact[] = [];
  for (const part of chunks(unique)) {
    const t = await pool.query(
      `SELECT id::text AS id, type, status::text AS status, attempts,
              extract(epoch FROM created_at)::float8 * 1000 AS created,
              extract(epoch FROM finished_at)::float8 * 1000 AS finished
         FROM tasks WHERE id = ANY($1::uuid[])`,
      [part],
    );
    for (const r of t.rows) tasks.push({ id: r.id, type: r.type, status: r.status, attempts: r.attempts, created: r.created, finished: r.finished });
    const rr = await pool.query(
      `SELECT task_id::text AS task_id, attempt, worker_id, outcome, duration_ms,
              extract(epoch FROM started_at)::float8 * 1000 AS started,
              extract(epoch FROM finished_at)::float8 * 1000 AS finished
         FROM task_runs WHERE task_id = ANY($1::uuid[])`,
      [part],
    );
    for (const r of rr.rows) {
      runs.push({ taskId: r.task_id, attempt: r.attempt, workerId: r.worker_id, started: r.started, finished: r.finished, outcome: r.outcome, durationMs: r.duration_ms });
    }
  }
  const now = await pool.query('SELECT extract(epoch FROM clock_timestamp())::float8 * 1000 AS now');
  return { tasks, runs, nowMs: now.rows[0].now };
}
