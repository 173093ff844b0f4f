/**
 * What a submission costs its tenant: the tenant's limits (its row, else TENANT_*), checked and
 * consumed in Redis before anything is written (a batch is admitted whole or refused whole), with
 * the draft IETF RateLimit headers (draft-ietf-httpapi-ratelimit-headers-08) on the answer. A tenant
 * without limits costs no Redis call. While Redis is unreachable limits are not enforced (tasks
 * are still accepted into Postgres, as without limits): logged, at most every 10 s. So is a Redis
 * that does not answer within `waitMs` (writes paused by a failover, a stalled server): a request
 * never waits on it longer, and an admission it runs late gives its places back at once.
 */
import type { Logger } from '../../core/observability/logger';
import type { ApiMetrics } from '../../core/observability/metrics';
import { TenantLabels } from '../../core/observability/tenant-labels';
import type { Admission, TenantAdmission } from '../../core/tenancy/admission';
import { effectiveLimits, isUnlimited, LimitDefaults, TenantLimits } from '../../core/tenancy/limits';
import type { TenantCache } from '../../core/tenancy/tenant-cache';
import type { TenantRow } from '../../core/tenancy/tenant';
import { ProblemError } from '../problem';
import { DependencyTimeoutError } from '../../core/process/with-timeout';

/** An admission to report on the answer, and to settle once the tasks are stored. */
export interface Admitted {
  headers: Record<string, string>;
  /** Places taken under the unfinished cap (to give back for tasks not created). */
  counted: number;
  tenant: string;
  /** The admission in flight under the cap until settled (see TenantAdmission.settle). */
  reservation?: string | null;
}

/**
 * Runs `work` with `n` tasks of `tenant` admitted under its limits (429 otherwise, and `work` is not
 * run), then gives back the places of those it did not make unfinished: `used` of its result, or
 * `usedOnFailure` (default none) when it fails. What routes that create or reopen tasks go through.
 * `indivisible`: the n tasks cannot be sent apart (a workflow's steps): past the burst, they are
 * admitted once the bucket is full (see admit.lua) rather than never.
 */
export type UnderLimits = <T>(
  tenant: string,
  n: number,
  work: () => Promise<T>,
  used: (r: T) => number,
  usedOnFailure?: () => number,
  indivisible?: boolean,
) => Promise<{ result: T; headers: Record<string, string> }>;

const FREE: Admitted = { headers: {}, counted: 0, tenant: '' };

/** How long a request waits for Redis's answer on its admission before going on without limits. */
export const DEFAULT_ADMIT_WAIT_MS = 2000;

export interface RequestAdmissionDeps {
  cache: TenantCache;
  admission: TenantAdmission;
  env: LimitDefaults;
  log: Logger;
  metrics: Pick<ApiMetrics, 'rateLimited' | 'quotaRefused'>;
  tenantLabels: TenantLabels;
  /** DEFAULT_ADMIT_WAIT_MS unless given (tests). */
  waitMs?: number;
}

export class RequestAdmission {
  private warnedAt = 0;

  constructor(private readonly deps: RequestAdmissionDeps) {}

  /** Admits `n` tasks of `tenant`, or throws 429; synchronous for a tenant without limits (cached). */
  admit(tenant: string, n: number, indivisible = false): Admitted | Promise<Admitted> {
    const row = this.deps.cache.get(tenant);
    if (row instanceof Promise) return row.then((r) => this.admitWith(tenant, n, r, indivisible));
    return this.admitWith(tenant, n, row, indivisible);
  }

  /** Gives back what tasks that were not created took (replays, conflicts, failures). */
  settle(a: Admitted, created: number): void {
    if (!a.reservation) return;
    this.deps.admission.settle(a.tenant, a.reservation, Math.max(0, a.counted - created)).catch((err: unknown) => this.warn(err));
  }

  private admitWith(tenant: string, n: number, row: TenantRow | undefined, indivisible: boolean): Admitted | Promise<Admitted> {
    const limits = effectiveLimits(row, this.deps.env);
    if (isUnlimited(limits)) return FREE;
    return this.withinWait(tenant, n, this.deps.admission.admit(tenant, n, limits, indivisible)).then(
      (a) => this.answer(tenant, n, limits, a),
      (err: unknown) => {
        this.warn(err);
        return FREE;
      },
    );
  }

