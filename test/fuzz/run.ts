/**
 * One fuzz run: the run's API keys (keyring.ts), the built api (AUTH_MODE=keys) and a worker as
 * child processes on a private database and Redis prefix, N generated requests at bounded
 * concurrency, then the database checks. Shared by test/fuzz/api-fuzz.test.ts and `npm run fuzz`
 * (scripts/fuzz.ts).
 */
import http from 'node:http';
import path from 'node:path';
import { Pool } from 'pg';
import { ChildHandle, freePort, spawnService } from '../support/processes';
import { checkAnswer, checkDatabase, EARLY_ANSWER_BYTES, Ledger, NO_TENANT, specText, waitForFinal } from './check';
import { DEFAULT_GEN, RequestSource } from './generate';
import { createKeys, KeyRing } from './keyring';
import { authVerdict, describeRequest, FuzzRequest, HEAD_LIMIT_BYTES, routeOf, SEEN, SEEN_UPPER, Spec, WF_SEEN } from './model';
import { parseAnswers, sendHttp, sendRaw, Target } from './send';

export interface FuzzOptions {
  seed: number;
  /** Generated requests (a burst counts once here, but each of its copies is sent). */
  requests: number;
  concurrency: number;
  dbUrl: string;
  redisAddr: string;
  redisPrefix: string;
  /** Send only request `only` of the run (to reproduce one failure). */
  only?: number;
  /** How long every task may take to become final after the traffic. */
  drainTimeoutMs?: number;
  /** How long one request may wait for its answer. */
  requestTimeoutMs?: number;
  /** Progress lines (every few seconds) and start-up notes. */
  log?: (line: string) => void;
  /** Extra environment for the api (e.g. MAX_INFLIGHT_BODY_BYTES, TENANT_RATE_LIMIT: then a POST may get 429). */
  apiEnv?: Record<string, string>;
  /** The build to run (its services/api/main.js and services/worker/main.js); default dist/. */
  distDir?: string;
}

export interface FuzzReport {
  seed: number;
  generated: number;
  /** HTTP requests sent (bursts and pipelines count each request). */
  sent: number;
  trafficMs: number;
  drainMs: number;
  totalMs: number;
  concurrency: number;
  statuses: [string, number][];
  /** Generator kind → its answers (status → count). */
  byKind: [string, [string, number][]][];
  /** Credential kind → its answers. */
  byAuth: [string, [string, number][]][];
  shed: [string, number][];
  /** 429s of tenant limits, by title (only with limits in apiEnv). */
  limited: [string, number][];
  /** Task rows per tenant. */
  tenants: [string, number][];
  /** The slowest requests (all their answers, or giving up), ms and kind #index. */
  slowest: [number, string][];
  created: number;
  replays: number;
  rows: number;
  violations: { reason: string; kind: string; route: string; status: string; count: number; detail: string; request: string }[];
  /** Distinct error lines the api or the worker logged (level error or fatal). */
  serviceErrors: string[];
}

/** Worker settings that retry at once, so failing tasks end (dead) within seconds. */
const FAST_WORKER: Record<string, string> = {
  WORKER_POOL: '32',
  RETRY_BASE_MS: '1',
  RETRY_MAX_MS: '10',
  RETRY_JITTER_MS: '1',
  RETRY_SCAN_INTERVAL_MS: '10',
  RECONCILE_INTERVAL_MS: '500',
  RECONCILE_GRACE_MS: '2000',
  POLL_INTERVAL_MS: '50',
};

