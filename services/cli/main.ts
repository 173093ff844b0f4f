#!/usr/bin/env node
/**
 * The operator CLI (`task-scheduler …`, or `npm run -s cli -- …`): API keys and tenants in the
 * Postgres named by POSTGRES_URL; tasks, the dead-letter queue, the queues, schedules and workflows through the API;
 * repartition on Redis itself (services stopped).
 * Exit status: 0 done, 1 failed (the service refused, e.g. 409, or could not be reached; Postgres
 * or Redis unreachable; no such key; repartition refused), 2 bad arguments (nothing was sent or written). Every failure is one
 * line on stderr.
 */
import type { Pool } from 'pg';
import { ApiError, ConnectionError, ResponseError } from '../client';
import { SETTINGS } from '../core/config/config';
import { createPgPool } from '../core/db/postgres';
import { safeErrorText } from '../core/observability/logger';
import { API_USAGE } from './api-client';
import { UsageError } from './args';
import { DLQ_USAGE, dlqCommand } from './dlq-command';
import { Io, processIo } from './io';
import { KEYS_USAGE, keysCommand } from './keys-command';
import { printable } from './output';
import { QUEUES_USAGE, queuesCommand } from './queues-command';
import { REPARTITION_ENV, REPARTITION_USAGE, repartitionCommand } from './repartition-command';
import { TIME_USAGE } from './task-filter';
import { SCHEDULES_USAGE, schedulesCommand } from './schedules-command';
import { TASKS_USAGE, tasksCommand } from './tasks-command';
import { TENANTS_USAGE, tenantsCommand } from './tenants-command';
import { WORKFLOWS_USAGE, workflowsCommand } from './workflows-command';

const USAGE = `usage: task-scheduler <command>
  ${KEYS_USAGE}
  ${TENANTS_USAGE}
  ${TASKS_USAGE}
  ${DLQ_USAGE}
  ${QUEUES_USAGE}
  ${SCHEDULES_USAGE}
  ${WORKFLOWS_USAGE}
  ${REPARTITION_USAGE}
keys, tenants: Postgres at POSTGRES_URL (default ${SETTINGS.POSTGRES_URL.default})
tasks, dlq, queues, schedules, workflows: ${API_USAGE}
${REPARTITION_ENV}
${TIME_USAGE}
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
    if (command === 'tasks') return await tasksCommand(rest, env, io);
    if (command === 'dlq') return await dlqCommand(rest, env, io);
    if (command === 'queues') return await queuesCommand(rest, env, io);
    if (command === 'schedules') return await schedulesCommand(rest, env, io);
    if (command === 'workflows') return await workflowsCommand(rest, env, io);
    if (command === 'repartition') return await repartitionCommand(rest, env, io);
    throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`task-scheduler: ${oneLine(err.message)} (usage: task-scheduler help)\n`);
      return 2;
    }
    if (err instanceof ApiError) {
      io.err(`task-scheduler: ${oneLine(err.message)} (HTTP ${err.status})\n`);
      return 1;
    }
    if (err instanceof ConnectionError || err instanceof ResponseError) {
      io.err(`task-scheduler: ${oneLine(err.message)}\n`);
      return 1;
    }
    io.err(`task-scheduler: ${oneLine(safeErrorText(err))}\n`);
    return 1;
  } finally {
    await pool?.end().catch(() => undefined);
  }
}

// A proxy's page, a file's name or a snippet of a bad file may hold control characters: escaped as the tables do.
const oneLine = (text: string) => printable(text.replace(/\s*\n\s*/g, ' '));

if (require.main === module) {
  // A reader that stops early (`| head`, a failed `| jq`) closes the pipe: what is left is not
  // wanted, which is no crash with a stack trace.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(0);
      throw err;
    });
  }
  void runCli(process.argv.slice(2), process.env, processIo).then((code) => process.exit(code));
}
