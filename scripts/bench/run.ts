/**
 * `npm run bench`: every scenario of the speed targets, side by side with BullMQ and a bare
 * express baseline, on this machine, against a private Postgres and Redis (profile `bench`).
 * Each scenario runs BENCH_REPEATS times (3); the median and min–max are printed and written to
 * docs/benchmarks.md. Ratios matter, not absolute numbers.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Pool } from 'pg';
import Redis from 'ioredis';
import { Queue } from 'bullmq';
import pino from 'pino';
import { migrate } from '../../services/migrator/migrate';
import { RedisQueue } from '../../services/core/queue/redis-queue';
import { submitTasks } from '../../services/core/tasks/submit';
import { configWith } from '../../services/core/config/config';
import { ChildHandle, freePort, killAllChildren, spawnService } from '../../test/support/processes';
import { BenchKit, chain, diamonds, fanOut } from './workflows';
import { cpuSince, machineSpeedMs, stealSince, withChildren } from './cpu';
import { BENCH_CLUSTER, startLocalCluster, startLocalServices, stopBenchServices } from '../local-services';
import { createRedisCluster } from '../../services/core/db/redis';
import { createQueue } from '../../services/core/queue/create-queue';
import { masterLoads, resetCluster, shares } from './cluster-stats';
import { grownTemplate } from './grown-table';
import { poster, postLoop } from './http-driver';
import { generateKey } from '../../services/core/tenancy/api-key';

const ROOT = path.resolve(__dirname, '../..');
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const BACKLOG = Number(process.env.BENCH_BACKLOG ?? 100_000);
const log = pino({ level: 'silent' });
// A slot stays taken while its start and outcome are committed in Postgres, so no-op throughput
// wants more slots than BullMQ's concurrency: several lease batches then overlap their writes.
const DRAIN_POOL = process.env.BENCH_POOL ?? '1000';
const DRAIN_LEASE_BATCH = process.env.BENCH_LEASE ?? '250';
const BULLMQ_CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 100);
/** The pool sizes of scenario 1c: ours and BullMQ at the same concurrency, each with default settings otherwise. */
const POOL_SIZES = (process.env.BENCH_POOLS ?? '12,100,1000').split(',').map(Number);

let adminUrl = '';
let redisAddr = '';
let pgPid = 0;
let redisPid = 0;

function startServices(): void {
  const env = startLocalServices('bench');
  adminUrl = env.PG_ADMIN_URL!;
  redisAddr = env.REDIS_ADDR!;
  pgPid = Number(env.PG_PID);
  redisPid = Number(env.REDIS_PID);
}

/**
 * A new, migrated database for one scenario (one at a time). The earlier scenarios' databases are
 * dropped first, and a checkpoint and a sync are done before the run starts: autovacuum working
 * through an earlier 100k-task table, or a checkpoint's or the kernel's writeback landing mid-run,
 * made the same code measure up to 20 % apart.
 */
async function freshDatabase(template?: string): Promise<string> {
  const name = `bench_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
  const admin = new Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    const old = await admin.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_%'`);
    for (const { datname } of old.rows) await admin.query(`DROP DATABASE "${datname}" WITH (FORCE)`);
    await admin.query(template ? `CREATE DATABASE ${name} TEMPLATE "${template}"` : `CREATE DATABASE ${name}`);
    // The private instance runs with synchronous_commit=off for fast tests; benchmarks measure the
    // durable setting the targets require, for every connection to this database.
    await admin.query(`ALTER DATABASE ${name} SET synchronous_commit = on`);
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    await migrate({ databaseUrl: url.toString() });
    await admin.query('CHECKPOINT');
    // And the kernel's dirty pages out too (the dropped databases, the checkpoint): written back
    // during the next run, they slow every commit's WAL flush.
    execFileSync('sync');
    return url.toString();
  } finally {
    await admin.end();
  }
}

async function flushRedis(): Promise<void> {
  const r = new Redis(Number(redisAddr.split(':')[1]), redisAddr.split(':')[0]!);
  await r.flushall();
  await r.quit();
}

// Requests authenticate as a real client would (AUTH_MODE=keys, the default): the API installs the key at start.
const BENCH_KEY = generateKey().key;
const AUTH = { Authorization: `Bearer ${BENCH_KEY}` };

function appEnv(dbUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return { POSTGRES_URL: dbUrl, REDIS_ADDR: redisAddr, REDIS_KEY_PREFIX: 'bench', LOG_LEVEL: 'info', BOOTSTRAP_ADMIN_KEY: BENCH_KEY, ...extra };
}

function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

