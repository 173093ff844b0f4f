/**
 * A real pool whose writes of one named statement are held at a gate until the test opens it,
 * and counted (how many ran, how many at once at most, how many rows each carried). Everything
 * else goes straight to Postgres, and so do the statement's calls `holds` declines.
 */
import type { Pool, QueryConfig } from 'pg';

export interface GatedPool {
  pool: Pool;
  stats: { running: number; maxRunning: number; sizes: number[] };
  release(): void;
}

export function gatedPool(real: Pool, statement: string, holds: (values: unknown[]) => boolean = () => true): GatedPool {
  let open: () => void = () => undefined;
  let gate = new Promise<void>((r) => (open = r));
  const stats = { running: 0, maxRunning: 0, sizes: [] as number[] };
  const query = async (config: QueryConfig | string, values?: unknown[]) => {
    if (typeof config === 'string' || config.name !== statement || !holds(config.values ?? [])) return real.query(config as never, values as never);
    stats.sizes.push(rows(config.values![0]));
    stats.running++;
    stats.maxRunning = Math.max(stats.maxRunning, stats.running);
    try {
      await gate;
      return await real.query(config);
    } finally {
      stats.running--;
    }
  };
  const pool = new Proxy(real, { get: (target, prop, receiver) => (prop === 'query' ? query : Reflect.get(target, prop, receiver)) });
  return {
    pool,
    stats,
    release() {
      open();
      gate = Promise.resolve();
    },
  };
}

/** Rows a batch statement carries: its first parameter is an array of ids, or its literal (see pg-arrays). */
function rows(first: unknown): number {
  if (Array.isArray(first)) return first.length;
  const literal = String(first);
  return literal === '{}' ? 0 : literal.split(',').length;
}
