/**
 * The admin routes (scope `admin`), for the web console: tenants with their limits and how many
 * unfinished tasks each has, and API keys (list, create, revoke). They run the same core
 * functions as the CLI's `tenants` and `keys` commands; a created key's text is in that one answer.
 */
import type { Express, Request, Response } from 'express';
import type { Pool } from 'pg';
import { createKey, KeyRow, listKeys, revokeKey } from '../../core/tenancy/key-store';
import { effectiveLimits, LimitDefaults } from '../../core/tenancy/limits';
import { countUnfinished, listTenants } from '../../core/tenancy/tenant-store';
import type { Principal } from '../auth/principal';
import { badRequest, notFound } from '../problem';
import type { RouteKit } from '../schedules/schedule-routes';
import { validateKeyInput } from './admin-input';

export interface AdminRouteDeps {
  pool: Pool;
  /** TENANT_RATE_LIMIT, TENANT_BURST, TENANT_MAX_UNFINISHED: what applies to a tenant without its own. */
  tenantDefaults: LimitDefaults;
}

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

export function keyToJson(k: KeyRow): Record<string, unknown> {
  return { id: k.id, tenant: k.tenant, scopes: k.scopes, description: k.description, created_at: k.created_at.toISOString(), expires_at: iso(k.expires_at), revoked_at: iso(k.revoked_at), last_used_at: iso(k.last_used_at) };
}

export function addAdminRoutes(app: Express, deps: AdminRouteDeps, kit: RouteKit): void {
  const { authorized, jsonBody, parseBody } = kit;

  app.get('/admin/tenants', authorized('admin'), async (_req, res) => {
    const [tenants, unfinished] = await Promise.all([listTenants(deps.pool), countUnfinished(deps.pool)]);
    res.json({
      tenants: tenants.map((t) => {
        const e = effectiveLimits(t, deps.tenantDefaults);
        return {
          name: t.name,
          rate_limit: t.rate_limit,
          burst: t.burst,
          max_unfinished: t.max_unfinished,
          max_running: t.max_running,
          weight: t.weight,
          effective: { rate_limit: e.rate, burst: e.burst, max_unfinished: e.maxUnfinished },
          unfinished: unfinished.get(t.name) ?? 0,
          created_at: t.created_at.toISOString(),
          updated_at: t.updated_at.toISOString(),
        };
      }),
    });
  });

  // ?tenant= (which the admin's principal carries) narrows the list to that tenant's keys.
  app.get('/admin/keys', authorized('admin'), async (req: Request, res: Response) => {
    const named = req.query.tenant !== undefined || req.get('Tenant') !== undefined;
    const keys = await listKeys(deps.pool, named ? (res.locals.principal as Principal).tenant : undefined);
    res.json({ keys: keys.map(keyToJson) });
  });

  app.post('/admin/keys', authorized('admin'), ...jsonBody, async (req: Request, res: Response) => {
    const input = validateKeyInput(parseBody(req));
    const created = await createKey(deps.pool, input);
    // The only answer that holds a key's text: no cache on the way may keep it.
    res.set('Cache-Control', 'no-store').status(201).json({ ...keyToJson(created), key: created.key });
  });

  app.post('/admin/keys/:id/revoke', authorized('admin'), async (req, res) => {
    const id = String(req.params.id);
    if (!/^[0-9a-f]{16}$/.test(id)) throw badRequest('id must be a key id of 16 hex digits', [{ field: 'id', message: 'must be 16 hex digits' }]);
    const revoked = await revokeKey(deps.pool, id);
    if (!revoked) throw notFound(`no key with id ${id}`);
    res.json(keyToJson(revoked));
  });
}
