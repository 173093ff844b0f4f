/**
 * scripts/start.sh (`npm start`) stopped while it starts its private `dev` Postgres and Redis: it
 * stops them again and exits, instead of dying with them running (or going on to start the api).
 * Stopped while a task runs: it gives the services their SHUTDOWN_GRACE_MS to finish it, unless a
 * second signal comes, and either way stops the private services.
 * It runs from a temporary root (the scripts linked in, dist/ and node_modules/ linked, npm a stub
 * so it does not rebuild), so its `dev` profile is its own, not this clone's.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { parseEnvFile, REPO_ROOT } from '../support/global-setup';
import { freePort } from '../support/processes';
import { createTestDatabase } from '../support/test-env';
import { makeCertificates, startTlsRedis } from '../support/tls-servers';

let root: string;
const held: ChildProcess[] = [];
/** Service pids a failed test may leave behind. */
const strays: number[] = [];

beforeEach(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'ts-npm-start-'));
  // As root, Postgres runs as `postgres`, which must reach its data dir under here.
  chmodSync(root, 0o755);
  mkdirSync(path.join(root, 'scripts'));
  for (const f of ['start.sh', 'local-services.sh', 'redis-cluster.sh', 'prometheus-local.sh']) symlinkSync(path.join(REPO_ROOT, 'scripts', f), path.join(root, 'scripts', f));
  for (const d of ['dist', 'node_modules']) symlinkSync(path.join(REPO_ROOT, d), path.join(root, d));
  mkdirSync(path.join(root, 'bin'));
  writeFileSync(path.join(root, 'bin/npm'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
});

afterEach(() => {
  // start.sh runs in a process group of its own (detached): whatever it left running goes with it.
  for (const c of held.splice(0)) {
    try {
      process.kill(-c.pid!, 'SIGKILL');
    } catch {
      c.kill('SIGKILL');
    }
  }
  for (const pid of strays.splice(0)) if (alive(pid)) process.kill(pid, 'SIGKILL');
  spawnSync('bash', [path.join(root, 'scripts/local-services.sh'), 'stop', 'dev'], { stdio: 'ignore' });
  rmSync(root, { recursive: true, force: true });
});

const localServices = (...args: string[]) => spawnSync('bash', [path.join(root, 'scripts/local-services.sh'), ...args], { encoding: 'utf8' });

