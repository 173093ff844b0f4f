/**
 * End to end: the built api and one worker run as child processes against a private database and
 * Redis prefix; the built load generator (dist/services/load/main.js) runs against them as a child
 * process too, and its JSON result is checked against what the task mix must produce.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Pool } from 'pg';
import type { LoadResult } from '../../services/load/result';
import { ChildHandle, freePort, killAllChildren, spawnService } from '../support/processes';
import { createTestDatabase, TestDatabase, testRedisAddr, uniqueRedisPrefix } from '../support/test-env';
import { AUTH_ENV, TEST_KEY } from '../support/auth';
import { createKey } from '../../services/core/tenancy/key-store';

const REPO_ROOT = path.resolve(__dirname, '../..');
const LOAD = path.join(REPO_ROOT, 'dist/services/load/main.js');

let db: TestDatabase;
let pool: Pool;
let apiUrl: string;
let tmp: string;
const children: ChildHandle[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new Pool({ connectionString: db.url, max: 2 });
  tmp = mkdtempSync(path.join(os.tmpdir(), 'load-e2e-'));
  const apiPort = await freePort();
  const env = {
    POSTGRES_URL: db.url,
    REDIS_ADDR: testRedisAddr(),
    REDIS_KEY_PREFIX: uniqueRedisPrefix('load'),
    LOG_LEVEL: 'info',
    RETRY_BASE_MS: '20',
    RETRY_MAX_MS: '100',
    RETRY_JITTER_MS: '10',
    RETRY_SCAN_INTERVAL_MS: '25',
  };
  apiUrl = `http://127.0.0.1:${apiPort}`;
  const [api, worker] = await Promise.all([
    spawnService('dist/services/api/main.js', { ...env, ...AUTH_ENV, API_ADDR: `127.0.0.1:${apiPort}`, METRICS_ADDR: `127.0.0.1:${await freePort()}` }),
    spawnService('dist/services/worker/main.js', { ...env, WORKER_POOL: '12', METRICS_ADDR: `127.0.0.1:${await freePort()}` }),
  ]);
  children.push(api, worker);
}, 60_000);

afterAll(async () => {
  for (const c of children) await c.stop('SIGTERM', 10_000).catch(() => c.kill());
  await killAllChildren();
  await pool?.end();
  await db?.drop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

interface LoadRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the built load generator; `whileRunning` may signal it. Killed after timeoutMs. */
function runLoad(args: string[], opts: { timeoutMs?: number; whileRunning?: (pid: number, stderr: () => string) => void } = {}): Promise<LoadRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [LOAD, ...args], { cwd: REPO_ROOT, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', API_KEY: TEST_KEY }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 45_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      // 'exit' can come before the pipes are drained; 'close' follows once they are.
      child.on('close', () => resolve({ code, signal, stdout, stderr }));
    });
    opts.whileRunning?.(child.pid!, () => stderr);
  });
}

function parseResult(run: LoadRun): LoadResult {
  if (run.code !== 0 && run.code !== 130) throw new Error(`load exited ${run.code} (${run.signal}); stderr:\n${run.stderr}\nstdout:\n${run.stdout}`);
  const lines = run.stdout.trim().split('\n');
  expect(lines).toHaveLength(1); // -json: one object, nothing else on stdout
  return JSON.parse(lines[0]!) as LoadResult;
}

