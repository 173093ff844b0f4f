/**
 * Per-tenant admission in Redis: a token bucket and the unfinished-task cap, one script per
 * request (lua/admit.lua), so every API replica shares them.
 *
 * Unfinished tasks are counted as Postgres's count at the last true-up plus the tasks admitted
 * since. A true-up reads the admitted counters and the admissions in flight (admitted, not yet
 * settled by their request) in one step, then counts in Postgres, then stores the count plus those
 * in flight as the base. An admission in flight at the read is thus never missed, whether its task
 * commits after the count (it is in the base) or it gives its place back later (the release
 * cancels its share of the base). One that commits between the read and the count, like one
 * admitted between them, is counted twice until the next true-up (the cap errs on the side of
 * refusing). An admission stays in flight until settled, at most IN_FLIGHT_TTL_MS (an API that
 * stopped before settling holds its places that long). Finished tasks free their place at the
 * next true-up (UNFINISHED_TRUE_UP_MS).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type Redis from 'ioredis';
import type { Cluster } from 'ioredis';
import { DependencyTimeoutError } from '../process/with-timeout';
import { partitionOf, partitionTags } from '../queue/partitions';
import type { TenantLimits } from './limits';

export type Admission =
  /** `reservation`: the admission in flight under a cap, for settle (null without a cap). */
  | { admitted: true; tokensLeft: number; msUntilFull: number; reservation: string | null }
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
  inFlight: string;
}

/** How long an admission counts as in flight without being settled (its request outlived this, or its API stopped). */
export const IN_FLIGHT_TTL_MS = 60_000;

/** The admitted counters and the places in flight, per tenant, read together. */
export interface AdmissionSnapshot {
  admitted: Map<string, number>;
  inFlight: Map<string, number>;
  /** The partitions read: only their tenants may be trued up (see trueUp). */
  partitions: Set<number>;
}

/** A tenant's counters live in its queue partition (queue/partitions.ts), so one script touches one slot. */
export class TenantAdmission {
  private readonly parts: AdmissionKeys[];
  private readonly admitFn: Fn;
  private readonly trueUpFn: Fn;
  private readonly inFlightFn: Fn;

  constructor(
    private readonly redis: Redis | Cluster,
    prefix: string,
    partitions = 1,
    /** With several partitions, how long the true-up waits for one (a stalled master must not hold the others'). */
    private readonly waitMs = 2000,
  ) {
    this.parts = partitionTags(prefix, partitions).map((tag) => ({ buckets: `${tag}:tenant:bucket`, admitted: `${tag}:tenant:admitted`, base: `${tag}:tenant:unfinished`, admittedAtBase: `${tag}:tenant:admitted_at_count`, inFlight: `${tag}:tenant:in_flight` }));
    for (const name of ['admit', 'true-up', 'in-flight']) {
      const cmd = `ts_tenant_${name.replace('-', '_')}`;
      if (!(cmd in redis)) redis.defineCommand(cmd, { lua: script(name) });
    }
    const r = redis as unknown as Record<string, Fn>;
    this.admitFn = r.ts_tenant_admit!.bind(redis);
    this.trueUpFn = r.ts_tenant_true_up!.bind(redis);
    this.inFlightFn = r.ts_tenant_in_flight!.bind(redis);
  }

  private keysOf(tenant: string): AdmissionKeys {
    return this.parts[partitionOf(tenant, this.parts.length)]!;
  }

  /** `indivisible`: n tasks that cannot be sent apart (see admit.lua): past the burst, admitted on a full bucket. */
  async admit(tenant: string, n: number, l: TenantLimits, indivisible = false): Promise<Admission> {
    const k = this.keysOf(tenant);
    const id = randomBytes(9).toString('base64url');
    const [ok, reason, a, b] = (await this.admitFn(5, k.buckets, k.admitted, k.base, k.admittedAtBase, k.inFlight, tenant, n, l.rate, l.burst, l.maxUnfinished, id, IN_FLIGHT_TTL_MS, indivisible ? '1' : '0')) as [number, string, number, number];
    if (ok === 1) return { admitted: true, tokensLeft: a, msUntilFull: b, reservation: l.maxUnfinished > 0 ? `${tenant} ${n} ${id}` : null };
    if (reason === 'rate') return { admitted: false, reason, tokens: a, retryAfterMs: b };
    if (reason === 'burst') return { admitted: false, reason, burst: a };
    return { admitted: false, reason: 'quota', unfinished: a };
  }

