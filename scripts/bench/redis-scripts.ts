/**
 * `npx tsx scripts/bench/redis-scripts.ts`: what each queue script costs Redis per task, from
 * Redis's own accounting (INFO commandstats: microseconds spent in EVALSHA), at the batch sizes of
 * a burst (a few tasks per call) and of a backlog drain (hundreds). Redis is single-threaded and
 * shared by every API and worker process, so its time per task bounds the whole system.
 * Uses the private `bench` Redis (scripts/local-services.sh starts it).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import Redis from 'ioredis';
import { RedisQueue } from '../../services/core/queue/redis-queue';
import type { FinishItem, Lease } from '../../services/core/queue/queue';

const ROOT = path.resolve(__dirname, '../..');
const TASKS = Number(process.env.BENCH_TASKS ?? 50_000);
/** Tasks are spread over this many tenants (task i belongs to tenant i mod BENCH_TENANTS). */
const TENANTS = Number(process.env.BENCH_TENANTS ?? 1);

function benchRedisAddr(): string {
  execFileSync('bash', [path.join(ROOT, 'scripts/local-services.sh'), 'start', 'bench'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const m = /^REDIS_ADDR=(.*)$/m.exec(readFileSync(path.join(ROOT, '.data/bench/env'), 'utf8'));
  return m![1]!;
}

/** Microseconds Redis spent in EVALSHA since the last reset. */
async function scriptMicros(admin: Redis): Promise<number> {
  const m = /cmdstat_evalsha:calls=\d+,usec=(\d+)/.exec(await admin.info('commandstats'));
  return m ? Number(m[1]) : 0;
}

async function measure(admin: Redis, step: () => Promise<void>): Promise<number> {
  await admin.config('RESETSTAT');
  await step();
  return (await scriptMicros(admin)) / TASKS;
}

async function run(queue: RedisQueue, admin: Redis, batch: number): Promise<Record<string, number>> {
  await admin.flushall();
  const ids = Array.from({ length: TASKS }, (_, i) => `task-${i}`);
  const chunks = (xs: string[]) => Array.from({ length: Math.ceil(xs.length / batch) }, (_, i) => xs.slice(i * batch, (i + 1) * batch));
  const enqueue = await measure(admin, async () => {
    for (const c of chunks(ids)) {
      await queue.enqueue(c.map((id, j) => ({ id, tenant: `t${Number(id.slice(5)) % TENANTS}`, type: 'noop', priority: (['critical', 'high', 'default', 'low'] as const)[j % 4]!, payload: {}, maxAttempts: 3, createdAtMs: Date.now(), attempts: 0 })));
    }
  });
  const leases: Lease[] = [];
  const lease = await measure(admin, async () => {
    for (;;) {
      const got = await queue.lease({ max: batch, visibilityMs: 600_000, owner: 'bench' });
      if (got.length === 0) break;
      leases.push(...got);
    }
  });
  // The Go mix's outcomes: most succeed, some retry, a few are dead.
  const outcomes: FinishItem[] = leases.map((l, i) => ({
    id: l.message.id,
    token: l.token,
    priority: l.message.priority,
    outcome: i % 20 < 17 ? 'succeeded' : i % 20 < 19 ? 'retrying' : 'dead',
    delayMs: 60_000,
    settleAttempts: l.attempt,
  }));
  const finish = await measure(admin, async () => {
    for (let i = 0; i < outcomes.length; i += batch) await queue.finish(outcomes.slice(i, i + batch));
  });
  return { enqueue, lease, finish, total: enqueue + lease + finish };
}

async function main(): Promise<void> {
  const [host, port] = benchRedisAddr().split(':');
  const redis = new Redis(Number(port), host!, { enableAutoPipelining: false });
  const admin = new Redis(Number(port), host!);
  const queue = new RedisQueue(redis, { prefix: 'bench-scripts', strategy: 'weighted', weights: { critical: 8, high: 4, default: 2, low: 1 } });
  console.log(`Redis µs per task (EVALSHA time from INFO commandstats), ${TASKS} tasks of ${TENANTS} tenant(s)`);
  for (const batch of [4, 16, 250]) {
    const r = await run(queue, admin, batch);
    console.log(`batch ${String(batch).padStart(3)}: ${Object.entries(r).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}`);
  }
  await admin.flushall();
  await Promise.all([redis.quit(), admin.quit()]);
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