it('a closed-loop run of 300 mixed tasks with -wait: every number follows from the mix', async () => {
  const report = path.join(tmp, 'report.html');
  const run = await runLoad([
    '-n', '300', '-w', '8', '-pct-flaky', '10', '-pct-fail', '5', '-pct-sleep', '5', '-sleep-ms', '20',
    '-wait', '-json', '-url', apiUrl, '-report', report, '-slots', '12',
  ]);
  expect(run.code).toBe(0);
  const r = parseResult(run);

  expect(r.client).toMatchObject({ tasks_sent: 300, requests: 300, accepted: 300, created: 300, rejected: 0, http_status: { '201': 300 } });
  expect(r.client.errors.total).toBe(0);
  expect(r.client.latency_ms.count).toBe(300);
  expect(r.client.latency_ms.p50).toBeGreaterThan(0);
  expect(r.complete).toBe(true);
  expect(r.tasks).toMatchObject({ accepted: 300, found: 300, final: 300, succeeded: 285, dead: 15, unfinished: 0 });
  expect(r.tasks!.by_type).toMatchObject({
    noop: { tasks: 240, succeeded: 240, runs: 240 },
    flaky: { tasks: 30, succeeded: 30, runs: 60 },
    always_fail: { tasks: 15, dead: 15, runs: 90 },
    sleeper: { tasks: 15, succeeded: 15, runs: 15 },
  });
  const t = r.table!;
  expect(t.burst).toBe(300);
  expect(t.fail_pct).toBe(5);
  // Flaky with 1 planned failure: 30 tasks retried once; always_fail with the default max_retries 5: 15 × 5.
  expect(t.retries).toBe(30 + 15 * 5);
  expect(t.extra_attempts).toBe(105);
  expect(t.reaped).toBe(0);
  expect(t.runs).toBe(405);
  expect(t.run_outcomes).toEqual({ succeeded: 285, failed: 120 });
  expect(t.workers).toBe(1);
  expect(t.slots).toBe(12);
  expect(t.in_flight).toBeGreaterThanOrEqual(1);
  expect(t.in_flight).toBeLessThanOrEqual(12);
  expect(t.drain_time_ms).toBeGreaterThan(0);
  expect(t.throughput_per_s).toBeCloseTo(300 / (t.drain_time_ms! / 1000), 1);
  expect(t.run_ms.count).toBe(405);
  expect(t.run_ms.p99).toBeGreaterThanOrEqual(15); // the sleepers' 20 ms are in the top 4%
  expect(t.wait_ms.count).toBe(300);

  // The same tasks, counted in Postgres directly.
  const { rows } = await pool.query(`SELECT status::text AS status, count(*)::int AS n FROM tasks GROUP BY status ORDER BY status`);
  expect(rows).toEqual([{ status: 'succeeded', n: 285 }, { status: 'dead', n: 15 }].sort((a, b) => a.status.localeCompare(b.status)));

  const html = readFileSync(report, 'utf8');
  expect(html).toContain('<svg');
  expect(html).toContain('accepted/s');
  expect(html).toContain('Waiting tasks');
  expect(html).not.toMatch(/<script|<link /i);
}, 60_000);

it('an open-loop run (-rate 200 -duration 1s) sends about 200 tasks on schedule', async () => {
  const before = (await pool.query('SELECT count(*)::int AS n FROM tasks')).rows[0].n as number;
  // -w 64: enough connections that the schedule, not the answers, decides when requests start.
  const run = await runLoad(['-rate', '200', '-duration', '1s', '-w', '64', '-sleep-ms', '20', '-json', '-url', apiUrl]);
  expect(run.code).toBe(0);
  const r = parseResult(run);
  expect(r.options).toMatchObject({ n: null, rate: 200, duration_ms: 1000 });
  expect(r.stopped_by).toBe('duration');
  expect(r.client.tasks_sent).toBeGreaterThanOrEqual(140);
  expect(r.client.tasks_sent).toBeLessThanOrEqual(260);
  expect(r.client.accepted + r.client.rejected).toBe(r.client.tasks_sent);
  const after = (await pool.query('SELECT count(*)::int AS n FROM tasks')).rows[0].n as number;
  expect(after - before).toBe(r.client.accepted);
  expect(r.tasks!.found).toBe(r.client.accepted);
  // No -wait: whatever is not final yet is said so, not hidden.
  if (!r.complete) expect(r.notes.join('\n')).toContain('not everything is final');
}, 60_000);

it('Ctrl-C stops sending, prints the summary of what was sent, exits 130', async () => {
  const run = await runLoad(['-rate', '50', '-duration', '30s', '-sleep-ms', '20', '-json', '-url', apiUrl], {
    whileRunning: (pid) => setTimeout(() => process.kill(pid, 'SIGINT'), 1500),
  });
  expect(run.code).toBe(130);
  const r = parseResult(run);
  expect(r.interrupted).toBe(true);
  expect(r.stopped_by).toBe('interrupt');
  expect(r.client.tasks_sent).toBeGreaterThan(20);
  expect(r.client.tasks_sent).toBeLessThan(200);
  expect(r.tasks!.found).toBe(r.client.accepted);
  expect(run.stderr).toContain('Ctrl-C: stopping');
}, 30_000);

