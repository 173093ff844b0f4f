/**
 * Each image's contents, rebuilt without Docker: the runtime stage's COPYs are replayed into a
 * temp dir (the deps stage's `npm ci --omit=dev --ignore-scripts` really runs there, from the
 * lock file), and each target's ENTRYPOINT (without tini) and CMD start from that dir against the
 * test Postgres and Redis. A runtime dependency declared as a devDependency, or a file the
 * Dockerfile forgets to copy, fails here. The api and the worker must log "listening" with a heap
 * limit derived from a (fake) cgroup memory limit and exit 0 on SIGTERM; the migrator must migrate
 * a fresh database and exit 0; the init container's script must run there too.
 */
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { ENVIRONMENTS } from '../../cdk8s/settings';
import { readSources, REPO_ROOT, schemaVersion } from '../../cdk8s/sources';
import { WORKER_NODE_FLAGS } from '../../services/worker/node-flags';
import { freePort } from '../support/processes';
import { createEmptyDatabase, createTestDatabase, testRedisAddr, uniqueRedisPrefix, type TestDatabase } from '../support/test-env';
import { copyArgs, last, stageChain, stages, type Stage } from './dockerfile-model';

const all = stages();
let root: string;

interface Run {
  pid: number;
  output(): string;
  exited: Promise<number | null>;
  kill(signal: NodeJS.Signals): void;
}