  /**
   * Redis's answer, or an error once it has not come within waitMs. Should the script run after
   * all, the request went on without limits: the places it took are given back (its tasks are
   * counted from Postgres at the next true-up), else they stayed in flight for IN_FLIGHT_TTL_MS.
   */
  private withinWait(tenant: string, n: number, admitting: Promise<Admission>): Promise<Admission> {
    return new Promise((resolve, reject) => {
      let late = false;
      const timer = setTimeout(() => {
        late = true;
        reject(new DependencyTimeoutError(`Redis did not answer a tenant admission within ${this.deps.waitMs ?? DEFAULT_ADMIT_WAIT_MS} ms`));
      }, this.deps.waitMs ?? DEFAULT_ADMIT_WAIT_MS);
      admitting.then(
        (a) => {
          clearTimeout(timer);
          if (!late) resolve(a);
          else if (a.admitted && a.reservation) this.deps.admission.settle(tenant, a.reservation, n).catch((err: unknown) => this.warn(err));
        },
        (err: unknown) => {
          clearTimeout(timer);
          if (!late) reject(err);
        },
      );
    });
  }

  private answer(tenant: string, n: number, l: TenantLimits, a: Admission): Admitted {
    const headers: Record<string, string> = {};
    if (l.rate > 0) headers['RateLimit-Policy'] = `"tasks";q=${l.burst};w=${Math.max(1, Math.ceil(l.burst / l.rate))}`;
    if (a.admitted) {
      if (l.rate > 0) headers.RateLimit = `"tasks";r=${a.tokensLeft};t=${Math.ceil(a.msUntilFull / 1000)}`;
      return { headers, counted: l.maxUnfinished > 0 ? n : 0, tenant, reservation: a.reservation };
    }
    const label = this.deps.tenantLabels.of(tenant);
    switch (a.reason) {
      case 'rate': {
        this.deps.metrics.rateLimited.inc({ tenant: label }, n);
        const retryS = Math.max(1, Math.ceil(a.retryAfterMs / 1000));
        headers.RateLimit = `"tasks";r=${a.tokens};t=${retryS}`;
        headers['Retry-After'] = String(retryS);
        throw new ProblemError(429, 'Too many requests', `tenant ${tenant} may submit ${l.rate} tasks per second (burst ${l.burst}); ${n} more fit in ${retryS} s`, [{ field: 'rate_limit', message: `${l.rate} tasks per second, burst ${l.burst}` }], headers);
      }
      case 'burst':
        this.deps.metrics.rateLimited.inc({ tenant: label }, n);
        throw new ProblemError(429, 'Too many requests', `a request of ${n} tasks exceeds tenant ${tenant}'s burst of ${a.burst}; send at most ${a.burst} tasks per request`, [{ field: 'burst', message: `at most ${a.burst} tasks per request` }], headers);
      case 'quota':
        this.deps.metrics.quotaRefused.inc({ tenant: label, quota: 'max_unfinished' }, n);
        // More than the cap can never pass: no Retry-After, so that a client does not wait for it.
        if (n > l.maxUnfinished) throw new ProblemError(429, 'Quota exceeded', `a request of ${n} tasks exceeds tenant ${tenant}'s max_unfinished of ${l.maxUnfinished}; it can never be admitted`, [{ field: 'max_unfinished', message: `at most ${l.maxUnfinished} unfinished tasks` }], headers);
        throw new ProblemError(429, 'Quota exceeded', `tenant ${tenant} has ${a.unfinished} unfinished tasks; max_unfinished is ${l.maxUnfinished}`, [{ field: 'max_unfinished', message: `at most ${l.maxUnfinished} unfinished tasks` }], { ...headers, 'Retry-After': '1' });
    }
  }

  private warn(err: unknown): void {
    if (Date.now() - this.warnedAt < 10_000) return;
    this.warnedAt = Date.now();
    this.deps.log.warn({ err }, 'tenant limits could not be checked in Redis; admitting without them');
  }
}
