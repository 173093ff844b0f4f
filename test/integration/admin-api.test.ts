/**
 * The admin routes (scope admin): tenants with their limits and unfinished tasks, keys listed
 * without their text, created (the text once, and it works), revoked (and then refused); other
 * keys get 403, bad bodies a 400 naming the field. Answers are checked against the OpenAPI document.
 */
import { Authenticator } from '../../services/api/auth/authenticator';
import type { Scope } from '../../services/core/tenancy/api-key';
import { createKey } from '../../services/core/tenancy/key-store';
import { setTenant } from '../../services/core/tenancy/tenant-store';
import { fetch } from '../support/contract';
import { silentLog, stackWithApi } from '../support/stack';

const fx = stackWithApi({}, { auth: (stack) => new Authenticator(stack.pool, { mode: 'keys', cacheMs: 0, log: silentLog }) });
let admin = '';
let ops = '';
beforeAll(async () => {
  const key = async (tenant: string, scopes: Scope[]) => (await createKey(fx.stack.pool, { tenant, scopes, expiresInMs: null })).key;
  admin = await key('root', ['admin']);
  ops = await key('ops', ['tasks:read', 'tasks:write']);
});

const call = async (method: string, path: string, as: string, body?: unknown) => {
  const res = await fetch(`${fx.api.url}${path}`, { method, headers: { authorization: `Bearer ${as}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
};

it('lists tenants with their own limits, those in effect, and their unfinished tasks', async () => {
  await setTenant(fx.stack.pool, 'ops', { max_unfinished: 50, rate_limit: 0 });
  for (let i = 0; i < 3; i++) expect((await call('POST', '/tasks', ops, { type: 'noop' })).status).toBe(201);
  const { status, body } = await call('GET', '/admin/tenants', admin);
  expect(status).toBe(200);
  const t = body.tenants.find((x: { name: string }) => x.name === 'ops');
  expect(t).toMatchObject({ name: 'ops', max_unfinished: 50, rate_limit: 0, burst: null, effective: { max_unfinished: 50, rate_limit: 0, burst: 0 }, unfinished: 3 });
  expect(body.tenants.map((x: { name: string }) => x.name)).toEqual(expect.arrayContaining(['ops', 'root']));
});

it('creates a key (its text once, and it works), lists keys without their text, and revokes one', async () => {
  const created = await call('POST', '/admin/keys', admin, { tenant: 'newteam', scopes: ['tasks:read'], description: 'dashboards' });
  expect(created.status).toBe(201);
  // The one answer holding a key's text is kept by no cache.
  expect(created.headers.get('cache-control')).toBe('no-store');
  expect(created.body).toMatchObject({ tenant: 'newteam', scopes: ['tasks:read'], description: 'dashboards', revoked_at: null });
  const text = created.body.key as string;
  expect((await call('GET', '/queues', text)).status).toBe(200);
  // Its scope is tasks:read only.
  expect((await call('POST', '/tasks', text, { type: 'noop' })).status).toBe(403);

  const all = await call('GET', '/admin/keys', admin);
  expect(all.status).toBe(200);
  expect(JSON.stringify(all.body)).not.toContain(text);
  expect(all.body.keys.map((k: { id: string }) => k.id)).toContain(created.body.id);
  const mine = await call('GET', '/admin/keys?tenant=newteam', admin);
  expect(mine.body.keys.map((k: { id: string }) => k.id)).toEqual([created.body.id]);

  const revoked = await call('POST', `/admin/keys/${created.body.id}/revoke`, admin);
  expect(revoked.status).toBe(200);
  expect(revoked.body.revoked_at).toEqual(expect.any(String));
  expect((await call('GET', '/queues', text)).status).toBe(401);
  expect((await call('POST', '/admin/keys/0123456789abcdef/revoke', admin)).status).toBe(404);
  expect((await call('POST', '/admin/keys/nothex/revoke', admin)).body.errors[0].field).toBe('id');
});

it('refuses keys without the admin scope (403), and bad bodies with a 400 naming the field', async () => {
  for (const [method, path] of [['GET', '/admin/tenants'], ['GET', '/admin/keys'], ['POST', '/admin/keys/0123456789abcdef/revoke']] as const) expect((await call(method, path, ops)).status).toBe(403);
  expect((await call('POST', '/admin/keys', ops, { tenant: 'ops', scopes: ['admin'] })).status).toBe(403);
  expect((await call('GET', '/admin/keys', 'tsk_nope')).status).toBe(401);
  const cases: [unknown, string][] = [
    [{ scopes: ['tasks:read'] }, 'tenant'],
    [{ tenant: 'Bad Name', scopes: ['tasks:read'] }, 'tenant'],
    [{ tenant: 'x', scopes: [] }, 'scopes'],
    [{ tenant: 'x', scopes: ['root'] }, 'scopes[0]'],
    [{ tenant: 'x', scopes: ['admin', 'admin'] }, 'scopes[1]'],
    [{ tenant: 'x', scopes: ['admin'], expires_in_ms: 0 }, 'expires_in_ms'],
    [{ tenant: 'x', scopes: ['admin'], description: 'd'.repeat(201) }, 'description'],
    [{ tenant: 'x', scopes: ['admin'], owner: 'me' }, 'owner'],
    // Names an object has by its prototype are no fields of a key either (before: silently ignored, 201).
    [{ tenant: 'x', scopes: ['admin'], constructor: 'me' }, 'constructor'],
    [{ tenant: 'x', scopes: ['admin'], toString: 'me' }, 'toString'],
    [JSON.parse('{"tenant": "x", "scopes": ["admin"], "__proto__": {"tenant": "y"}}'), '__proto__'],
    [[1], 'body'],
  ];
  for (const [body, field] of cases) {
    const r = await call('POST', '/admin/keys', admin, body);
    expect({ body, status: r.status, field: r.body.errors?.[0]?.field }).toEqual({ body, status: 400, field });
  }
});

it("a key's description is at most 200 characters as the document (maxLength) and Postgres (length()) count them: code points, not UTF-16 units", async () => {
  // 150 characters outside the Basic Multilingual Plane: 300 UTF-16 units, 150 characters.
  const description = '🔑'.repeat(150);
  const created = await call('POST', '/admin/keys', admin, { tenant: 'emoji', scopes: ['tasks:read'], description });
  expect({ status: created.status, description: created.body.description }).toEqual({ status: 201, description });
  const over = await call('POST', '/admin/keys', admin, { tenant: 'emoji', scopes: ['tasks:read'], description: '🔑'.repeat(201) });
  expect({ status: over.status, field: over.body.errors?.[0]?.field }).toEqual({ status: 400, field: 'description' });
});