async function until(check: () => Promise<boolean>, onTick?: () => void, timeoutMs = 600_000, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    onTick?.();
    if (Date.now() > deadline) throw new Error('benchmark scenario timed out');
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * BENCH_PROFILE_DIR: every service process writes a V8 CPU profile there when it exits.
 * BENCH_PERF_MAP=1: services write /tmp/perf-<pid>.map, so `perf record -p <pid>` names JS frames
 * (V8's profiler misreports time spent outside JS, e.g. in the compiler threads, as idle).
 * BENCH_NODE_ARGS: more node flags for the service processes (e.g. `--log-deopt --logfile=…`).
 */
const nodeArgs = [
  ...(process.env.BENCH_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`] : []),
  ...(process.env.BENCH_PERF_MAP === '1' ? ['--perf-basic-prof'] : []),
  ...(process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean),
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An empty Redis and a fresh database, with a pool and the queue on them (the drain scenarios). */
async function drainStores(template?: string): Promise<{ dbUrl: string; pool: Pool; redis: Redis; queue: RedisQueue }> {
  await flushRedis();
  const dbUrl = await freshDatabase(template);
  const pool = new Pool({ connectionString: dbUrl, max: 4 });
  const redis = new Redis(Number(redisAddr.split(':')[1]), redisAddr.split(':')[0]!);
  const cfg = configWith({ REDIS_KEY_PREFIX: 'bench' });
  return { dbUrl, pool, redis, queue: new RedisQueue(redis, { prefix: 'bench', strategy: cfg.QUEUE_STRATEGY, weights: cfg.QUEUE_WEIGHTS }) };
}

/** Target 1 and 5: drain a backlog of no-op tasks with one worker process; memory figures. */
async function drainOurs(slots = DRAIN_POOL, leaseBatch: string | null = DRAIN_LEASE_BATCH, template?: string): Promise<Record<string, number>> {
  const { dbUrl, pool, redis, queue } = await drainStores(template);
  const memBefore = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
  // The backlog's tasks, apart from any the database held before (scenario 7).
  const since = (await pool.query<{ t: Date }>('SELECT now() AS t')).rows[0]!.t;
  for (let i = 0; i < BACKLOG; i += 1000) {
    await submitTasks(
      { pool, queue, log, idempotencyTtlMs: 60_000 },
      Array.from({ length: Math.min(1000, BACKLOG - i) }, () => ({ type: 'noop', priority: 'default' as const, payload: {}, maxRetries: 5, tenant: 'default', idempotencyKey: null, canonical: '' })),
    );
  }
  const memAfter = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
  const settings: Record<string, string> = { WORKER_POOL: slots, METRICS_ADDR: `127.0.0.1:${await freePort()}` };
  // null: the worker's own default (an explicit undefined would take this function's default, 250).
  if (leaseBatch !== null) settings.LEASE_BATCH_SIZE = leaseBatch;
  const worker = await spawnService('dist/services/worker/main.js', appEnv(dbUrl, settings), { nodeArgs });
  const cpu = cpuSince({ worker: () => [worker.pid], postgres: () => withChildren(pgPid), redis: () => [redisPid] });
  const t0 = Date.now();
  let maxRss = 0;
  await until(
    async () => {
      const s = await queue.stats();
      return s.ready.default + s.processing === 0;
    },
    () => (maxRss = Math.max(maxRss, rssMb(worker.pid))),
  );
  const seconds = (Date.now() - t0) / 1000;
  const used = cpu();
  const { rows } = await pool.query("SELECT count(*)::int AS n FROM tasks WHERE status = 'succeeded' AND created_at >= $1", [since]);
  if (rows[0].n !== BACKLOG) throw new Error(`only ${rows[0].n} of ${BACKLOG} recorded as succeeded`);
  await worker.stop();
  await pool.end();
  await redis.quit();
  return {
    tasksPerSecond: BACKLOG / seconds,
    workerMaxRssMb: maxRss,
    redisBytesPerWaitingTask: (memAfter - memBefore) / BACKLOG,
    // Where the time went (printed with BENCH_ONLY=drain; not in the table).
    cpuWorker: used.worker!,
    cpuPostgres: used.postgres!,
    cpuRedis: used.redis!,
    seconds,
  };
}

/**
 * Fair dispatch (issue 16): a backlog spread over tenants drained by one worker process, with the
 * settings of scenario 1. `tenants` × `perTenant` no-op tasks are accepted first (1,000 per
 * transaction, tenant after tenant); with `trickle`, another tenant submits one task every 100 ms
 * through the same path while the backlog drains, and its enqueue-to-start is read from Postgres.
 * The clock stops when no backlog tenant has a task waiting or leased (two O(1) reads of the
 * fair-dispatch state, not the per-tenant stats, which cost a command per tenant).
 */
async function drainTenants(tenants: number, perTenant: number, trickle: boolean): Promise<Record<string, number>> {
  const { dbUrl, pool, redis, queue } = await drainStores();
  const deps = { pool, queue, log, idempotencyTtlMs: 60_000 };
  const task = (tenant: string) => ({ type: 'noop', priority: 'default' as const, payload: {}, maxRetries: 5, tenant, idempotencyKey: null, canonical: '' });
  const names = Array.from({ length: tenants }, (_, i) => (tenants === 1 ? 'a' : `t${i}`));
  const all = names.flatMap((t) => Array.from({ length: perTenant }, () => t));
  for (let i = 0; i < all.length; i += 1000) await submitTasks(deps, all.slice(i, i + 1000).map(task));
  const worker = await spawnService('dist/services/worker/main.js', appEnv(dbUrl, { WORKER_POOL: DRAIN_POOL, LEASE_BATCH_SIZE: DRAIN_LEASE_BATCH, METRICS_ADDR: `127.0.0.1:${await freePort()}` }), { nodeArgs });
  const k = queue.keys;
  const drained = async () => {
    const [ringed, leased] = await Promise.all([redis.zrange(k.rings[2]!, 0, -1), redis.hgetall(k.running)]);
    return ringed.every((t) => t === 'b') && Object.keys(leased).every((t) => t === 'b');
  };
  let trickling = trickle;
  const trickler = (async () => {
    while (trickling) {
      await submitTasks(deps, [task('b')]);
      await sleep(100);
    }
  })();
  const cpu = cpuSince({ worker: () => [worker.pid], postgres: () => withChildren(pgPid), redis: () => [redisPid] });
  const t0 = Date.now();
  const since = new Date();
  await until(drained);
  const seconds = (Date.now() - t0) / 1000;
  const used = cpu();
  trickling = false;
  await trickler;
  await sleep(200);
  const { rows } = await pool.query<{ ms: number }>(
    `SELECT extract(epoch FROM (first_started_at - created_at)) * 1000 AS ms FROM tasks
      WHERE tenant = 'b' AND created_at >= $1 AND first_started_at IS NOT NULL ORDER BY 1`,
    [since],
  );
  const waits = rows.map((r) => Number(r.ms));
  const done = (await pool.query("SELECT count(*)::int AS n FROM tasks WHERE status = 'succeeded' AND tenant <> 'b'")).rows[0].n as number;
  if (done !== all.length) throw new Error(`only ${done} of ${all.length} recorded as succeeded`);
  await worker.stop();
  await pool.end();
  await redis.quit();
  if (process.env.BENCH_DEBUG === '1') process.stderr.write(`bench: trickle waits (ms): ${waits.map((x) => x.toFixed(1)).join(' ')}\n`);
  // Where the time went (printed with BENCH_ONLY; not in the table).
  const out: Record<string, number> = { tasksPerSecond: all.length / seconds, seconds, cpuWorker: used.worker!, cpuPostgres: used.postgres!, cpuRedis: used.redis! };
  if (trickle) Object.assign(out, { trickled: waits.length, trickleP50Ms: waits[Math.floor(waits.length * 0.5)] ?? NaN, trickleP99Ms: waits[Math.min(waits.length - 1, Math.floor(waits.length * 0.99))] ?? NaN, trickleMaxMs: waits[waits.length - 1] ?? NaN });
  return out;
}

/** Target 1, reference: BullMQ 6, one worker, concurrency 100, no-op processor, removeOnComplete. */
async function drainBullmq(concurrency = BULLMQ_CONCURRENCY): Promise<Record<string, number>> {
  await flushRedis();
  const [host, port] = redisAddr.split(':');
  const queue = new Queue('bench', { connection: { host, port: Number(port) } });
  for (let i = 0; i < BACKLOG; i += 1000) {
    await queue.addBulk(Array.from({ length: Math.min(1000, BACKLOG - i) }, (_, j) => ({ name: 'noop', data: { i: i + j }, opts: { removeOnComplete: true } })));
  }
  const worker = await spawnService('scripts/bench/bullmq-worker.js', { REDIS_ADDR: redisAddr, CONCURRENCY: String(concurrency) });
  const t0 = Date.now();
  let maxRss = 0;
  await until(
    async () => (await queue.getWaitingCount()) + (await queue.getActiveCount()) === 0,
    () => (maxRss = Math.max(maxRss, rssMb(worker.pid))),
  );
  const seconds = (Date.now() - t0) / 1000;
  await worker.stop();
  await queue.close();
  return { tasksPerSecond: BACKLOG / seconds, workerMaxRssMb: maxRss };
}

async function withApi<T>(dbUrl: string, fn: (url: string, api: ChildHandle) => Promise<T>, script = 'dist/services/api/main.js'): Promise<T> {
  const port = await freePort();
  const api = await spawnService(script, appEnv(dbUrl, { API_ADDR: `127.0.0.1:${port}`, METRICS_ADDR: `127.0.0.1:${await freePort()}` }), { nodeArgs });
  try {
    return await fn(`http://127.0.0.1:${port}`, api);
  } finally {
    await api.stop();
  }
}

/** Finished tasks already in the table for scenario 7 (BENCH_GROWN_ROWS; 0 skips it). */
const GROWN_ROWS = Number(process.env.BENCH_GROWN_ROWS ?? 10_000_000);

/**
 * Scenario 7: accept (single, 50 connections) and drain (scenario 1's settings) on a database that
 * already holds GROWN_ROWS finished tasks and their runs, each beside the same on an empty one.
 */
async function grown(): Promise<Record<string, number>> {
  const template = await grownTemplate(adminUrl, GROWN_ROWS, (line) => process.stderr.write(`${line}\n`));
  const single = async (db: string) => (await withApi(db, (url) => postLoop(`${url}/tasks`, { connections: 50, seconds: 10, body: () => '{"type":"noop"}', headers: AUTH }))).perSecond;
  const acceptEmpty = await single(await freshDatabase());
  const acceptGrown = await single(await freshDatabase(template));
  const drainEmpty = (await drainOurs()).tasksPerSecond!;
  const drainGrown = (await drainOurs(DRAIN_POOL, DRAIN_LEASE_BATCH, template)).tasksPerSecond!;
  return { acceptEmpty, acceptGrown, acceptRatio: acceptGrown / acceptEmpty, drainEmpty, drainGrown, drainRatio: drainGrown / drainEmpty };
}

const CLUSTER_TENANTS = 300;
const CLUSTER_PARTITIONS = Number(process.env.BENCH_PARTITIONS ?? 6);

/**
 * Scenario 8: scenario 1's drain on a local Redis Cluster of 3 masters (profile bench-cluster), the
 * backlog from CLUSTER_TENANTS tenants, the queue in `partitions` partitions. Per master: its share
 * of the keys (with the backlog accepted), of the script calls and script time, and of the CPU the
 * drain cost Redis. With one partition one master does everything; with 6, each should take a third.
 */
async function drainCluster(partitions: number): Promise<Record<string, number>> {
  const nodes = startLocalCluster(BENCH_CLUSTER).REDIS_CLUSTER_NODES!.split(',');
  await resetCluster(nodes);
  const dbUrl = await freshDatabase();
  const pool = new Pool({ connectionString: dbUrl, max: 4 });
  const redis = createRedisCluster({ addr: '', clusterNodes: nodes, name: 'bench', offlineQueue: true });
  const cfg = configWith({ REDIS_KEY_PREFIX: 'bench' });
  const queue = createQueue(redis, { prefix: 'bench', strategy: cfg.QUEUE_STRATEGY, weights: cfg.QUEUE_WEIGHTS, partitions });
  const names = Array.from({ length: BACKLOG }, (_, i) => `t${i % CLUSTER_TENANTS}`);
  for (let i = 0; i < BACKLOG; i += 1000) {
    await submitTasks(
      { pool, queue, log, idempotencyTtlMs: 60_000 },
      names.slice(i, i + 1000).map((tenant) => ({ type: 'noop', priority: 'default' as const, payload: {}, maxRetries: 5, tenant, idempotencyKey: null, canonical: '' })),
    );
  }
  const accepted = await masterLoads(nodes);
  const env = appEnv(dbUrl, { REDIS_CLUSTER_NODES: nodes.join(','), REDIS_PARTITIONS: String(partitions), WORKER_POOL: DRAIN_POOL, LEASE_BATCH_SIZE: DRAIN_LEASE_BATCH, METRICS_ADDR: `127.0.0.1:${await freePort()}` });
  const worker = await spawnService('dist/services/worker/main.js', env, { nodeArgs });
  const t0 = Date.now();
  await until(async () => {
    const st = await queue.stats();
    return st.ready.default + st.processing === 0;
  });
  const seconds = (Date.now() - t0) / 1000;
  const drained = await masterLoads(nodes);
  const { rows } = await pool.query("SELECT count(*)::int AS n FROM tasks WHERE status = 'succeeded'");
  if (rows[0].n !== BACKLOG) throw new Error(`only ${rows[0].n} of ${BACKLOG} recorded as succeeded`);
  await worker.stop();
  await pool.end();
  redis.disconnect();
  const zero = accepted.map((m) => ({ ...m, keys: 0 }));
  const out: Record<string, number> = { tasksPerSecond: BACKLOG / seconds, seconds };
  const keyShares = shares(zero, accepted, (m) => m.keys);
  const callShares = shares(accepted, drained, (m) => m.scriptCalls);
  const usecShares = shares(accepted, drained, (m) => m.scriptUsec);
  const cpuShares = shares(accepted, drained, (m) => m.cpuSeconds);
  accepted.forEach((_, i) => Object.assign(out, { [`keysShare${i}`]: keyShares[i]!, [`scriptCallsShare${i}`]: callShares[i]!, [`scriptTimeShare${i}`]: usecShares[i]!, [`cpuShare${i}`]: cpuShares[i]! }));
  out.maxScriptTimeShare = Math.max(...usecShares);
  return out;
}

/** Target 2: single POST /tasks at 50 connections, against a bare express route; and the batch endpoint. */
async function accept(): Promise<Record<string, number>> {
  await flushRedis();
  const ours = await withApi(await freshDatabase(), (url) => postLoop(`${url}/tasks`, { connections: 50, seconds: 10, body: () => '{"type":"noop"}', headers: AUTH }));
  const bare = await withApi(await freshDatabase(), (url) => postLoop(`${url}/tasks`, { connections: 50, seconds: 10, body: () => '{"type":"noop"}', headers: AUTH }), 'scripts/bench/bare-express.js');
  const batchBody = JSON.stringify({ tasks: Array.from({ length: 1000 }, () => ({ type: 'noop' })) });
  const batch = await withApi(await freshDatabase(), (url) => postLoop(`${url}/tasks/batch`, { connections: 4, seconds: 10, body: () => batchBody, headers: AUTH }));
  return {
    singlePerSecond: ours.perSecond,
    singleP99Ms: ours.latencyMs.p99,
    bareExpressPerSecond: bare.perSecond,
    batchTasksPerSecond: batch.perSecond * 1000,
  };
}

/** The Go README's mix (noop 80, flaky 10 ×2, fail 5, sleep 5 × 25 ms), as a list of bodies. */
function goMix(n: number): string[] {
  return Array.from({ length: n }, (_, i) => {
    const r = i % 20;
    if (r < 16) return '{"type":"noop"}';
    if (r < 18) return '{"type":"flaky","payload":{"fail_attempts":2}}';
    if (r < 19) return '{"type":"always_fail"}';
    return '{"type":"sleeper","payload":{"sleep_ms":25}}';
  });
}

/** Bursts before the measured (warm) one: the cold first one and three more. */
const WARMUP_BURSTS = 4;

/** Target 3: a 10,000-task burst, one at a time from 16 connections, two worker processes. */
async function burst(): Promise<Record<string, number>> {
  await flushRedis();
  const dbUrl = await freshDatabase();
  // Backoff is a policy, not a speed: with the defaults the last retry of an always_fail task alone
  // waits 15.5 s. The burst measures the system, so retries wait 10–20 ms here.
  const fast = { RETRY_BASE_MS: '10', RETRY_MAX_MS: '10', RETRY_JITTER_MS: '10' };
  const workers = [
    await spawnService('dist/services/worker/main.js', appEnv(dbUrl, { ...fast, METRICS_ADDR: `127.0.0.1:${await freePort()}` }), { nodeArgs }),
    await spawnService('dist/services/worker/main.js', appEnv(dbUrl, { ...fast, METRICS_ADDR: `127.0.0.1:${await freePort()}` }), { nodeArgs }),
  ];
  const pool = new Pool({ connectionString: dbUrl, max: 2 });
  const result = await withApi(dbUrl, async (url, api) => {
    const client = poster(`${url}/tasks`, 16, AUTH);
    const send = async (bodies: string[]) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < bodies.length) await client.post(bodies[next++]!);
        }),
      );
    };
    // Every task is committed once its POST was answered, so after sending, "none unfinished" is
    // "all final"; the partial index makes that check cheap enough to poll every 20 ms.
    const unfinished = async () => (await pool.query("SELECT count(*)::int AS n FROM tasks WHERE status IN ('queued','running','retrying')")).rows[0].n as number;
    // Five bursts on the same processes. The first finds them cold (V8 still compiling the hot
    // paths: a quarter of a worker's CPU in the first seconds, profiled). V8 keeps tiering up
    // through the next ones: api + worker CPU per burst fell from 2.37 s in the 2nd to
    // 1.85–2.04 s in the 3rd–7th, where it levels off (measured). So the warm figure is the 5th
    // burst, after 40k tasks, as in a deployment that has been up a while; the 1st and 2nd are
    // reported beside it.
    const run = async () => {
      const bodies = goMix(10_000);
      const cpu = cpuSince({ api: () => [api.pid], workers: () => workers.map((w) => w.pid), postgres: () => withChildren(pgPid), redis: () => [redisPid] });
      const t0 = Date.now();
      await send(bodies);
      const sendSeconds = (Date.now() - t0) / 1000;
      await until(async () => (await unfinished()) === 0, undefined, 600_000, 20);
      return { drainSeconds: (Date.now() - t0) / 1000, sendSeconds, cpu: cpu() };
    };
    const cold = await run();
    const second = await run();
    for (let i = 2; i < WARMUP_BURSTS; i++) await run();
    const warm = await run();
    client.close();
    const used = warm.cpu;
    return {
      drainSeconds: warm.drainSeconds,
      sendSeconds: warm.sendSeconds,
      coldDrainSeconds: cold.drainSeconds,
      secondDrainSeconds: second.drainSeconds,
      cpuApi: used.api!,
      cpuWorkers: used.workers!,
      cpuPostgres: used.postgres!,
      cpuRedis: used.redis!,
      cpuDriver: used.driver!,
      cpuTotal: Object.values(used).reduce((a, b) => a + b, 0),
    };
  });
  // Anything the services warned about explains an outlier; print it with the figures.
  for (const w of workers) await w.stop();
  for (const line of workers.flatMap((w) => w.output().split('\n'))) if (/"level":(4|5|6)\d/.test(line)) process.stderr.write(`bench: worker: ${line.slice(0, 400)}\n`);
  await pool.end();
  return result;
}

