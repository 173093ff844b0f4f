/**
 * The rules and dashboards against a real Prometheus (Debian's binary, 127.0.0.1, a private port,
 * 1s scrapes and evaluations) scraping TWO api replicas and TWO workers, the built entrypoints run
 * as child processes:
 * - every recording and alert rule loads and evaluates with health "ok";
 * - every dashboard panel's query parses and returns data after a mixed workload;
 * - the dashboards' queue-depth query equals the depth in Redis (LLEN), and in-flight equals the
 *   leased set, so nothing is counted twice with two api replicas and two workers scraped;
 * - DeadLetterQueueGrowing really fires (from a copy of the rules with `for:` set to 0s) once
 *   always_fail tasks reach the dead-letter queues.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { Pool } from 'pg';
import { parse, stringify } from 'yaml';
import { queueKeys } from '../../services/core/queue/keys';
import { PRIORITIES, type Priority } from '../../services/core/tasks/priority';
import { ChildHandle, freePort, killAllChildren, spawnService } from '../support/processes';
import { createTestDatabase, testRedisAddr, uniqueRedisPrefix, type TestDatabase } from '../support/test-env';
import { allRules, dashboardExprs, ensurePrometheusTools, ruleFiles, substituteVariables } from './observability-support';
import { AUTH_ENV, AUTH_HEADER } from '../support/auth';
import { limitsAtWork } from '../support/limits-at-work';

const WORKER_POOL = 4;
const WORKERS = 2;
/** Two API replicas: both export the same Redis-backed queue gauges, so a sum would double them. */
const APIS = 2;

let db: TestDatabase;
let pool: Pool;
let redis: Redis;
let prefix: string;
let apiUrl: string;
let promUrl: string;
let prom: ChildProcess | undefined;
let promOutput = '';
let tmp: string;
const children: ChildHandle[] = [];

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

async function promGet<T>(apiPath: string, params: Record<string, string> = {}): Promise<T> {
  const url = `${promUrl}${apiPath}?${new URLSearchParams(params).toString()}`;
  const res = await fetch(url);
  const body = (await res.json()) as { status: string; data: T; error?: string; errorType?: string };
  if (body.status !== 'success') throw new Error(`${apiPath} ${JSON.stringify(params)}: ${body.errorType}: ${body.error}`);
  return body.data;
}

async function query(expr: string): Promise<Sample[]> {
  const data = await promGet<{ resultType: string; result: Sample[] | [number, string] }>('/api/v1/query', { query: expr });
  if (data.resultType === 'scalar') return [{ metric: {}, value: data.result as [number, string] }];
  return data.result as Sample[];
}