export async function runFuzz(o: FuzzOptions): Promise<FuzzReport> {
  const t0 = Date.now();
  const log = o.log ?? (() => undefined);
  const ledger = new Ledger();
  // The generator builds its near-limit bodies (huge, bombs, costly escapes) to the api's limit.
  const maxBodyBytes = Number(o.apiEnv?.MAX_BODY_BYTES ?? DEFAULT_GEN.maxBodyBytes);
  const source = new RequestSource(o.seed, { ...DEFAULT_GEN, maxBodyBytes });
  const keys = await createKeys(o.dbUrl);
  ledger.secrets = keys.ring.secrets;
  const common = { POSTGRES_URL: o.dbUrl, REDIS_ADDR: o.redisAddr, REDIS_KEY_PREFIX: o.redisPrefix, LOG_LEVEL: 'info', ...FAST_WORKER };
  const apiPort = await freePort();
  // A small in-flight budget (compressed and chunked bodies reserve MAX_BODY_BYTES each), so the
  // documented load shedding (503 + Retry-After) happens now and then and is seen.
  const apiEnv: Record<string, string> = { ...common, API_ADDR: `127.0.0.1:${apiPort}`, METRICS_ADDR: `127.0.0.1:${await freePort()}`, MAX_INFLIGHT_BODY_BYTES: String(16 * maxBodyBytes), READINESS_TIMEOUT_MS: '5000', AUTH_MODE: 'keys', ...o.apiEnv };
  ledger.limited = Number(apiEnv.TENANT_RATE_LIMIT ?? 0) > 0 || Number(apiEnv.TENANT_MAX_UNFINISHED ?? 0) > 0;
  const dist = o.distDir ?? 'dist';
  const api = await spawnService(path.join(dist, 'services/api/main.js'), apiEnv);
  const worker = await spawnService(path.join(dist, 'services/worker/main.js'), { ...common, METRICS_ADDR: `127.0.0.1:${await freePort()}` }).catch(async (err) => {
    await api.stop('SIGKILL');
    throw err;
  });
  await keys.ready.catch(async (err) => {
    await Promise.all([api.stop('SIGKILL'), worker.stop('SIGKILL')]);
    throw err;
  });
  const pool = new Pool({ connectionString: o.dbUrl, max: 2 });
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency * 2 });
  const target: Target = { host: '127.0.0.1', port: apiPort, agent, timeoutMs: o.requestTimeoutMs ?? 30_000 };

  let stopping = false;
  let aborted = false;
  const watch = (name: string, child: ChildHandle) =>
    void child.exited.then(({ code, signal }) => {
      if (stopping) return;
      aborted = true;
      ledger.violate({ reason: `the ${name} exited`, kind: '(process)', route: '(process)', status: '-', detail: `code ${code}, signal ${signal}; last output:\n${child.output().slice(-3000)}`, request: '(the requests in flight then)' });
    });
  watch('api', api);
  watch('worker', worker);

  const first = o.only ?? 0;
  const end = o.only !== undefined ? o.only + 1 : o.requests;
  let next = first;
  let done = 0;
  const progress = setInterval(() => log(`  ${done}/${end - first} generated requests, ${ledger.requests} sent, ${ledger.created.size} tasks created, ${ledger.violationCount} violations`), 5000);
  const tTraffic = Date.now();
  try {
    await Promise.all(
      Array.from({ length: Math.max(1, o.concurrency) }, async () => {
        while (!aborted) {
          const i = next++;
          if (i >= end) return;
          await sendOne(source.at(i), i, o.seed, target, ledger, keys.ring);
          done++;
        }
      }),
    );
  } finally {
    clearInterval(progress);
  }
  const trafficMs = Date.now() - tTraffic;
  agent.destroy();

  const tDrain = Date.now();
  let rows = 0;
  let tenants: [string, number][] = [];
  try {
    if (!aborted) {
      const health = await sendHttp({ ...target, agent: new http.Agent() }, { kind: 'after', method: 'GET', path: '/healthz', headers: [], body: Buffer.alloc(0), framing: 'none' }, true);
      if (health.kind !== 'answer' || health.answer.status !== 200) {
        ledger.violate({ reason: 'the api does not answer /healthz after the traffic', kind: '(process)', route: '/healthz', status: health.kind === 'answer' ? String(health.answer.status) : health.kind, detail: '', request: 'GET /healthz' });
      }
      const drainTimeoutMs = o.drainTimeoutMs ?? 60_000;
      const final = await waitForFinal(pool, drainTimeoutMs);
      if (final.unfinished > 0) {
        ledger.violate({ reason: `tasks not final ${drainTimeoutMs / 1000} s after the traffic`, kind: '(database)', route: '(database)', status: '-', detail: `${final.unfinished} unfinished ${JSON.stringify(final.byStatus)}, e.g. ${final.examples.join('; ')}`, request: '(see detail)' });
      }
    }
    await checkDatabase(pool, ledger);
    tenants = (await pool.query<{ tenant: string; n: number }>('SELECT tenant, count(*)::int AS n FROM tasks GROUP BY tenant ORDER BY tenant')).rows.map((r) => [r.tenant, r.n]);
    rows = tenants.reduce((n, [, k]) => n + k, 0);
  } finally {
    await pool.end();
  }
  const drainMs = Date.now() - tDrain;

  stopping = true;
  const serviceErrors = [...errorLines(api.output(), 'api'), ...errorLines(worker.output(), 'worker')];
  for (const [name, child] of [['api', api], ['worker', worker]] as const) {
    const code = await child.stop('SIGTERM', 30_000);
    if (code !== 0 && !aborted) ledger.violate({ reason: `the ${name} did not exit 0 on SIGTERM`, kind: '(process)', route: '(process)', status: String(code), detail: child.output().slice(-2000), request: '-' });
  }

  return {
    seed: o.seed,
    generated: done,
    sent: ledger.requests,
    trafficMs,
    drainMs,
    totalMs: Date.now() - t0,
    concurrency: o.concurrency,
    statuses: [...ledger.statuses].sort((a, b) => a[0].localeCompare(b[0])),
    byKind: sortedCounts(ledger.byKind),
    byAuth: sortedCounts(ledger.byAuth),
    shed: [...ledger.shed],
    limited: [...ledger.limitedAnswers],
    tenants,
    slowest: ledger.slowest,
    created: ledger.created.size,
    replays: ledger.replays.size,
    rows,
    violations: [...ledger.groups.values()].map((g) => ({ ...g.first, count: g.count })).sort((a, b) => b.count - a.count),
    serviceErrors,
  };
}

