/**
 * The Prometheus rules in alerts/: promtool accepts them and their unit tests (alerts/tests/*.yml)
 * pass; every alert is documented, has a runbook entry and is unit-tested both firing and not
 * firing; the Prometheus configs (docker-compose's and npm start's) are valid and load them.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { ALERTS_DIR, allRules, ensurePrometheusTools, REPO_ROOT, ruleFiles, runOk } from './observability-support';

const ruleFilePaths = () => ruleFiles().map((f) => f.file);
const unitTestFiles = () =>
  readdirSync(path.join(ALERTS_DIR, 'tests'))
    .filter((f) => f.endsWith('.yml'))
    .sort()
    .map((f) => path.join(ALERTS_DIR, 'tests', f));

beforeAll(() => ensurePrometheusTools(), 600_000);

it('promtool check rules accepts every rule file', () => {
  expect(ruleFilePaths().length).toBeGreaterThanOrEqual(2);
  runOk('promtool', ['check', 'rules', ...ruleFilePaths()]);
});

it('promtool test rules passes every unit test in alerts/tests/', () => {
  const files = unitTestFiles();
  expect(files.length).toBeGreaterThan(0);
  const out = runOk('promtool', ['test', 'rules', ...files]);
  expect(out).not.toMatch(/FAILED/);
});

describe('every alert', () => {
  const alerts = allRules().filter((r) => r.alert);
  const runbook = readFileSync(path.join(REPO_ROOT, 'docs/runbook.md'), 'utf8');
  const anchors = new Set([...runbook.matchAll(/^#+\s+(.+)$/gm)].map((m) => m[1]!.trim().toLowerCase().replace(/[^a-z0-9 -]/g, '').replace(/ /g, '-')));
  const unitTests = unitTestFiles().flatMap((f) => {
    const doc = parse(readFileSync(f, 'utf8')) as { tests?: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[] };
    return (doc.tests ?? []).flatMap((t) => t.alert_rule_test ?? []);
  });

  it('exists (the expected set of alerts)', () => {
    expect(alerts.map((a) => a.alert).sort()).toEqual(
      [
        'ApiErrorRateHigh',
        'ApiKeyLookupsRefused',
        'DeadLetterQueueGrowing',
        'DependencyDown',
        'EnqueueToStartOverObjective',
        'FinalFailureRateHigh',
        'HandlerLatencyHigh',
        'NoLiveWorkers',
        'OldestWaitingTaskTooOld',
        'QueueBacklogGrowing',
        'QueueMetricsMissing',
        'ReaperReclaimSpike',
        'RedisMayEvictQueueData',
        'RetrySurge',
        'ScheduleTickLate',
        'TenantHeldAtLimit',
        'UnknownApiKeyFlood',
      ].sort(),
    );
  });

  it.each(alerts.map((a) => [a.alert!, a] as const))('%s has a severity, summary, description, a runbook entry and a for: duration', (name, a) => {
    expect(['page', 'ticket']).toContain(a.labels?.severity);
    expect(a.annotations?.summary).toBeTruthy();
    expect(a.annotations?.description).toBeTruthy();
    expect(a.annotations?.runbook).toBe(`docs/runbook.md#${name.toLowerCase()}`);
    expect(anchors).toContain(name.toLowerCase());
    expect(a.for).toMatch(/^\d+[smh]$/);
  });

  it.each(alerts.map((a) => [a.alert!] as const))('%s has promtool unit tests that expect it firing and not firing', (name) => {
    const mine = unitTests.filter((t) => t.alertname === name);
    expect(mine.some((t) => (t.exp_alerts ?? []).length > 0)).toBe(true);
    expect(mine.some((t) => (t.exp_alerts ?? []).length === 0)).toBe(true);
  });
});

it('queue gauges are only ever aggregated with max, never summed over scraped processes', () => {
  const gauges = ['queue_depth', 'retry_set_depth', 'dlq_depth', 'queue_oldest_task_age_seconds', 'tasks_leased', 'workers_alive'];
  for (const r of allRules()) {
    for (const g of gauges) {
      for (const m of r.expr.matchAll(new RegExp(`(?<![:\\w])${g}(?![:\\w])`, 'g'))) {
        const before = r.expr.slice(0, m.index);
        // absent(queue_depth) only asks whether the series exists.
        expect(`${r.record ?? r.alert}: ${before.slice(-20)}${g}`).toMatch(/(max by \(priority\) \(|max\(|absent\()\w+$/);
      }
    }
  }
});

describe('Prometheus configs', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ts-promcfg-'));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it("docker-compose's prometheus/prometheus.yml is valid and loads every rule file in alerts/", () => {
    const text = readFileSync(path.join(REPO_ROOT, 'prometheus/prometheus.yml'), 'utf8');
    const cfg = parse(text) as { rule_files: string[]; scrape_configs: { job_name: string; dns_sd_configs?: { names: string[]; port: number }[] }[] };
    expect(cfg.rule_files).toEqual(['/etc/prometheus/alerts/*.yml']);
    const jobs = Object.fromEntries(cfg.scrape_configs.map((s) => [s.job_name, s]));
    expect(jobs['task-scheduler-api']?.dns_sd_configs?.[0]).toMatchObject({ names: ['api'], port: 2112 });
    expect(jobs['task-scheduler-worker']?.dns_sd_configs?.[0]).toMatchObject({ names: ['worker'], port: 2113 });
    // The compose file mounts alerts/ where the config expects the rules.
    const compose = parse(readFileSync(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, { volumes?: string[] }> };
    expect(compose.services.prometheus?.volumes).toEqual(expect.arrayContaining(['./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro', './alerts:/etc/prometheus/alerts:ro']));

    const local = path.join(tmp, 'compose-prometheus.yml');
    writeFileSync(local, text.replace('/etc/prometheus/alerts/*.yml', path.join(ALERTS_DIR, '*.yml')));
    const out = runOk('promtool', ['check', 'config', local]);
    for (const f of ruleFilePaths()) expect(out).toContain(f);
  });

  it("npm start's generated config (scripts/prometheus-local.sh config) is valid and loads every rule file", () => {
    const out = path.join(tmp, 'npm-start-prometheus.yml');
    runOk('bash', [path.join(REPO_ROOT, 'scripts/prometheus-local.sh'), 'config', out, '127.0.0.1:2112', '127.0.0.1:2113', '5s']);
    const checked = runOk('promtool', ['check', 'config', out]);
    for (const f of ruleFilePaths()) expect(checked).toContain(f);
  });
});
