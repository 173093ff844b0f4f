/** `repartition`: moves the queue in Redis to another REDIS_PARTITIONS (core/queue/repartition.ts), with the api and workers stopped. */
import { SETTINGS, SettingName } from '../core/config/config';
import type Redis from 'ioredis';
import type { Cluster } from 'ioredis';
import { createRedisClient, redisEndpoint } from '../core/db/redis';
import { repartition, RepartitionRefused, RepartitionSummary } from '../core/queue/repartition';
import { parse, UsageError } from './args';
import type { Io } from './io';
import { json } from './output';

export const REPARTITION_USAGE = 'repartition --to N [--from M] [--force] [--json]   (api and workers stopped)';
export const REPARTITION_ENV = 'repartition: Redis at REDIS_ADDR or REDIS_CLUSTER_NODES (REDIS_USERNAME, REDIS_PASS, REDIS_TLS, REDIS_TLS_CA_FILE), keys under REDIS_KEY_PREFIX';

const REDIS_SETTINGS = ['REDIS_ADDR', 'REDIS_CLUSTER_NODES', 'REDIS_USERNAME', 'REDIS_PASS', 'REDIS_TLS', 'REDIS_TLS_CA_FILE', 'REDIS_KEY_PREFIX'] as const;
const MAX_PARTITIONS = 256; // REDIS_PARTITIONS' own bound (config.ts)
const CONNECT_TIMEOUT_MS = 10_000;

export async function repartitionCommand(args: string[], env: NodeJS.ProcessEnv, io: Io): Promise<number> {
  const { values } = parse(args, { to: { type: 'string' }, from: { type: 'string' }, force: { type: 'boolean' }, json: { type: 'boolean' } }, { min: 0, max: 0, names: '' });
  if (values.to === undefined) throw new UsageError('--to is required (the new REDIS_PARTITIONS)');
  const to = partitions(values.to, '--to');
  const from = values.from === undefined ? undefined : partitions(values.from, '--from');
  const cfg = redisSettings(env);
  const redis = createRedisClient({ ...redisEndpoint(cfg), name: 'task-scheduler-cli', offlineQueue: true });
  try {
    const problem = await connected(redis);
    if (problem !== null) {
      const where = cfg.REDIS_CLUSTER_NODES.length ? cfg.REDIS_CLUSTER_NODES.join(',') : cfg.REDIS_ADDR;
      io.err(`task-scheduler: Redis at ${where} not reachable: ${problem}\n`);
      return 1;
    }
    let summary: RepartitionSummary;
    try {
      summary = await repartition(redis, { prefix: cfg.REDIS_KEY_PREFIX, to, from, force: values.force === true });
    } catch (err) {
      if (!(err instanceof RepartitionRefused)) throw err;
      io.err(`task-scheduler: ${err.message}\n`);
      return 1;
    }
    io.out(values.json ? json(summary) : summaryText(summary));
    return 0;
  } finally {
    // QUIT would wait for a connection that never came.
    if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect());
    else redis.disconnect();
  }
}

/**
 * null once the connection is ready, else why not: a person waits at the terminal, so the first
 * connection error is the answer rather than a retry loop.
 */
function connected(redis: Redis | Cluster): Promise<string | null> {
  redis.on('error', () => undefined); // a failed command says why; later connection errors would repeat it
  if (redis.status === 'ready') return Promise.resolve(null);
  return new Promise((resolve) => {
    const done = (problem: string | null) => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      redis.off('error', onError);
      resolve(problem);
    };
    const onReady = () => done(null);
    const onError = (err: Error) => done(err.message);
    const timer = setTimeout(() => done(`no answer within ${CONNECT_TIMEOUT_MS / 1000}s`), CONNECT_TIMEOUT_MS);
    redis.on('ready', onReady);
    redis.on('error', onError);
  });
}

function partitions(text: string | boolean | undefined, option: string): number {
  if (typeof text !== 'string' || !/^\d{1,3}$/.test(text) || Number(text) < 1 || Number(text) > MAX_PARTITIONS) {
    throw new UsageError(`${option} must be a whole number from 1 to ${MAX_PARTITIONS}, got ${JSON.stringify(text)}`);
  }
  return Number(text);
}

type RedisSettings = { [K in (typeof REDIS_SETTINGS)[number]]: ReturnType<(typeof SETTINGS)[K]['parse']> };

/** The Redis settings as the services read them; a bad one is a usage error (nothing was touched). */
function redisSettings(env: NodeJS.ProcessEnv): RedisSettings {
  const out: Record<string, unknown> = {};
  for (const name of REDIS_SETTINGS as readonly SettingName[]) {
    const raw = env[name] ?? SETTINGS[name].default;
    try {
      out[name] = SETTINGS[name].parse(raw);
    } catch (err) {
      throw new UsageError(`${name}=${JSON.stringify(raw)}: ${(err as Error).message}`);
    }
  }
  const cfg = out as RedisSettings;
  if (cfg.REDIS_TLS_CA_FILE !== '' && cfg.REDIS_TLS !== 'true') throw new UsageError('REDIS_TLS_CA_FILE needs REDIS_TLS=true');
  return cfg;
}

export function summaryText(s: RepartitionSummary): string {
  if (!s.changed) return `the queue (prefix ${s.prefix}) is laid out in ${s.to} partition(s) already; nothing to do\n`;
  const lines = [
    `repartitioned prefix ${s.prefix} from ${s.from} to ${s.to} partition(s) in ${s.seconds}s${s.resumed ? ' (finished an interrupted run)' : ''}`,
    `  tasks moved: ${s.tasks} (ready ${s.ready}, retrying ${s.retrying}, dead ${s.dead}); tombstones ${s.tombstones}`,
    `  tenants: ${s.tenants} (${s.tenantsMoved} changed partition)`,
  ];
  if (s.leasesDropped > 0) lines.push(`  leases dropped: ${s.leasesDropped} (--force; the reconciler recovers those tasks from Postgres)`);
  lines.push(`  now start the api and workers with REDIS_PARTITIONS=${s.to}`);
  return `${lines.join('\n')}\n`;
}
