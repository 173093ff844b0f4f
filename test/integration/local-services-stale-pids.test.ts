/**
 * scripts/local-services.sh with pid files left behind (a crash, a container restart) whose pids
 * have since been reused by another profile's Postgres and Redis (or Redis Cluster nodes): `start`
 * (`cluster-start`) must take them for stale, start its own servers, and leave the other profile's
 * alone.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseEnvFile, REPO_ROOT } from '../support/global-setup';

const script = path.join(REPO_ROOT, 'scripts/local-services.sh');
const victim = `stale-victim-${process.pid}`;
const stale = `stale-pids-${process.pid}`;
const dir = (profile: string) => path.join(REPO_ROOT, '.data', profile);
const env = (profile: string) => parseEnvFile(readFileSync(path.join(dir(profile), 'env'), 'utf8'));

function run(...args: string[]): { status: number | null; output: string } {
  const r = spawnSync('bash', [script, ...args], { encoding: 'utf8', timeout: 180_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

afterAll(() => {
  for (const profile of [stale, victim]) {
    run('stop', profile);
    rmSync(dir(profile), { recursive: true, force: true });
  }
});

test("start takes pid files naming another profile's servers for stale and stops neither of those", () => {
  // Its servers stopped, its files kept: `stop` would also remove a throwaway profile's Postgres
  // files when they live outside the clone (the root fallback under /var/tmp, as in a mktemp clone).
  for (const args of [['start', victim], ['start', stale], ['stop-postgres', stale], ['stop-redis', stale]]) expect(run(...args)).toMatchObject({ status: 0 });
  const other = env(victim);
  const mine = env(stale);

  // What a crash leaves: postmaster.pid and redis.pid of the servers that ran, their pids now
  // another profile's running Postgres and Redis.
  const postmasterPid = readFileSync(path.join(other.PG_DATA!, 'postmaster.pid'), 'utf8').split('\n');
  postmasterPid[0] = other.PG_PID!;
  postmasterPid[1] = mine.PG_DATA!;
  postmasterPid[3] = mine.PG_PORT!;
  writeFileSync(path.join(mine.PG_DATA!, 'postmaster.pid'), postmasterPid.join('\n'), { mode: 0o644 });
  writeFileSync(path.join(dir(stale), 'redis/redis.pid'), `${other.REDIS_PID}\n`);

  const started = run('start', stale);
  expect(started).toMatchObject({ status: 0 });
  expect(started.output).not.toMatch(/stopping (Postgres|Redis)/);
  // Both profiles run, each on its own servers.
  expect({ victim: run('status', victim).status, stale: run('status', stale).status }).toEqual({ victim: 0, stale: 0 });
  expect(env(victim)).toMatchObject({ PG_PID: other.PG_PID, REDIS_PID: other.REDIS_PID });
  expect(env(stale).PG_PID).not.toBe(other.PG_PID);
  expect(env(stale).REDIS_PID).not.toBe(other.REDIS_PID);
}, 300_000);

test("cluster-start takes node pid files naming another profile's cluster nodes for stale and stops none of those", () => {
  for (const args of [['cluster-start', victim], ['cluster-start', stale], ['cluster-stop', stale]]) expect(run(...args)).toMatchObject({ status: 0 });
  const otherPids = env(victim).REDIS_CLUSTER_PIDS!.split(',');
  // What a crash leaves: each node's redis.pid, its pid now one of the other cluster's nodes.
  otherPids.forEach((pid, i) => writeFileSync(path.join(dir(stale), `cluster/node${i}/redis.pid`), `${pid}\n`));

  const started = run('cluster-start', stale);
  expect(started).toMatchObject({ status: 0 });
  expect(started.output).not.toMatch(/stopping cluster node/);
  expect({ victim: run('cluster-status', victim).status, stale: run('cluster-status', stale).status }).toEqual({ victim: 0, stale: 0 });
  expect(env(victim).REDIS_CLUSTER_PIDS).toBe(otherPids.join(','));
}, 300_000);
