/** Per-master load of a Redis Cluster, read before and after a benchmark run (scenario 8). */
import Redis from 'ioredis';

export interface MasterLoad {
  addr: string;
  keys: number;
  /** Script calls (EVAL and EVALSHA) and the microseconds Redis spent in them. */
  scriptCalls: number;
  scriptUsec: number;
  /** used_cpu_user + used_cpu_sys, seconds. */
  cpuSeconds: number;
}

function field(info: string, name: string): number {
  return Number(new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1] ?? 0);
}

function commandStat(info: string, cmd: string): { calls: number; usec: number } {
  const m = new RegExp(`^cmdstat_${cmd}:calls=(\\d+),usec=(\\d+)`, 'm').exec(info);
  return { calls: Number(m?.[1] ?? 0), usec: Number(m?.[2] ?? 0) };
}

/** The load of every node that is a master now, in host:port order. */
export async function masterLoads(nodes: string[]): Promise<MasterLoad[]> {
  const out: MasterLoad[] = [];
  for (const addr of nodes) {
    const [host, port] = addr.split(':');
    const node = new Redis({ host, port: Number(port), lazyConnect: false, maxRetriesPerRequest: 1 });
    try {
      const info = await node.info('all');
      if (!/^role:master/m.test(info)) continue;
      const evalsha = commandStat(info, 'evalsha');
      const evalCmd = commandStat(info, 'eval');
      out.push({
        addr,
        keys: await node.dbsize(),
        scriptCalls: evalsha.calls + evalCmd.calls,
        scriptUsec: evalsha.usec + evalCmd.usec,
        cpuSeconds: field(info, 'used_cpu_user') + field(info, 'used_cpu_sys'),
      });
    } finally {
      node.disconnect();
    }
  }
  return out.sort((a, b) => a.addr.localeCompare(b.addr));
}

/** Empties every master (the benchmark's private cluster) and zeroes its command statistics. */
export async function resetCluster(nodes: string[]): Promise<void> {
  for (const addr of nodes) {
    const [host, port] = addr.split(':');
    const node = new Redis({ host, port: Number(port), lazyConnect: false, maxRetriesPerRequest: 1 });
    try {
      if (/^role:master/m.test(await node.info('replication'))) await node.flushall();
      await node.config('RESETSTAT');
    } finally {
      node.disconnect();
    }
  }
}

/** Each master's share (0–1) of what the run added, in masterLoads' order; the node set must be the same. */
export function shares(before: MasterLoad[], after: MasterLoad[], pick: (m: MasterLoad) => number): number[] {
  const delta = after.map((a) => pick(a) - pick(before.find((b) => b.addr === a.addr) ?? { ...a, keys: 0, scriptCalls: 0, scriptUsec: 0, cpuSeconds: 0 }));
  const total = delta.reduce((x, y) => x + y, 0);
  return delta.map((d) => (total > 0 ? d / total : 0));
}