it('connection errors are counted, not fatal', async () => {
  const closed = `http://127.0.0.1:${await freePort()}`;
  const run = await runLoad(['-n', '20', '-w', '4', '-json', '-url', closed]);
  expect(run.code).toBe(0);
  const r = parseResult(run);
  expect(r.client).toMatchObject({ tasks_sent: 20, accepted: 0, rejected: 20 });
  expect(r.client.errors.connection).toBe(20);
  expect(r.client.error_samples[0]).toMatch(/ECONNREFUSED/);
  expect(r.notes.join('\n')).toContain('no task was accepted');
});

describe('bad flags exit 2 with a message naming the flag, never a stack trace', () => {
  it.each([
    [['-bogus'], 'load: flag provided but not defined: -bogus'],
    [['-n', 'lots'], 'load: invalid value "lots" for flag -n: must be an integer'],
    [['-pct-noop', '80', '-pct-flaky', '15', '-pct-fail', '5', '-pct-sleep', '5'], 'load: task mix adds up to 105%, not 100%: -pct-noop 80 -pct-flaky 15 -pct-fail 5 -pct-sleep 5'],
    [['-pct-high', '90', '-pct-low', '20'], 'load: priority mix adds up to 110%, not 100%: -pct-critical 0 -pct-high 90 -pct-default 0 -pct-low 20'],
    [['-duration', '10'], 'load: invalid value "10" for flag -duration: "10" is missing a unit'],
  ])('%j', async (argv, message) => {
    const run = await runLoad(argv);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
    expect(run.stderr).not.toMatch(/\n\s+at /);
    expect(run.stdout).toBe('');
  });

  it('-help prints the flags and exits 0', async () => {
    const run = await runLoad(['-help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('-pct-flaky int');
  });
});

it('-wait with a key that may not read tasks exits 1 before sending anything', async () => {
  const { key } = await createKey(pool, { tenant: 'writer-only', scopes: ['tasks:write'], expiresInMs: null });
  const run = await runLoad(['-n', '5', '-wait', '-url', apiUrl, '-api-key', key]);
  expect(run.code).toBe(1);
  expect(run.stderr).toMatch(/-wait reads the tasks through GET \/tasks, but http:\/\/127\.0\.0\.1:\d+ refused: .*tasks:read/);
  expect(run.stderr).not.toContain(key);
  expect((await pool.query("SELECT count(*)::int AS n FROM tasks WHERE tenant = 'writer-only'")).rows[0].n).toBe(0);
});

it('-batch 50 sends through POST /tasks/batch and every item is accounted for', async () => {
  const run = await runLoad(['-n', '200', '-batch', '50', '-w', '2', '-idempotency', '-pct-fail', '10', '-sleep-ms', '20', '-wait', '-json', '-url', apiUrl]);
  expect(run.code).toBe(0);
  const r = parseResult(run);
  expect(r.client).toMatchObject({ tasks_sent: 200, requests: 4, accepted: 200, created: 200, http_status: { '200': 4 }, item_status: { '201': 200 } });
  expect(r.tasks).toMatchObject({ final: 200, dead: 20, succeeded: 180 });
  expect(r.table!.retries).toBe(20 * 5);
  // No -slots: the worker's WORKER_POOL comes from GET /queues.
  expect(r.table).toMatchObject({ workers: 1, slots: 12 });
  expect(r.notes.join('\n')).not.toContain('Workers × Slots');
  const keys = await pool.query(`SELECT count(*)::int AS n FROM tasks WHERE idempotency_key LIKE $1`, [`load-${r.run_id}-%`]);
  expect(keys.rows[0].n).toBe(200);
}, 60_000);

it('the built entrypoint exists (npm run build ran)', () => {
  expect(existsSync(LOAD)).toBe(true);
});
