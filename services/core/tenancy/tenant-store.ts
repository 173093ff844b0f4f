/** Postgres queries on tenants (the CLI's and the API's side). */
import type { Pool, PoolClient } from 'pg';
import { TENANT_SETTINGS, TenantChanges, TenantRow } from './tenant';

const COLUMNS = 'name, rate_limit, burst, max_unfinished, max_running, weight, created_at, updated_at';

/** Creates the tenant when missing (with default settings); changes nothing otherwise. */
export async function ensureTenant(db: Pool | PoolClient, name: string): Promise<void> {
  await db.query('INSERT INTO tenants (name) VALUES ($1) ON CONFLICT (name) DO NOTHING', [name]);
}

/** Creates or updates a tenant in one statement; fields not in `changes` keep their value. */
export async function setTenant(db: Pool | PoolClient, name: string, changes: TenantChanges): Promise<TenantRow> {
  const fields = TENANT_SETTINGS.filter((f) => changes[f] !== undefined);
  const values = fields.map((f) => changes[f] ?? null);
  const { rows } = await db.query<TenantRow>(
    `INSERT INTO tenants (name${fields.map((f) => `, ${f}`).join('')})
     VALUES ($1${fields.map((_, i) => `, $${i + 2}`).join('')})
     ON CONFLICT (name) DO UPDATE SET updated_at = now()${fields.map((f) => `, ${f} = EXCLUDED.${f}`).join('')}
     RETURNING ${COLUMNS}`,
    [name, ...values],
  );
  return rows[0]!;
}

export async function listTenants(db: Pool | PoolClient): Promise<TenantRow[]> {
  const { rows } = await db.query<TenantRow>(`SELECT ${COLUMNS} FROM tenants ORDER BY name`);
  return rows;
}

export async function getTenants(db: Pool | PoolClient, names: string[]): Promise<TenantRow[]> {
  const { rows } = await db.query<TenantRow>(`SELECT ${COLUMNS} FROM tenants WHERE name = ANY($1::text[])`, [names]);
  return rows;
}

/** Unfinished tasks per tenant (tenants with none are absent), scheduled ones included; walks the unfinished and scheduled indexes. */
export async function countUnfinished(db: Pool | PoolClient): Promise<Map<string, number>> {
  const { rows } = await db.query<{ tenant: string; n: number }>(
    `SELECT tenant, count(*)::int AS n FROM tasks WHERE status IN ('waiting', 'scheduled', 'queued', 'running', 'retrying') GROUP BY tenant`,
  );
  return new Map(rows.map((r) => [r.tenant, r.n]));
}

/** Whether any tenant has an unfinished-task cap of its own. */
export async function anyUnfinishedCap(db: Pool | PoolClient): Promise<boolean> {
  const { rows } = await db.query('SELECT 1 FROM tenants WHERE max_unfinished > 0 LIMIT 1');
  return rows.length > 0;
}