/** `node …` with cwd = the image dir and only the env given (plus PATH); `command` instead of node when given. */
function run(args: string[], env: Record<string, string>, cwd: string, command = process.execPath): Run {
  const child = spawn(command, args, { cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_ENV: 'production', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { pid: child.pid ?? -1, output: () => output, exited, kill: (s) => void child.kill(s) };
}

async function waitForLine(r: Run, pattern: RegExp, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void r.exited.then(() => (exited = true));
  while (!pattern.test(r.output())) {
    if (exited) throw new Error(`exited before printing ${pattern}:\n${r.output()}`);
    if (Date.now() > deadline) throw new Error(`no ${pattern} within ${timeoutMs} ms:\n${r.output()}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

/** Replays a stage's COPY and `npm ci` RUN instructions (WORKDIR /app ↦ dir). */
function replay(stage: Stage, dir: string): void {
  for (const i of stage.instructions) {
    if (i.keyword === 'COPY') {
      const { sources, dest } = copyArgs(i);
      for (const src of sources) {
        const from = i.flags.from;
        const origin =
          from === undefined ? path.join(REPO_ROOT, src)
          : from === 'build' ? path.join(REPO_ROOT, src.replace(/^\/app\/dist$/, 'dist/services').replace(/^\/app\//, ''))
          : path.join(root, `stage-${from}`, src.replace(/^\/app\//, ''));
        if (from === 'deps' && !existsSync(origin)) replay(all.get('deps')!, path.join(root, 'stage-deps'));
        // The build stage's dist holds only what npm run build makes: dist/services and dist/console.
        if (from === 'build' && src === '/app/dist') {
          for (const part of ['services', 'console']) {
            const built = path.join(REPO_ROOT, 'dist', part);
            if (!existsSync(built)) throw new Error(`COPY ${src}: ${built} does not exist (run npm run build first)`);
            cpSync(built, path.join(dir, dest, part), { recursive: true });
          }
          continue;
        }
        const target = dest.endsWith('/') ? path.join(dir, dest, path.basename(src)) : path.join(dir, dest);
        if (!existsSync(origin)) throw new Error(`COPY ${src}: ${origin} does not exist (run npm run build first)`);
        cpSync(origin, target, { recursive: true });
      }
    } else if (i.keyword === 'RUN') {
      for (const step of i.args.split('&&').map((s) => s.trim())) {
        if (!step.startsWith('npm ci')) continue;
        // --prefer-offline only reuses the npm cache; resolution still comes from the lock file.
        execFileSync('npm', [...step.split(/\s+/).slice(1), '--prefer-offline'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], timeout: 240_000 });
      }
    }
  }
}

beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'k8s-image-'));
  const runtime = stageChain(all, 'api')[0]!;
  expect(runtime.name).toBe('runtime');
  replay(runtime, path.join(root, 'image'));
}, 300_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

const imageDir = () => path.join(root, 'image');
const cmd = (target: string) => JSON.parse(last(stageChain(all, target), 'CMD')!) as string[];

/**
 * A target's ENTRYPOINT + CMD as the image runs them, minus tini (PID 1 there, not needed here):
 * paths under /app point into the image dir, and `node` is this node. The entrypoint script reads
 * the fake cgroup tree at `cgroupRoot`.
 */
function runImage(target: string, env: Record<string, string>, cgroupRoot: string): Run {
  const entrypoint = JSON.parse(last(stageChain(all, target), 'ENTRYPOINT')!) as string[];
  expect(entrypoint.slice(0, 2)).toEqual(['/usr/bin/tini', '--']);
  const [command, ...args] = [...entrypoint.slice(2), ...cmd(target)].map((a) => (a === 'node' ? process.execPath : a.replace(/^\/app\//, `${imageDir()}/`)));
  return run(args, { ...env, NODE_HEAP_CGROUP_ROOT: cgroupRoot }, imageDir(), command);
}

/** A cgroup v2 tree whose memory.max is `mib` MiB. */
function cgroupWithLimit(mib: number): string {
  const dir = path.join(root, `cgroup-${mib}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'memory.max'), `${mib * 1048576}\n`);
  return dir;
}

/** node's own flags, as the kernel shows its command line (the script exec'd node in its place). */
function nodeFlags(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a.startsWith('--'));
}

test('the image holds production dependencies only', () => {
  const modules = path.join(imageDir(), 'node_modules');
  for (const dep of ['express', 'ioredis', 'pg', 'pino', 'prom-client']) expect({ dep, present: existsSync(path.join(modules, dep)) }).toEqual({ dep, present: true });
  for (const dev of ['typescript', 'jest', 'cdk8s', 'tsx']) expect({ dev, present: existsSync(path.join(modules, dev)) }).toEqual({ dev, present: false });
});

describe('entrypoints started from the image layout', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  test.each(['api', 'worker'] as const)('%s listens with a heap of 75 %% of its memory limit, then exits 0 on SIGTERM', async (target) => {
    const [node] = cmd(target);
    expect(node).toBe('node');
    const limitMiB = ENVIRONMENTS.prod[target].resources.memoryLimitMiB;
    const env: Record<string, string> = {
      POSTGRES_URL: db.url,
      REDIS_ADDR: testRedisAddr(),
      REDIS_KEY_PREFIX: uniqueRedisPrefix(`img${target}`),
      METRICS_ADDR: `127.0.0.1:${await freePort()}`,
      SHUTDOWN_GRACE_MS: '2000',
    };
    if (target === 'api') env.API_ADDR = `127.0.0.1:${await freePort()}`;
    const r = runImage(target, env, cgroupWithLimit(limitMiB));
    try {
      await waitForLine(r, /"msg":"listening"/);
      expect(nodeFlags(r.pid)).toEqual([`--max-old-space-size=${Math.floor((limitMiB * 75) / 100)}`, ...(target === 'worker' ? WORKER_NODE_FLAGS : [])]);
      // The web console's files ship in the api image (dist/console) and are served from there.
      if (target === 'api') {
        const page = await fetch(`http://${env.API_ADDR}/ui/`);
        expect({ status: page.status, csp: page.headers.get('content-security-policy') }).toEqual({ status: 200, csp: expect.stringContaining("script-src 'self'") });
        expect((await fetch(`http://${env.API_ADDR}/ui/main.js`)).status).toBe(200);
      }
    } catch (err) {
      r.kill('SIGKILL');
      throw err;
    }
    r.kill('SIGTERM');
    expect({ code: await r.exited, output: r.output().slice(-2000) }).toEqual({ code: 0, output: expect.any(String) });
  });

  test('migrator migrates a fresh database and exits 0; the init container script then sees the schema', async () => {
    const fresh = await createEmptyDatabase();
    try {
      const script = readSources().waitForSchemaScript;
      const waitEnv = { POSTGRES_URL: fresh.url, EXPECTED_SCHEMA_VERSION: String(schemaVersion()), WAIT_INTERVAL_MS: '100' };
      // Before the migration the init container keeps waiting.
      const waiting = run(['-e', script], waitEnv, imageDir());
      await waitForLine(waiting, /"msg":"waiting for schema"/, 10_000);

      const m = runImage('migrator', { POSTGRES_URL: fresh.url }, cgroupWithLimit(ENVIRONMENTS.prod.migrator.resources.memoryLimitMiB));
      expect({ code: await m.exited, output: m.output() }).toEqual({ code: 0, output: expect.stringContaining('migrations applied') });
      const client = new Client({ connectionString: fresh.url });
      await client.connect();
      const { rows } = await client.query('SELECT max(version) AS v FROM schema_migrations');
      await client.end();
      expect(Number(rows[0].v)).toBe(schemaVersion());

      // …and lets the pod start once the schema is there.
      expect(await waiting.exited).toBe(0);
      expect(waiting.output()).toContain('"msg":"schema ready"');
    } finally {
      await fresh.drop();
    }
  });
});
