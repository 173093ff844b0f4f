/**
 * The results of the steps a workflow step depends on, for its handler's `parents`. Steps leased
 * together are read together (one query for up to BATCH of them), and what a step may load is
 * bounded by WORKFLOW_PARENT_RESULTS_MAX_BYTES, measured in Postgres before anything is read.
 */
import type { Pool } from 'pg';
import { textArray } from '../core/db/pg-arrays';

/** Steps read per query: with the byte bound per step, this bounds what one query brings in. */
const BATCH = 16;

export class ParentResultsTooLarge extends Error {
  readonly code = 'ParentResultsTooLarge';
  constructor(bytes: number, max: number) {
    super(`the results of the steps this step depends on add up to ${bytes} bytes, over WORKFLOW_PARENT_RESULTS_MAX_BYTES (${max})`);
    this.name = 'ParentResultsTooLarge';
  }
}

interface Waiter {
  id: string;
  resolve: (parents: Record<string, unknown>) => void;
  reject: (err: unknown) => void;
}

export class ParentResults {
  private waiting: Waiter[] = [];
  private scheduled = false;

  constructor(
    private readonly pool: Pool,
    private readonly maxBytes: number,
  ) {}

  /** Step key → result (null when that step's handler returned nothing) of every step `id` depends on. */
  load(id: string): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ id, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.drain());
      }
    });
  }

  private drain(): void {
    this.scheduled = false;
    const all = this.waiting;
    this.waiting = [];
    for (let i = 0; i < all.length; i += BATCH) void this.read(all.slice(i, i + BATCH));
  }

  private async read(batch: Waiter[]): Promise<void> {
    try {
      const { rows } = await this.pool.query<{ child: string; key: string; result: string | null; bytes: string }>(
        `WITH e AS (SELECT e.child, p.step_key, p.result FROM workflow_edges e JOIN tasks p ON p.id = e.parent WHERE e.child = ANY($1::uuid[])),
              s AS (SELECT child, sum(COALESCE(octet_length(result::text), 4)) AS bytes FROM e GROUP BY child)
         SELECT e.child, e.step_key AS key, CASE WHEN s.bytes <= $2 THEN e.result::text END AS result, s.bytes
           FROM e JOIN s USING (child)`,
        [textArray(batch.map((w) => w.id)), this.maxBytes],
      );
      const byChild = new Map<string, { parents: Record<string, unknown>; bytes: number }>();
      for (const r of rows) {
        let entry = byChild.get(r.child);
        if (!entry) byChild.set(r.child, (entry = { parents: {}, bytes: Number(r.bytes) }));
        if (entry.bytes <= this.maxBytes) entry.parents[r.key] = r.result === null ? null : JSON.parse(r.result);
      }
      for (const w of batch) {
        const entry = byChild.get(w.id);
        if (!entry) w.resolve({});
        else if (entry.bytes > this.maxBytes) w.reject(new ParentResultsTooLarge(entry.bytes, this.maxBytes));
        else w.resolve(entry.parents);
      }
    } catch (err) {
      for (const w of batch) w.reject(err);
    }
  }
}
