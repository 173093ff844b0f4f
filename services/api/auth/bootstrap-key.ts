/** BOOTSTRAP_ADMIN_KEY: the first admin key of a deployment, from a Secret; only its hash is stored. */
import type { Pool } from 'pg';
import type { Logger } from '../../core/observability/logger';
import { hashKey, keyId } from '../../core/tenancy/api-key';
import { ensureKey } from '../../core/tenancy/key-store';
import { DEFAULT_TENANT } from '../../core/tenancy/tenant';

export async function ensureBootstrapKey(pool: Pool, key: string, log: Logger): Promise<void> {
  const id = keyId(key);
  if (id === null) throw new Error('BOOTSTRAP_ADMIN_KEY is not a valid key');
  const result = await ensureKey(pool, id, hashKey(key), DEFAULT_TENANT, ['admin']);
  log.info({ keyId: id, result }, 'bootstrap admin key present');
}