/** Target 4: enqueue-to-start on an idle system, and at half the measured maximum accept rate. */
async function latency(halfRate: number): Promise<Record<string, number>> {
  await flushRedis();
  const dbUrl = await freshDatabase();
  // The system whose maximum scenario 3 measured: one API, two workers with default settings.
  const workers = [
    await spawnService('dist/services/worker/main.js', appEnv(dbUrl, { METRICS_ADDR: `127.0.0.1:${await freePort()}` })),
    await spawnService('dist/services/worker/main.js', appEnv(dbUrl, { METRICS_ADDR: `127.0.0.1:${await freePort()}` })),
  ];
  const pool = new Pool({ connectionString: dbUrl, max: 2 });
  /** Enqueue-to-start of the tasks created in [since, until). */
  const waits = async (since: Date, until = new Date(8.64e15)) =>
    (
      await pool.query<{ ms: number }>(
        `SELECT extract(epoch FROM (first_started_at - created_at)) * 1000 AS ms FROM tasks
          WHERE created_at >= $1 AND created_at < $2 AND first_started_at IS NOT NULL ORDER BY 1`,
        [since, until],
      )
    ).rows.map((r) => Number(r.ms));
  const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;
  const result = await withApi(dbUrl, async (url) => {
    // An open loop: a request goes out when due, on any free one of 64 keep-alive connections.
    const client = poster(`${url}/tasks`, 64, AUTH);
    const post = () => client.post('{"type":"noop"}');
    const idleSince = new Date();
    for (let i = 0; i < 200; i++) {
      await post();
      await sleep(10);
    }
    await sleep(500);
    const idle = await waits(idleSince);
    // An open loop at `halfRate` for `seconds`; resolves once every request was answered.
    const openLoop = async (seconds: number) => {
      const interval = 1000 / halfRate;
      const t0 = performance.now();
      const sent: Promise<unknown>[] = [];
      for (let i = 0; performance.now() - t0 < seconds * 1000; i++) {
        const due = t0 + i * interval;
        const wait = due - performance.now();
        if (wait > 1) await sleep(wait);
        sent.push(post().catch(() => undefined));
      }
      await Promise.all(sent);
    };
    // Half of the maximum that scenario 3 measured on warm processes: the first seconds at that
    // rate find these processes cold (V8 still compiling the hot paths; each statement's first
    // plans), when the same rate needs far more CPU. They are reported apart (`cold`), and the
    // target is measured over the 10 s after them, as scenario 3 measures its maximum.
    const coldSince = new Date();
    await openLoop(5);
    const loadSince = new Date();
    await openLoop(10);
    client.close();
    await sleep(1000);
    const cold = await waits(coldSince, loadSince);
    const loaded = await waits(loadSince);
    return { idleP50Ms: pct(idle, 0.5), idleP95Ms: pct(idle, 0.95), halfLoadRate: halfRate, halfLoadP95Ms: pct(loaded, 0.95), halfLoadP50Ms: pct(loaded, 0.5), coldHalfLoadP95Ms: pct(cold, 0.95) };
  });
  for (const w of workers) await w.stop();
  await pool.end();
  return result;
}

