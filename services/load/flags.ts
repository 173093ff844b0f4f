/**
 * Command-line flags of the load generator, parsed the way Go's `flag` package does it: `-name value`,
 * `-name=value`, `--name value`, `--name=value`; boolean flags take no value (or `=true|false`);
 * parsing stops at `--` or at the first argument that is not a flag. Every mistake is a UsageError
 * naming the flag; main.ts prints it and exits 2.
 */

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Asking for -h / -help is not an error, but it also ends parsing. */
export class HelpRequested extends Error {
  constructor() {
    super('help requested');
    this.name = 'HelpRequested';
  }
}

export const TASK_KINDS = ['noop', 'flaky', 'fail', 'sleep'] as const;
export type TaskKind = (typeof TASK_KINDS)[number];
export const PRIORITY_NAMES = ['critical', 'high', 'default', 'low'] as const;
export type PriorityName = (typeof PRIORITY_NAMES)[number];

export const DEFAULT_TASK_MIX: Record<TaskKind, number> = { noop: 80, flaky: 10, fail: 5, sleep: 5 };
export const DEFAULT_PRIORITY_MIX: Record<PriorityName, number> = { critical: 10, high: 20, default: 50, low: 20 };

export interface LoadOptions {
  /** Tasks to send; null = unlimited (only with -duration and no -n). */
  n: number | null;
  /** Concurrent connections (closed loop: clients; open loop: the in-flight bound). */
  workers: number;
  taskMix: Record<TaskKind, number>;
  priorityMix: Record<PriorityName, number>;
  sleepMs: number;
  flakyAttempts: number;
  url: string;
  /** Open-loop arrivals (tasks) per second; null = closed loop. */
  rate: number | null;
  /** Stop sending after this many ms; null = until -n is reached. */
  durationMs: number | null;
  /** Tasks per POST /tasks/batch request; null = one POST /tasks per task. */
  batch: number | null;
  idempotency: boolean;
  wait: boolean;
  json: boolean;
  report: string | null;
  /** Sent as `Authorization: Bearer <key>`; empty: no header (an API with AUTH_MODE=off). */
  apiKey: string;
  timeoutMs: number;
  /** Task slots per worker (their WORKER_POOL), only for the Workers × Slots column. */
  slots: number | null;
  seed: number;
}

type Kind = 'int' | 'float' | 'duration' | 'string' | 'bool' | 'url';

interface FlagSpec {
  name: string;
  kind: Kind;
  min?: number;
  max?: number;
  usage: string;
  /** Shown in -help and the README; undefined = no default. */
  def?: string;
}

export const FLAGS: FlagSpec[] = [
  { name: 'n', kind: 'int', min: 1, max: Number.MAX_SAFE_INTEGER, def: '1000', usage: 'tasks to send (unlimited when -duration is given without -n)' },
  { name: 'w', kind: 'int', min: 1, max: 10000, def: '8', usage: 'concurrent client connections (closed loop: clients; with -rate: most requests in flight)' },
  { name: 'pct-noop', kind: 'int', min: 0, max: 100, def: '80', usage: 'percent of noop tasks (takes the remainder when other task percentages are given)' },
  { name: 'pct-flaky', kind: 'int', min: 0, max: 100, def: '10', usage: 'percent of flaky tasks (fail -flaky-attempts times, then succeed)' },
  { name: 'pct-fail', kind: 'int', min: 0, max: 100, def: '5', usage: 'percent of always_fail tasks (end dead after max_retries + 1 attempts)' },
  { name: 'pct-sleep', kind: 'int', min: 0, max: 100, def: '5', usage: 'percent of sleeper tasks (sleep -sleep-ms)' },
  { name: 'sleep-ms', kind: 'int', min: 0, max: 86_400_000, def: '1000', usage: 'sleep_ms of sleeper tasks' },
  { name: 'flaky-attempts', kind: 'int', min: 0, max: 100, def: '1', usage: 'fail_attempts of flaky tasks' },
  { name: 'pct-critical', kind: 'int', min: 0, max: 100, def: '10', usage: 'percent of critical tasks' },
  { name: 'pct-high', kind: 'int', min: 0, max: 100, def: '20', usage: 'percent of high tasks' },
  { name: 'pct-default', kind: 'int', min: 0, max: 100, def: '50', usage: 'percent of default tasks (takes the remainder when other priority percentages are given)' },
  { name: 'pct-low', kind: 'int', min: 0, max: 100, def: '20', usage: 'percent of low tasks' },
  { name: 'url', kind: 'url', def: 'http://localhost:8080', usage: 'base URL of the API' },
  { name: 'rate', kind: 'float', min: 0.001, max: 1_000_000, usage: 'open loop: start this many tasks per second on a schedule, whatever the answers (at most -w requests in flight)' },
  { name: 'duration', kind: 'duration', min: 1, usage: 'stop sending after this long (e.g. 30s, 1m30s); without -n, n is unlimited' },
  { name: 'batch', kind: 'int', min: 1, max: 1000, usage: 'send tasks through POST /tasks/batch, this many per request' },
  { name: 'idempotency', kind: 'bool', def: 'false', usage: 'send an idempotency key per task: load-<run id>-<i>' },
  { name: 'wait', kind: 'bool', def: 'false', usage: 'after sending, wait (polling GET /tasks) until every accepted task is final: succeeded, dead or cancelled' },
  { name: 'json', kind: 'bool', def: 'false', usage: 'print the result as one JSON object on stdout instead of the table' },
  { name: 'report', kind: 'string', usage: 'write a self-contained HTML report (inline SVG charts) to this file' },
  { name: 'api-key', kind: 'string', def: '$API_KEY', usage: 'API key sent as Authorization: Bearer (needs the scopes tasks:write and tasks:read)' },
  { name: 'timeout', kind: 'duration', min: 1, def: '10m', usage: 'longest -wait' },
  { name: 'slots', kind: 'int', min: 1, max: 100000, usage: 'task slots per worker, for the Workers × Slots column (default: what GET /queues reports of the workers)' },
  { name: 'seed', kind: 'int', min: 0, max: 2 ** 31 - 1, def: '1', usage: 'seed of the task and priority shuffle (the same seed sends the same sequence)' },
];