function sortedCounts(m: Map<string, Map<string, number>>): [string, [string, number][]][] {
  return [...m].map(([k, c]): [string, [string, number][]] => [k, [...c].sort((a, b) => a[0].localeCompare(b[0]))]).sort((a, b) => a[0].localeCompare(b[0]));
}

/**
 * Fills `{seen}` with an id answered 201 earlier: of the tenant the request acts on (then 200), or
 * of another tenant with `seenFrom: 'other'` (then 404); without one, an unknown id (then 404).
 */
function resolveSpec(s: Spec, ledger: Ledger): Spec {
  const workflow = s.path.toLowerCase().includes(WF_SEEN);
  if (!s.path.includes(SEEN) && !s.path.includes(SEEN_UPPER) && !workflow) return s;
  const seen = s.seen ?? 0;
  const tenant = authVerdict(s)?.tenant ?? null;
  const own = s.seenFrom !== 'other';
  const id = workflow ? ledger.pickSeen(seen, tenant, own, ledger.seenWorkflows) : ledger.pickSeen(seen, tenant, own);
  const fill = id ?? `00000000-0000-4000-8000-${seen.toString(16).padStart(12, '0').slice(-12)}`;
  const path = s.path.replace(SEEN, fill).replace(SEEN_UPPER, fill.toUpperCase()).replace(WF_SEEN, fill).replace(WF_SEEN.toUpperCase(), fill.toUpperCase());
  const found = id !== undefined && own;
  // A request that expects an answer about a found task (2xx) is a 404 when there is none.
  const expect = !found && s.expect?.some((x) => x >= 200 && x < 300) ? [404] : s.expect;
  return { ...s, path, expect };
}

/** The spec as sent: its placeholders filled with the run's keys (the spec itself is what reports print). */
function filled(s: Spec, ring: KeyRing): Spec {
  return { ...s, path: ring.fill(s.path), headers: s.headers.map(([k, x]): [string, string] => [k, ring.fill(x)]) };
}