interface Stat {
  median: number;
  min: number;
  max: number;
}

function stat(xs: number[]): Stat {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)]!, min: s[0]!, max: s[s.length - 1]! };
}

/** Start lateness (first_started_at - run_at, ms) of the tasks created since `since`: p50/p99/max, and p99 per priority. */
async function lateness(pool: Pool, since: Date): Promise<Record<string, number>> {
  const { rows } = await pool.query<Record<string, number>>(
    `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50, percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99, max(ms) AS max, count(*)::int AS n,
            percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) FILTER (WHERE priority = 'critical') AS p99critical,
            percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) FILTER (WHERE priority = 'low') AS p99low,
            count(*) FILTER (WHERE ms < 0)::int AS early
       FROM (SELECT priority, extract(epoch FROM first_started_at - run_at) * 1000 AS ms FROM tasks WHERE created_at >= $1 AND run_at IS NOT NULL) s`,
    [since],
  );
  return Object.fromEntries(Object.entries(rows[0]!).map(([k, v]) => [k, Number(v)]));
}

/**
 * Scenario 9 (issue 19): how late delayed tasks start. 9a, idle: one worker process with default
 * settings, tasks submitted one at a time (20 a second) with delays of 50-500 ms, each due alone.
 * 9b: 100,000 tasks of mixed priorities due within one minute (evenly spread), submitted before
 * the minute starts, with DELAYED_HORIZON_MS=10 s so that the workers' loader brings every one of
 * them from Postgres into Redis ahead of time; one worker process, default settings otherwise.
 */
