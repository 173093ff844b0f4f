/**
 * The one typed configuration table. Every environment variable the services read is declared
 * here with its default, parser and doc line; nothing else reads process.env. The README's
 * configuration table is checked against this table by a test.
 */
import { ConfigError, parseAddrList, parseEnum, parseInteger, parseString, parseWeights, Parser } from './parsers';

export interface Setting<T> {
  readonly default: string;
  readonly doc: string;
  readonly parse: Parser<T>;
  /** Which services read it, for the README and the manifests. */
  readonly usedBy: readonly ('api' | 'worker' | 'migrator')[];
  /** A credential: a refused value is described, never printed (start-up errors go to the logs). */
  readonly secret?: boolean;
}

const all = ['api', 'worker', 'migrator'] as const;
const runtime = ['api', 'worker'] as const;
const worker = ['worker'] as const;

function setting<T>(def: string, parse: Parser<T>, doc: string, usedBy: Setting<T>['usedBy'] = runtime): Setting<T> {
  return { default: def, parse, doc, usedBy };
}

function secret<T>(s: Setting<T>): Setting<T> {
  return { ...s, secret: true };
}

export const SETTINGS = {
  // --- The Go system's table, same names and defaults ---
  POSTGRES_URL: setting('postgres://app:app@localhost:5432/app?sslmode=disable', parseString({ minLength: 1 }), 'Postgres connection URL. TLS: `sslmode=verify-full` (or `verify-ca`) with `sslrootcert=<PEM CA bundle>`; `require` is verified like `verify-full`, and modes that may skip TLS or verification are refused (docs/security.md).', all),
  REDIS_ADDR: setting('localhost:6379', parseString({ minLength: 1, pattern: /^[^\s:]+:\d{1,5}$/, hint: 'host:port' }), 'Redis address (host:port).'),
  REDIS_PASS: secret(setting('', parseString(), 'Redis password, if required.')),
  METRICS_ADDR: setting(':2112', parseString({ pattern: /^[^\s]*:\d{1,5}$/, hint: '[host]:port' }), 'Prometheus metrics bind address. The worker defaults to `:2113` when unset.'),
  WORKER_POOL: setting('12', parseInteger({ min: 1, max: 10000 }), 'Concurrent task slots (running handlers) per worker process; with as many finished attempts (plus up to 64) waiting for their outcome to be written, leasing pauses (for at most 20 ms, and not while a backlog waits); WORKER_MAX_UNWRITTEN stops it.', worker),
  PGPOOL_MAX_CONNS: setting('20', parseInteger({ min: 1, max: 1000 }), 'Maximum Postgres connections per process, for its work; its /readyz holds one more of its own.'),
  REDIS_POOL_SIZE: setting('50', parseInteger({ min: 1, max: 10000 }), 'Accepted for compatibility; ioredis pipelines commands on one connection per role, so this only caps command concurrency hints.'),
  REDIS_MIN_IDLE: setting('10', parseInteger({ min: 0, max: 10000 }), 'Accepted for compatibility; see REDIS_POOL_SIZE.'),
  VIS_TIMEOUT_MS: setting('60000', parseInteger({ min: 1000, max: 86_400_000 }), 'Visibility timeout (lease length) in milliseconds; heartbeats extend it while a handler runs.', worker),
  REAPER_SCAN_INTERVAL_MS: setting('2000', parseInteger({ min: 10, max: 3_600_000 }), 'Reaper cadence in milliseconds.', worker),
  REAPER_BATCH_SIZE: setting('100', parseInteger({ min: 1, max: 10000 }), 'Expired leases reclaimed per reaper pass.', worker),
  METRICS_SAMPLE_MS: setting('500', parseInteger({ min: 50, max: 600_000 }), 'Minimum age of the sampled queue gauges before a scrape re-reads Redis, in milliseconds.'),
  RETRY_BASE_MS: setting('500', parseInteger({ min: 0, max: 86_400_000 }), 'Retry backoff base: attempt n waits RETRY_BASE_MS·2^(n-1).', worker),
  RETRY_MAX_MS: setting('30000', parseInteger({ min: 0, max: 86_400_000 }), 'Retry backoff cap in milliseconds.', worker),
  RETRY_JITTER_MS: setting('500', parseInteger({ min: 0, max: 3_600_000 }), 'Uniform random jitter added to each backoff, up to this many milliseconds.', worker),
  RETRY_SCAN_INTERVAL_MS: setting('500', parseInteger({ min: 10, max: 3_600_000 }), 'The retry pump\'s fallback scan, in milliseconds: it promotes each retry when its backoff ends (it learns the next due time from every pass and from its own worker), so this only bounds how late a retry scheduled by a worker that died is found.', worker),
  RETRY_BATCH_SIZE: setting('100', parseInteger({ min: 1, max: 10000 }), 'Due retries moved back to their queue per pump pass and priority.', worker),
  // --- Added by this system ---
  API_ADDR: setting(':8080', parseString({ pattern: /^[^\s]*:\d{1,5}$/, hint: '[host]:port' }), 'HTTP API bind address.', ['api']),
  LOG_LEVEL: setting('info', parseEnum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const), 'pino log level. Nothing is logged per task below `debug`.', all),
  REDIS_KEY_PREFIX: setting('ts', parseString({ pattern: /^[A-Za-z0-9_.-]{1,64}$/, hint: 'letters, digits, _ . -' }), 'Namespace of every Redis key; used as the Cluster hash tag `{prefix}`.'),
  QUEUE_STRATEGY: setting('weighted', parseEnum(['weighted', 'strict'] as const), '`weighted`: smooth weighted round-robin across non-empty priorities (no starvation); `strict`: always the highest non-empty priority.', worker),
  QUEUE_WEIGHTS: setting('critical=8,high=4,default=2,low=1', parseWeights, 'Weights for the weighted strategy; `low` is served at least weight(low)/sum of leases while it has work.', worker),
  WORKER_MAX_UNWRITTEN: setting('1024', parseInteger({ min: 1, max: 100_000 }), 'Finished attempts a worker holds at most while their outcomes wait to be written (each keeps its lease, and runs again if the worker dies); at that many (never fewer than WORKER_POOL + min(WORKER_POOL, 64) + 64) leasing stops until writes land.', worker),
  WORKER_MAX_ABANDONED: setting('64', parseInteger({ min: 0, max: 100_000 }), 'Handlers a worker lets run on after their attempts ended (timed out, cancelled, lease lost, or aborted at shutdown) without their having stopped, because they ignore their abort signal; they no longer hold a slot, so past this many leasing takes only as many tasks as keep running and abandoned handlers within WORKER_POOL + WORKER_MAX_ABANDONED, until some end (handlers_abandoned).', worker),
  LEASE_BATCH_SIZE: setting('128', parseInteger({ min: 1, max: 1000 }), 'Most tasks leased in one Redis call (bounded by free slots, and those WORKER_LEASE_AHEAD_MS allows).', worker),
  WORKER_LEASE_AHEAD_MS: setting('5', parseInteger({ min: 0, max: 60_000 }), 'While a backlog waits and attempts take under this many milliseconds on average (and none running has taken longer), a worker leases up to WORKER_POOL or LEASE_BATCH_SIZE, whichever is larger (at most 64, and at most a sixteenth of the backlog), tasks beyond its free slots and starts each as a slot frees, rather than idling a lease round trip whenever its slots empty; one that waits longer than a quarter of VIS_TIMEOUT_MS (at most 1 s) is handed back, uncounted. 0 turns it off.', worker),
  LEASE_GAP_MS: setting('2', parseInteger({ min: 0, max: 1000 }), 'A worker with attempts running or being written, whose last lease left no task behind, leases again at most this often (milliseconds), so each lease takes what several submissions queued; an idle worker, or one behind a backlog, leases at once. 0 turns it off.', worker),
  POLL_INTERVAL_MS: setting('250', parseInteger({ min: 1, max: 600_000 }), 'How long an idle worker waits before asking for work again, in milliseconds; new tasks also wake an idle worker at once (each batch rings a Redis doorbell that one waiting worker answers), so this is only the fallback.', worker),
  HEARTBEAT_INTERVAL_MS: setting('0', parseInteger({ min: 0, max: 3_600_000 }), 'Lease extension cadence in milliseconds, at most half of VIS_TIMEOUT_MS; 0 means VIS_TIMEOUT_MS/3.', worker),
  START_RECORD_DELAY_MS: setting('100', parseInteger({ min: 1, max: 600_000 }), 'An attempt still running after this many milliseconds is marked `running` in Postgres; faster ones are written once, start and outcome together (the Redis lease counts the attempt either way).', worker),
  TASK_TIMEOUT_MS: setting('300000', parseInteger({ min: 1, max: 86_400_000 }), 'A handler running longer is aborted and its attempt fails with a timeout error.', worker),
  SHUTDOWN_GRACE_MS: setting('25000', parseInteger({ min: 0, max: 3_600_000 }), 'On SIGTERM, how long running handlers may finish before they are aborted and handed back.', runtime),
  WORKER_STOP_MARGIN_MS: setting('10000', parseInteger({ min: 1000, max: 3_600_000 }), 'How long past SHUTDOWN_GRACE_MS a worker\'s stop may take to hand back, write outcomes and close (a call to Redis or Postgres that never answers) before the process logs a warning and exits 1 anyway. Keep SHUTDOWN_GRACE_MS plus this under the time its orchestrator waits before SIGKILL (the manifests allow 15 s past the grace).', worker),
  DEFAULT_MAX_RETRIES: setting('5', parseInteger({ min: 0, max: 100 }), 'max_retries of a task that does not set it.', ['api']),
  IDEMPOTENCY_TTL_MS: setting('86400000', parseInteger({ min: 1000, max: 31 * 86_400_000 }), 'How long an idempotency key is remembered.', ['api']),
  MAX_BODY_BYTES: setting('1048576', parseInteger({ min: 1024, max: 64 * 1048576 }), 'Largest accepted request body; larger ones get 413.', ['api']),
  MAX_WORKFLOW_BODY_BYTES: setting('2097152', parseInteger({ min: 1024, max: 64 * 1048576 }), 'Largest accepted POST /workflows body; larger ones get 413. 10,000 steps of about 200 bytes fit the default. A workflow holds about ten times its body in memory while it is checked and stored (10,000 steps, 1.4 MiB: 22 MiB), so raise it with the API\'s heap. It counts against MAX_INFLIGHT_BODY_BYTES like any body.', ['api']),
  UI_ENABLED: setting('true', parseEnum(['true', 'false'] as const), '`true`: the API serves the web console (read-only assets; it speaks the public API with the operator\'s key) under UI_BASE_PATH; `false`: those paths are 404.', ['api']),
  UI_BASE_PATH: setting('/ui', parseString({ pattern: /^(\/(?!\.\.?(\/|$))[A-Za-z0-9._~-]+)+$/, hint: 'a path like /ui or /ops/console (no . or .. segment, no trailing /)' }), 'Path the web console is served at (`GET /ui`); the console finds the API relative to it, so it works behind an ingress sub-path.', ['api']),
  MAX_PAYLOAD_DEPTH: setting('64', parseInteger({ min: 1, max: 512 }), 'Deepest nesting of objects and arrays a task payload may have (`{}` is 1); deeper ones get 400. Found by an iterative scan, before anything is parsed into objects.', ['api']),
  MAX_INFLIGHT_BODY_BYTES: setting('0', parseInteger({ min: 0, max: 4096 * 1048576 }), 'Request body bytes the API holds at once (declared or received); a request beyond it gets 503 with Retry-After before its body is read. 0 means a sixteenth of the V8 heap limit, and never less than MAX_BODY_BYTES (or MAX_WORKFLOW_BODY_BYTES).', ['api']),
  SUBMIT_BATCH_BYTES: setting('4194304', parseInteger({ min: 1024, max: 1024 * 1048576 }), 'Payload bytes the API joins into one coalesced insert statement (a single larger request still goes alone).', ['api']),
  QUEUES_CACHE_MS: setting('1000', parseInteger({ min: 0, max: 60_000 }), 'GET /queues answers are reused this long per tenant (one read of Redis and Postgres in flight per tenant).', ['api']),
  LIST_SCAN_ROWS: setting('10000', parseInteger({ min: 100, max: 1_000_000 }), 'Rows one GET /tasks (or GET /workflows) page reads at most: a filter that matches few may return a short (even empty) page with a next_cursor instead of reading further.', ['api']),
  BULK_MAX_LIMIT: setting('10000', parseInteger({ min: 1, max: 1_000_000 }), 'Most tasks one bulk cancel or retry call may change (its `limit`); a caller carries on with another call from its `next_cursor` while `has_more` is true.', ['api']),
  BULK_SCAN_ROWS: setting('100000', parseInteger({ min: 100, max: 10_000_000 }), 'Rows one bulk cancel or retry call reads at most: a filter that matches few tasks may change fewer than `limit` (even none) and answer `has_more` with a `next_cursor` to carry on from instead of reading further.', ['api']),
  BULK_BATCH: setting('200', parseInteger({ min: 1, max: 5000 }), 'Tasks a bulk call changes per transaction and Redis call.', ['api']),
  MAX_SCHEDULES_PER_TENANT: setting('1000', parseInteger({ min: 1, max: 1_000_000 }), 'Cron schedules one tenant may have; one more is refused (409, `errors[0].field` = `name`). It also bounds what GET /schedules pages through.', ['api']),
  HTTP_HEADERS_TIMEOUT_MS: setting('10000', parseInteger({ min: 100, max: 600_000 }), 'A request\'s headers must arrive within this many milliseconds, or its connection is closed (408).', ['api']),
  HTTP_REQUEST_TIMEOUT_MS: setting('30000', parseInteger({ min: 100, max: 3_600_000 }), 'A whole request (headers and body) must arrive within this many milliseconds, or its connection is closed (408).', ['api']),
  HTTP_KEEPALIVE_TIMEOUT_MS: setting('65000', parseInteger({ min: 100, max: 3_600_000 }), 'An idle keep-alive connection is closed after this many milliseconds (longer than common load-balancer idle timeouts).', ['api']),
  HTTP_MAX_CONNECTIONS: setting('10000', parseInteger({ min: 1, max: 1_000_000 }), 'Open connections the API accepts per process; further ones are closed at once.', ['api']),
  READINESS_TIMEOUT_MS: setting('1000', parseInteger({ min: 50, max: 60_000 }), 'How long /readyz waits for each dependency; the checks use their own connections, so a busy pool does not delay them.'),
  RECONCILE_PAYLOAD_BYTES: setting('8388608', parseInteger({ min: 65536, max: 1024 * 1048576 }), 'Payload bytes the reconciler reads from Postgres at once while re-queueing tasks (its page of unfinished tasks carries no payloads).', worker),
  // --- Tenants, keys and limits ---
  AUTH_MODE: setting('keys', parseEnum(['keys', 'off'] as const), '`keys`: every request needs `Authorization: Bearer <key>` (see the CLI); `off`: every request is the tenant `default` with every scope (laptops only; never expose it).', ['api']),
  AUTH_CACHE_MS: setting('500', parseInteger({ min: 0, max: 1000 }), 'How long an API replica trusts a key it has checked before reading it from Postgres again, in milliseconds: the bound on how long a revoked or expired key keeps working.', ['api']),
  AUTH_CACHE_KEYS: setting('10000', parseInteger({ min: 1, max: 1_000_000 }), 'Valid API keys an API replica keeps in its cache (each trusted for AUTH_CACHE_MS, then read again); beyond it, the least recently read go first. Only a key presented with its secret enters it: unknown keys and wrong secrets are remembered apart (10,000 ids at most), so a flood of them cannot push valid keys out. At start and then every minute, the API reads the ids of this many keys most recently used (then the newest never used), so their first lookups there are not held up by a flood either. Set it above the keys in use at once.', ['api']),
  BOOTSTRAP_ADMIN_KEY: secret(setting('', parseString({ pattern: /^(|tsk_[0-9a-f]{16}_[A-Za-z0-9_-]{43})$/, hint: 'a key printed by `keys create`, or empty' }), 'An admin key of the tenant `default` that the API makes sure exists at start (from a Kubernetes Secret); empty: none. Only its hash is stored.', ['api'])),
  TENANT_RATE_LIMIT: setting('0', parseInteger({ min: 0, max: 10_000_000 }), 'Tasks per second a tenant without its own `--rate-limit` may submit (a token bucket kept in Redis, shared by every API replica); 0: unlimited.', ['api']),
  TENANT_BURST: setting('0', parseInteger({ min: 0, max: 100_000_000 }), 'Bucket size of the default rate limit (tasks a tenant may send at once); 0: one second of TENANT_RATE_LIMIT.', ['api']),
  TENANT_MAX_UNFINISHED: setting('0', parseInteger({ min: 0, max: 1_000_000_000 }), 'Unfinished tasks a tenant without its own `--max-unfinished` may have; 0: unlimited.', ['api']),
  TENANT_MAX_RUNNING: setting('0', parseInteger({ min: 0, max: 1_000_000 }), 'Attempts of one tenant running at once across all workers, for tenants without their own `--max-running`; 0: unlimited.', runtime),
  TENANT_METRICS_LIMIT: setting('50', parseInteger({ min: 0, max: 10_000 }), 'Tenants that get their own label in per-tenant metrics (the first seen by each process); the rest are counted under `tenant="_other"`.', runtime),
  WORKER_ID: setting('', parseString({ pattern: /^[A-Za-z0-9_.:-]{0,128}$/, hint: 'letters, digits, _ . : -' }), 'Worker identity recorded in task_runs; empty means hostname-pid.', worker),
  DELAYED_HORIZON_MS: setting('300000', parseInteger({ min: 10_000, max: 86_400_000 }), 'Delayed tasks (`run_at`, `delay_ms`) due within this many milliseconds are held in Redis, by due time; later ones wait in Postgres only, until the workers\' loader brings them in ahead of time (docs/scheduling.md).', runtime),
  DELAYED_LOAD_INTERVAL_MS: setting('1000', parseInteger({ min: 50, max: 60_000 }), 'How often a worker brings delayed tasks that came within DELAYED_HORIZON_MS from Postgres into Redis, and marks those due over a second ago and not yet started as `queued`.', worker),
  WORKFLOW_PARENT_RESULTS_MAX_BYTES: setting('1048576', parseInteger({ min: 1024, max: 64 * 1048576 }), 'A workflow step\'s handler gets the results of the steps it depends on (`parents`); when they add up to more than this many bytes of JSON, the attempt fails with ParentResultsTooLarge instead of loading them (a worker holds at most 16 steps\' worth at once).', worker),
  RECONCILE_INTERVAL_MS: setting('5000', parseInteger({ min: 50, max: 3_600_000 }), 'Reconciler cadence in milliseconds (one active copy across all workers).', worker),
  RECONCILE_GRACE_MS: setting('15000', parseInteger({ min: 0, max: 86_400_000 }), 'How long Postgres must not have touched an unfinished task before the reconciler treats its absence from Redis as a loss.', worker),
  RECONCILE_BATCH_SIZE: setting('1000', parseInteger({ min: 1, max: 100_000 }), 'Unfinished tasks checked per reconciler pass.', worker),
  RETENTION_SUCCEEDED_MS: setting('604800000', parseInteger({ min: 0, max: 3650 * 86_400_000 }), 'Succeeded tasks, with their runs, are deleted this many milliseconds after they finished (7 days); 0 keeps them forever (and every workflow), else at least a minute. A task whose idempotency key is still live stays until the key expires. A workflow goes whole (every step) once finished: a succeeded one this long after it ended, a failed or cancelled one after the longest of the three settings (docs/retention.md).', worker),
  RETENTION_DEAD_MS: setting('2592000000', parseInteger({ min: 0, max: 3650 * 86_400_000 }), 'Dead tasks, with their runs and their dead-letter entries in Redis, are deleted this many milliseconds after they died (30 days); 0 keeps them forever (and with it every failed or cancelled workflow).', worker),
  RETENTION_CANCELLED_MS: setting('2592000000', parseInteger({ min: 0, max: 3650 * 86_400_000 }), 'Cancelled tasks, with their runs, are deleted this many milliseconds after they were cancelled (30 days); 0 keeps them forever (and with it every failed or cancelled workflow).', worker),
  RETENTION_BATCH: setting('1000', parseInteger({ min: 1, max: 10_000 }), 'Tasks retention deletes per statement (one short transaction, rows held by other transactions skipped), with their runs; a finished workflow with more steps goes whole in one.', worker),
  RETENTION_PAUSE_MS: setting('20', parseInteger({ min: 0, max: 60_000 }), 'Pause between two retention batches, in milliseconds: it bounds the share of Postgres the sweep takes (under load on 2 cores, 20 ms still deleted about 18,000 tasks/s; docs/retention.md).', worker),
  RETENTION_INTERVAL_MS: setting('60000', parseInteger({ min: 50, max: 86_400_000 }), 'How often retention looks for tasks to delete, in milliseconds (one active copy across all workers); a pass runs until a batch of workflows and one of each status come back short, at most 1000 batches (the next pass then follows after RETENTION_PAUSE_MS).', worker),
  SCHEDULE_POLL_MS: setting('1000', parseInteger({ min: 50, max: 60_000 }), 'Longest sleep of each worker\'s schedule ticker, in milliseconds: it wakes at the earliest next tick of any schedule (read from Postgres after each pass), so this only bounds how late a schedule created or resumed meanwhile is seen.', worker),
  SCHEDULE_MISFIRE_GRACE_MS: setting('60000', parseInteger({ min: 500, max: 3_600_000 }), 'A cron tick later than this when the ticker reaches it (all workers down, stalled or behind) is missed: its schedule\'s misfire policy drops it (`skip`), fires the latest missed one (`run_once`) or up to `catch_up_limit` of them (`catch_up`). Ticks within it always fire (docs/scheduling.md).', worker),
  HANDLERS_MODULE: setting('', parseString(), 'Path of an extra CommonJS module whose `handlers` export adds task handlers at start-up (besides `services/worker/custom-handlers.ts`).', worker),
  MIGRATION_LOCK_TIMEOUT_MS: setting('5000', parseInteger({ min: 0, max: 3_600_000 }), 'How long a migration waits for a table lock before it gives way and is tried again (after 1 s, doubling to 30 s, for up to 10 minutes): while it waits, every other statement on that table waits behind it. 0 waits as long as it takes.', ['migrator']),
  MIGRATIONS_DIR: setting('', parseString(), 'Directory of numbered SQL migrations; empty means the bundled `migrations/`.', ['migrator']),
  // --- Transport security (Postgres TLS is set in POSTGRES_URL: sslmode, sslrootcert; see docs/security.md) ---
  REDIS_USERNAME: setting('', parseString({ pattern: /^[^\s]{1,128}$/, hint: 'an ACL user name without spaces' }), 'Redis ACL user to authenticate as, with REDIS_PASS (`npm run -s redis:acl` prints the user\'s ACL); empty: the `default` user (REDIS_PASS alone, as with `requirepass`).'),
  REDIS_TLS: setting('false', parseEnum(['false', 'true'] as const), '`true`: connect to Redis over TLS (what a `rediss://` URL means) and verify its certificate and host name against REDIS_TLS_CA_FILE, or the CAs Node trusts when that is empty.'),
  REDIS_TLS_CA_FILE: setting('', parseString(), 'PEM file of the CA certificates that may sign the Redis server\'s certificate (needs REDIS_TLS=true); read at start-up.'),
  // --- Redis Cluster (docs/redis-cluster.md) ---
  REDIS_CLUSTER_NODES: setting('', parseAddrList, 'Redis Cluster seed nodes, `host:port,host:port,…` (any few of its nodes; the rest are discovered); empty: the single Redis at REDIS_ADDR. Connects with the same REDIS_USERNAME, REDIS_PASS and TLS settings. Set REDIS_PARTITIONS too, or the whole queue stays in one slot.'),
  REDIS_PARTITIONS: setting('1', parseInteger({ min: 1, max: 256 }), 'Partitions of the queue\'s keyspace, each one Cluster hash slot; a tenant and its tasks live in one. 1: one slot, the key names of a single Redis. On a cluster of M masters, a multiple of M (2×M leaves room to add masters). The same in every api and worker: it is recorded in Redis, and a process with another count refuses to start (docs/redis-cluster.md).'),
} as const;

