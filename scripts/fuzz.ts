/**
 * `npm run fuzz -- --requests 1000000 [--seed N] [--concurrency C] [--only I] [--dist DIR] [--api-env K=V,…]`:
 * the API fuzzer of test/fuzz/api-fuzz.test.ts (keys and tenants included), run longer, against
 * private Postgres and Redis (profile `fuzz`, scripts/local-services.sh) and a database of its own.
 * Prints a summary; exits 1 on a violation. --only sends one request of the run again; --dist
 * fuzzes another build (default dist/); --api-env gives the api more settings (with
 * TENANT_RATE_LIMIT or TENANT_MAX_UNFINISHED a POST may also get 429).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { createRedis } from '../services/core/db/redis';
import { migrate } from '../services/migrator/migrate';
import { parseEnvFile } from '../test/support/global-setup';
import { killAllChildren } from '../test/support/processes';
import { RequestSource } from '../test/fuzz/generate';
import { describeRequest } from '../test/fuzz/model';
import { formatReport, runFuzz } from '../test/fuzz/run';

const ROOT = path.resolve(__dirname, '..');
const PROFILE = 'fuzz';

function flags(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i]!);
    if (!m) throw new Error(`unexpected argument ${argv[i]}; usage: npm run fuzz -- --requests N [--seed N] [--concurrency C] [--only I] [--drain-timeout S] [--dist DIR] [--api-env K=V,…]`);
    out[m[1]!] = m[2] ?? argv[++i] ?? '';
  }
  return out;
}

function integer(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const n = Number(value.replace(/_/g, ''));
  if (!Number.isInteger(n)) throw new Error(`--${name} must be an integer, got ${value}`);
  return n;
}

function apiEnv(value: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (value ?? '').split(',').filter(Boolean)) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(pair);
    if (!m) throw new Error(`--api-env takes NAME=VALUE pairs separated by commas, got ${JSON.stringify(pair)}`);
    out[m[1]!] = m[2]!;
  }
  return out;
}

function services(command: 'start' | 'stop' | 'status'): boolean {
  try {
    execFileSync('bash', [path.join(ROOT, 'scripts/local-services.sh'), command, PROFILE], { cwd: ROOT, stdio: ['ignore', 'ignore', command === 'status' ? 'ignore' : 'inherit'] });
    return true;
  } catch (err) {
    if (command === 'status') return false;
    throw err;
  }
}

async function main(): Promise<number> {
  const f = flags(process.argv.slice(2));
  const seed = integer(f.seed ?? process.env.FUZZ_SEED, Math.floor(Math.random() * 2 ** 31), 'seed');
  const only = f.only === undefined ? undefined : integer(f.only, 0, 'only');
  const requests = integer(f.requests, 100_000, 'requests');
  const concurrency = integer(f.concurrency, 32, 'concurrency');
  const drainTimeoutMs = integer(f['drain-timeout'], Math.max(60, Math.ceil(requests / 2000)), 'drain-timeout') * 1000;
  const extraEnv = apiEnv(f['api-env']);

  const wasRunning = services('status');
  services('start');
  const env = parseEnvFile(readFileSync(path.join(ROOT, '.data', PROFILE, 'env'), 'utf8'));
  const adminUrl = env.PG_ADMIN_URL!;
  const redisAddr = env.REDIS_ADDR!;
  const name = `fuzz_${process.pid}_${randomBytes(4).toString('hex')}`;
  const dbUrl = new URL(adminUrl);
  dbUrl.pathname = `/${name}`;
  const prefix = `fuzz${randomBytes(4).toString('hex')}`;
  const admin = new Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
    await migrate({ databaseUrl: dbUrl.toString() });
    console.log(`fuzzing: seed ${seed}, ${only === undefined ? `${requests} requests` : `request ${only} only`}, ${concurrency} in flight, database ${name}, Redis prefix ${prefix}`);
    // Alone, {seen} has no earlier 201 to name: an unknown id is asked for instead.
    if (only !== undefined) console.log(`request: ${describeRequest(new RequestSource(seed).at(only), only)}`);
    const report = await runFuzz({ seed, requests, concurrency, only, dbUrl: dbUrl.toString(), redisAddr, redisPrefix: prefix, drainTimeoutMs, distDir: f.dist, apiEnv: extraEnv, log: (l) => console.log(l) });
    console.log(formatReport(report, { byKind: true }));
    return report.violations.length > 0 ? 1 : 0;
  } finally {
    await killAllChildren();
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.end();
    const redis = createRedis({ addr: redisAddr, name: 'fuzz-cleanup', offlineQueue: true });
    const keys = await redis.keys(`{${prefix}}:*`);
    if (keys.length) await redis.del(...keys);
    await redis.quit();
    // Services someone else started (or kept running) stay up.
    if (!wasRunning && !process.env.KEEP_FUZZ_SERVICES) services('stop');
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(2);
  },
);