async function delayedIdle(): Promise<Record<string, number>> {
  const { pool, redis, queue } = await drainStores();
  const worker = await spawnService('dist/services/worker/main.js', appEnv(poolUrl(pool), { METRICS_ADDR: `127.0.0.1:${await freePort()}` }), { nodeArgs });
  const since = (await pool.query<{ t: Date }>('SELECT now() AS t')).rows[0]!.t;
  const n = Number(process.env.BENCH_DELAYED_IDLE ?? 400);
  for (let i = 0; i < n; i++) {
    const delay = 50 + ((i * 7919) % 451);
    await submitTasks({ pool, queue, log, idempotencyTtlMs: 60_000 }, [{ type: 'noop', priority: 'default', payload: {}, maxRetries: 5, tenant: 'default', idempotencyKey: null, canonical: '', runAt: new Date(Date.now() + delay) }]);
    await new Promise((r) => setTimeout(r, 50));
  }
  await until(async () => (await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM tasks WHERE status = 'succeeded' AND created_at >= $1", [since])).rows[0]!.n === n);
  const out = await lateness(pool, since);
  await worker.stop();
  await pool.end();
  await redis.quit();
  return out;
}

async function delayedMinute(): Promise<Record<string, number>> {
  const { pool, redis, queue } = await drainStores();
  const total = Number(process.env.BENCH_DELAYED_TASKS ?? 100_000);
  const since = (await pool.query<{ t: Date }>('SELECT now() AS t')).rows[0]!.t;
  // Due from 30 s from now (after the submissions) for one minute, priorities interleaved.
  const start = Date.now() + 30_000;
  const priorities = ['critical', 'high', 'default', 'low'] as const;
  for (let i = 0; i < total; i += 1000) {
    await submitTasks(
      { pool, queue, log, idempotencyTtlMs: 60_000, delayedHorizonMs: 10_000 },
      Array.from({ length: Math.min(1000, total - i) }, (_, j) => ({
        type: 'noop', priority: priorities[(i + j) % 4]!, payload: {}, maxRetries: 5, tenant: 'default', idempotencyKey: null, canonical: '',
        runAt: new Date(start + Math.floor(((i + j) * 60_000) / total)),
      })),
    );
  }
  if (Date.now() > start - 12_000) throw new Error('submitting took too long: the first tasks are due within the horizon already');
  const worker = await spawnService('dist/services/worker/main.js', appEnv(poolUrl(pool), { DELAYED_HORIZON_MS: '10000', METRICS_ADDR: `127.0.0.1:${await freePort()}` }), { nodeArgs });
  const cpu = cpuSince({ worker: () => [worker.pid], postgres: () => withChildren(pgPid), redis: () => [redisPid] });
  await until(async () => (await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM tasks WHERE status = 'succeeded' AND created_at >= $1", [since])).rows[0]!.n === total, undefined, 300_000, 1000);
  const used = cpu();
  const out = await lateness(pool, since);
  await worker.stop();
  await pool.end();
  await redis.quit();
  return { ...out, cpuWorker: used.worker!, cpuPostgres: used.postgres!, cpuRedis: used.redis! };
}

/** Scenario 10's services: a fresh database, one API and `workers` worker processes with default settings. */
const workflowKit: BenchKit = {
  headers: AUTH,
  async withServices(workers, fn) {
    await flushRedis();
    const dbUrl = await freshDatabase();
    const procs = [];
    for (let i = 0; i < workers; i++) procs.push(await spawnService('dist/services/worker/main.js', appEnv(dbUrl, { METRICS_ADDR: `127.0.0.1:${await freePort()}` }), { nodeArgs }));
    const pool = new Pool({ connectionString: dbUrl, max: 2 });
    try {
      return await withApi(dbUrl, (url) => fn(url, pool));
    } finally {
      for (const w of procs) await w.stop();
      await pool.end();
    }
  },
};

/** The connection string a pool was made with. */
function poolUrl(pool: Pool): string {
  return (pool as unknown as { options: { connectionString: string } }).options.connectionString;
}

/** A scenario's figures, with the machine's speed just before it and the CPU steal during it. */
async function withMachineState(fn: () => Promise<Record<string, number>>): Promise<Record<string, number>> {
  const speedMs = machineSpeedMs();
  const steal = stealSince();
  const figures = await fn();
  return { ...figures, stealPct: Number(steal().toFixed(1)), speedMs: Number(speedMs.toFixed(1)) };
}

async function repeat(name: string, fn: () => Promise<Record<string, number>>): Promise<Record<string, Stat>> {
  const runs: Record<string, number>[] = [];
  for (let i = 0; i < REPEATS; i++) {
    process.stderr.write(`bench: ${name} run ${i + 1}/${REPEATS}\n`);
    runs.push(await withMachineState(fn));
  }
  return Object.fromEntries(Object.keys(runs[0]!).map((k) => [k, stat(runs.map((r) => r[k]!))]));
}

function fmt(s: Stat, digits = 0): string {
  const f = (n: number) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  return `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
}

/** Where docs/benchmarks.md's hand-kept history starts (kept when the generated part is rewritten). */
const HISTORY_HEADING = '## Before and after';

async function main(): Promise<void> {
  startServices();
  // BENCH_ONLY=<scenario> runs one scenario once and prints its raw figures (for profiling).
  const only: Record<string, () => Promise<Record<string, number>>> = {
    drain: () => drainOurs(),
    bullmq: () => drainBullmq(),
    // Ours alone at one pool size (BENCH_POOLS' first), default lease settings unless
    // BENCH_LEASE_BATCH says otherwise: for profiling.
    ours: () => drainOurs(String(POOL_SIZES[0]!), process.env.BENCH_LEASE_BATCH || null),
    // One pool size of 1c (BENCH_POOLS' first): ours with default lease settings, then BullMQ.
    pool: async () => {
      const slots = POOL_SIZES[0]!;
      const ours = await drainOurs(String(slots), null);
      const bull = await drainBullmq(slots);
      return { slots, ours: ours.tasksPerSecond!, bullmq: bull.tasksPerSecond!, ratio: ours.tasksPerSecond! / bull.tasksPerSecond!, cpuWorker: ours.cpuWorker!, cpuPostgres: ours.cpuPostgres!, cpuRedis: ours.cpuRedis! };
    },
    accept,
    burst,
    latency: () => latency(Number(process.env.BENCH_HALF_RATE ?? 350)),
    fairness: () => drainTenants(1, BACKLOG, true),
    tenants: () => drainTenants(1000, BACKLOG / 1000, false),
    grown,
    delayed: delayedIdle,
    'delayed-minute': delayedMinute,
    'workflow-fanout': () => fanOut(workflowKit),
    'workflow-chain': () => chain(workflowKit),
    'workflow-diamonds': () => diamonds(workflowKit),
    // Scenario 8, BENCH_PARTITIONS (6) partitions, then one.
    cluster: async () => {
      const spread = await drainCluster(CLUSTER_PARTITIONS);
      const one = await drainCluster(1);
      return { ...Object.fromEntries(Object.entries(spread).map(([k, v]) => [`p${CLUSTER_PARTITIONS}_${k}`, v])), ...Object.fromEntries(Object.entries(one).map(([k, v]) => [`p1_${k}`, v])) };
    },
  };
  const pick = process.env.BENCH_ONLY;
  if (pick) {
    if (!only[pick]) throw new Error(`BENCH_ONLY must be one of ${Object.keys(only).join(', ')}`);
    process.stdout.write(`${JSON.stringify(await withMachineState(only[pick]))}\n`);
    await killAllChildren();
    return;
  }
  const drain = await repeat('drain ours', () => drainOurs());
  const bull = await repeat('drain bullmq', () => drainBullmq());
  const pools: [number, Record<string, Stat>, Record<string, Stat>][] = [];
  for (const slots of POOL_SIZES) {
    pools.push([slots, await repeat(`drain ours, ${slots} slots`, () => drainOurs(String(slots), null)), await repeat(`drain bullmq, concurrency ${slots}`, () => drainBullmq(slots))]);
  }
  const acc = await repeat('accept', accept);
  const b = await repeat('burst', burst);
  // "Maximum load" is what the whole system (api + workers) sustains end to end: the burst's rate.
  const lat = await repeat('latency', () => latency(Math.round(10_000 / b.drainSeconds!.median / 2)));
  const fair = await repeat('fairness', () => drainTenants(1, BACKLOG, true));
  const many = await repeat('1,000 tenants', () => drainTenants(1000, BACKLOG / 1000, false));
  const big = GROWN_ROWS > 0 ? await repeat(`${GROWN_ROWS.toLocaleString('en-US')} finished tasks`, grown) : null;
  const idleDelay = await repeat('delayed, idle', delayedIdle);
  const minute = await repeat('delayed, 100k in a minute', delayedMinute);
  // Each alternates workflow and plain rounds itself (15 and 3 rounds): one run each.
  const wfFan = await repeat('workflow fan-out', () => fanOut(workflowKit));
  const wfChain = await repeat('workflow chain', () => chain(workflowKit));
  const wfDiamond = await repeat('workflow diamonds', () => diamonds(workflowKit));
  const spread = await repeat(`cluster, ${CLUSTER_PARTITIONS} partitions`, () => drainCluster(CLUSTER_PARTITIONS));
  const single = await repeat('cluster, 1 partition', () => drainCluster(1));
  const perMaster = (r: Record<string, Stat>, key: string) => [0, 1, 2].map((i) => `${((r[`${key}${i}`]?.median ?? 0) * 100).toFixed(0)}`).join(' / ');
  const pctOf = (a: Stat, b: Stat) => `${((a.median / b.median) * 100).toFixed(0)} %`;
  const cores = os.cpus().length;
  const ratio = (a: Stat, b: Stat) => (a.median / b.median).toFixed(2);
  const rows = [
    ['1. Drain 100k no-op backlog, 1 worker process (tasks/s)', fmt(drain.tasksPerSecond!), `BullMQ 6: ${fmt(bull.tasksPerSecond!)}`, `${ratio(drain.tasksPerSecond!, bull.tasksPerSecond!)}× BullMQ (target ≥ 1×)`],
    ...pools.map(([slots, ours, bull]) => [
      `1c. Drain 100k no-ops, WORKER_POOL=${slots} against BullMQ concurrency ${slots}, both otherwise default (tasks/s)`,
      fmt(ours.tasksPerSecond!),
      `BullMQ 6: ${fmt(bull.tasksPerSecond!)}`,
      `${ratio(ours.tasksPerSecond!, bull.tasksPerSecond!)}× BullMQ (target ≥ 1.5×)`,
    ]),
    ['2a. POST /tasks, one task per request, 50 connections (req/s)', fmt(acc.singlePerSecond!), `bare express INSERT+LPUSH: ${fmt(acc.bareExpressPerSecond!)}`, `${ratio(acc.singlePerSecond!, acc.bareExpressPerSecond!)}× baseline (target ≥ 1×)`],
    ['2b. POST /tasks/batch, 1,000 per request, 4 connections (tasks/s)', fmt(acc.batchTasksPerSecond!), '', 'target ≥ 30,000'],
    [
      '3. 10k burst (Go mix), 16 connections, 2 workers: drain (s), warm processes',
      fmt(b.drainSeconds!, 2),
      `Go README: 22 s; on cold processes (1st burst): ${fmt(b.coldDrainSeconds!, 2)}; 2nd burst: ${fmt(b.secondDrainSeconds!, 2)}`,
      `${(22 / b.drainSeconds!.median).toFixed(1)}× faster warm, ${(22 / b.secondDrainSeconds!.median).toFixed(1)}× 2nd burst, ${(22 / b.coldDrainSeconds!.median).toFixed(1)}× cold (target ≥ 10×)`,
    ],
    [
      '3b. CPU seconds the warm burst cost (api / 2 workers / Postgres / Redis / load driver)',
      fmt(b.cpuTotal!, 1),
      [b.cpuApi, b.cpuWorkers, b.cpuPostgres, b.cpuRedis, b.cpuDriver].map((x) => x!.median.toFixed(1)).join(' / '),
      `${cores} cores × drain time = ${(cores * b.drainSeconds!.median).toFixed(1)} s available`,
    ],
    ['4a. Enqueue-to-start p50, idle (ms)', fmt(lat.idleP50Ms!, 1), `p95 ${fmt(lat.idleP95Ms!, 1)}`, 'target < 5 ms'],
    [`4b. Enqueue-to-start p95 at 50% of max end-to-end load (${fmt(lat.halfLoadRate!)} tasks/s) (ms), warm processes`, fmt(lat.halfLoadP95Ms!, 1), `p50 ${fmt(lat.halfLoadP50Ms!, 1)}; p95 in the first 5 s on cold processes: ${fmt(lat.coldHalfLoadP95Ms!, 1)}`, 'target < 50 ms'],
    ['5a. Worker RSS while draining 100k (MB)', fmt(drain.workerMaxRssMb!), `BullMQ worker: ${fmt(bull.workerMaxRssMb!)}`, 'target < 150 MB'],
    ['5b. Redis memory per waiting task (bytes)', fmt(drain.redisBytesPerWaitingTask!), '', 'reported'],
    [
      `6a. Fairness: tenant B's enqueue-to-start p99 (one task every 100 ms) while tenant A drains ${BACKLOG.toLocaleString('en-US')} (ms)`,
      fmt(fair.trickleP99Ms!, 1),
      `p50 ${fmt(fair.trickleP50Ms!, 1)}, max ${fmt(fair.trickleMaxMs!, 1)}; A drained at ${fmt(fair.tasksPerSecond!)} tasks/s = ${pctOf(fair.tasksPerSecond!, drain.tasksPerSecond!)} of scenario 1`,
      'target < 50 ms, A ≥ 90 %',
    ],
    [`6b. Drain 1,000 tenants × ${(BACKLOG / 1000).toLocaleString('en-US')} no-op tasks, 1 worker process (tasks/s)`, fmt(many.tasksPerSecond!), `single tenant (scenario 1): ${fmt(drain.tasksPerSecond!)}`, `${pctOf(many.tasksPerSecond!, drain.tasksPerSecond!)} (target ≥ 90 %)`],
    ...(big
      ? [
          [
            `7. With ${GROWN_ROWS.toLocaleString('en-US')} finished tasks (and their runs) in the table: POST /tasks single (req/s) / drain 100k (tasks/s)`,
            `${fmt(big.acceptGrown!)} / ${fmt(big.drainGrown!)}`,
            `empty table, same run: ${fmt(big.acceptEmpty!)} / ${fmt(big.drainEmpty!)}`,
            `${(big.acceptRatio!.median * 100).toFixed(0)} % / ${(big.drainRatio!.median * 100).toFixed(0)} % of empty (target ≥ 90 %)`,
          ],
        ]
      : []),
    [
      `8. Drain 100k no-ops from ${CLUSTER_TENANTS} tenants on a Redis Cluster of 3 masters, REDIS_PARTITIONS=${CLUSTER_PARTITIONS} (tasks/s); per master: keys / script time / Redis CPU (% of all)`,
      `${fmt(spread.tasksPerSecond!)}; ${perMaster(spread, 'keysShare')} / ${perMaster(spread, 'scriptTimeShare')} / ${perMaster(spread, 'cpuShare')}`,
      `REDIS_PARTITIONS=1 on the same cluster: ${fmt(single.tasksPerSecond!)}; ${perMaster(single, 'keysShare')} / ${perMaster(single, 'scriptTimeShare')} / ${perMaster(single, 'cpuShare')}`,
      `busiest master's script time: ${(spread.maxScriptTimeShare!.median * 100).toFixed(0)} % (1 partition: ${(single.maxScriptTimeShare!.median * 100).toFixed(0)} %; even: 33 %)`,
    ],
  ];
  rows.push(
    ['9a. Delayed tasks, idle: start lateness (started_at − run_at) p99 (ms)', fmt(idleDelay.p99!, 1), `p50 ${fmt(idleDelay.p50!, 1)}, max ${fmt(idleDelay.max!, 1)}; started early: ${fmt(idleDelay.early!)}`, 'target < 10 ms'],
    [
      `9b. ${(Number(process.env.BENCH_DELAYED_TASKS ?? 100_000)).toLocaleString('en-US')} delayed tasks due within one minute, loaded from Postgres ahead of time: start lateness p99 (ms)`,
      fmt(minute.p99!, 1),
      `p50 ${fmt(minute.p50!, 1)}, max ${fmt(minute.max!, 1)}; p99 critical ${fmt(minute.p99critical!, 1)} / low ${fmt(minute.p99low!, 1)}; started early: ${fmt(minute.early!)}`,
      'target < 250 ms, priority order kept',
    ],
    [
      '10a. Workflow fan-out 1 → 1,000 → 1 of no-op steps, 1 worker: posted to all done (s)',
      fmt(wfFan.workflowSeconds!, 3),
      `the same 1,002 tasks as a flat batch: ${fmt(wfFan.flatSeconds!, 3)}`,
      `${wfFan.ratio!.median.toFixed(2)}× flat (target ≤ 1.3×)`,
    ],
    ['10b. Workflow chain of 100 no-op steps, idle: per-step overhead p50 (ms)', fmt(wfChain.p50Ms!, 2), `p90 ${fmt(wfChain.p90Ms!, 2)}, max ${fmt(wfChain.maxMs!, 1)}`, 'target < 5 ms'],
    [
      '10c. Diamonds (4 no-op steps) posted one per request, 16 connections, 2 workers: steps/s end to end',
      fmt(wfDiamond.diamondStepsPerSecond!),
      `plain no-op tasks, one per request: ${fmt(wfDiamond.plainTasksPerSecond!)}`,
      `${(wfDiamond.ratio!.median * 100).toFixed(0)} % of plain (target ≥ 50 %)`,
    ],
  );
  const table = ['| Scenario | Ours: median (min–max) | Reference | Result |', '|---|---:|---|---|', ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
  const scenarios: [string, Record<string, Stat>][] = [
    ['drain', drain],
    ['BullMQ', bull],
    ['accept', acc],
    ['burst', b],
    ['latency', lat],
    ['fairness', fair],
    ['1,000 tenants', many],
    ...(big ? ([['grown table', big]] as [string, Record<string, Stat>][]) : []),
    ['delayed idle', idleDelay],
    ['delayed minute', minute],
    ['workflow fan-out', wfFan],
    ['workflow chain', wfChain],
    ['workflow diamonds', wfDiamond],
    ['cluster', spread],
  ];
  const machineLine = [
    `The machine while each scenario ran. CPU steal, the share of its CPU time the hypervisor gave to other guests (%): ${scenarios.map(([n, r]) => `${n} ${fmt(r.stealPct!, 1)}`).join(', ')}.`,
    `A fixed single-threaded JS workload before each run (ms; lower is a faster machine): ${scenarios.map(([n, r]) => `${n} ${fmt(r.speedMs!)}`).join(', ')}.`,
  ].join('\n');
  process.stdout.write(`\n${cores} cores, ${REPEATS} runs each\n\n${table}\n\n${machineLine}\n`);
  const doc = `# Benchmarks

Produced by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}: ${cores} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}), Node ${process.version},
Postgres, Redis, the services, BullMQ and the load all on this one machine, each scenario run ${REPEATS} times
(median, with min–max). Ratios are what matter; absolute numbers depend on the machine.

${table}

${machineLine}
On a shared VM both drift from minute to minute, and the same code measures slower with them: in
one afternoon the same burst's CPU cost rose from 3.7 to 7.3 s, with steal at 5–27 % in \`vmstat\`
and the workload above taking longer too (neighbours share caches and memory bandwidth as well as
cores). Compare figures taken together, not across runs.

How each figure is measured (\`scripts/bench/run.ts\`):

1. ${BACKLOG.toLocaleString('en-US')} no-op tasks are accepted (through the same submit path as the API, 1,000 per
   transaction), then one worker process (WORKER_POOL=${DRAIN_POOL}, LEASE_BATCH_SIZE=${DRAIN_LEASE_BATCH}) starts; the clock runs until Redis holds
   no waiting or leased task, and Postgres is then checked to hold every task as \`succeeded\` —
   each with its \`task_runs\` row, committed (synchronous_commit on) before Redis forgot the lease
   (no-op attempts finish well within START_RECORD_DELAY_MS, so each writes its start with its outcome).
   BullMQ: the same number of jobs added with \`addBulk\`, one \`Worker\` (concurrency 100, no-op
   processor, \`removeOnComplete\`); the clock runs until no job waits or is active. BullMQ keeps no
   durable record of outcomes.
   1c: the same drain at ${POOL_SIZES.join(', ')} slots, against BullMQ at the same concurrency; ours
   with every other setting at its default (LEASE_BATCH_SIZE too), each in its own run.
2. A closed loop of keep-alive clients posting \`{"type":"noop"}\` for 10 s. The baseline is an
   express route doing one \`INSERT\` and one \`LPUSH\` per request (\`scripts/bench/bare-express.js\`),
   with none of our validation, idempotency or problem handling.
3. The Go README's mix (noop 80%, flaky 10% failing twice, always_fail 5%, sleeper 5% × 25 ms),
   posted one task per request from 16 connections to one API and two worker processes
   (WORKER_POOL=12 each); drain time is from the first request until all 10,000 tasks are final in
   Postgres. Each run sends five bursts to the same fresh processes: the first meets them cold (V8
   still compiling the hot paths — a quarter of a worker's CPU in those seconds), and V8 keeps
   tiering up through the next ones (api + worker CPU per burst fell by a fifth from the 2nd to the
   4th burst, then levelled off), so the warm figure, the target row, is the 5th burst, after 40k
   tasks, like a deployment that has been up a while; the 1st and 2nd are beside it. 3b is where
   the CPU went during the warm burst (from /proc: the api process, both workers, every Postgres
   process, Redis, and the benchmark's own raw-socket HTTP client). Retry backoff is
   set to 10–20 ms for this run: with the default 500 ms base the last retry of an always_fail task
   alone waits 15.5 s, which measures the policy, not the system.
4. Enqueue-to-start is \`first_started_at − created_at\` from Postgres: 200 tasks posted 10 ms apart
   to an idle system, then an open loop at half the end-to-end rate of scenario 3 (10,000 tasks ÷
   warm drain time: what api and workers sustain together), on the same system: one API and two
   worker processes with default settings, the open loop sending each request when due on any
   free one of 64 keep-alive connections. That maximum was measured on warm processes, so the
   target is too: the open loop runs 5 s first (reported apart, as the cold p95: V8 is still
   compiling the hot paths, and the same rate then needs far more CPU) and 10 s measured.
5. Peak RSS of the worker process (from /proc) during 1; Redis \`used_memory\` growth per waiting
   task after the backlog was accepted.
6. Fair dispatch between tenants (docs/fair-dispatch.md), with the settings of scenario 1. 6a:
   tenant A's ${BACKLOG.toLocaleString('en-US')} no-op tasks are accepted, one worker process starts, and tenant B
   submits one task every 100 ms (the same submit path, in the benchmark's process) until A is
   drained; B's enqueue-to-start is \`first_started_at − created_at\` of its tasks, and A's drain rate
   is compared with scenario 1's. 6b: ${BACKLOG.toLocaleString('en-US')} tasks from 1,000 tenants (${(BACKLOG / 1000).toLocaleString('en-US')} each,
   accepted tenant after tenant), drained by one worker process. Both stop the clock when no
   backlog tenant has a task waiting or leased.
7. Scenarios 2a and 1 again, each on an empty database and on a copy of one holding
   ${GROWN_ROWS.toLocaleString('en-US')} finished tasks with a run each (95 % succeeded, 4 % dead, 1 % cancelled, ten
   tenants, created 10 ms apart; \`scripts/bench/grown-table.ts\`, built once and reused).
8. Scenario 1 (the same worker settings) on a local Redis Cluster of 3 masters with a replica each
   (\`scripts/local-services.sh cluster-start bench-cluster\`), the ${BACKLOG.toLocaleString('en-US')} tasks from ${CLUSTER_TENANTS} tenants, once
   with the queue in ${CLUSTER_PARTITIONS} partitions and once in one. Per master (in address order), from
   \`DBSIZE\` with the backlog accepted, and \`INFO commandstats\` (EVAL and EVALSHA time) and
   \`used_cpu_user + used_cpu_sys\` over the drain (\`scripts/bench/cluster-stats.ts\`). All of it on
   this one machine: the spread is the figure, not the rate (six Redis processes, the worker and
   Postgres share ${cores} cores).
9. Delayed tasks (issue 19), start lateness = started_at − run_at from Postgres. 9a: one worker
   process with default settings; tasks submitted one at a time, 20 a second, with delays of
   50–500 ms. 9b: ${(Number(process.env.BENCH_DELAYED_TASKS ?? 100_000)).toLocaleString('en-US')} tasks, the four priorities interleaved, due evenly over one
   minute, all submitted before it starts with DELAYED_HORIZON_MS=10 s, so the workers' loader brings
   each one from Postgres into Redis ahead of time; one worker process, default settings otherwise.
10. Workflows (issue 20), through one API and worker processes with default settings
   (\`scripts/bench/workflows.ts\`). 10a: a workflow root → 1,000 → sink of no-op steps against the
   same 1,002 no-op tasks posted flat (two POST /tasks/batch), one worker, each from the first
   request until all are final; one warm-up each, then 15 rounds alternating which goes first. 10b: a
   chain of 100 no-op steps at idle (after one warm-up chain): each step's overhead is its
   dependency's handler end → its own handler start (task_runs.finished_at → started_at, both on the
   worker's clock). 10c: 2,500 diamonds (a → b, c → d) posted one workflow per request against
   10,000 no-op tasks posted one per request, 16 connections, two workers, 3 rounds alternating.
`;
  // Interleaved before/after measurements of past changes are kept below the generated part.
  const file = path.join(ROOT, 'docs/benchmarks.md');
  const previous = readFileSync(file, 'utf8');
  const kept = previous.indexOf(HISTORY_HEADING);
  writeFileSync(file, kept >= 0 ? `${doc.trimEnd()}\n\n${previous.slice(kept)}` : doc);
  await killAllChildren();
}

main().then(
  () => {
    stopBenchServices();
    process.exit(0);
  },
  async (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack}\n`);
    await killAllChildren();
    stopBenchServices();
    process.exit(1);
  },
);
