/**
 * Structure of the Grafana dashboards (no Grafana here; prometheus-live.test.ts runs every panel's
 * query against a real Prometheus): schema, ids, the fixed data source, layout, the priority
 * variable, refresh rates, no double counting of queue gauges, provisioning, and the README.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { PRIORITIES } from '../../services/core/tasks/priority';
import { allPanels, allRules, dashboardExprs, dashboardFiles, DATASOURCE_UID, loadDashboard, REPO_ROOT } from './observability-support';

const files = dashboardFiles();
const byName = Object.fromEntries(files.map((f) => [path.basename(f), loadDashboard(f)]));

it('has the overview and the realtime dashboard', () => {
  expect(Object.keys(byName).sort()).toEqual(['observability.json', 'realtime.json']);
});

describe.each(Object.keys(byName))('%s', (name) => {
  const d = byName[name]!;
  const panels = allPanels(d);

  it('has a schemaVersion (>= 36), a uid and a title', () => {
    expect(d.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(d.uid).toMatch(/^[A-Za-z0-9_-]{1,40}$/);
    expect(d.title).toBeTruthy();
  });

  it('gives every panel a unique id, the fixed data source, a query and a place on the grid', () => {
    expect(panels.length).toBeGreaterThan(0);
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels) {
      const where = `${name} panel ${p.id} "${p.title}"`;
      expect([where, Number.isInteger(p.id)]).toEqual([where, true]);
      expect([where, p.title]).toEqual([where, expect.any(String)]);
      expect([where, p.datasource]).toEqual([where, { type: 'prometheus', uid: DATASOURCE_UID }]);
      const targets = p.targets ?? [];
      expect([where, targets.filter((t) => t.expr?.trim()).length]).toEqual([where, targets.length || -1]);
      for (const t of targets) expect([where, t.refId, t.datasource?.uid ?? DATASOURCE_UID]).toEqual([where, t.refId, DATASOURCE_UID]);
      const g = p.gridPos;
      expect([where, g && [g.x, g.y, g.w, g.h].every((v) => Number.isInteger(v) && v >= 0)]).toEqual([where, true]);
      expect([where, g!.w > 0 && g!.h > 0 && g!.x + g!.w <= 24]).toEqual([where, true]);
    }
  });

  it('lays out panels without overlaps', () => {
    const overlaps: string[] = [];
    panels.forEach((a, i) =>
      panels.slice(i + 1).forEach((b) => {
        const A = a.gridPos!;
        const B = b.gridPos!;
        if (A.x < B.x + B.w && B.x < A.x + A.w && A.y < B.y + B.h && B.y < A.y + A.h) overlaps.push(`"${a.title}" and "${b.title}"`);
      }),
    );
    expect(overlaps).toEqual([]);
  });

  it('has a multi-value priority variable with every priority and an All value of .*', () => {
    const v = d.templating?.list?.find((t) => t.name === 'priority');
    expect(v).toBeDefined();
    expect(v).toMatchObject({ multi: true, includeAll: true, allValue: '.*' });
    const offered = v!.type === 'custom' ? String(v!.query).split(',').map((s) => s.trim()) : (v!.options ?? []).map((o) => o.value);
    expect(offered).toEqual(expect.arrayContaining([...PRIORITIES]));
    // The variable is used: every per-priority panel filters on it.
    const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ''));
    expect(exprs.some((e) => e.includes('priority=~"$priority"'))).toBe(true);
  });
});

it('the realtime dashboard refreshes every 1 to 5 seconds and uses short windows', () => {
  const d = byName['realtime.json']!;
  const m = /^(\d+)s$/.exec(String(d.refresh));
  expect(m).not.toBeNull();
  expect(Number(m![1])).toBeGreaterThanOrEqual(1);
  expect(Number(m![1])).toBeLessThanOrEqual(5);
  const windows = dashboardExprs()
    .filter((e) => e.dashboard === 'realtime.json')
    .flatMap((e) => [...e.expr.matchAll(/\[(\d+)([smh])\]/g)].map((w) => Number(w[1]) * { s: 1, m: 60, h: 3600 }[w[2] as 's' | 'm' | 'h']));
  expect(windows.length).toBeGreaterThan(0);
  expect(Math.max(...windows)).toBeLessThanOrEqual(60);
});

it('no panel double-counts: queue gauges are aggregated with max (by priority), never summed over processes', () => {
  const gauges = ['queue_depth', 'retry_set_depth', 'dlq_depth', 'queue_oldest_task_age_seconds', 'tasks_leased', 'workers_alive'];
  const bad: string[] = [];
  for (const e of dashboardExprs()) {
    for (const g of gauges) {
      for (const m of e.expr.matchAll(new RegExp(`(?<![:\\w])${g}(?![:\\w])`, 'g'))) {
        if (!/(max by \(priority\) \(|max\()$/.test(e.expr.slice(0, m.index))) bad.push(`${e.dashboard} "${e.panel}" ${e.refId}: ${e.expr}`);
      }
    }
  }
  expect(bad).toEqual([]);
});

it('a panel in requests per second reads only counters of requests (tasks refused in a batch count one each)', () => {
  const requestCounters = new Set(['http_requests_total', 'auth_failures_total']);
  const bad: string[] = [];
  for (const d of Object.values(byName)) {
    for (const p of allPanels(d)) {
      if (p.fieldConfig?.defaults?.unit !== 'reqps') continue;
      for (const t of p.targets ?? []) {
        const names = [...(t.expr ?? '').matchAll(/\b([a-z_]+_total)\b/g)].map((m) => m[1]!);
        for (const n of names) if (!requestCounters.has(n)) bad.push(`"${p.title}": ${n}`);
      }
    }
  }
  expect(bad).toEqual([]);
});

it('panels use only recording rules that exist in alerts/', () => {
  const recorded = new Set(allRules().flatMap((r) => (r.record ? [r.record] : [])));
  const used = dashboardExprs().flatMap((e) => [...e.expr.matchAll(/\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b/g)].map((m) => m[0]));
  for (const name of used) expect([name, recorded.has(name)]).toEqual([name, true]);
});

describe('Grafana provisioning for docker-compose', () => {
  const compose = parse(readFileSync(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8')) as {
    services: Record<string, { volumes?: string[]; environment?: Record<string, string>; ports?: string[] }>;
  };

  it('provisions the Prometheus data source with the uid the panels use', () => {
    const ds = parse(readFileSync(path.join(REPO_ROOT, 'grafana/provisioning/datasources/prometheus.yml'), 'utf8')) as { datasources: { uid: string; type: string; url: string }[] };
    expect(ds.datasources).toEqual([expect.objectContaining({ uid: DATASOURCE_UID, type: 'prometheus', url: 'http://prometheus:9090' })]);
  });

  it('loads the dashboards from where docker-compose mounts them', () => {
    const prov = parse(readFileSync(path.join(REPO_ROOT, 'grafana/provisioning/dashboards/task-scheduler.yml'), 'utf8')) as { providers: { type: string; options: { path: string } }[] };
    const dashboardsPath = prov.providers[0]!.options.path;
    const grafana = compose.services.grafana!;
    expect(grafana.volumes).toEqual(expect.arrayContaining(['./grafana/provisioning:/etc/grafana/provisioning:ro', `./grafana/dashboards:${dashboardsPath}:ro`]));
    expect(grafana.ports).toContain('3000:3000');
    // The realtime dashboard's refresh is only honoured when Grafana allows it.
    expect(grafana.environment?.GF_DASHBOARDS_MIN_REFRESH_INTERVAL).toBe('1s');
    expect(compose.services.prometheus?.ports).toContain('9090:9090');
  });
});

describe('README', () => {
  const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');

  it('lists every metric that services/core/observability/metrics.ts defines', () => {
    const source = readFileSync(path.join(REPO_ROOT, 'services/core/observability/metrics.ts'), 'utf8');
    const names = [...source.matchAll(/(?:name: |c\(|perPriority\(|single\()'([a-z_]+)'/g)].map((m) => m[1]!);
    expect(names.length).toBeGreaterThan(15);
    for (const n of names) expect([n, readme.includes(`| \`${n}\` |`)]).toEqual([n, true]);
  });

  it('lists every alert and every dashboard panel', () => {
    for (const a of allRules().filter((r) => r.alert)) expect([a.alert, readme.includes(`| \`${a.alert}\` |`)]).toEqual([a.alert, true]);
    // Panel titles may wrap across README lines.
    const flat = readme.replace(/\s+/g, ' ');
    for (const d of Object.values(byName)) {
      for (const p of allPanels(d)) expect([p.title, flat.includes(p.title!)]).toEqual([p.title, true]);
    }
  });
});