const SPECS = new Map(FLAGS.map((f) => [f.name, f]));

/** Go's time.ParseDuration: a sequence of decimal numbers with units ns, us, µs, ms, s, m, h ("1m30s", "1.5h", "250ms"). Returns ms. */
export function parseDuration(raw: string): number {
  const s = raw.trim();
  if (s === '0') return 0;
  if (s === '') throw new Error('is empty');
  const unitMs: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const re = /(\d+(?:\.\d*)?|\.\d+)([^\d.]*)/y;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) throw new Error(`"${raw}" is not a duration (use e.g. 30s, 1m30s, 500ms)`);
    if (!m[2]) throw new Error(`"${raw}" is missing a unit (use e.g. 30s, 1m30s, 500ms)`);
    const unit = unitMs[m[2]];
    if (unit === undefined) throw new Error(`"${raw}" has an unknown unit "${m[2]}" (use ns, us, ms, s, m or h)`);
    total += Number(m[1]) * unit;
    pos = re.lastIndex;
  }
  if (!Number.isFinite(total)) throw new Error(`"${raw}" is too large`);
  return total;
}

function parseValue(spec: FlagSpec, raw: string): number | string | boolean {
  const bad = (why: string) => new UsageError(`invalid value "${raw}" for flag -${spec.name}: ${why}`);
  switch (spec.kind) {
    case 'int': {
      if (!/^[+-]?\d+$/.test(raw.trim())) throw bad('must be an integer');
      const n = Number(raw.trim());
      if (!Number.isSafeInteger(n)) throw bad('is too large');
      if (spec.min !== undefined && n < spec.min) throw bad(`must be at least ${spec.min}`);
      if (spec.max !== undefined && n > spec.max) throw bad(`must be at most ${spec.max}`);
      return n;
    }
    case 'float': {
      const t = raw.trim();
      if (!/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(t)) throw bad('must be a number');
      const n = Number(t);
      if (spec.min !== undefined && n < spec.min) throw bad(`must be at least ${spec.min}`);
      if (spec.max !== undefined && n > spec.max) throw bad(`must be at most ${spec.max}`);
      return n;
    }
    case 'duration': {
      let ms: number;
      try {
        ms = parseDuration(raw);
      } catch (err) {
        throw bad((err as Error).message);
      }
      if (spec.min !== undefined && ms < spec.min) throw bad('must be at least 1ms');
      return ms;
    }
    case 'bool': {
      const t = raw.trim().toLowerCase();
      if (['1', 't', 'true'].includes(t)) return true;
      if (['0', 'f', 'false'].includes(t)) return false;
      throw bad('must be true or false');
    }
    case 'url': {
      let u: URL;
      try {
        u = new URL(raw);
      } catch {
        throw bad('is not a URL (e.g. http://localhost:8080)');
      }
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw bad('must be an http:// or https:// URL');
      return raw.replace(/\/+$/, '');
    }
    case 'string':
      if (raw === '') throw bad('must not be empty');
      return raw;
  }
}

