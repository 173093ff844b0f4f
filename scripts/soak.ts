/**
 * `npm run soak`: a long run at a steady rate with a short retention, showing that Postgres's size
 * and Redis's memory level off once retention catches up. One api and two workers against a
 * private Postgres and Redis (profile `soak`), an open loop posting tasks (98 % noop, 2 %
 * always_fail with no retries, so dead tasks and their dead-letter entries come and go too), and a
 * sample every SOAK_SAMPLE_S seconds, printed as a JSON line; a summary at the end compares the
 * first sample after retention caught up with the last.
 *
 *   SOAK_MINUTES (30)  SOAK_RATE (1400 tasks/s: about half of what api + workers sustain on 2 cores)
 *   SOAK_RETENTION_MS (120000, every final status)  SOAK_SAMPLE_S (30)
 */
import { performance } from 'node:perf_hooks';
import Redis from 'ioredis';
import { Client } from 'pg';
import { migrate } from '../services/migrator/migrate';
import { generateKey } from '../services/core/tenancy/api-key';
import { ChildHandle, freePort, killAllChildren, spawnService } from '../test/support/processes';
import { poster } from './bench/http-driver';
import { startLocalServices, stopLocalServices } from './local-services';

const MINUTES = Number(process.env.SOAK_MINUTES ?? 30);
const RATE = Number(process.env.SOAK_RATE ?? 1400);
const RETENTION_MS = Number(process.env.SOAK_RETENTION_MS ?? 120_000);
const SAMPLE_S = Number(process.env.SOAK_SAMPLE_S ?? 30);
const KEY = generateKey().key;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Sample {
  minute: number;
  sent: number;
  tasksRows: number;
  tasksMb: number;
  runsMb: number;
  databaseMb: number;
  redisMb: number;
  deadLetters: number;
}

async function freshDatabase(adminUrl: string): Promise<string> {
  const admin = new Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query('DROP DATABASE IF EXISTS soak WITH (FORCE)');
  await admin.query('CREATE DATABASE soak');
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = '/soak';
  await migrate({ databaseUrl: url.toString() });
  return url.toString();
}

async function sample(db: Client, redis: Redis, minute: number, sent: number): Promise<Sample> {
  const { rows } = await db.query<{ tasks_rows: string; tasks: string; runs: string; db: string }>(
    `SELECT (SELECT n_live_tup FROM pg_stat_user_tables WHERE relname = 'tasks') AS tasks_rows,
            pg_total_relation_size('tasks') AS tasks, pg_total_relation_size('task_runs') AS runs, pg_database_size(current_database()) AS db`,
  );
  const mem = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
  let deadLetters = 0;
  for (const p of ['critical', 'high', 'default', 'low']) deadLetters += await redis.llen(`{soak}:dlq:${p}`);
  const mb = (b: string | number) => Math.round((Number(b) / 1048576) * 10) / 10;
  const r = rows[0]!;
  return { minute, sent, tasksRows: Number(r.tasks_rows), tasksMb: mb(r.tasks), runsMb: mb(r.runs), databaseMb: mb(r.db), redisMb: mb(mem), deadLetters };
}

async function main(): Promise<void> {
  const env = startLocalServices('soak');
  const dbUrl = await freshDatabase(env.PG_ADMIN_URL!);
  const app = (extra: Record<string, string>) => ({
    POSTGRES_URL: dbUrl,
    REDIS_ADDR: env.REDIS_ADDR!,
    REDIS_KEY_PREFIX: 'soak',
    LOG_LEVEL: 'info',
    BOOTSTRAP_ADMIN_KEY: KEY,
    RETENTION_SUCCEEDED_MS: String(RETENTION_MS),
    RETENTION_DEAD_MS: String(RETENTION_MS),
    RETENTION_CANCELLED_MS: String(RETENTION_MS),
    RETENTION_INTERVAL_MS: String(Math.max(1000, Math.min(30_000, Math.floor(RETENTION_MS / 6)))),
    // Keys are not used here; a short TTL keeps the pruner's table small anyway.
    IDEMPOTENCY_TTL_MS: String(RETENTION_MS),
    ...extra,
  });
  const children: ChildHandle[] = [];
  const apiPort = await freePort();
  children.push(await spawnService('dist/services/api/main.js', app({ API_ADDR: `127.0.0.1:${apiPort}`, METRICS_ADDR: `127.0.0.1:${await freePort()}` })));
  for (let i = 0; i < 2; i++) children.push(await spawnService('dist/services/worker/main.js', app({ METRICS_ADDR: `127.0.0.1:${await freePort()}` })));
  const db = new Client({ connectionString: dbUrl });
  await db.connect();
  const redis = new Redis(Number(env.REDIS_ADDR!.split(':')[1]), env.REDIS_ADDR!.split(':')[0]!);
  const client = poster(`http://127.0.0.1:${apiPort}/tasks`, 64, { Authorization: `Bearer ${KEY}` });
  const samples: Sample[] = [];
  let sent = 0;
  let refused = 0;
  const t0 = performance.now();
  const end = t0 + MINUTES * 60_000;
  let nextSample = t0 + SAMPLE_S * 1000;
  const interval = 1000 / RATE;
  const inFlight = new Set<Promise<void>>();
  process.stderr.write(`soak: ${MINUTES} min at ${RATE} tasks/s, retention ${RETENTION_MS} ms, a sample every ${SAMPLE_S} s\n`);
  for (let i = 0; performance.now() < end; i++) {
    const due = t0 + i * interval;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const body = i % 50 === 0 ? '{"type":"always_fail","max_retries":0}' : '{"type":"noop"}';
    const p: Promise<void> = client.post(body).then((status) => {
      if (status !== 201) refused++;
      inFlight.delete(p);
    });
    inFlight.add(p);
    sent++;
    if (performance.now() >= nextSample) {
      nextSample += SAMPLE_S * 1000;
      const s = await sample(db, redis, Math.round((performance.now() - t0) / 6000) / 10, sent);
      samples.push(s);
      process.stdout.write(`${JSON.stringify({ ...s, refused })}\n`);
    }
  }
  await Promise.all(inFlight);
  client.close();
  // Flat means: from the first sample after the first retention period plus two sweeps (what was
  // there to delete has been), size and memory do not keep growing.
  const caughtUpAt = (RETENTION_MS * 1.5 + 60_000) / 60_000;
  const from = samples.find((s) => s.minute >= caughtUpAt);
  const last = samples[samples.length - 1];
  if (from && last && last !== from) {
    const change = (a: number, b: number) => `${a} → ${b} (${(((b - a) / Math.max(a, 0.1)) * 100).toFixed(0)} %)`;
    process.stdout.write(
      `${JSON.stringify({
        summary: `minute ${from.minute} → ${last.minute}`,
        sent,
        refused,
        tasksRows: change(from.tasksRows, last.tasksRows),
        databaseMb: change(from.databaseMb, last.databaseMb),
        tasksMb: change(from.tasksMb, last.tasksMb),
        runsMb: change(from.runsMb, last.runsMb),
        redisMb: change(from.redisMb, last.redisMb),
      })}\n`,
    );
  }
  await db.end();
  await redis.quit();
  for (const c of children) await c.stop();
}

main().then(
  () => {
    stopLocalServices('soak');
    process.exit(0);
  },
  async (err: unknown) => {
    process.stderr.write(`soak failed: ${(err as Error).stack}\n`);
    await killAllChildren();
    stopLocalServices('soak');
    process.exit(1);
  },
);
