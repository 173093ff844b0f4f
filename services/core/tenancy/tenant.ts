/** Tenants: who owns tasks, with their own limits (NULL: the environment's default; 0: unlimited). */
export const TENANT_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
export const DEFAULT_TENANT = 'default';

export interface TenantRow {
  name: string;
  rate_limit: number | null;
  burst: number | null;
  max_unfinished: number | null;
  max_running: number | null;
  weight: number | null;
  created_at: Date;
  updated_at: Date;
}

/** The settings `tenants set` may change; an absent field is left as it is. */
export interface TenantChanges {
  rate_limit?: number | null;
  burst?: number | null;
  max_unfinished?: number | null;
  max_running?: number | null;
  weight?: number | null;
}

export const TENANT_SETTINGS = ['rate_limit', 'burst', 'max_unfinished', 'max_running', 'weight'] as const;

export function isTenantName(s: string): boolean {
  return TENANT_PATTERN.test(s);
}
