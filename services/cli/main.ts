#!/usr/bin/env node
/**
 * The operator CLI (`task-scheduler …`, or `npm run -s cli -- …`): API keys and tenants, in the
 * Postgres named by POSTGRES_URL. Exit status: 0 done, 1 failed (e.g. Postgres unreachable, no such
 * key), 2 bad arguments (nothing was written).
 */
import type { Pool } from 'pg';
import { SETTINGS } from '../core/config/config';
import { createPgPool } from '../core/db/postgres';
import { safeErrorText } from '../core/observability/logger';
import { UsageError } from './args';
import { Io, processIo } from './io';
import { KEYS_USAGE, keysCommand } from './keys-command';
import { TENANTS_USAGE, tenantsCommand } from './tenants-command';

const USAGE = `usage: task-scheduler <command>
  ${KEYS_USAGE}
  ${TENANTS_USAGE}
Postgres: POSTGRES_URL (default ${SETTINGS.POSTGRES_URL.default})
`;

export async function runCli(argv: string[], env: NodeJS.ProcessEnv, io: Io): Promise<number> {
  let pool: Pool | undefined;
  // Connects only once the arguments are known to be good.
  const getPool = () => (pool ??= createPgPool(SETTINGS.POSTGRES_URL.parse(env.POSTGRES_URL ?? SETTINGS.POSTGRES_URL.default), 2, 'task-scheduler-cli'));
  try {
    const [command, ...rest] = argv;
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
      io.out(USAGE);
      return command === undefined ? 2 : 0;
    }
    if (command === 'keys') return await keysCommand(rest, getPool, io);
    if (command === 'tenants') return await tenantsCommand(rest, getPool, io);
    throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`task-scheduler: ${err.message}\n${USAGE}`);
      return 2;
    }
    io.err(`task-scheduler: ${safeErrorText(err)}\n`);
    return 1;
  } finally {
    await pool?.end().catch(() => undefined);
  }
}

if (require.main === module) {
  void runCli(process.argv.slice(2), process.env, processIo).then((code) => process.exit(code));
}