async function sendOne(req: FuzzRequest, index: number, seed: number, target: Target, ledger: Ledger, ring: KeyRing): Promise<void> {
  const again = `(again: npm run fuzz -- --seed ${seed} --only ${index})`;
  if (req.transport === 'http') {
    const specs = [...Array.from({ length: req.copies }, () => req.spec), ...(req.together ?? [])].map((s) => resolveSpec(s, ledger));
    const t0 = Date.now();
    const outcomes = await Promise.all(specs.map((s) => sendHttp(target, filled(s, ring), req.fresh)));
    ledger.timed(Date.now() - t0, req.spec.kind, index);
    ledger.requests += specs.length;
    outcomes.forEach((out, i) => {
      const spec = specs[i]!;
      const text = () => `${specText(spec, spec.path, index, req.copies)}${req.together ? ` (with ${req.together.length} more at once)` : ''} ${again}`;
      const fail = (reason: string, status: string, detail: string) => ledger.violate({ reason, kind: spec.kind, route: routeOf(spec.path), status, detail, request: text() });
      if (out.kind === 'answer') checkAnswer(ledger, spec, spec.path, out.answer, text);
      else if (out.kind === 'closed') {
        // The server may answer before reading the request (431 past node's 16 KiB head limit, 413, or
        // 503 for a body reserved at MAX_BODY_BYTES: chunked or compressed) and close; a client still
        // writing then sees EPIPE or a reset, even once the kernel took all its bytes.
        const headBytes = spec.path.length + spec.headers.reduce((n, [k, v]) => n + k.length + v.length + 4, 0);
        const early =
          headBytes > HEAD_LIMIT_BYTES ||
          headBytes + spec.body.length >= EARLY_ANSWER_BYTES ||
          (!out.wroteAll && (spec.framing === 'chunked' || spec.headers.some(([k]) => k.toLowerCase() === 'content-encoding')));
        ledger.count(early ? 'closed (answered before the body?)' : 'closed', spec.kind);
        if (!early) fail('connection closed without an answer', 'closed', `${out.code}${out.wroteAll ? ' after the whole request was sent' : ''}`);
      } else if (out.kind === 'timeout') {
        ledger.count('timeout', spec.kind);
        fail(`no answer within ${target.timeoutMs / 1000} s`, 'timeout', '');
      } else {
        ledger.count('unsendable', spec.kind);
        fail('generator: node:http refused to send this', 'unsendable', out.message);
      }
    });
    return;
  }

  const t0 = Date.now();
  const result = await sendRaw(target.host, target.port, ring.fillBytes(req.bytes), req.halfClose, req.waitMs);
  ledger.timed(Date.now() - t0, req.kind, index);
  const { answers, incomplete } = parseAnswers(result.data);
  const text = () => `${describeRequest(req, index)} ${again}`;
  const fail = (reason: string, status: string, detail: string, kind = req.kind) => ledger.violate({ reason, kind, route: '(raw)', status, detail, request: text() });
  if (req.parts === null) {
    // Broken framing: the server may answer (below 500) or close; it must stay up (checked later).
    ledger.requests += 1;
    if (answers.length === 0) ledger.count(result.closed ? 'closed (broken framing)' : 'no answer (broken framing)', req.kind);
    for (const a of answers) {
      ledger.count(String(a.status), req.kind);
      if (a.status === 503 && a.headers['retry-after'] !== undefined) ledger.shed.set('(raw request)', (ledger.shed.get('(raw request)') ?? 0) + 1);
      else if (a.status >= 500) fail(`${a.status} answer to broken framing`, String(a.status), a.body.toString('utf8').slice(0, 300));
      // Whatever the server made of it, a task it reports is a task it created.
      if (a.status === 201 || a.status === 200) {
        try {
          const json = JSON.parse(a.body.toString('utf8')) as Record<string, unknown>;
          if (json && typeof json === 'object' && 'id' in json) ledger.noteTask(a.status, json, req.tenant ?? NO_TENANT, (reason, detail) => fail(reason, String(a.status), detail));
        } catch {
          // Not a task (a /healthz answer, say).
        }
      }
    }
    return;
  }
  ledger.requests += req.parts.length;
  req.parts.forEach((part, i) => {
    const a = answers[i];
    if (a) checkAnswer(ledger, part, part.path, a, text);
  });
  if (answers.length < req.parts.length) {
    const last = answers[answers.length - 1];
    // Only an error that closes the connection (413, 503) may leave the requests after it unanswered.
    const closedAfterError = last !== undefined && last.status >= 400 && /close/i.test(String(last.headers.connection ?? ''));
    if (!closedAfterError) {
      ledger.count('closed', req.kind);
      fail('well-framed requests left unanswered', 'closed', `${answers.length} of ${req.parts.length} answered${incomplete ? `; then ${incomplete}` : ''}${result.error ? ` (${result.error})` : ''}${result.closed ? '' : ` (no close within ${req.waitMs} ms)`}`);
    }
  }
}

