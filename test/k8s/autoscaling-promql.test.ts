/**
 * The autoscaler's PromQL, evaluated by `promtool test rules` against made-up api scrapes: what
 * each trigger reports in the situations docs/autoscaling.md describes. Two api replicas export
 * every queue gauge, as in a real deployment, so the `max` de-duplication is exercised too.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { apiSelector, leasesAndRetriesQuery, oldestWaitQuery, queueDepthQuery } from '../../cdk8s/lib/autoscaling-queries';
import { environment, find, synth } from './helpers';
import { promtool } from './promtool';

const NS = 'task-scheduler';
const JOB = 'task-scheduler-api';
const selector = apiSelector(NS, JOB);
// The worked examples of docs/autoscaling.md: WORKER_POOL 8, a target wait of 15 s.
const params = { workerSlots: 8, targetOldestWaitSeconds: 15 };

/** What the api exports (per priority where the gauge has priorities); unset gauges are absent. */
interface Scrape {
  depth?: Partial<Record<'critical' | 'high' | 'default' | 'low', number>>;
  /** queue_depth_leasable: of those, not held at a tenant's running cap (absent: an api from before it). */
  leasable?: Partial<Record<'critical' | 'high' | 'default' | 'low', number>>;
  oldest?: Partial<Record<'critical' | 'high' | 'default' | 'low', number>>;
  retrying?: number;
  leased?: number;
  workers?: number;
  /** work_next_due_seconds by kind (absent: no such work). */
  due?: Partial<Record<'schedule' | 'delayed', number>>;
}

