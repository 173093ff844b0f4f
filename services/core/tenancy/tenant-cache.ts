/**
 * Tenant rows as the API needs them on every request: each is read from Postgres at most once per
 * `ttlMs` (and concurrent misses share one query), so a changed limit applies within that time.
 */
import { performance } from 'node:perf_hooks';
import type { Pool } from 'pg';
import type { TenantRow } from './tenant';
import { getTenants } from './tenant-store';

interface Entry {
  /** When its read began, on the monotonic clock (a wall clock set back must not keep an old row). */
  at: number;
  row: TenantRow | undefined;
}

export class TenantCache {
  private readonly rows = new Map<string, Entry>();
  /** Reads out, by when each began. */
  private readonly pending = new Map<string, { at: number; row: Promise<TenantRow | undefined> }>();

  constructor(
    private readonly pool: Pool,
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  /** The tenant's row (undefined: no row, so every setting is the default); synchronous when cached. */
  get(name: string): TenantRow | undefined | Promise<TenantRow | undefined> {
    const now = performance.now();
    const e = this.rows.get(name);
    if (e && now - e.at < this.ttlMs) return e.row;
    // A read is as old as its start: one begun ttlMs or more ago may predate a change this caller
    // came after, so the caller reads again rather than share it.
    const out = this.pending.get(name);
    if (out && now - out.at < this.ttlMs) return out.row;
    const row = getTenants(this.pool, [name])
      .then(([found]) => {
        // Reads may overlap: a newer one that answered first stays.
        if (!((this.rows.get(name)?.at ?? -Infinity) > now)) {
          this.rows.delete(name);
          this.rows.set(name, { at: now, row: found });
        }
        for (const old of this.rows.keys()) {
          if (this.rows.size <= this.maxEntries) break;
          this.rows.delete(old);
        }
        return found;
      })
      .finally(() => {
        if (this.pending.get(name)?.row === row) this.pending.delete(name);
      });
    this.pending.set(name, { at: now, row });
    return row;
  }
}
