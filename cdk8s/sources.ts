/**
 * What the manifests are generated from, read at synth time so nothing is copied by hand:
 * the settings table (services/core/config/config.ts), the highest migration number
 * (migrations/NNNN_*.sql), Prometheus rule files (alerts/*.yml) and Grafana dashboards
 * (grafana/dashboards/*.json).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { loadConfig, SETTINGS, type Config, type ServiceName, type SettingName } from '../services/core/config/config';
import type { EnvironmentSettings } from './settings';

export const REPO_ROOT = path.resolve(__dirname, '..');

/**
 * Settings that carry credentials: they come from Secrets, never from a ConfigMap. The bootstrap
 * admin key has a Secret of its own (settings.ts, credentials.bootstrapSecretName); the rest are in
 * each component's Secret. REDIS_USERNAME is no secret, but it changes together with REDIS_PASS.
 */
export const SECRET_SETTINGS: readonly SettingName[] = ['POSTGRES_URL', 'REDIS_USERNAME', 'REDIS_PASS', 'BOOTSTRAP_ADMIN_KEY'];

/** Per-service defaults the services apply themselves (the worker's metrics port). */
const SERVICE_DEFAULTS: Partial<Record<ServiceName, Partial<Record<SettingName, string>>>> = {
  worker: { METRICS_ADDR: ':2113' },
};

export interface ServiceConfig {
  /** ConfigMap data: every non-secret setting the service reads, defaults written out. */
  data: Record<string, string>;
  /** Secret keys the service reads, each as an env var of the same name. */
  secretKeys: SettingName[];
  /** The parsed configuration the service would run with (validated by the services' own parsers). */
  parsed: Config;
}

export function serviceConfig(env: EnvironmentSettings, service: ServiceName): ServiceConfig {
  const data: Record<string, string> = {};
  const secretKeys: SettingName[] = [];
  for (const [name, setting] of Object.entries(SETTINGS) as [SettingName, (typeof SETTINGS)[SettingName]][]) {
    if (!setting.usedBy.includes(service)) continue;
    if (SECRET_SETTINGS.includes(name)) {
      if (env.config[name] !== undefined) throw new Error(`${env.name}: ${name} is a credential; put it in the Secret, not in config`);
      secretKeys.push(name);
      continue;
    }
    data[name] = env.config[name] ?? SERVICE_DEFAULTS[service]?.[name] ?? setting.default;
  }
  for (const name of Object.keys(env.config)) {
    if (!(name in SETTINGS)) throw new Error(`${env.name}: config sets ${name}, which is not in the settings table`);
  }
  // The credentials are validated where they live; placeholders keep the parse of the rest honest.
  const parsed = loadConfig({ ...data, POSTGRES_URL: 'postgres://placeholder', REDIS_USERNAME: '', REDIS_PASS: '', BOOTSTRAP_ADMIN_KEY: '' }, service);
  return { data, secretKeys, parsed };
}

/** Port number of a `[host]:port` setting. */
export function portOf(addr: string): number {
  const m = /:(\d{1,5})$/.exec(addr);
  if (!m) throw new Error(`${addr} has no port`);
  return Number(m[1]);
}

/** The highest NNNN of migrations/NNNN_name.sql: the schema version new pods wait for. */
export function schemaVersion(root = REPO_ROOT): number {
  const versions = readdirSync(path.join(root, 'migrations'))
    .map((f) => /^(\d{4})_[a-z0-9_]+\.sql$/.exec(f)?.[1])
    .filter((v): v is string => v !== undefined)
    .map(Number);
  if (versions.length === 0) throw new Error(`no migrations in ${path.join(root, 'migrations')}`);
  return Math.max(...versions);
}

export interface RuleFile {
  /** File name without extension, e.g. `queue` for alerts/queue.yml. */
  name: string;
  groups: unknown[];
}

/** Prometheus rule files (plain rule-group YAML) in alerts/, without alerts/tests/. Sorted by name. */
export function readRuleFiles(root = REPO_ROOT): RuleFile[] {
  const dir = path.join(root, 'alerts');
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name))
    .map((e) => e.name)
    .sort()
    .map((file) => {
      const doc = parse(readFileSync(path.join(dir, file), 'utf8')) as { groups?: unknown } | null;
      if (!doc || !Array.isArray(doc.groups)) throw new Error(`alerts/${file}: expected a Prometheus rule file with a top-level groups list`);
      return { name: file.replace(/\.ya?ml$/, ''), groups: doc.groups };
    });
}

export interface Dashboard {
  /** File name without extension. */
  name: string;
  fileName: string;
  json: string;
}

/** Grafana dashboards in grafana/dashboards/*.json, checked to be JSON. Sorted by name. */
export function readDashboards(root = REPO_ROOT): Dashboard[] {
  const dir = path.join(root, 'grafana', 'dashboards');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((fileName) => {
      const json = readFileSync(path.join(dir, fileName), 'utf8');
      try {
        JSON.parse(json);
      } catch (err) {
        throw new Error(`grafana/dashboards/${fileName}: not JSON: ${(err as Error).message}`);
      }
      return { name: fileName.replace(/\.json$/, ''), fileName, json };
    });
}

/** Everything read from the repository, so tests can synth from fixtures. */
export interface Sources {
  schemaVersion: number;
  ruleFiles: RuleFile[];
  dashboards: Dashboard[];
  /** The init container's script (cdk8s/wait-for-schema.js). */
  waitForSchemaScript: string;
  /** dev: the in-cluster Postgres's init script that creates the api's and worker's logins (scripts/postgres-app-users.sh). */
  postgresUsersScript: string;
}

export function readSources(root = REPO_ROOT): Sources {
  return {
    schemaVersion: schemaVersion(root),
    ruleFiles: readRuleFiles(root),
    dashboards: readDashboards(root),
    // The file's leading comment stays in the file; the manifests carry the code.
    waitForSchemaScript: readFileSync(path.join(__dirname, 'wait-for-schema.js'), 'utf8').replace(/^(\/\/.*\n)+/, ''),
    postgresUsersScript: readFileSync(path.join(REPO_ROOT, 'scripts', 'postgres-app-users.sh'), 'utf8'),
  };
}
