/**
 * The results of the steps a workflow step depends on, for its handler's `parents`. Steps leased
 * together are read together (one query for up to BATCH of them), and what a step may load is
 * bounded by WORKFLOW_PARENT_RESULTS_MAX_BYTES, measured in Postgres before anything is read. The
 * measuring stops too, at the first parent that takes the total past the bound: what a lease costs
 * is bounded by the setting, not by what the parents returned.
 */
import type { Pool } from 'pg';
import { textArray } from '../core/db/pg-arrays';
import { INLINE_PARENTS_BYTES } from '../core/workflows/queued-here';

/** Steps read per query: with the byte bound per step, this bounds what one query brings in. */
const BATCH = 16;

export class ParentResultsTooLarge extends Error {
  readonly code = 'ParentResultsTooLarge';
  /** `bytes`: the total when the measuring stopped, past `max` (the rest are not measured). */
  constructor(bytes: number, max: number) {
    super(`the results of the steps this step depends on add up to more than WORKFLOW_PARENT_RESULTS_MAX_BYTES (${max}): ${bytes} bytes before the rest were measured`);
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

  /**
   * The parents a step's message carried inline, when this worker may use them without measuring:
   * inline objects are at most INLINE_PARENTS_BYTES of JSON text, at least their results' sum, so
   * under a bound of that or more they fit it. Under a smaller bound they are read (and measured)
   * here instead, or a step released with its parents inline ran with more than the bound allows.
   */
  inline(parents: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
    return this.maxBytes >= INLINE_PARENTS_BYTES ? parents : undefined;
  }

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
      const { rows } = await this.pool.query<{ child: string; over: string | null; key: string | null; result: string | null }>(READ_PARENT_RESULTS, [
        textArray(batch.map((w) => w.id)),
        this.maxBytes,
      ]);
      const byChild = new Map<string, { parents: Record<string, unknown>; over: number | null }>();
      for (const r of rows) {
        let entry = byChild.get(r.child);
        if (!entry) byChild.set(r.child, (entry = { parents: {}, over: r.over === null ? null : Number(r.over) }));
        if (r.key !== null) entry.parents[r.key] = r.result === null ? null : JSON.parse(r.result);
      }
      for (const w of batch) {
        const entry = byChild.get(w.id);
        if (!entry) w.resolve({});
        else if (entry.over !== null) w.reject(new ParentResultsTooLarge(entry.over, this.maxBytes));
        else w.resolve(entry.parents);
      }
    } catch (err) {
      for (const w of batch) w.reject(err);
    }
  }
}

/**
 * Per step ($1): `over`, the running total of its parents' results as JSON text (4 bytes for a null)
 * at the first parent that takes it past $2, with no parents' rows; else one row per parent (or one
 * with a null key if it has none). The WindowAgg reads its input only as far as the row the LIMIT
 * asks for, so a fan-in over the bound costs about $2 to measure, not the sum of its parents'
 * results (a fan-in of 4,100 parents of 64 KiB took 1.2 s, rendering 262 MB of text to measure it,
 * on every lease). Each parent is reached by id (LATERAL with LIMIT): a join may hash all of tasks.
 * OFFSET 0 keeps the second LATERAL a subquery run per step (and not at all for one over the bound):
 * flattened into the join, it read every edge and parent of the batch's steps before the filter.
 */
const READ_PARENT_RESULTS = `SELECT c.child, o.bytes AS over, p.step_key AS key, p.result::text AS result
       FROM unnest($1::uuid[]) c(child)
       LEFT JOIN LATERAL (
         SELECT r.bytes FROM (SELECT sum(COALESCE(octet_length(p.result::text), 4)) OVER (ROWS UNBOUNDED PRECEDING) AS bytes
                                FROM workflow_edges e CROSS JOIN LATERAL (SELECT t.result FROM tasks t WHERE t.id = e.parent LIMIT 1) p
                               WHERE e.child = c.child) r
          WHERE r.bytes > $2 LIMIT 1
       ) o ON true
       LEFT JOIN LATERAL (
         SELECT p.step_key, p.result FROM workflow_edges e CROSS JOIN LATERAL (SELECT t.step_key, t.result FROM tasks t WHERE t.id = e.parent LIMIT 1) p
          WHERE e.child = c.child AND o.bytes IS NULL OFFSET 0
       ) p ON true`;
