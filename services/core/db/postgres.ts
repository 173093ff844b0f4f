/** The Postgres pool, with errors on idle clients logged instead of crashing the process, and TLS as the URL asks (postgres-connection.ts). */
import { Pool } from 'pg';
import type { Logger } from '../observability/logger';
import { postgresConnection } from './postgres-connection';

export function createPgPool(url: string, max: number, name: string, log?: Logger): Pool {
  const pool = new Pool({
    ...postgresConnection(url),
    max,
    application_name: name,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30000,
    // The hot statements are named (prepared once per connection). In the default plan cache mode
    // Postgres plans them afresh for their first five runs, and again on every run where it judges
    // the generic plan costlier than custom ones, which it often does for small batches: measured
    // in the burst, one outcome write in six was re-planned, at ~0.4 ms of CPU each, and Postgres
    // spent 12 % less CPU with generic plans only. Those plans reach every row by key (see STATUS
    // in attempt-store.ts), and the stats refresher re-plans them as tables grow. A SET that the
    // pool awaits before handing the connection out, rather than a startup option: connection
    // poolers such as PgBouncer refuse unknown startup parameters.
    onConnect: async (client) => {
      await client.query('SET plan_cache_mode = force_generic_plan');
    },
  });
  pool.on('error', (err) => log?.warn({ err }, 'idle postgres client failed'));
  survivesLostConnections(pool);
  return pool;
}

/**
 * pg reports a connection Postgres ended (a restart, a failover, pg_terminate_backend) as an
 * `error` event on its client, and a pool listens only while the client is idle: one checked out
 * (a transaction, the stats refresher's ANALYZE, a readiness ping) had no listener, and the event
 * killed the process. The caller learns of the loss from its statement (or its next one: "not
 * queryable"), and the pool drops the connection when it comes back; idle ones the pool's own
 * `error` event reports.
 */
export function survivesLostConnections(pool: Pool): void {
  pool.on('connect', (client) => client.on('error', () => undefined));
}