function series(s: Scrape) {
  const out: { series: string; values: string }[] = [];
  for (const instance of ['api-1:2112', 'api-2:2112']) {
    const labels = (extra = '') => `{namespace="${NS}",job="${JOB}",instance="${instance}"${extra}}`;
    for (const [p, v] of Object.entries(s.depth ?? {})) out.push({ series: `queue_depth${labels(`,priority="${p}"`)}`, values: String(v) });
    for (const [p, v] of Object.entries(s.leasable ?? {})) out.push({ series: `queue_depth_leasable${labels(`,priority="${p}"`)}`, values: String(v) });
    for (const [p, v] of Object.entries(s.oldest ?? {})) out.push({ series: `queue_oldest_task_age_seconds${labels(`,priority="${p}"`)}`, values: String(v) });
    if (s.retrying !== undefined) out.push({ series: `retry_set_depth${labels(',priority="default"')}`, values: String(s.retrying) });
    if (s.leased !== undefined) out.push({ series: `tasks_leased${labels()}`, values: String(s.leased) });
    if (s.workers !== undefined) out.push({ series: `workers_alive${labels()}`, values: String(s.workers) });
    for (const [kind, v] of Object.entries(s.due ?? {})) out.push({ series: `work_next_due_seconds${labels(`,kind="${kind}"`)}`, values: String(v) });
  }
  return out;
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'k8s-promql-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Evaluates `expr` over the scrape with promtool; passes when it yields exactly `value`. */
function expectValue(expr: string, scrape: Scrape, value: number): void {
  const file = path.join(dir, `t-${Math.random().toString(36).slice(2)}.yml`);
  const test = { interval: '1m', input_series: series(scrape), promql_expr_test: [{ expr, eval_time: '0m', exp_samples: [{ labels: '{}', value }] }] };
  writeFileSync(file, stringify({ rule_files: [], evaluation_interval: '1m', tests: [test] }));
  let output: string;
  try {
    output = execFileSync(promtool(), ['test', 'rules', file], { encoding: 'utf8', stdio: 'pipe' });
  } catch (err) {
    output = `${(err as { stdout?: string }).stdout ?? ''}${(err as { stderr?: string }).stderr ?? ''}`;
  }
  expect(output).toContain('SUCCESS');
}

const oldest = oldestWaitQuery(selector, params);
/** HPA on a Value target: ceil(ready replicas × metric / target). */
const byAge = (ready: number, metric: number) => Math.ceil((ready * metric) / params.targetOldestWaitSeconds);

describe('queue depth', () => {
  test('waiting tasks summed over priorities, each counted once however many api replicas export it', () => {
    const depth = { critical: 400, high: 1000, default: 900, low: 100 };
    expectValue(queueDepthQuery(selector), { depth, leasable: depth }, 2400);
    // An api from before queue_depth_leasable (a rolling upgrade): queue_depth.
    expectValue(queueDepthQuery(selector), { depth }, 2400);
  });

  test("a tenant's backlog held at its running cap is left out: more workers would not start it", () => {
    // 10,000 waiting, all but 50 a capped tenant's: 50 (asking for 1 worker at 100 a worker, not maxReplicas).
    expectValue(queueDepthQuery(selector), { depth: { default: 10_000 }, leasable: { default: 50 } }, 50);
    expectValue(queueDepthQuery(selector), { depth: { default: 10_000 }, leasable: { default: 0 } }, 0);
  });
});

describe('oldest wait', () => {
  test('all slots busy behind a backlog: the oldest age itself (45 s at 4 workers asks for 12)', () => {
    expectValue(oldest, { depth: { high: 300, low: 100 }, oldest: { high: 45, low: 10 }, workers: 4, leased: 32 }, 45);
    expect(byAge(4, 45)).toBe(12);
  });

  test('a slot free: 0, since more workers would not start the waiting tasks (e.g. a tenant at its running cap)', () => {
    expectValue(oldest, { depth: { high: 300 }, oldest: { high: 600 }, workers: 4, leased: 31 }, 0);
  });

  test('a few slow tasks waiting: capped so it asks for one more worker per WORKER_POOL waiting tasks', () => {
    // Cap: 15 × (4 + ceil(2 / 8)) / 4 = 18.75 s, i.e. 5 workers instead of ceil(4 × 120 / 15) = 32.
    expectValue(oldest, { depth: { default: 2 }, oldest: { default: 120 }, workers: 4, leased: 32 }, 18.75);
    expect(byAge(4, 18.75)).toBe(5);
  });

  test('no workers (scaled to zero): the age, capped, so KEDA sees the trigger active', () => {
    expectValue(oldest, { depth: { low: 3 }, oldest: { low: 20 }, workers: 0, leased: 0 }, 15);
  });

  test('an empty queue: 0', () => {
    expectValue(oldest, { depth: { high: 0 }, oldest: { high: 0 }, workers: 4, leased: 0 }, 0);
    expectValue(oldest, { depth: { high: 0 }, oldest: { high: 0 }, workers: 4, leased: 32 }, 0);
  });

  test('no series at all (the api not scraped yet): 0, never an empty result', () => {
    expectValue(oldest, {}, 0);
  });
});

describe('leases and retries', () => {
  test('1 while a task is leased or waits for a retry, else 0', () => {
    expectValue(leasesAndRetriesQuery(selector), { leased: 0, retrying: 0 }, 0);
    expectValue(leasesAndRetriesQuery(selector), { leased: 0, retrying: 3 }, 1);
    expectValue(leasesAndRetriesQuery(selector), { leased: 5, retrying: 0 }, 1);
  });

  test('1 while a cron tick or a delayed task in Postgres is due within a minute or overdue (nothing in Redis yet), else 0', () => {
    expectValue(leasesAndRetriesQuery(selector), { leased: 0, retrying: 0, due: { schedule: 45 } }, 1);
    expectValue(leasesAndRetriesQuery(selector), { leased: 0, retrying: 0, due: { delayed: -3 } }, 1);
    expectValue(leasesAndRetriesQuery(selector), { leased: 0, retrying: 0, due: { schedule: 30, delayed: 10 } }, 1);
    expectValue(leasesAndRetriesQuery(selector), { leased: 0, retrying: 0, due: { schedule: 3600, delayed: 600 } }, 0);
    expectValue(leasesAndRetriesQuery(selector), { leased: 2, retrying: 0, due: { schedule: 5 } }, 1);
  });
});

test("prod's ScaledObject runs these queries with its own WORKER_POOL (12) and target (30 s)", () => {
  const env = environment('prod');
  const [depth, age, keep] = find(synth(env), 'ScaledObject', 'task-scheduler-worker').spec.triggers.map((t: any) => t.metadata.query as string);
  const scrape: Scrape = { depth: { high: 3 }, oldest: { high: 90 }, workers: 2, leased: 24, retrying: 0 };
  expectValue(depth!, scrape, 3);
  // Cap: 30 × (2 + ceil(3 / 12)) / 2 = 45 s.
  expectValue(age!, scrape, 45);
  expectValue(keep!, scrape, 1);
}, 60_000);
