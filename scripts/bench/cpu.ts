/**
 * CPU seconds (user + system, from /proc) that groups of processes spent between two snapshots:
 * on a machine where every component shares the same cores, this says where a scenario's time went.
 */
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** utime + stime (ticks) and parent pid of a live process; null once it is gone. */
function procStat(pid: number): { ticks: number; ppid: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state ppid … utime(12th) stime(13th).
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { ticks: Number(f[11]) + Number(f[12]), ppid: Number(f[1]) };
  } catch {
    return null;
  }
}

/** A process and every process whose parent it is (Postgres backends are children of the postmaster). */
export function withChildren(pid: number): number[] {
  const kids = readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((p) => procStat(p)?.ppid === pid);
  return [pid, ...kids];
}

export type CpuGroups = Record<string, () => number[]>;

/** Takes a snapshot now; calling the result gives each group's CPU seconds since. */
export function cpuSince(groups: CpuGroups): () => Record<string, number> {
  const ticks = (pids: number[]) => new Map(pids.map((p) => [p, procStat(p)?.ticks ?? 0]));
  const before = Object.fromEntries(Object.entries(groups).map(([name, pids]) => [name, ticks(pids())]));
  const self = process.cpuUsage();
  return () => {
    const out: Record<string, number> = {};
    for (const [name, pids] of Object.entries(groups)) {
      let sum = 0;
      // A process that started after the snapshot counts from zero.
      for (const [pid, now] of ticks(pids())) sum += now - (before[name]!.get(pid) ?? 0);
      out[name] = sum / TICKS_PER_SECOND;
    }
    const d = process.cpuUsage(self);
    out.driver = (d.user + d.system) / 1e6;
    return out;
  };
}

/** The machine-wide CPU tick counters of /proc/stat's `cpu` line (user … steal). */
function machineTicks(): number[] {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  return line.trim().split(/\s+/).slice(1, 9).map(Number);
}

/**
 * Takes a snapshot now; calling the result gives the share (%) of the machine's CPU time since then
 * that the hypervisor gave to other guests (steal). On a shared VM it varies from minute to minute,
 * and the same code measures slower while it is high: it is printed beside the figures.
 */
export function stealSince(): () => number {
  const before = machineTicks();
  return () => {
    const d = machineTicks().map((v, i) => v - before[i]!);
    const total = d.reduce((a, b) => a + b, 0);
    return total > 0 ? (100 * d[7]!) / total : 0;
  };
}

/**
 * Milliseconds a fixed single-threaded workload (JSON and string work, like the services' own)
 * takes now, best of three: how fast this machine is at the moment. On a shared VM it drifts by
 * more than steal accounts for (neighbours share caches and memory bandwidth too), so it is
 * printed beside the figures as their yardstick.
 */
export function machineSpeedMs(): number {
  const sample = { id: '0190f0a2-7c3e-7d41-9b6a-2f1e0c9d8b7a', type: 'noop', priority: 'default', payload: { n: 1, s: 'x'.repeat(40) }, attempts: 0 };
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const t0 = performance.now();
    let sink = 0;
    for (let i = 0; i < 20_000; i++) sink += (JSON.parse(JSON.stringify({ ...sample, attempts: i })) as { attempts: number }).attempts;
    best = Math.min(best, performance.now() - t0);
    if (sink < 0) throw new Error('unreachable');
  }
  return best;
}
