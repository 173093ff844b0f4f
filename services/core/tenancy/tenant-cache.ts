/**
 * Tenant rows as the API needs them on every request: each is read from Postgres at most once per
 * `ttlMs` (and concurrent misses share one query), so a changed limit applies within that time.
 */
import type { Pool } from 'pg';
import type { TenantRow } from './tenant';
import { getTenants } from './tenant-store';

interface Entry {
  at: number;
  row: TenantRow | undefined;
}

export class TenantCache {
  private readonly rows = new Map<string, Entry>();
  private readonly pending = new Map<string, Promise<TenantRow | undefined>>();

  constructor(
    private readonly pool: Pool,
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  /** The tenant's row (undefined: no row, so every setting is the default); synchronous when cached. */
  get(name: string): TenantRow | undefined | Promise<TenantRow | undefined> {
    const e = this.rows.get(name);
    if (e && Date.now() - e.at < this.ttlMs) return e.row;
    let p = this.pending.get(name);
    if (!p) {
      p = getTenants(this.pool, [name])
        .then(([row]) => {
          this.rows.delete(name);
          this.rows.set(name, { at: Date.now(), row });
          for (const old of this.rows.keys()) {
            if (this.rows.size <= this.maxEntries) break;
            this.rows.delete(old);
          }
          return row;
        })
        .finally(() => this.pending.delete(name));
      this.pending.set(name, p);
    }
    return p;
  }
}