/** Polls until `check` returns a truthy value; fails with the last observation (no timing assertions). */
async function eventually<T>(what: string, check: () => Promise<T | undefined | null | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}\nprometheus output:\n${promOutput.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function postTask(body: Record<string, unknown>): Promise<string> {
  const res = await fetch(`${apiUrl}/tasks`, { method: 'POST', headers: { ...AUTH_HEADER, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (res.status !== 201) throw new Error(`POST /tasks ${JSON.stringify(body)} → ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

/** Authentication and tenant limits at work, for their panels: no key, a rate limit and a quota hit. */
async function limitsAtWorkHere(): Promise<void> {
  expect((await limitsAtWork(apiUrl, pool, 3000)).filter((s) => s === 429).length).toBeGreaterThanOrEqual(2);
}

async function postAll(bodies: Record<string, unknown>[], concurrency = 8): Promise<string[]> {
  const ids: string[] = new Array(bodies.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < bodies.length) {
        const i = next++;
        ids[i] = await postTask(bodies[i]!);
      }
    }),
  );
  return ids;
}

/** The rules as shipped, but every alert's `for:` set to 0s so the live test need not wait minutes. */
function writeTestRules(dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const f of ruleFiles()) {
    const doc = parse(readFileSync(f.file, 'utf8')) as { groups: { rules: { alert?: string; for?: string }[] }[] };
    for (const g of doc.groups) for (const r of g.rules) if (r.alert) r.for = '0s';
    writeFileSync(path.join(dir, path.basename(f.file)), stringify(doc));
  }
}

async function startPrometheus(targets: { apis: string[]; workers: string[] }): Promise<void> {
  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  writeTestRules(path.join(tmp, 'rules'));
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    rule_files: [path.join(tmp, 'rules', '*.yml')],
    scrape_configs: [
      { job_name: 'task-scheduler-api', static_configs: [{ targets: targets.apis }] },
      { job_name: 'task-scheduler-worker', static_configs: [{ targets: targets.workers }] },
    ],
  };
  writeFileSync(path.join(tmp, 'prometheus.yml'), stringify(config));
  prom = spawn(
    'prometheus',
    [
      `--config.file=${path.join(tmp, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(tmp, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--storage.tsdb.retention.time=1h',
    ],
    { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const collect = (chunk: Buffer) => {
    promOutput = (promOutput + chunk.toString('utf8')).slice(-100_000);
  };
  prom.stdout!.on('data', collect);
  prom.stderr!.on('data', collect);
  await eventually('Prometheus to be ready', async () => {
    if (prom!.exitCode !== null) throw new Error(`prometheus exited with ${prom!.exitCode}`);
    return (await fetch(`${promUrl}/-/ready`).catch(() => null))?.ok;
  });
}

async function stopPrometheus(): Promise<void> {
  const p = prom;
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
  p.kill('SIGTERM');
  const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

beforeAll(async () => {
  ensurePrometheusTools();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'ts-prometheus-'));
  db = await createTestDatabase();
  pool = new Pool({ connectionString: db.url, max: 2 });
  prefix = uniqueRedisPrefix('prom');
  const [host, port] = testRedisAddr().split(':');
  redis = new Redis({ host, port: Number(port), lazyConnect: true });
  await redis.connect();

  const env = {
    POSTGRES_URL: db.url,
    REDIS_ADDR: testRedisAddr(),
    REDIS_KEY_PREFIX: prefix,
    LOG_LEVEL: 'info',
    RETRY_BASE_MS: '20',
    RETRY_MAX_MS: '100',
    RETRY_JITTER_MS: '10',
    RETRY_SCAN_INTERVAL_MS: '25',
    // Queue gauges are re-read from Redis for every scrape (1s), not cached for 500 ms.
    METRICS_SAMPLE_MS: '100',
    // The long sleepers that keep the workers busy are aborted and handed back quickly at the end.
    SHUTDOWN_GRACE_MS: '500',
  };
  // The services and Prometheus start side by side: each target's port is known before it listens.
  const starting: Promise<unknown>[] = [];
  const apiMetrics: string[] = [];
  for (let a = 0; a < APIS; a++) {
    const apiPort = await freePort();
    const addr = `127.0.0.1:${await freePort()}`;
    apiMetrics.push(addr);
    // Tasks go to the first replica; the second only serves metrics, as an idle replica would.
    if (a === 0) apiUrl = `http://127.0.0.1:${apiPort}`;
    starting.push(spawnService('dist/services/api/main.js', { ...env, ...AUTH_ENV, API_ADDR: `127.0.0.1:${apiPort}`, METRICS_ADDR: addr }).then((c) => children.push(c)));
  }
  const workerMetrics: string[] = [];
  for (let w = 0; w < WORKERS; w++) {
    const addr = `127.0.0.1:${await freePort()}`;
    workerMetrics.push(addr);
    starting.push(spawnService('dist/services/worker/main.js', { ...env, WORKER_POOL: String(WORKER_POOL), METRICS_ADDR: addr }).then((c) => children.push(c)));
  }
  starting.push(startPrometheus({ apis: apiMetrics, workers: workerMetrics }));
  await Promise.all(starting);
}, 600_000);

afterAll(async () => {
  await stopPrometheus();
  for (const c of children) await c.stop('SIGTERM', 10_000).catch(() => c.kill());
  await killAllChildren();
  await redis?.del(...(await redis.keys(`{${prefix}}:*`)), `{${prefix}}:none`).catch(() => undefined);
  redis?.disconnect();
  await pool?.end();
  await db?.drop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}, 60_000);

it('scrapes both api replicas and both workers', async () => {
  const up = await eventually('every target up', async () => {
    const r = await query('up');
    return r.length === APIS + WORKERS && r.every((s) => s.value[1] === '1') ? r : null;
  });
  expect(up.map((s) => s.metric.job).sort()).toEqual(['task-scheduler-api', 'task-scheduler-api', 'task-scheduler-worker', 'task-scheduler-worker']);
  // Both replicas really export the queue gauges (what a sum would double).
  expect((await query('count(queue_depth{priority="high"})')).map((s) => Number(s.value[1]))).toEqual([APIS]);
});

it('loads every recording and alert rule, and each evaluates with health "ok"', async () => {
  const expected = allRules().map((r) => r.record ?? r.alert!);
  type ApiRule = { name: string; health: string; lastError?: string; type: string };
  const rules = await eventually('every rule evaluated', async () => {
    const data = await promGet<{ groups: { name: string; rules: ApiRule[] }[] }>('/api/v1/rules');
    const all = data.groups.flatMap((g) => g.rules);
    return all.length === expected.length && all.every((r) => r.health !== 'unknown') ? all : null;
  });
  expect(rules.map((r) => r.name).sort()).toEqual([...expected].sort());
  const unhealthy = rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.health} ${r.lastError ?? ''}`);
  expect(unhealthy).toEqual([]);
});

it('runs a mixed workload, then leaves tasks waiting behind busy workers', async () => {
  // The dead-letter alert needs to see the queues grow: start from recorded empty queues.
  await eventually('empty dead-letter queues to be recorded', async () => {
    const r = await query('priority:dlq_depth:max');
    return r.length === PRIORITIES.length && r.every((s) => s.value[1] === '0');
  });
  const bodies: Record<string, unknown>[] = [];
  for (const priority of PRIORITIES) {
    for (let i = 0; i < 10; i++) bodies.push({ type: 'noop', priority });
    for (let i = 0; i < 5; i++) bodies.push({ type: 'flaky', priority, payload: { fail_attempts: 1 } });
    // 14 final failures per priority: every dead-letter queue grows by more than 10.
    for (let i = 0; i < 14; i++) bodies.push({ type: 'always_fail', priority, max_retries: 1 });
    for (let i = 0; i < 4; i++) bodies.push({ type: 'sleeper', priority, payload: { sleep_ms: 50 } });
  }
  // Shuffled, so the priorities and types interleave.
  bodies.sort(() => Math.random() - 0.5);
  await postAll(bodies);
  await limitsAtWorkHere();
  await eventually(
    'every task of the mixed workload to finish',
    async () => {
      const { rows } = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM tasks WHERE status NOT IN ('succeeded', 'dead')");
      return rows[0]!.n === 0;
    },
    60_000,
  );

  // Fill every worker slot with a long sleeper, then queue more behind them.
  const blockers = await postAll(Array.from({ length: WORKERS * WORKER_POOL }, () => ({ type: 'sleeper', priority: 'low', payload: { sleep_ms: 600_000 } })));
  await eventually('every worker slot busy with a long sleeper', async () => {
    const { rows } = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1::uuid[]) AND status = 'running'", [blockers]);
    return rows[0]!.n === blockers.length && (await redis.zcard(queueKeys(prefix).processing)) === blockers.length;
  });
  await postAll([
    ...Array.from({ length: 3 }, () => ({ type: 'sleeper', priority: 'high', payload: { sleep_ms: 600_000 } })),
    ...Array.from({ length: 5 }, () => ({ type: 'sleeper', priority: 'default', payload: { sleep_ms: 600_000 } })),
    ...Array.from({ length: 2 }, () => ({ type: 'sleeper', priority: 'low', payload: { sleep_ms: 600_000 } })),
  ]);
}, 120_000);

it("the dashboards' queue-depth query equals the depth in Redis (no double counting), and in-flight equals the leased set", async () => {
  const panelExpr = (title: string) => {
    const e = dashboardExprs().find((x) => x.dashboard === 'observability.json' && x.panel === title);
    if (!e) throw new Error(`no panel "${title}"`);
    return substituteVariables(e.expr);
  };
  const keys = queueKeys(prefix);
  const expected: Record<Priority, number> = { critical: 0, high: 3, default: 5, low: 2 };
  // Every tenant's ready list at each priority (the tenants with work are in its ring or parked set).
  const depthAt = async (p: Priority, i: number) => {
    const tenants = new Set([...(await redis.zrange(keys.rings[i]!, 0, -1)), ...(await redis.zrange(keys.parked[i]!, 0, -1))]);
    const lengths = await Promise.all([...tenants].map((t) => redis.llen(keys.tenantQueue(p, t))));
    return lengths.reduce((a, b) => a + b, 0);
  };
  const redisDepth = async () => Object.fromEntries(await Promise.all(PRIORITIES.map(async (p, i) => [p, await depthAt(p, i)] as const))) as Record<Priority, number>;
  expect(await redisDepth()).toEqual(expected);

  const seen = await eventually('Prometheus to report the Redis depth', async () => {
    const rows = await query(panelExpr('Queue depth by priority'));
    const got = Object.fromEntries(rows.map((s) => [s.metric.priority, Number(s.value[1])]));
    return JSON.stringify(got) === JSON.stringify({ ...got, ...expected }) && rows.length === PRIORITIES.length ? got : null;
  });
  // Read Redis again: the depth did not move while Prometheus caught up.
  expect(await redisDepth()).toEqual(expected);
  expect(seen).toEqual(expected);
  // What the panel avoids: summing over the scraped replicas would count every task twice.
  // (Each replica samples Redis on its own scrape, so wait until both have seen the new depth.)
  await eventually('both replicas to report the depth', async () => {
    const naive = await query('sum by (priority) (queue_depth{priority="default"})');
    return Number(naive[0]?.value[1]) === expected.default * APIS;
  });

  const total = await query(panelExpr('Tasks waiting'));
  expect(total.map((s) => Number(s.value[1]))).toEqual([10]);

  const leased = await redis.zcard(keys.processing);
  expect(leased).toBe(WORKERS * WORKER_POOL);
  await eventually('in-flight to equal the leased set', async () => {
    const inflight = await query(panelExpr('In flight'));
    const redisLeased = await query('max(tasks_leased)');
    return Number(inflight[0]?.value[1]) === leased && Number(redisLeased[0]?.value[1]) === leased;
  });
  const liveWorkers = await query('max(workers_alive)');
  expect(Number(liveWorkers[0]?.value[1])).toBe(WORKERS);
}, 60_000);

it('DeadLetterQueueGrowing fires once always_fail tasks reach the dead-letter queues', async () => {
  type Alert = { labels: Record<string, string>; state: string; annotations: Record<string, string> };
  const firing = await eventually('DeadLetterQueueGrowing to fire', async () => {
    const { alerts } = await promGet<{ alerts: Alert[] }>('/api/v1/alerts');
    const mine = alerts.filter((a) => a.labels.alertname === 'DeadLetterQueueGrowing' && a.state === 'firing');
    return mine.length > 0 ? mine : null;
  });
  for (const a of firing) {
    expect(PRIORITIES).toContain(a.labels.priority);
    expect(a.labels.severity).toBe('ticket');
    expect(a.annotations.runbook).toBe('docs/runbook.md#deadletterqueuegrowing');
  }
  // Redis agrees: 14 dead tasks in every dead-letter queue.
  const keys = queueKeys(prefix);
  expect(await Promise.all(keys.deadLetters.map((k) => redis.llen(k)))).toEqual([14, 14, 14, 14]);
}, 60_000);

it('every dashboard panel query parses and returns data', async () => {
  const exprs = dashboardExprs();
  expect(exprs.length).toBeGreaterThan(20);
  // A query that parses but finds nothing is asked again for a while: on a loaded machine a scrape
  // can time out (1 s), and a rate() then has too few samples until the next ones arrive.
  const deadline = Date.now() + 20_000;
  let problems: string[] = [];
  for (let pending = exprs; pending.length > 0 && Date.now() < deadline; ) {
    problems = [];
    const empty: typeof exprs = [];
    for (const e of pending) {
      const expr = substituteVariables(e.expr);
      try {
        if ((await query(expr)).length === 0) {
          empty.push(e);
          problems.push(`${e.dashboard} "${e.panel}" ${e.refId}: no data for ${expr}`);
        }
      } catch (err) {
        problems.push(`${e.dashboard} "${e.panel}" ${e.refId}: ${(err as Error).message}`);
      }
    }
    if (problems.length > empty.length) break; // a query that fails to run will not heal
    pending = empty;
    if (pending.length > 0) await new Promise((r) => setTimeout(r, 500));
  }
  // Which scrapes were failing, if any, explains a panel without data.
  if (problems.length > 0) problems.push(`up: ${JSON.stringify((await query('up')).map((s) => [s.metric.job, s.metric.instance, s.value[1]]))}`);
  expect(problems).toEqual([]);
  // A concrete priority works as well as "All".
  const high = await query(substituteVariables(exprs.find((e) => e.panel === 'Queue depth by priority')!.expr, 'high'));
  expect(high.map((s) => s.metric.priority)).toEqual(['high']);
}, 60_000);
