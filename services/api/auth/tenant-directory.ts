/**
 * Whether a tenant an admin key names exists (a row in `tenants`: made with its first API key or by
 * `tenants set`), so a mistyped `?tenant=` is refused rather than filling a tenant no admin view
 * lists. Tenants are never removed, so those found are remembered; those not found are asked again
 * (one may have been created since).
 */
import type { Pool } from 'pg';
import { DEFAULT_TENANT } from '../../core/tenancy/tenant';
import { badRequest } from '../problem';

/** Most names remembered; past it the memory starts again (a query per name then). */
const MAX_KNOWN = 10_000;

export class TenantDirectory {
  private readonly known = new Set<string>([DEFAULT_TENANT]);

  constructor(private readonly pool: Pool) {}

  /** Resolves when `name` exists; otherwise a 400 naming `tenant`. */
  async require(name: string): Promise<void> {
    if (this.known.has(name)) return;
    const { rowCount } = await this.pool.query('SELECT 1 FROM tenants WHERE name = $1', [name]);
    if (!rowCount) {
      throw badRequest(`there is no tenant named ${name}`, [{ field: 'tenant', message: 'names no tenant (a tenant is made with its first API key, or by the CLI\'s tenants set)' }]);
    }
    if (this.known.size >= MAX_KNOWN) this.known.clear();
    this.known.add(name);
  }
}