/** Distinct error and fatal log lines of a service (message and error text, not whole records). */
function errorLines(output: string, name: string): string[] {
  const out = new Map<string, number>();
  for (const line of output.split('\n')) {
    if (!/"level":(50|60)/.test(line)) continue;
    let key = line.slice(0, 300);
    try {
      const rec = JSON.parse(line) as { msg?: string; err?: { message?: string; type?: string } | string; path?: string };
      const err = typeof rec.err === 'string' ? rec.err : rec.err?.message ?? rec.err?.type ?? '';
      key = `${rec.msg ?? ''}${rec.path ? ` ${rec.path}` : ''}: ${err}`.slice(0, 300);
    } catch {
      // Not JSON: keep the raw line.
    }
    out.set(key, (out.get(key) ?? 0) + 1);
  }
  return [...out].map(([k, n]) => `${name}: ${k}${n > 1 ? ` (×${n})` : ''}`);
}

/** The report as text: counts (per generator kind too, if `byKind`), then each distinct violation with one request that shows it. */
export function formatReport(r: FuzzReport, opts: { byKind?: boolean } = {}): string {
  const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const lines = [
    `API fuzz: seed ${r.seed}, ${r.generated} generated requests, ${r.sent} HTTP requests sent in ${secs(r.trafficMs)} (${Math.round(r.sent / (r.trafficMs / 1000))}/s, ${r.concurrency} in flight); drain and checks ${secs(r.drainMs)}; total ${secs(r.totalMs)}`,
    `answers: ${r.statuses.map(([s, n]) => `${s} ×${n}`).join(', ')}`,
    ...(opts.byKind ? ['answers by kind:', ...r.byKind.map(([k, st]) => `   ${k}: ${st.map(([x, n]) => `${x} ×${n}`).join(', ')}`)] : []),
    ...(opts.byKind ? ['answers by credential:', ...r.byAuth.map(([k, st]) => `   ${k}: ${st.map(([x, n]) => `${x} ×${n}`).join(', ')}`)] : []),
    `load shed (503 with Retry-After): ${r.shed.reduce((s, [, n]) => s + n, 0)}${r.shed.length ? ` (${r.shed.map(([d, n]) => `${JSON.stringify(d)} ×${n}`).join(', ')})` : ''}`,
    ...(r.limited.length ? [`tenant limits (429): ${r.limited.map(([t, n]) => `${t} ×${n}`).join(', ')}`] : []),
    `slowest: ${r.slowest.map(([ms, what]) => `${(ms / 1000).toFixed(1)} s ${what}`).join(', ')}`,
    `tasks: ${r.created} answered 201, ${r.replays} replayed (200); ${r.rows} rows in Postgres (${r.tenants.map(([t, n]) => `${t.length > 20 ? `${t.slice(0, 20)}…` : t} ${n}`).join(', ')})`,
    `violations: ${r.violations.length === 0 ? 'none' : `${r.violations.reduce((s, v) => s + v.count, 0)} in ${r.violations.length} kinds`}`,
  ];
  r.violations.forEach((v, i) => {
    lines.push(`${i + 1}. [×${v.count}] ${v.reason} — ${v.route}, ${v.kind}, status ${v.status}`);
    if (v.detail) lines.push(`   detail: ${v.detail.replace(/\n/g, '\n   ')}`);
    lines.push(`   request: ${v.request}`);
  });
  if (r.serviceErrors.length) lines.push('service errors logged:', ...r.serviceErrors.slice(0, 20).map((l) => `   ${l}`));
  if (r.violations.length) lines.push(`reproduce the run: FUZZ_SEED=${r.seed} npm test -- test/fuzz/api-fuzz.test.ts (or npm run fuzz -- --seed ${r.seed} --requests ${r.generated})`);
  return lines.join('\n');
}
