/**
 * A readiness check's own Postgres connection: a pool saturated by a service's work must not make
 * it look unready (and be restarted or taken out of rotation) while Postgres itself answers, and
 * the check must not take a connection that work needs.
 */
import { Pool, type PoolClient } from 'pg';
import type { Logger } from '../observability/logger';
import { postgresConnection } from './postgres-connection';
import { survivesLostConnections } from './postgres';
import { DependencyTimeoutError } from '../process/with-timeout';

/** One connection, opened again when lost; connecting takes at most `timeoutMs`. */
export function createReadinessPool(url: string, timeoutMs: number, applicationName: string, log?: Logger): Pool {
  const pool = new Pool({ ...postgresConnection(url), max: 1, application_name: applicationName, connectionTimeoutMillis: timeoutMs });
  pool.on('error', (err) => log?.warn({ err }, 'idle readiness connection failed'));
  survivesLostConnections(pool);
  return pool;
}

/** SELECT 1 within `timeoutMs`; a connection that does not answer in time is closed, not reused. */
export async function pingPostgres(pool: Pool, timeoutMs: number): Promise<void> {
  const client: PoolClient = await pool.connect();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.query('SELECT 1'),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new DependencyTimeoutError(`no answer within ${timeoutMs} ms`)), timeoutMs))),
    ]);
    client.release();
  } catch (err) {
    // A hung connection would otherwise hold the pool's only slot and fail every later check.
    client.release(err as Error);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
