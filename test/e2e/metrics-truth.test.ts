/**
 * The counters against Postgres's truth, and every series the rules, dashboards and autoscaler
 * read against a live /metrics. The built api and workers run as child processes; a mixed run
 * (successes, retries, final failures, an unknown type, cancels of waiting and running tasks,
 * redrives single and bulk, a workflow, a cron schedule and a manual trigger), then a worker
 * SIGKILLed holding a lease (the reaper of another records the loss) and Redis losing its data
 * under a running attempt. Each worker's counters are read when it stops (or just before it is
 * killed), so the sums cover every process that ran.
 */
import Redis from 'ioredis';
import { Pool } from 'pg';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { environment, find, synth } from '../k8s/helpers';
import { ADAPTER_CONFIGMAP } from '../../cdk8s/lib/names';
import { ChildHandle, freePort, killAllChildren, spawnService } from '../support/processes';
import { createTestDatabase, testRedisAddr, uniqueRedisPrefix, type TestDatabase } from '../support/test-env';
import { AUTH_ENV, AUTH_HEADER } from '../support/auth';
import { waitFor } from '../support/stack';
import { limitsAtWork } from '../support/limits-at-work';
import { allRules, dashboardExprs, substituteVariables } from '../observability/observability-support';

/** One scrape: each series as its name, labels and value. */
interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseMetrics(text: string): Series[] {
  const out: Series[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsed metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

const sum = (scrapes: Series[][], name: string, labels: Record<string, string> = {}) =>
  scrapes.flat().filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);

let db: TestDatabase;
let pool: Pool;
let redis: Redis;
let prefix: string;
let env: Record<string, string>;
let apiUrl = '';
let apiMetricsUrl = '';
let api: ChildHandle;
/** Each worker's last scrape, taken as it stopped (or just before it was killed). */
const workerScrapes: Series[][] = [];
let apiScrape: Series[] = [];

async function scrape(url: string): Promise<Series[]> {
  return parseMetrics(await (await fetch(`${url}/metrics`)).text());
}

async function startWorker(): Promise<{ child: ChildHandle; url: string }> {
  const port = await freePort();
  const child = await spawnService('dist/services/worker/main.js', { ...env, WORKER_POOL: '4', METRICS_ADDR: `127.0.0.1:${port}` });
  return { child, url: `http://127.0.0.1:${port}` };
}

async function call(method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await fetch(`${apiUrl}${p}`, { method, headers: { ...AUTH_HEADER, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : {} };
}

const count = async (sql: string, params: unknown[] = []) => (await pool.query<{ n: number }>(`SELECT (${sql})::int AS n`, params)).rows[0]!.n;
const allFinal = () => waitFor(async () => (await count("SELECT count(*) FROM tasks WHERE status NOT IN ('succeeded', 'dead', 'cancelled')")) === 0, 45_000, 'every task final');
const statusOf = async (id: string) => (await pool.query<{ status: string }>('SELECT status FROM tasks WHERE id = $1', [id])).rows[0]!.status;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new Pool({ connectionString: db.url, max: 2 });
  prefix = uniqueRedisPrefix('truth');
  const [host, port] = testRedisAddr().split(':');
  redis = new Redis({ host, port: Number(port) });
  env = {
    POSTGRES_URL: db.url,
    REDIS_ADDR: testRedisAddr(),
    REDIS_KEY_PREFIX: prefix,
    LOG_LEVEL: 'info',
    RETRY_BASE_MS: '20',
    RETRY_MAX_MS: '100',
    RETRY_JITTER_MS: '10',
    RETRY_SCAN_INTERVAL_MS: '25',
    VIS_TIMEOUT_MS: '1500',
    REAPER_SCAN_INTERVAL_MS: '200',
    RECONCILE_INTERVAL_MS: '300',
    RECONCILE_GRACE_MS: '300',
    SHUTDOWN_GRACE_MS: '500',
    METRICS_SAMPLE_MS: '100',
  };
  const apiPort = await freePort();
  const metricsPort = await freePort();
  apiUrl = `http://127.0.0.1:${apiPort}`;
  apiMetricsUrl = `http://127.0.0.1:${metricsPort}`;
  api = await spawnService('dist/services/api/main.js', { ...env, ...AUTH_ENV, API_ADDR: `127.0.0.1:${apiPort}`, METRICS_ADDR: `127.0.0.1:${metricsPort}` });
}, 120_000);

afterAll(async () => {
  await api?.stop('SIGTERM', 10_000).catch(() => undefined);
  await killAllChildren();
  const keys = await redis.keys(`{${prefix}}:*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
  await pool?.end();
  await db?.drop();
}, 60_000);

it('after a mixed run, a worker SIGKILLed and Redis losing its data, the counters equal what Postgres recorded', async () => {
  const w1 = await startWorker();
  const w2 = await startWorker();

  // The mixed run.
  const post = async (body: Record<string, unknown>) => {
    const r = await call('POST', '/tasks', body);
    expect(r.status).toBe(201);
    return r.body.id as string;
  };
  for (let i = 0; i < 30; i++) await post({ type: 'noop', priority: ['critical', 'high', 'default', 'low'][i % 4] });
  for (let i = 0; i < 8; i++) await post({ type: 'flaky', payload: { fail_attempts: 1 } });
  for (let i = 0; i < 6; i++) await post({ type: 'always_fail', max_retries: 1 });
  const mystery = await post({ type: 'mystery', max_retries: 0 });
  const later = [];
  for (let i = 0; i < 4; i++) later.push(await post({ type: 'noop', run_at: new Date(Date.now() + 3_600_000).toISOString() }));
  for (const id of later) expect((await call('POST', `/tasks/${id}/cancel`)).status).toBe(200);
  const long = await post({ type: 'sleeper', payload: { sleep_ms: 60_000 } });
  await waitFor(async () => (await statusOf(long)) === 'running', 10_000, 'the sleeper to run');
  expect((await call('POST', `/tasks/${long}/cancel`)).status).toBe(202);
  const wf = await call('POST', '/workflows', { name: 'chain', tasks: [{ key: 'a', type: 'noop' }, { key: 'b', type: 'noop', depends_on: ['a'] }, { key: 'c', type: 'flaky', payload: { fail_attempts: 1 }, depends_on: ['b'] }] });
  expect(wf.status).toBe(201);
  // A workflow cancelled while its first step runs: one step asked to stop, one cancelled waiting.
  const cancelledWf = await call('POST', '/workflows', { name: 'held', tasks: [{ key: 'a', type: 'sleeper', payload: { sleep_ms: 60_000 } }, { key: 'b', type: 'noop', depends_on: ['a'] }] });
  expect(cancelledWf.status).toBe(201);
  await waitFor(async () => (await statusOf(cancelledWf.body.steps[0].task_id)) === 'running', 10_000, 'the first step to run');
  expect((await call('POST', `/workflows/${cancelledWf.body.workflow.id}/cancel`)).body).toMatchObject({ cancelled: 1, cancelling: 1 });
  expect((await call('POST', '/schedules', { name: 'every-second', cron: '* * * * * *', task: { type: 'noop' } })).status).toBe(201);
  expect((await call('POST', '/schedules/every-second/trigger')).status).toBe(201);
  await waitFor(async () => (await count('SELECT count(*) FROM tasks WHERE scheduled_for IS NOT NULL')) >= 3, 15_000, 'three ticks');
  expect((await call('PATCH', '/schedules/every-second', { paused: true })).status).toBe(200);
  // Authentication and tenant limits at work: no key, then a rate limit and a quota refusing tasks.
  const limited = await limitsAtWork(apiUrl, pool, 1000);
  expect(limited.filter((s) => s === 429).length).toBeGreaterThanOrEqual(2);
  await allFinal();
  // Redrives: the dead always_fail tasks in bulk, the unknown type alone; each dies again.
  expect((await call('POST', '/tasks/retry', { filter: { type: 'always_fail' } })).body).toMatchObject({ changed: 6 });
  expect((await call('POST', `/tasks/${mystery}/retry`)).status).toBe(200);
  await allFinal();

  // One worker stops (its counters as it leaves); the other is killed holding a lease.
  workerScrapes.push(await scrape(w2.url));
  await w2.child.stop('SIGTERM', 10_000);
  const crashed = await post({ type: 'sleeper', payload: { sleep_ms: 60_000 }, max_retries: 0 });
  await waitFor(async () => (await statusOf(crashed)) === 'running', 10_000, 'the sleeper to run on the last worker');
  workerScrapes.push(await scrape(w1.url));
  w1.child.kill();
  await w1.child.exited;
  const w3 = await startWorker();
  await waitFor(async () => (await statusOf(crashed)) === 'dead', 20_000, 'the reaper to record the lost attempt');

  // Redis loses everything while an attempt runs: the attempt ends once, whoever records it.
  const lost = await post({ type: 'sleeper', payload: { sleep_ms: 60_000 }, max_retries: 0 });
  await waitFor(async () => (await statusOf(lost)) === 'running', 10_000, 'the sleeper to run');
  const keys = await redis.keys(`{${prefix}}:*`);
  await redis.del(...keys);
  await allFinal();
  expect(await statusOf(lost)).toBe('dead');
  // The workflow counter is claimed from Postgres once a second.
  await waitFor(async () => sum([await scrape(w3.url)], 'workflows_finished_total') + sum(workerScrapes, 'workflows_finished_total') === (await count('SELECT count(*) FROM workflows WHERE finished_at IS NOT NULL')), 10_000, 'the finished workflows to be counted');
  workerScrapes.push(await scrape(w3.url));
  // Work due later in Postgres (a delayed task an hour away), so the api exports when it is due.
  await post({ type: 'noop', delay_ms: 3_600_000 });
  apiScrape = await scrape(apiMetricsUrl);
  await w3.child.stop('SIGTERM', 10_000);

  const runs = async (outcomes: string[]) => count('SELECT count(*) FROM task_runs WHERE outcome = ANY($1)', [outcomes]);
  const redrivenFromDead = sum([apiScrape], 'tasks_redriven_total', { from: 'dead' });
  const truth = {
    succeeded: await runs(['succeeded']),
    // Every attempt counted in Postgres that neither succeeded nor met a cancel. (Not the failed
    // and expired runs: an attempt whose worker lost its lease to a Redis loss has one run,
    // `discarded`, written first, and the expiry that counts it shares that run's lease token.)
    failed: (await count('SELECT sum(attempts) FROM tasks')) - (await runs(['succeeded', 'cancelled'])),
    cancelledRuns: await runs(['cancelled']),
    // Every task that died, including those a redrive brought back (and that died again).
    dead: (await count("SELECT count(*) FROM tasks WHERE status = 'dead'")) + redrivenFromDead,
    cancelled: await count("SELECT count(*) FROM tasks WHERE status = 'cancelled'"),
    enqueued: await count('SELECT count(*) FROM tasks WHERE scheduled_for IS NULL'),
    ticks: await count('SELECT count(*) FROM tasks WHERE scheduled_for IS NOT NULL'),
    workflows: await count('SELECT count(*) FROM workflows'),
    workflowsFinished: await count('SELECT count(*) FROM workflows WHERE finished_at IS NOT NULL'),
  };
  const counted = {
    succeeded: sum(workerScrapes, 'tasks_succeeded_total'),
    failed: sum(workerScrapes, 'tasks_failed_total'),
    cancelledRuns: sum(workerScrapes, 'tasks_cancelled_running_total'),
    dead: sum(workerScrapes, 'tasks_dead_total'),
    cancelled: sum([apiScrape], 'tasks_cancelled_total'),
    enqueued: sum([apiScrape], 'tasks_enqueued_total'),
    ticks: sum(workerScrapes, 'schedule_ticks_total', { outcome: 'fired' }),
    workflows: sum([apiScrape], 'workflows_started_total'),
    workflowsFinished: sum(workerScrapes, 'workflows_finished_total'),
  };
  expect(counted).toEqual(truth);
  // Each failed attempt was either retried or final (no workflow stopped, no cancel met a failure).
  expect(sum(workerScrapes, 'tasks_retried_total') + counted.dead).toBe(counted.failed);
  expect(sum([apiScrape], 'tasks_redriven_total')).toBe(7);
  // Unknown types are counted as `unknown`, never under the name a client sent.
  expect(workerScrapes.flat().some((s) => s.labels.type === 'mystery')).toBe(false);
  expect(sum(workerScrapes, 'tasks_dead_total', { type: 'unknown' })).toBe(2);
}, 240_000);

// ---------------------------------------------------------------------------------------------
// Every series a rule, a dashboard panel or the autoscaler names exists, with the labels it uses.
// ---------------------------------------------------------------------------------------------

/** Labels Prometheus adds to every scraped series (and Kubernetes service discovery). */
const TARGET_LABELS = ['job', 'instance', 'namespace', 'pod', 'service'];
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);

interface Use {
  /** Metric names selected, with the labels each selector matches on. */
  selectors: { name: string; labels: string[] }[];
  /** Labels named by by/without/on/ignoring/group_* clauses. */
  grouping: string[];
}

/** The selectors and grouping labels of a PromQL expression (enough PromQL for these files). */
function uses(expr: string): Use {
  const selectors: Use['selectors'] = [];
  const grouping: string[] = [];
  let rest = expr.replace(/\[[^\]]*\]/g, ' ');
  for (const m of rest.matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)) grouping.push(...m[1]!.split(',').map((s) => s.trim()).filter(Boolean));
  rest = rest.replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  // {__name__=~"a|b"}: each alternative is a name selected with the selector's other labels.
  for (const m of rest.matchAll(/\{([^}]*__name__[^}]*)\}/g)) {
    const matchers = [...m[1]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"([^"]*)"/g)];
    const names = matchers.find((x) => x[1] === '__name__')![2]!.split('|');
    for (const name of names) selectors.push({ name, labels: matchers.map((x) => x[1]!).filter((l) => l !== '__name__') });
  }
  rest = rest.replace(/\{[^}]*__name__[^}]*\}/g, ' ');
  for (const m of rest.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?(\s*\()?/g)) {
    const [, name, braces, call] = m;
    if (call || KEYWORDS.has(name!) || /^\d/.test(name!)) continue;
    const before = rest.slice(0, m.index);
    if (/"[^"]*$/.test(before.replace(/"[^"]*"/g, ''))) continue; // inside a string
    const labels = braces ? [...braces.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((x) => x[1]!) : [];
    selectors.push({ name: name!, labels });
  }
  return { selectors, grouping };
}

/** The label names each exported series name carries (histograms under _bucket, _sum, _count). */
function exported(scrapes: Series[][]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const s of scrapes.flat()) {
    let set = out.get(s.name);
    if (!set) out.set(s.name, (set = new Set(TARGET_LABELS)));
    for (const l of Object.keys(s.labels)) set.add(l);
  }
  return out;
}

/** Every PromQL expression shipped: rules, dashboard panels, and the autoscaler's (KEDA and prometheus-adapter). */
function shippedExpressions(): { where: string; expr: string }[] {
  const list: { where: string; expr: string }[] = [];
  for (const r of allRules()) list.push({ where: `rule ${r.record ?? r.alert}`, expr: r.expr });
  for (const e of dashboardExprs()) list.push({ where: `${e.dashboard} "${e.panel}" ${e.refId}`, expr: substituteVariables(e.expr) });
  for (const envName of ['dev', 'prod']) {
    const docs = parseAllDocuments(readFileSync(path.join(__dirname, `../../charts/manifests/${envName}.yaml`), 'utf8')).map((d) => d.toJS() as any); // eslint-disable-line @typescript-eslint/no-explicit-any
    for (const so of docs.filter((d) => d?.kind === 'ScaledObject')) for (const t of so.spec.triggers) list.push({ where: `${envName} ScaledObject ${t.name}`, expr: t.metadata.query });
    // The `hpa` kind's prometheus-adapter rules, with the matchers the adapter fills in.
    const adapter = find(synth(environment(envName as 'dev' | 'prod', 'hpa')), 'ConfigMap', ADAPTER_CONFIGMAP);
    for (const r of (parse(adapter.data['config.yaml']) as { externalRules: { name: { as: string }; metricsQuery: string }[] }).externalRules) {
      list.push({ where: `${envName} prometheus-adapter ${r.name.as}`, expr: r.metricsQuery.replaceAll('<<.LabelMatchers>>', 'namespace="task-scheduler",job="task-scheduler-api"') });
    }
  }
  return list;
}

it('every series a rule, dashboard panel or autoscaler query names is exported, with the labels the query uses', async () => {
  expect(workerScrapes.length).toBeGreaterThan(0);
  const have = exported([apiScrape, ...workerScrapes]);
  const records = new Map<string, Set<string>>();
  // Recorded series carry the labels of what they are built from (over-approximated), plus their own.
  for (const r of allRules().filter((x) => x.record)) {
    const set = records.get(r.record!) ?? new Set<string>(Object.keys(r.labels ?? {}));
    for (const s of uses(r.expr).selectors) for (const l of have.get(s.name) ?? records.get(s.name) ?? []) set.add(l);
    records.set(r.record!, set);
  }
  const problems: string[] = [];
  const exprs = shippedExpressions();
  expect(exprs.some((e) => e.where.includes('ScaledObject'))).toBe(true);
  expect(exprs.some((e) => e.where.includes('prometheus-adapter'))).toBe(true);
  for (const { where, expr } of exprs) {
    const u = uses(expr);
    const inExpr = new Set<string>();
    for (const s of u.selectors) {
      const labels = have.get(s.name) ?? records.get(s.name);
      if (!labels) {
        problems.push(`${where}: ${s.name} is not exported`);
        continue;
      }
      for (const l of labels) inExpr.add(l);
      for (const l of s.labels) if (!labels.has(l)) problems.push(`${where}: ${s.name} has no label ${l}`);
    }
    for (const l of u.grouping) if (l !== 'le' && !inExpr.has(l)) problems.push(`${where}: no series it reads has the label ${l}`);
    for (const l of u.grouping) if (l === 'le' && !u.selectors.some((s) => s.name.endsWith('_bucket') || s.name.includes('_bucket:'))) problems.push(`${where}: groups by le without a histogram`);
  }
  expect(problems).toEqual([]);
});
