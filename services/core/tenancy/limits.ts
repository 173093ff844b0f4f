/** A tenant's effective limits: its own settings, else the environment's (TENANT_*); 0 is unlimited. */
import type { TenantRow } from './tenant';

export interface TenantLimits {
  /** Tasks per second (token bucket refill); 0: no rate limit. */
  rate: number;
  /** Bucket size: tasks that may arrive at once. */
  burst: number;
  /** Unfinished tasks the tenant may have; 0: unlimited. */
  maxUnfinished: number;
}

export interface LimitDefaults {
  TENANT_RATE_LIMIT: number;
  TENANT_BURST: number;
  TENANT_MAX_UNFINISHED: number;
}

export function effectiveLimits(row: Pick<TenantRow, 'rate_limit' | 'burst' | 'max_unfinished'> | undefined, env: LimitDefaults): TenantLimits {
  const rate = row?.rate_limit ?? env.TENANT_RATE_LIMIT;
  const burst = row?.burst ?? env.TENANT_BURST;
  // No burst of its own: one second of the rate (at least one task).
  return { rate, burst: rate > 0 && burst === 0 ? Math.max(1, rate) : burst, maxUnfinished: row?.max_unfinished ?? env.TENANT_MAX_UNFINISHED };
}

export function isUnlimited(l: TenantLimits): boolean {
  return l.rate === 0 && l.maxUnfinished === 0;
}