  /**
   * Settles an admission under a cap once its request is done: no longer in flight, and the places
   * of the `unused` admitted tasks that were not created (replays, conflicts, errors) given back.
   */
  async settle(tenant: string, reservation: string, unused: number): Promise<void> {
    const k = this.keysOf(tenant);
    const tx = this.redis.multi().zrem(k.inFlight, reservation);
    if (unused > 0) tx.hincrby(k.admitted, tenant, -unused);
    const res = await tx.exec();
    const failed = res?.find(([err]) => err);
    if (failed) throw failed[0];
  }

  /**
   * The admitted counters and the places in flight now (read before Postgres counts; see the class
   * comment), of the partitions that answer within waitMs; throws when none does.
   */
  async snapshot(): Promise<AdmissionSnapshot> {
    const all = await Promise.allSettled(this.parts.map((k) => this.within(this.inFlightFn(2, k.admitted, k.inFlight) as Promise<[string[], string[]]>)));
    const partitions = new Set(all.flatMap((r, p) => (r.status === 'fulfilled' ? [p] : [])));
    if (partitions.size === 0) throw (all[0] as PromiseRejectedResult).reason;
    const admitted = new Map<string, number>();
    const inFlight = new Map<string, number>();
    for (const r of all) {
      if (r.status !== 'fulfilled') continue;
      const [flat, members] = r.value;
      for (let i = 0; i < flat.length; i += 2) admitted.set(flat[i]!, Number(flat[i + 1]));
      for (const m of members) {
        const [tenant, n] = m.split(' ');
        inFlight.set(tenant!, (inFlight.get(tenant!) ?? 0) + Number(n));
      }
    }
    return { admitted, inFlight, partitions };
  }

  /**
   * Sets the bases of the tenants of `partitions` (default all; a snapshot's: a partition not read
   * has no admitted counters to go with the count). Each partition goes on its own, waited for at
   * most waitMs: one failing or stalled keeps its bases, and throws once the others are done.
   */
  async trueUp(counts: Map<string, number>, admittedBefore: Map<string, number>, partitions?: Set<number>): Promise<void> {
    const done = await Promise.allSettled(
      this.parts.map(async (k, p) => {
        if (partitions && !partitions.has(p)) return;
        // Tenants with a count stored but none now (their unfinished tasks all ended, and Postgres's
        // count leaves out tenants with none) are set to 0 too: else their last count stays forever.
        const stored = await this.within(this.redis.hgetall(k.base));
        const mine = (t: string) => partitionOf(t, this.parts.length) === p;
        const tenants = new Set([...[...counts.keys(), ...admittedBefore.keys()].filter(mine), ...Object.keys(stored)]);
        const part: (string | number)[] = [];
        for (const t of tenants) part.push(t, counts.get(t) ?? 0, admittedBefore.get(t) ?? 0);
        for (let i = 0; i < part.length; i += 3000) await this.within(this.trueUpFn(2, k.base, k.admittedAtBase, ...part.slice(i, i + 3000)));
      }),
    );
    const failed = done.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** One partition's call, waited for at most waitMs when there are several (its late answer dropped). */
  private within<R>(call: Promise<R>): Promise<R> {
    if (this.parts.length === 1) return call;
    return new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => reject(new DependencyTimeoutError(`a Redis partition did not answer the unfinished true-up within ${this.waitMs} ms`)), this.waitMs);
      call.then(
        (r) => (clearTimeout(timer), resolve(r)),
        (err: unknown) => (clearTimeout(timer), reject(err)),
      );
    });
  }
}
