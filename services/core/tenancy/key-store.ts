/** Postgres queries on API keys. Only a key's hash is ever written; its text is returned once, by createKey. */
import type { Pool } from 'pg';
import { generateKey, Scope } from './api-key';
import { ensureTenant } from './tenant-store';

export interface KeyRow {
  id: string;
  tenant: string;
  scopes: Scope[];
  description: string;
  created_at: Date;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
}

/** A key as the API checks it: its hash, and whether Postgres's clock says it is still valid. */
export interface KeyCredential {
  id: string;
  tenant: string;
  scopes: Scope[];
  secret_hash: Buffer;
  active: boolean;
}

const COLUMNS = 'id, tenant, scopes, description, created_at, expires_at, revoked_at, last_used_at';

export interface CreateKeyInput {
  tenant: string;
  scopes: Scope[];
  /** Milliseconds from now; null: never expires. */
  expiresInMs: number | null;
  description?: string;
}

/** Creates the key (and its tenant when missing) in one transaction; returns the row and the key text. */
export async function createKey(pool: Pool, input: CreateKeyInput): Promise<KeyRow & { key: string }> {
  const { id, key, hash } = generateKey();
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await ensureTenant(client, input.tenant);
    const { rows } = await client.query<KeyRow>(
      `INSERT INTO api_keys (id, tenant, secret_hash, scopes, description, expires_at)
       VALUES ($1, $2, $3, $4::text[], $5, CASE WHEN $6::bigint IS NULL THEN NULL ELSE now() + $6::bigint * interval '1 millisecond' END)
       RETURNING ${COLUMNS}`,
      [id, input.tenant, hash, input.scopes, input.description ?? '', input.expiresInMs],
    );
    await client.query('COMMIT');
    return { ...rows[0]!, key };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/**
 * Makes sure a key given in configuration (BOOTSTRAP_ADMIN_KEY) exists with its hash; a different
 * key already stored under the same id is an error, never overwritten. The comparison is a second
 * statement: one statement's snapshot cannot see the row a replica starting beside it just committed.
 */
export async function ensureKey(pool: Pool, id: string, hash: Buffer, tenant: string, scopes: Scope[]): Promise<'created' | 'exists'> {
  await ensureTenant(pool, tenant);
  const inserted = await pool.query(
    `INSERT INTO api_keys (id, tenant, secret_hash, scopes, description) VALUES ($1, $2, $3, $4::text[], 'bootstrap admin key')
     ON CONFLICT (id) DO NOTHING`,
    [id, tenant, hash, scopes],
  );
  if (inserted.rowCount === 1) return 'created';
  const { rows } = await pool.query<{ same: boolean }>('SELECT secret_hash = $2 AS same FROM api_keys WHERE id = $1', [id, hash]);
  if (rows[0]?.same !== true) throw new Error(`an API key with id ${id} exists with another secret`);
  return 'exists';
}

export async function listKeys(pool: Pool, tenant?: string): Promise<KeyRow[]> {
  const { rows } = tenant === undefined
    ? await pool.query<KeyRow>(`SELECT ${COLUMNS} FROM api_keys ORDER BY tenant, created_at, id`)
    : await pool.query<KeyRow>(`SELECT ${COLUMNS} FROM api_keys WHERE tenant = $1 ORDER BY created_at, id`, [tenant]);
  return rows;
}

/** Revokes a key (a second revocation keeps the first time); null when there is no such key. */
export async function revokeKey(pool: Pool, id: string): Promise<KeyRow | null> {
  const { rows } = await pool.query<KeyRow>(`UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING ${COLUMNS}`, [id]);
  return rows[0] ?? null;
}

/** The credentials of these keys (missing ids are absent from the map). */
export async function findCredentials(pool: Pool, ids: string[]): Promise<Map<string, KeyCredential>> {
  const { rows } = await pool.query<KeyCredential>({
    name: 'find-key-credentials',
    text: `SELECT id, tenant, scopes, secret_hash,
                  revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) AS active
             FROM api_keys WHERE id = ANY($1::text[])`,
    values: [ids],
  });
  return new Map(rows.map((r) => [r.id, r]));
}

/** Ids of up to `limit` active keys, the most recently used first (never used ones last). */
export async function recentKeyIds(pool: Pool, limit: number): Promise<string[]> {
  const { rows } = await pool.query<{ id: string }>(
    `SELECT id FROM api_keys WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
      ORDER BY last_used_at DESC NULLS LAST, created_at DESC LIMIT $1`,
    [limit],
  );
  return rows.map((r) => r.id);
}

/** Records that these keys were used now (batched by the API, so at most one write per key per flush). */
export async function markKeysUsed(pool: Pool, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await pool.query({ name: 'mark-keys-used', text: 'UPDATE api_keys SET last_used_at = now() WHERE id = ANY($1::text[])', values: [ids] });
}
