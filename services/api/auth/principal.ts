/** Who a request acts as: a tenant and the scopes of the key it presented. */
import { Scope, SCOPES } from '../../core/tenancy/api-key';
import { DEFAULT_TENANT, isTenantName } from '../../core/tenancy/tenant';
import { badRequest, ProblemError } from '../problem';

export interface Principal {
  /** The tenant the request acts on (the key's own, or the one an admin key named). */
  tenant: string;
  /** The tenant the key belongs to. */
  keyTenant: string;
  scopes: ReadonlySet<Scope>;
  /** null with AUTH_MODE=off. */
  keyId: string | null;
}

/** AUTH_MODE=off: every request is the tenant `default` with every scope. */
export const OPEN_PRINCIPAL: Principal = { tenant: DEFAULT_TENANT, keyTenant: DEFAULT_TENANT, scopes: new Set(SCOPES), keyId: null };

/** `admin` includes every other scope, on any tenant. */
export function hasScope(p: Principal, scope: Scope): boolean {
  return p.scopes.has(scope) || p.scopes.has('admin');
}

export function forbidden(detail: string): ProblemError {
  return new ProblemError(403, 'Forbidden', detail);
}

/** Throws 403 unless the principal holds `scope`. */
export function requireScope(p: Principal, scope: Scope): void {
  if (!hasScope(p, scope)) throw forbidden(`this API key lacks the scope ${scope}`);
}

/**
 * The principal acting on `requested` (from the `tenant` query parameter or header), which only an
 * admin key may name when it is not the key's own tenant.
 */
export function actingAs(p: Principal, requested: string | undefined): Principal {
  if (requested === undefined || requested === p.keyTenant) return p;
  if (!isTenantName(requested)) throw badRequest('tenant is not a valid tenant name', [{ field: 'tenant', message: 'must be 1-63 characters: a-z 0-9 _ . - (starting with a letter or digit)' }]);
  if (!p.scopes.has('admin')) throw forbidden('only an admin key may act on another tenant');
  return { ...p, tenant: requested };
}
