/**
 * Bounded tenant labels: the first `limit` tenants a process sees get a label of their own, every
 * later one is `_other`, so a per-tenant series set never grows past limit + 1 per metric.
 */
export const OTHER_TENANTS = '_other';

export class TenantLabels {
  private readonly named = new Set<string>();

  constructor(private readonly limit: number) {}

  of(tenant: string): string {
    if (this.named.has(tenant)) return tenant;
    if (this.named.size < this.limit) {
      this.named.add(tenant);
      return tenant;
    }
    return OTHER_TENANTS;
  }
}
