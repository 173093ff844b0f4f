/**
 * A real pool whose first `pool.query` matching a pattern is held at a gate, before it runs or after
 * (its answer kept back), until the test opens it: a race test lines another writer up at exactly
 * that point of a multi-statement call. Everything else goes straight to Postgres.
 */
import type { Pool, QueryConfig } from 'pg';

export interface StatementGate {
  pool: Pool;
  /** Settles once the matching statement reached the gate (after it ran, for `when: 'after'`). */
  reached: Promise<void>;
  open(): void;
}

export function statementGate(real: Pool, pattern: RegExp, when: 'before' | 'after' = 'before'): StatementGate {
  let arrived!: () => void;
  const reached = new Promise<void>((r) => (arrived = r));
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  let held = false;
  const query = async (config: QueryConfig | string, values?: unknown[]) => {
    const text = typeof config === 'string' ? config : config.text;
    if (held || !pattern.test(text)) return real.query(config as never, values as never);
    held = true;
    if (when === 'before') {
      arrived();
      await gate;
      return real.query(config as never, values as never);
    }
    const answer = await real.query(config as never, values as never);
    arrived();
    await gate;
    return answer;
  };
  const pool = new Proxy(real, { get: (target, prop, receiver) => (prop === 'query' ? query : Reflect.get(target, prop, receiver)) });
  return { pool, reached, open };
}