export type SettingName = keyof typeof SETTINGS;
export type Config = { -readonly [K in SettingName]: ReturnType<(typeof SETTINGS)[K]['parse']> };

export type ServiceName = 'api' | 'worker' | 'migrator';

/** Per-service defaults that differ from the table (the Go system ran the worker's metrics on :2113). */
const SERVICE_DEFAULTS: Partial<Record<ServiceName, Partial<Record<SettingName, string>>>> = {
  worker: { METRICS_ADDR: ':2113' },
};

/**
 * Parses every setting; collects all problems so one start-up reports them together.
 * Throws ConfigError naming each offending variable.
 */
/** The API's first path segments that clients (the console, the client, the CLI) call: what the ingress routes. */
export const PUBLIC_API_ROOTS = ['tasks', 'queues', 'schedules', 'workflows', 'admin', 'openapi.json'] as const;
/** The API's first path segments, which UI_BASE_PATH may not take. */
const API_ROOTS: readonly string[] = [...PUBLIC_API_ROOTS, 'healthz', 'readyz'];

export function loadConfig(env: NodeJS.ProcessEnv = process.env, service?: ServiceName): Config {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, s] of Object.entries(SETTINGS) as [SettingName, Setting<unknown>][]) {
    const raw = env[name] ?? (service && SERVICE_DEFAULTS[service]?.[name]) ?? s.default;
    try {
      out[name] = s.parse(raw);
    } catch (err) {
      // A nearly right key (a trailing newline from a Secret made --from-file) is still the key.
      const shown = s.secret ? ` (not shown: ${raw.length} characters${/\s/.test(raw) ? ', with whitespace' : ''})` : `=${JSON.stringify(raw)}`;
      problems.push(`${name}${shown}: ${(err as Error).message}`);
    }
  }
  const cfg = out as Config;
  if (problems.length === 0 && cfg.RETRY_MAX_MS < cfg.RETRY_BASE_MS) {
    problems.push(`RETRY_MAX_MS=${cfg.RETRY_MAX_MS}: must be at least RETRY_BASE_MS (${cfg.RETRY_BASE_MS})`);
  }
  // Slower heartbeats than that let a lease run out between two of them (or after one missed):
  // every task longer than the lease would run again and again, then end dead.
  if (problems.length === 0 && cfg.HEARTBEAT_INTERVAL_MS * 2 > cfg.VIS_TIMEOUT_MS) {
    problems.push(`HEARTBEAT_INTERVAL_MS=${cfg.HEARTBEAT_INTERVAL_MS}: must be at most half of VIS_TIMEOUT_MS (${cfg.VIS_TIMEOUT_MS}), or 0 for a third of it`);
  }
  if (problems.length === 0 && cfg.REDIS_TLS_CA_FILE !== '' && cfg.REDIS_TLS !== 'true') {
    problems.push(`REDIS_TLS_CA_FILE=${JSON.stringify(cfg.REDIS_TLS_CA_FILE)}: needs REDIS_TLS=true (the connection would not use it)`);
  }
  if (problems.length === 0) {
    // A dead task reaches its dead-letter list just after Postgres records it; one deleted before
    // that would leave the entry behind (services/worker/retention.ts). A minute is far beyond that.
    for (const name of ['RETENTION_SUCCEEDED_MS', 'RETENTION_DEAD_MS', 'RETENTION_CANCELLED_MS'] as const) {
      if (cfg[name] > 0 && cfg[name] < 60_000) problems.push(`${name}=${cfg[name]}: must be 0 (keep forever) or at least 60000 (a minute)`);
    }
  }
  // The console is mounted before the API's routes: a path under one of them would hide it.
  const uiRoot = cfg.UI_BASE_PATH?.split('/')[1]?.toLowerCase();
  if (problems.length === 0 && uiRoot !== undefined && API_ROOTS.includes(uiRoot)) {
    problems.push(`UI_BASE_PATH=${JSON.stringify(cfg.UI_BASE_PATH)}: must not be under an API path (/${API_ROOTS.join(', /')})`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return cfg;
}

/** A config for tests and tools: defaults plus overrides, validated the same way. */
export function configWith(overrides: Partial<Record<SettingName, string | number>>, service?: ServiceName): Config {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(overrides)) env[k] = String(v);
  return loadConfig(env, service);
}

export { ConfigError };
