/** The private Postgres and Redis of a profile (scripts/local-services.sh), for scripts that run outside jest. */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..');

/** Starts (or reuses) the profile's instances and returns its env file (PG_ADMIN_URL, REDIS_ADDR, PG_PID, …). */
export function startLocalServices(profile: string): Record<string, string> {
  execFileSync('bash', [path.join(ROOT, 'scripts/local-services.sh'), 'start', profile], { stdio: ['ignore', 'ignore', 'inherit'] });
  return profileEnv(profile);
}

/** Starts (or reuses) the profile's Redis Cluster (3 masters, 3 replicas); returns its env file (REDIS_CLUSTER_NODES, REDIS_CLUSTER_PIDS). */
export function startLocalCluster(profile: string): Record<string, string> {
  execFileSync('bash', [path.join(ROOT, 'scripts/local-services.sh'), 'cluster-start', profile], { stdio: ['ignore', 'ignore', 'inherit'] });
  return profileEnv(profile);
}

function profileEnv(profile: string): Record<string, string> {
  return Object.fromEntries(
    readFileSync(path.join(ROOT, `.data/${profile}/env`), 'utf8')
      .split('\n')
      .map((l) => /^([A-Z_]+)=(.*)$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1], m[2]]),
  );
}

/** Stops the profile's instances by process id (their data stays). */
export function stopLocalServices(profile: string): void {
  execFileSync('bash', [path.join(ROOT, 'scripts/local-services.sh'), 'stop', profile], { stdio: ['ignore', 'ignore', 'inherit'] });
}

/** The bench profile's services (and its cluster's) stop with a run unless BENCH_KEEP_SERVICES=1 keeps them for a series of runs. */
export function stopBenchServices(): void {
  if (process.env.BENCH_KEEP_SERVICES === '1') return;
  stopLocalServices('bench');
  if (existsSync(path.join(ROOT, `.data/${BENCH_CLUSTER}/env`))) {
    execFileSync('bash', [path.join(ROOT, 'scripts/local-services.sh'), 'cluster-stop', BENCH_CLUSTER], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
}

/** The benchmarks' Redis Cluster, a profile of its own beside `bench` (scenario 8). */
export const BENCH_CLUSTER = 'bench-cluster';