/** Splits argv into flag values (by name), in Go's syntax. */
export function scanFlags(argv: string[]): Map<string, number | string | boolean> {
  const values = new Map<string, number | string | boolean>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      if (i + 1 < argv.length) throw new UsageError(`unexpected argument "${argv[i + 1]}" (the load generator takes flags only)`);
      break;
    }
    if (!arg.startsWith('-') || arg === '-') throw new UsageError(`unexpected argument "${arg}" (the load generator takes flags only; see -help)`);
    const body = arg.startsWith('--') ? arg.slice(2) : arg.slice(1);
    const eq = body.indexOf('=');
    const name = eq >= 0 ? body.slice(0, eq) : body;
    if (name === 'h' || name === 'help') throw new HelpRequested();
    const spec = SPECS.get(name);
    // -pg is gone: results come through the API, which needs no database credentials.
    if (!spec && name === 'pg') throw new UsageError('flag -pg is gone: the results are read through the API (GET /tasks) with -api-key, which needs the scope tasks:read');
    if (!spec) throw new UsageError(`flag provided but not defined: -${name}`);
    if (values.has(name)) throw new UsageError(`flag -${name} given more than once`);
    let raw: string;
    if (eq >= 0) raw = body.slice(eq + 1);
    else if (spec.kind === 'bool') raw = 'true';
    else {
      if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: -${name}`);
      raw = argv[++i]!;
    }
    values.set(name, parseValue(spec, raw));
  }
  return values;
}

/**
 * The remainder rule of a percentage group: nothing given → the defaults; some given → the
 * `remainder` member (noop / default) takes 100 − the others when it is not given itself, and the
 * other members not given are 0. The result must add up to exactly 100.
 */
export function resolveMix<K extends string>(
  group: string,
  names: readonly K[],
  remainder: K,
  defaults: Record<K, number>,
  given: Partial<Record<K, number>>,
): Record<K, number> {
  const anyGiven = names.some((k) => given[k] !== undefined);
  if (!anyGiven) return { ...defaults };
  const mix = {} as Record<K, number>;
  for (const k of names) mix[k] = given[k] ?? 0;
  if (given[remainder] === undefined) {
    const others = names.filter((k) => k !== remainder).reduce((s, k) => s + mix[k], 0);
    mix[remainder] = Math.max(0, 100 - others);
  }
  const sum = names.reduce((s, k) => s + mix[k], 0);
  if (sum !== 100) {
    const parts = names.map((k) => `-pct-${k} ${mix[k]}`).join(' ');
    throw new UsageError(`${group} adds up to ${sum}%, not 100%: ${parts}`);
  }
  return mix;
}

export function parseFlags(argv: string[], env: NodeJS.ProcessEnv = process.env): LoadOptions {
  const v = scanFlags(argv);
  const int = (name: string, def: number) => (v.has(name) ? (v.get(name) as number) : def);
  const given = <K extends string>(names: readonly K[]) => {
    const out: Partial<Record<K, number>> = {};
    for (const k of names) if (v.has(`pct-${k}`)) out[k] = v.get(`pct-${k}`) as number;
    return out;
  };
  const taskMix = resolveMix('task mix', TASK_KINDS, 'noop', DEFAULT_TASK_MIX, given(TASK_KINDS));
  const priorityMix = resolveMix('priority mix', PRIORITY_NAMES, 'default', DEFAULT_PRIORITY_MIX, given(PRIORITY_NAMES));
  const durationMs = v.has('duration') ? (v.get('duration') as number) : null;
  const n = v.has('n') ? (v.get('n') as number) : durationMs !== null ? null : 1000;
  return {
    n,
    workers: int('w', 8),
    taskMix,
    priorityMix,
    sleepMs: int('sleep-ms', 1000),
    flakyAttempts: int('flaky-attempts', 1),
    url: (v.get('url') as string | undefined) ?? 'http://localhost:8080',
    rate: (v.get('rate') as number | undefined) ?? null,
    durationMs,
    batch: (v.get('batch') as number | undefined) ?? null,
    idempotency: (v.get('idempotency') as boolean | undefined) ?? false,
    wait: (v.get('wait') as boolean | undefined) ?? false,
    json: (v.get('json') as boolean | undefined) ?? false,
    report: (v.get('report') as string | undefined) ?? null,
    apiKey: (v.get('api-key') as string | undefined) ?? env.API_KEY ?? '',
    timeoutMs: (v.get('timeout') as number | undefined) ?? 600_000,
    slots: (v.get('slots') as number | undefined) ?? null,
    seed: int('seed', 1),
  };
}

export function usage(): string {
  const lines = ['Usage: npm run load -- [flags]   (or node dist/services/load/main.js [flags])', '', 'Flags (also --flag, -flag=value):'];
  for (const f of FLAGS) {
    const arg = f.kind === 'bool' ? '' : f.kind === 'duration' ? ' duration' : f.kind === 'float' ? ' number' : f.kind === 'int' ? ' int' : ' string';
    lines.push(`  -${f.name}${arg}`);
    lines.push(`        ${f.usage}${f.def !== undefined && f.kind !== 'bool' ? ` (default ${f.def})` : ''}`);
  }
  lines.push('', 'Percentages of a group (task mix, priority mix) must add up to 100. When only some are given,',
    '-pct-noop (resp. -pct-default) takes the remainder and the others not given are 0.',
    'Exit status: 0 done, 1 -wait timed out or the run could not be done, 2 bad flags, 130 interrupted.');
  return lines.join('\n');
}

/** A URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/:\/\/([^:@/]+):[^@/]*@/, '://$1:***@');
  }
}