/** Polls until `check` holds; fails with `what` (no timing assertions). */
async function until(what: string, check: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Loopback addresses nothing listens on, for the api and both metrics servers. */
async function serviceAddrs(): Promise<Record<string, string>> {
  return { API_ADDR: `127.0.0.1:${await freePort()}`, API_METRICS_ADDR: `127.0.0.1:${await freePort()}`, WORKER_METRICS_ADDR: `127.0.0.1:${await freePort()}` };
}

interface Session {
  proc: ChildProcess;
  output: () => string;
  /** Its exit code (null: a signal). */
  exited: Promise<number | null>;
  hasExited: () => boolean;
}

/** scripts/start.sh in a process group of its own (killed after the test), with npm stubbed and its output gathered. */
function startSession(env: Record<string, string>): Session {
  const proc = spawn('bash', [path.join(root, 'scripts/start.sh')], { cwd: root, env: { ...process.env, PATH: `${path.join(root, 'bin')}:${process.env.PATH}`, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  held.push(proc);
  let output = '';
  proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  let done = false;
  const exited = new Promise<number | null>((resolve) =>
    proc.on('exit', (code) => {
      done = true;
      resolve(code);
    }),
  );
  return { proc, output: () => output, exited, hasExited: () => done };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Pids of the processes whose parent is `pid`, with their command lines. */
function childrenOf(pid: number): { pid: number; args: string }[] {
  const out = spawnSync('ps', ['-o', 'pid=,args=', '--ppid', String(pid)], { encoding: 'utf8' }).stdout;
  return out
    .split('\n')
    .map((l) => l.trim().match(/^(\d+)\s+(.*)$/))
    .filter((m): m is RegExpMatchArray => m !== null)
    .map((m) => ({ pid: Number(m[1]), args: m[2]! }));
}

test.each(['SIGTERM', 'SIGINT'] as const)('%s while the private services start: both are stopped again and npm start exits without starting the api', async (signal) => {
  // Nothing answers at these addresses, so start.sh starts the private `dev` pair.
  const env = {
    ...(await serviceAddrs()),
    POSTGRES_URL: `postgres://app:app@127.0.0.1:${await freePort()}/app?sslmode=disable`,
    REDIS_ADDR: `127.0.0.1:${await freePort()}`,
  };
  // Hold the profile's lock, so `local-services.sh start dev` is certainly under way (waiting for
  // it) when the signal arrives; released after the signal.
  mkdirSync(path.join(root, '.data/dev'), { recursive: true });
  const lockFile = path.join(root, '.data/dev/.lock');
  openSync(lockFile, 'a');
  const lock = spawn('flock', [lockFile, 'cat'], { stdio: ['pipe', 'ignore', 'ignore'] });
  held.push(lock);
  await until('the test to hold the lock', () => childrenOf(lock.pid!).some((c) => c.args === 'cat'));

  const start = startSession(env);
  let starter: number | undefined;
  await until('local-services.sh start dev', () => (starter = childrenOf(start.proc.pid!).find((c) => /local-services\.sh start dev$/.test(c.args))?.pid) !== undefined);

  // As `kill` sends it (TERM) or as a terminal would send Ctrl-C to start.sh (INT).
  start.proc.kill(signal);
  lock.stdin!.end();
  // The banner means start.sh went on after the signal; an exit ends the wait too.
  await until('start.sh to exit or print its banner', () => start.hasExited() || /is running/.test(start.output()), 180_000);
  const startedAnyway = /is running/.test(start.output());
  if (startedAnyway) start.proc.kill('SIGTERM');
  await start.exited;
  // `local-services.sh start dev` has finished, whatever start.sh did meanwhile.
  await until('local-services.sh start dev to end', () => !alive(starter!));

  expect({ startedAnyway, devProfileUp: localServices('status', 'dev').status === 0 }).toEqual({ startedAnyway: false, devProfileUp: false });
  expect(start.output()).toContain("local-services: profile 'dev' stopped");
}, 240_000);

test('a stop while a task runs waits out SHUTDOWN_GRACE_MS (here past 30 s): the worker finishes the task before it is killed', async () => {
  // A dev pair of its own, so start.sh leaves it running on exit and the task can be read after.
  expect(localServices('start', 'dev').status).toBe(0);
  const dev = parseEnvFile(readFileSync(path.join(root, '.data/dev/env'), 'utf8'));
  const apiAddr = `127.0.0.1:${await freePort()}`;
  const env = {
    ...(await serviceAddrs()),
    POSTGRES_URL: `postgres://app:app@127.0.0.1:${await freePort()}/app?sslmode=disable`,
    REDIS_ADDR: `127.0.0.1:${await freePort()}`,
    API_ADDR: apiAddr,
    AUTH_MODE: 'off',
    SHUTDOWN_GRACE_MS: '45000',
  };
  const start = startSession(env);
  await until('the banner', () => /is running/.test(start.output()) || start.hasExited(), 180_000);
  expect(start.hasExited()).toBe(false);

  // Runs 35 s: past a fixed 30 s wait, within the 45 s grace.
  const res = await fetch(`http://${apiAddr}/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'sleeper', payload: { sleep_ms: 35_000 } }) });
  const { id } = (await res.json()) as { id: string };
  const status = async () => ((await (await fetch(`http://${apiAddr}/tasks/${id}`)).json()) as { status: string }).status;
  for (let s = await status(); s !== 'running'; s = await status()) await new Promise((r) => setTimeout(r, 100));

  start.proc.kill('SIGTERM');
  await start.exited;
  const pg = new Client({ connectionString: dev.POSTGRES_URL });
  await pg.connect();
  try {
    expect((await pg.query<{ status: string }>('SELECT status FROM tasks WHERE id = $1', [id])).rows[0]?.status).toBe('succeeded');
  } finally {
    await pg.end();
  }
  expect(start.output()).toMatch(/"msg":"worker stopped"/);
}, 300_000);

test('a second signal while npm start stops ends the wait for the services, and the private services are still stopped', async () => {
  const apiAddr = `127.0.0.1:${await freePort()}`;
  const env = {
    ...(await serviceAddrs()),
    POSTGRES_URL: `postgres://app:app@127.0.0.1:${await freePort()}/app?sslmode=disable`,
    REDIS_ADDR: `127.0.0.1:${await freePort()}`,
    API_ADDR: apiAddr,
    AUTH_MODE: 'off',
    // The first signal waits this out while the task below runs.
    SHUTDOWN_GRACE_MS: '600000',
  };
  const start = startSession(env);
  await until('the banner', () => /is running/.test(start.output()) || start.hasExited(), 180_000);
  expect(start.hasExited()).toBe(false);
  const workerPid = Number(/"service":"worker","pid":(\d+)/.exec(start.output())![1]);
  strays.push(workerPid);

  const res = await fetch(`http://${apiAddr}/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'sleeper', payload: { sleep_ms: 600_000 } }) });
  const { id } = (await res.json()) as { id: string };
  const status = async () => ((await (await fetch(`http://${apiAddr}/tasks/${id}`)).json()) as { status: string }).status;
  for (let s = await status(); s !== 'running'; s = await status()) await new Promise((r) => setTimeout(r, 100));

  start.proc.kill('SIGTERM');
  await until('start.sh to begin stopping', () => /start: stopping/.test(start.output()));
  // The impatient second Ctrl-C (or TERM).
  start.proc.kill('SIGTERM');
  await start.exited;
  expect({ workerAlive: alive(workerPid), devProfileUp: localServices('status', 'dev').status === 0 }).toEqual({ workerAlive: false, devProfileUp: false });
}, 300_000);

test("the api's port taken by something that never answers: npm start says the api exited and exits 1, without the banner, its private services stopped", async () => {
  const taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  try {
    const env = {
      ...(await serviceAddrs()),
      POSTGRES_URL: `postgres://app:app@127.0.0.1:${await freePort()}/app?sslmode=disable`,
      REDIS_ADDR: `127.0.0.1:${await freePort()}`,
      API_ADDR: `127.0.0.1:${(taken.address() as net.AddressInfo).port}`,
      AUTH_MODE: 'off',
    };
    const start = startSession(env);
    let code: number | null | undefined;
    void start.exited.then((c) => (code = c));
    // The worker comes up; a failed test must not leave it behind.
    await until('the worker to start', () => /"service":"worker","pid":\d+/.test(start.output()) || code !== undefined, 180_000);
    const worker = /"service":"worker","pid":(\d+)/.exec(start.output());
    if (worker) strays.push(Number(worker[1]));
    // The port's holder accepts connections and never answers; start.sh must not wait on it.
    await until('start.sh to exit', () => code !== undefined, 120_000).catch(() => undefined);
    expect({ code, banner: /is running/.test(start.output()) }).toEqual({ code: 1, banner: false });
    expect(start.output()).toMatch(/start: api exited \(status 1\); stopping/);
    expect(localServices('status', 'dev').status).not.toBe(0);
  } finally {
    taken.close();
  }
}, 300_000);

test('a Redis that answers the ACL user REDIS_USERNAME is used, not replaced by the private pair', async () => {
  const db = await createTestDatabase();
  const redisPort = await freePort();
  mkdirSync(path.join(root, 'acl-redis'));
  // Only the ACL user may log in, as on a Redis set up with `npm run -s redis:acl`.
  const redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', path.join(root, 'acl-redis'), '--user', 'default', 'off', '--user', 'scheduler', 'on', '>s3cret', '~*', '&*', '+@all'], { stdio: 'ignore' });
  try {
    const env = {
      ...(await serviceAddrs()),
      POSTGRES_URL: db.url,
      REDIS_ADDR: `127.0.0.1:${redisPort}`,
      REDIS_USERNAME: 'scheduler',
      REDIS_PASS: 's3cret',
        AUTH_MODE: 'off',
    };
    await until('redis-server to answer', () => spawnSync('redis-cli', ['-p', String(redisPort), '--user', 'scheduler', '--pass', 's3cret', '--no-auth-warning', 'ping'], { encoding: 'utf8' }).stdout.trim() === 'PONG');
    const start = startSession(env);
    await until('the banner', () => /is running/.test(start.output()) || start.hasExited(), 180_000);
    start.proc.kill('SIGTERM');
    await start.exited;
    expect(start.output()).toContain(`start: using Postgres at`);
    expect(start.output()).toContain(`and Redis at 127.0.0.1:${redisPort}\n`);
    expect(start.output()).not.toContain("using the private 'dev' services");
  } finally {
    redis.kill('SIGKILL');
    await db.drop();
  }
}, 300_000);

test('a Redis that answers over TLS (REDIS_TLS, REDIS_TLS_CA_FILE) is used, not replaced by the private pair', async () => {
  const db = await createTestDatabase();
  const redis = await startTlsRedis(makeCertificates(path.join(root, 'certs')));
  try {
    const env = {
      ...(await serviceAddrs()),
      POSTGRES_URL: db.url,
      // The certificate names localhost.
      REDIS_ADDR: `localhost:${redis.port}`,
      REDIS_TLS: 'true',
      REDIS_TLS_CA_FILE: path.join(root, 'certs/ca.crt'),
        AUTH_MODE: 'off',
    };
    const start = startSession(env);
    await until('the banner', () => /is running/.test(start.output()) || start.hasExited(), 180_000);
    start.proc.kill('SIGTERM');
    await start.exited;
    expect(start.output()).toContain(`and Redis at localhost:${redis.port}\n`);
    expect(start.output()).not.toContain("using the private 'dev' services");
  } finally {
    await redis.stop();
    await db.drop();
  }
}, 300_000);

test('with REDIS_CLUSTER_NODES, the cluster is what is asked and used, not REDIS_ADDR (which the services do not use then)', async () => {
  const db = await createTestDatabase();
  try {
    expect(localServices('cluster-start', 'cluster').status).toBe(0);
    const nodes = parseEnvFile(readFileSync(path.join(root, '.data/cluster/env'), 'utf8')).REDIS_CLUSTER_NODES!;
    const env = {
      ...(await serviceAddrs()),
      POSTGRES_URL: db.url,
      // Nothing answers there, as at the default localhost:6379 of a machine without a Redis.
      REDIS_ADDR: `127.0.0.1:${await freePort()}`,
      REDIS_CLUSTER_NODES: nodes,
        AUTH_MODE: 'off',
    };
    const start = startSession(env);
    await until('the banner', () => /is running/.test(start.output()) || start.hasExited(), 180_000);
    start.proc.kill('SIGTERM');
    await start.exited;
    expect(start.output()).toContain(`and Redis at ${nodes}\n`);
    expect(start.output()).toMatch(new RegExp(`Redis {11}${nodes}\\n`));
    expect(start.output()).not.toContain("using the private 'dev' services");
  } finally {
    localServices('stop', 'cluster');
    await db.drop();
  }
}, 300_000);
