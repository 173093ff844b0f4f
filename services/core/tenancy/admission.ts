/**
 * Per-tenant admission in Redis: a token bucket and the unfinished-task cap, one script per
 * request (lua/admit.lua), so every API replica shares them.
 *
 * Unfinished tasks are counted as Postgres's count at the last true-up plus the tasks admitted
 * since. A true-up reads the admitted counters first, then counts in Postgres, then stores both:
 * a task admitted between the two reads is counted twice until the next true-up (the cap errs on
 * the side of refusing), and one admitted before but not yet committed when Postgres counted is
 * missed (at most the requests in flight at that moment). Finished tasks free their place at the
 * next true-up (UNFINISHED_TRUE_UP_MS).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type Redis from 'ioredis';
import type { Cluster } from 'ioredis';
import { partitionOf, partitionTags } from '../queue/partitions';
import type { TenantLimits } from './limits';

export type Admission =
  | { admitted: true; tokensLeft: number; msUntilFull: number }
  | { admitted: false; reason: 'rate'; tokens: number; retryAfterMs: number }
  | { admitted: false; reason: 'burst'; burst: number }
  | { admitted: false; reason: 'quota'; unfinished: number };

type Fn = (...args: (string | number)[]) => Promise<unknown>;

function script(name: string): string {
  for (const dir of [path.join(__dirname, 'lua'), path.resolve(__dirname, '../../../../services/core/tenancy/lua')]) {
    try {
      return readFileSync(path.join(dir, `${name}.lua`), 'utf8');
    } catch {
      /* compiled code runs from dist/: the scripts stay beside the sources */
    }
  }
  throw new Error(`lua script ${name} not found`);
}

interface AdmissionKeys {
  buckets: string;
  admitted: string;
  base: string;
  admittedAtBase: string;
}

/** A tenant's counters live in its queue partition (queue/partitions.ts), so one script touches one slot. */
export class TenantAdmission {
  private readonly parts: AdmissionKeys[];
  private readonly admitFn: Fn;
  private readonly trueUpFn: Fn;

  constructor(
    private readonly redis: Redis | Cluster,
    prefix: string,
    partitions = 1,
  ) {
    this.parts = partitionTags(prefix, partitions).map((tag) => ({ buckets: `${tag}:tenant:bucket`, admitted: `${tag}:tenant:admitted`, base: `${tag}:tenant:unfinished`, admittedAtBase: `${tag}:tenant:admitted_at_count` }));
    for (const name of ['admit', 'true-up']) {
      const cmd = `ts_tenant_${name.replace('-', '_')}`;
      if (!(cmd in redis)) redis.defineCommand(cmd, { lua: script(name) });
    }
    const r = redis as unknown as Record<string, Fn>;
    this.admitFn = r.ts_tenant_admit!.bind(redis);
    this.trueUpFn = r.ts_tenant_true_up!.bind(redis);
  }

  private keysOf(tenant: string): AdmissionKeys {
    return this.parts[partitionOf(tenant, this.parts.length)]!;
  }

  async admit(tenant: string, n: number, l: TenantLimits): Promise<Admission> {
    const k = this.keysOf(tenant);
    const [ok, reason, a, b] = (await this.admitFn(4, k.buckets, k.admitted, k.base, k.admittedAtBase, tenant, n, l.rate, l.burst, l.maxUnfinished)) as [number, string, number, number];
    if (ok === 1) return { admitted: true, tokensLeft: a, msUntilFull: b };
    if (reason === 'rate') return { admitted: false, reason, tokens: a, retryAfterMs: b };
    if (reason === 'burst') return { admitted: false, reason, burst: a };
    return { admitted: false, reason: 'quota', unfinished: a };
  }

  /** Gives back places under the unfinished cap for admitted tasks that were not created (replays, conflicts, errors). */
  async release(tenant: string, n: number): Promise<void> {
    if (n > 0) await this.redis.hincrby(this.keysOf(tenant).admitted, tenant, -n);
  }

  /** The admitted counters now (read before Postgres counts; see the class comment). */
  async admittedCounters(): Promise<Map<string, number>> {
    const all = await Promise.all(this.parts.map((k) => this.redis.hgetall(k.admitted)));
    return new Map(all.flatMap((one) => Object.entries(one).map(([t, v]) => [t, Number(v)] as [string, number])));
  }

  async trueUp(counts: Map<string, number>, admittedBefore: Map<string, number>): Promise<void> {
    // Tenants with a count stored but none now (their unfinished tasks all ended, and Postgres's
    // count leaves out tenants with none) are set to 0 too: else their last count stays forever.
    const stored = await Promise.all(this.parts.map((k) => this.redis.hgetall(k.base)));
    const tenants = new Set([...counts.keys(), ...admittedBefore.keys(), ...stored.flatMap((b) => Object.keys(b))]);
    const args = this.parts.map((): (string | number)[] => []);
    for (const t of tenants) args[partitionOf(t, this.parts.length)]!.push(t, counts.get(t) ?? 0, admittedBefore.get(t) ?? 0);
    for (const [p, part] of args.entries()) {
      const k = this.parts[p]!;
      for (let i = 0; i < part.length; i += 3000) await this.trueUpFn(2, k.base, k.admittedAtBase, ...part.slice(i, i + 3000));
    }
  }
}
