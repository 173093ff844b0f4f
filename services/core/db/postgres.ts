/** The Postgres pool, with errors on idle clients logged instead of crashing the process. */
import { Pool } from 'pg';
import type { Logger } from '../observability/logger';

export function createPgPool(url: string, max: number, name: string, log?: Logger): Pool {
  const pool = new Pool({
    connectionString: url,
    max,
    application_name: name,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30000,
  });
  pool.on('error', (err) => log?.warn({ err }, 'idle postgres client failed'));
  return pool;
}
