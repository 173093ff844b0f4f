/**
 * Scale to zero wakes a worker for work that only a worker starts: a cron schedule's tick and a
 * delayed task due beyond DELAYED_HORIZON_MS live in Postgres alone (the workers' ticker and
 * loader bring them into Redis), so the queue gauges stay at 0 for them. The built api runs with no
 * worker; its live /metrics, labelled as Prometheus would scrape it, feed the ScaledObject's own
 * trigger queries (prod with worker.minReplicas 0), evaluated by promtool: KEDA starts a worker
 * from zero only when some trigger's value exceeds its activationThreshold.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { ChildHandle, freePort, killAllChildren, spawnService } from '../support/processes';
import { createTestDatabase, testRedisAddr, uniqueRedisPrefix, type TestDatabase } from '../support/test-env';
import { AUTH_ENV, AUTH_HEADER } from '../support/auth';
import { waitFor } from '../support/stack';
import { environment, find, synth } from '../k8s/helpers';
import { promtool } from '../k8s/promtool';

const NS = 'task-scheduler';
const JOB = 'task-scheduler-api';

let db: TestDatabase;
let api: ChildHandle;
let apiUrl = '';
let metricsUrl = '';
let dir = '';

beforeAll(async () => {
  db = await createTestDatabase();
  const [apiPort, metricsPort] = [await freePort(), await freePort()];
  apiUrl = `http://127.0.0.1:${apiPort}`;
  metricsUrl = `http://127.0.0.1:${metricsPort}`;
  api = await spawnService('dist/services/api/main.js', {
    ...AUTH_ENV,
    POSTGRES_URL: db.url,
    REDIS_ADDR: testRedisAddr(),
    REDIS_KEY_PREFIX: uniqueRedisPrefix('zero'),
    API_ADDR: `127.0.0.1:${apiPort}`,
    METRICS_ADDR: `127.0.0.1:${metricsPort}`,
    METRICS_SAMPLE_MS: '100',
    DELAYED_HORIZON_MS: '10000',
  });
  dir = mkdtempSync(path.join(os.tmpdir(), 'zero-'));
}, 60_000);

afterAll(async () => {
  await api?.stop('SIGTERM', 10_000).catch(() => undefined);
  await killAllChildren();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function call(method: string, p: string, body?: unknown): Promise<number> {
  const res = await fetch(`${apiUrl}${p}`, { method, headers: { ...AUTH_HEADER, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  await res.text();
  return res.status;
}

/** The api's series as promtool input: each with the namespace and job labels a scrape adds. */
async function scrapedSeries(): Promise<{ series: string; values: string }[]> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  const out: { series: string; values: string }[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || !Number.isFinite(Number(m[3]))) continue;
    const labels = [`namespace="${NS}"`, `job="${JOB}"`, `instance="api-0:2112"`, ...(m[2] ? [m[2]] : [])].join(',');
    out.push({ series: `${m[1]}{${labels}}`, values: m[3]! });
  }
  return out;
}

/** Each trigger's value over `input`, as promtool evaluates it. */
function evaluate(queries: string[], input: { series: string; values: string }[]): number[] {
  return queries.map((expr) => {
    // The expected value is found by asking for an impossible one and reading promtool's report.
    const file = path.join(dir, `q-${Math.random().toString(36).slice(2)}.yml`);
    writeFileSync(file, stringify({ rule_files: [], evaluation_interval: '1m', tests: [{ interval: '1m', input_series: input, promql_expr_test: [{ expr, eval_time: '0m', exp_samples: [{ labels: '{}', value: -12345 }] }] }] }));
    let output = '';
    try {
      output = execFileSync(promtool(), ['test', 'rules', file], { encoding: 'utf8', stdio: 'pipe' });
    } catch (err) {
      output = `${(err as { stdout?: string }).stdout ?? ''}${(err as { stderr?: string }).stderr ?? ''}`;
    }
    const got = /got: \{\} (\S+)/.exec(output);
    if (!got) throw new Error(`no value for ${expr}:\n${output}`);
    return Number(got[1]);
  });
}

/** The names of prod's worker ScaledObject triggers (scale to zero) active on the api's metrics now. */
async function active(): Promise<string[]> {
  const so = find(synth({ ...environment('prod'), worker: { ...environment('prod').worker, minReplicas: 0 } }), 'ScaledObject', 'task-scheduler-worker');
  const triggers = so.spec.triggers as { name: string; metadata: { query: string; activationThreshold: string } }[];
  const values = evaluate(triggers.map((t) => t.metadata.query), await scrapedSeries());
  return triggers.filter((t, i) => values[i]! > Number(t.metadata.activationThreshold)).map((t) => t.name);
}

const someActive = () => waitFor(async () => (await active()).length > 0, 15_000, 'a trigger to become active');

it('with no worker, a delayed task due beyond the horizon makes a trigger active once it is due within a minute', async () => {
  // Nothing to do: no trigger active, so KEDA may keep the workers at zero.
  expect(await active()).toEqual([]);

  // Delayed tasks due beyond the horizon (10 s here) wait in Postgres only. One due in an hour
  // wakes nothing yet; one due in 30 s does.
  expect(await call('POST', '/tasks', { type: 'noop', delay_ms: 3_600_000 })).toBe(201);
  await new Promise((r) => setTimeout(r, 300));
  expect(await active()).toEqual([]);
  expect(await call('POST', '/tasks', { type: 'noop', delay_ms: 30_000 })).toBe(201);
  await someActive();
}, 60_000);

it('a cron schedule whose tick is due wakes a worker (only workers fire ticks)', async () => {
  // The same api: the delayed task above is cancelled first, so only the schedule is due.
  expect(await call('POST', '/tasks/cancel', { filter: { status: 'scheduled' } })).toBe(200);
  expect(await active()).toEqual([]);
  expect(await call('POST', '/schedules', { name: 'every-minute', cron: '* * * * *', task: { type: 'noop' } })).toBe(201);
  await someActive();
}, 60_000);

it('a Postgres that does not answer holds no scrape: /metrics answers within READINESS_TIMEOUT_MS', async () => {
  // Accepts connections and never answers, as a frozen Postgres or a partition would.
  const sockets = new Set<import('node:net').Socket>();
  const net = await import('node:net');
  const silent = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const port = await freePort();
  const hung = await spawnService('dist/services/api/main.js', {
    POSTGRES_URL: `postgres://postgres@127.0.0.1:${(silent.address() as import('node:net').AddressInfo).port}/none`,
    REDIS_ADDR: testRedisAddr(),
    REDIS_KEY_PREFIX: uniqueRedisPrefix('zero-hung'),
    API_ADDR: `127.0.0.1:${await freePort()}`,
    METRICS_ADDR: `127.0.0.1:${port}`,
    READINESS_TIMEOUT_MS: '500',
  });
  try {
    for (let i = 0; i < 2; i++) {
      const t0 = Date.now();
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('dependency_up{dependency="postgres",service="api"} 0');
      expect(Date.now() - t0).toBeLessThan(2000);
    }
  } finally {
    await hung.stop('SIGTERM', 10_000);
    for (const s of sockets) s.destroy();
    await new Promise((r) => silent.close(r));
  }
}, 60_000);
