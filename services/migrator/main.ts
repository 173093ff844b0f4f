/** Migrator entrypoint: `npm run migrate`, and the migrator image's command. Exits non-zero on failure. */
import { ConfigError, loadConfig } from '../core/config/config';
import { createLogger } from '../core/observability/logger';
import { migrate } from './migrate';

async function main(): Promise<void> {
  const cfg = loadConfig(process.env, 'migrator');
  const log = createLogger('migrator', cfg.LOG_LEVEL);
  const result = await migrate({ databaseUrl: cfg.POSTGRES_URL, dir: cfg.MIGRATIONS_DIR || undefined, log, lockTimeoutMs: cfg.MIGRATION_LOCK_TIMEOUT_MS });
  log.info({ applied: result.applied, version: result.version }, result.applied.length ? 'migrations applied' : 'schema up to date');
}

main().catch((err: unknown) => {
  const msg = err instanceof ConfigError ? err.message : `migration failed: ${(err as Error).message}`;
  process.stderr.write(`${msg}\n`);
  process.exit(1);
});
