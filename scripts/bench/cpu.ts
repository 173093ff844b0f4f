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
