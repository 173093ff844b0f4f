/**
 * A private Redis Cluster for tests and benchmarks: 3 masters + 3 replicas, run by
 * `scripts/local-services.sh cluster-*` under a profile of its own (see scripts/redis-cluster.sh).
 * The calls are synchronous, like fault-cluster.ts: the script returns once the cluster is healthy.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Cluster } from 'ioredis';
import { createRedisCluster, type RedisEndpoint } from '../../services/core/db/redis';
import { parseEnvFile, REPO_ROOT } from './global-setup';

const SCRIPT = path.join(REPO_ROOT, 'scripts/local-services.sh');

export interface FailoverResult {
  /** Index (0-5) and host:port of the master that was failed over. */
  oldMasterNode: number;
  oldMaster: string;
  /** Its replica, now the master of its slots. */
  newMasterNode: number;
  newMaster: string;
}

/** The process is running (a zombie, dead but not yet reaped, counts as gone). */
export function processRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export class LocalRedisCluster {
  /** host:port of nodes 0-5 (masters and replicas; the roles change with failovers). */
  nodes: string[] = [];
  /** Process ids of nodes 0-5; null for a node that is down. */
  pids: (number | null)[] = [];

  constructor(readonly profile = 'cluster') {
    if (!/^[A-Za-z0-9_-]+$/.test(profile)) throw new Error(`bad profile name ${profile}`);
  }

  /** Starts (or reuses) the cluster, bringing back any node that is down; waits until it is healthy. */
  start(): this {
    this.run('cluster-start');
    this.readEnv();
    return this;
  }

  /** Stops every node by process id (the data dir stays). */
  stop(): void {
    this.run('cluster-stop');
  }

  /** True if all six nodes are up and the cluster is healthy (every replica linked). */
  healthy(): boolean {
    try {
      this.run('cluster-status');
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Fails over the master serving the `masterIndex`-th slot range (in slot order): `kill` SIGKILLs
   * it and waits until its replica has been elected and the cluster is ok again; `manual` runs
   * CLUSTER FAILOVER on the replica and waits until the roles have swapped. `start()` brings a
   * killed node back, as a replica of its successor.
   */
  failover(masterIndex: 0 | 1 | 2, mode: 'kill' | 'manual' = 'kill'): FailoverResult {
    const out = parseEnvFile(this.run('cluster-failover', String(masterIndex), mode));
    this.readEnv();
    return {
      oldMasterNode: Number(out.OLD_MASTER_NODE),
      oldMaster: out.OLD_MASTER!,
      newMasterNode: Number(out.NEW_MASTER_NODE),
      newMaster: out.NEW_MASTER!,
    };
  }

  /** The profile's env file (REDIS_CLUSTER_NODES, …), as parsed lines. */
  env(): Record<string, string> {
    return parseEnvFile(readFileSync(path.join(REPO_ROOT, '.data', this.profile, 'env'), 'utf8'));
  }

  /** A cluster client made by the services' own factory (offline queue on, like the worker's). */
  client(name = 'test-cluster', endpoint: Partial<RedisEndpoint> = {}): Cluster {
    return createRedisCluster({ addr: '', ...endpoint, clusterNodes: this.nodes, name, offlineQueue: true });
  }

  private readEnv(): void {
    const env = this.env();
    this.nodes = (env.REDIS_CLUSTER_NODES ?? '').split(',').filter(Boolean);
    this.pids = (env.REDIS_CLUSTER_PIDS ?? '').split(',').map((p) => (p === '' ? null : Number(p)));
    if (this.nodes.length !== 6) throw new Error(`.data/${this.profile}/env lists ${this.nodes.length} cluster nodes, not 6`);
  }

  /** Runs the script; returns its stdout, or throws with the end of its diagnostics. */
  private run(...args: string[]): string {
    const [command, ...rest] = args;
    try {
      return execFileSync('bash', [SCRIPT, command!, this.profile, ...rest], { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
    } catch (err) {
      const stderr = String((err as { stderr?: string }).stderr ?? '').trim().split('\n').slice(-15).join('\n');
      throw new Error(`scripts/local-services.sh ${[command, this.profile, ...rest].join(' ')} failed: ${(err as Error).message}\n${stderr}`);
    }
  }
}
