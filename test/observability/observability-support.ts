/**
 * Helpers for the observability tests: Debian's prometheus/promtool (installed on demand through
 * scripts/prometheus-local.sh), the rule files in alerts/ and the dashboards in grafana/dashboards/.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';

export const REPO_ROOT = path.resolve(__dirname, '../..');
export const ALERTS_DIR = path.join(REPO_ROOT, 'alerts');
export const DASHBOARDS_DIR = path.join(REPO_ROOT, 'grafana/dashboards');
/** The data source uid every dashboard panel uses (grafana/provisioning/datasources/prometheus.yml). */
export const DATASOURCE_UID = 'prometheus';

export interface RunResult {
  status: number | null;
  output: string;
}

export function run(cmd: string, args: string[], opts: { timeoutMs?: number; cwd?: string } = {}): RunResult {
  const r = spawnSync(cmd, args, { cwd: opts.cwd ?? REPO_ROOT, encoding: 'utf8', timeout: opts.timeoutMs ?? 120_000 });
  const output = `$ ${cmd} ${args.join(' ')}\n${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? `\n[${r.error.message}]` : ''}`;
  return { status: r.status, output };
}

/** Throws with the command's output unless it exited 0. */
export function runOk(cmd: string, args: string[], opts: { timeoutMs?: number; cwd?: string } = {}): string {
  const r = run(cmd, args, opts);
  if (r.status !== 0) throw new Error(`exit ${r.status}:\n${r.output}`);
  return r.output;
}

function onPath(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).status === 0;
}

/** Makes sure `prometheus` and `promtool` are installed (apt, via scripts/prometheus-local.sh). */
export function ensurePrometheusTools(): void {
  if (onPath('prometheus') && onPath('promtool')) return;
  runOk('bash', [path.join(REPO_ROOT, 'scripts/prometheus-local.sh'), 'install'], { timeoutMs: 600_000 });
}

// ---------------------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------------------

export interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
export interface RuleFile {
  file: string;
  groups: { name: string; interval?: string; rules: Rule[] }[];
}

/** The rule files Prometheus loads (alerts/*.yml; the unit tests live in alerts/tests/). */
export function ruleFiles(): RuleFile[] {
  return readdirSync(ALERTS_DIR)
    .filter((f) => f.endsWith('.yml') || f.endsWith('.yaml'))
    .sort()
    .map((f) => ({ file: path.join(ALERTS_DIR, f), ...(parse(readFileSync(path.join(ALERTS_DIR, f), 'utf8')) as Omit<RuleFile, 'file'>) }));
}

export function allRules(): Rule[] {
  return ruleFiles().flatMap((f) => f.groups.flatMap((g) => g.rules));
}

// ---------------------------------------------------------------------------------------------
// Dashboards
// ---------------------------------------------------------------------------------------------

export interface Target {
  expr?: string;
  refId?: string;
  datasource?: { type?: string; uid?: string };
}
export interface Panel {
  id?: number;
  type?: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  gridPos?: { x: number; y: number; w: number; h: number };
  fieldConfig?: { defaults?: { unit?: string } };
  panels?: Panel[];
}
export interface Dashboard {
  uid?: string;
  title?: string;
  schemaVersion?: number;
  refresh?: string | false;
  templating?: { list?: { name: string; type: string; query?: unknown; includeAll?: boolean; allValue?: string; multi?: boolean; options?: { value: string }[] }[] };
  panels?: Panel[];
}

export function dashboardFiles(): string[] {
  return readdirSync(DASHBOARDS_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => path.join(DASHBOARDS_DIR, f));
}

export function loadDashboard(file: string): Dashboard {
  return JSON.parse(readFileSync(file, 'utf8')) as Dashboard;
}

/** Every panel, with the panels nested in collapsed rows. */
export function allPanels(d: Dashboard): Panel[] {
  return (d.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]);
}

export interface PanelExpr {
  dashboard: string;
  panel: string;
  refId: string;
  expr: string;
}

export function dashboardExprs(): PanelExpr[] {
  return dashboardFiles().flatMap((file) => {
    const d = loadDashboard(file);
    return allPanels(d).flatMap((p) =>
      (p.targets ?? []).filter((t) => t.expr).map((t) => ({ dashboard: path.basename(file), panel: p.title ?? `#${p.id}`, refId: t.refId ?? '?', expr: t.expr! })),
    );
  });
}

/** Replaces Grafana's template variables the way Grafana would for "All" and a 1m rate window. */
export function substituteVariables(expr: string, priority = '.*'): string {
  return expr
    .replace(/\$__rate_interval|\$\{__rate_interval\}/g, '1m')
    .replace(/\$__interval|\$\{__interval\}/g, '15s')
    .replace(/\$__range|\$\{__range\}/g, '5m')
    .replace(/\$\{priority(?::[a-z]+)?\}|\$priority\b|\[\[priority\]\]/g, priority);
}
