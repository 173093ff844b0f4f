/**
 * The fuzzer's model of keys and tenants against the README's table (Authentication and tenants),
 * case by case: the oracle the fuzz run holds every answer to.
 */
import { authVerdict, expectedStatuses, scopeOf, Spec } from './model';

const spec = (method: string, path: string, auth: Spec['auth'], headers: [string, string][] = []): Spec => ({ kind: 't', method, path, headers, body: Buffer.alloc(0), framing: 'none', auth });
const as = (key: string | null, extra: Partial<NonNullable<Spec['auth']>> = {}) => ({ label: 't', key, ...extra });

it('knows which routes take a key, and which scope', () => {
  expect(scopeOf('POST', '/tasks')).toBe('tasks:write');
  expect(scopeOf('POST', '/TASKS/Batch/?x=1')).toBe('tasks:write');
  expect(scopeOf('HEAD', '/tasks/abc')).toBe('tasks:read');
  expect(scopeOf('GET', '/tasks/batch')).toBeNull();
  expect(scopeOf('GET', '/healthz')).toBeNull();
  expect(scopeOf('PUT', '/tasks')).toBeNull();
  expect(scopeOf('POST', 'http://127.0.0.1/tasks')).toBe('tasks:write');
});

it('follows the README: 401 without a valid key, 403 without the scope or for another tenant, admin acts on the tenant it names', () => {
  const post = (auth: Spec['auth'], path = '/tasks', headers: [string, string][] = []) => authVerdict(spec('POST', path, auth, headers));
  expect(post(undefined)).toEqual({ tenant: null, refusals: [401] });
  expect(post(as('revoked'))).toEqual({ tenant: null, refusals: [401] });
  expect(post(as('expired'))).toEqual({ tenant: null, refusals: [401] });
  expect(post(as('alpha-w'))).toEqual({ tenant: 'alpha', refusals: [] });
  expect(post(as('alpha-r'))).toEqual({ tenant: null, refusals: [403] });
  expect(post(as('alpha-w'), '/tasks?tenant=alpha')).toEqual({ tenant: 'alpha', refusals: [] });
  expect(post(as('alpha-w'), '/tasks', [['Tenant', 'beta']])).toEqual({ tenant: null, refusals: [403] });
  expect(post(as('alpha-w'), '/tasks?tenant=Beta')).toEqual({ tenant: null, refusals: [400, 403] });
  expect(post(as('admin'))).toEqual({ tenant: 'ops', refusals: [] });
  expect(post(as('admin'), '/tasks?tenant=gamma')).toEqual({ tenant: 'gamma', refusals: [] });
  expect(post(as('admin'), '/tasks', [['tenant', ' beta\t']])).toEqual({ tenant: 'beta', refusals: [] });
  expect(post(as('admin'), '/tasks?tenant=%62eta#x')).toEqual({ tenant: 'beta', refusals: [] });
  expect(post(as('admin'), `/tasks?tenant=${'a'.repeat(64)}`)).toEqual({ tenant: null, refusals: [400] });
  // A valid name of a tenant that does not exist.
  expect(post(as('admin'), `/tasks?tenant=${'a'.repeat(63)}`)).toEqual({ tenant: null, refusals: [400] });
  expect(post(as('alpha-w'), `/tasks?tenant=${'a'.repeat(63)}`)).toEqual({ tenant: null, refusals: [403] });
  // Named twice (header or query), a tenant is never valid; named both ways, the query decides or the API refuses.
  expect(post(as('admin'), '/tasks?tenant=beta&tenant=beta')).toEqual({ tenant: null, refusals: [400] });
  expect(post(as('admin'), '/tasks', [['Tenant', 'beta'], ['Tenant', 'beta']])).toEqual({ tenant: null, refusals: [400] });
  expect(post(as('admin'), '/tasks?tenant=beta', [['Tenant', 'alpha']])).toEqual({ tenant: 'beta', refusals: [400, 403] });
  // Ambiguous credentials: the key's answer, or a refusal.
  expect(post(as('beta-rw', { lenient: true }))).toEqual({ tenant: 'beta', refusals: [401] });
  expect(post(as('beta-rw', { duplicated: true }))).toEqual({ tenant: 'beta', refusals: [400, 401] });
  expect(authVerdict(spec('GET', '/healthz', undefined))).toBeNull();
});

it('lets only what comes before the credential replace a refusal', () => {
  const refused = { tenant: null, refusals: [401] };
  expect(expectedStatuses({ ...spec('POST', '/tasks', undefined), expect: [413] }, refused)).toEqual([401, 413]);
  expect(expectedStatuses({ ...spec('POST', '/tasks', undefined), expect: [415] }, refused)).toEqual([401]);
  expect(expectedStatuses({ ...spec('GET', '/tasks/%zz', undefined), expect: [400] }, refused)).toEqual([400, 401]);
  expect(expectedStatuses({ ...spec('GET', '/tasks/zz', undefined), expect: [400] }, refused)).toEqual([401]);
  expect(expectedStatuses({ ...spec('POST', '/tasks', undefined), expect: [201] }, { tenant: 'alpha', refusals: [401] })).toEqual([201, 401]);
});

it('knows the schedule routes and their scopes', () => {
  expect(scopeOf('POST', '/schedules')).toBe('tasks:write');
  expect(scopeOf('GET', '/schedules?limit=5')).toBe('tasks:read');
  expect(scopeOf('HEAD', '/Schedules/nightly')).toBe('tasks:read');
  expect(scopeOf('PATCH', '/schedules/nightly')).toBe('tasks:write');
  expect(scopeOf('DELETE', '/schedules/nightly/')).toBe('tasks:write');
  expect(scopeOf('POST', '/schedules/nightly/trigger')).toBe('tasks:write');
  expect(scopeOf('PUT', '/schedules/nightly')).toBeNull();
  expect(scopeOf('GET', '/schedules/nightly/trigger')).toBeNull();
  expect(authVerdict(spec('PATCH', '/schedules/x', as('alpha-r')))).toEqual({ tenant: null, refusals: [403] });
  expect(authVerdict(spec('GET', '/schedules/x?tenant[]=a', as('alpha-r')))).toEqual({ tenant: 'alpha', refusals: [400] });
  // Every route with a scope refuses a query parameter it does not know.
  expect(authVerdict(spec('POST', '/schedules/x/trigger?tenant[]=a', as('alpha-w')))).toEqual({ tenant: 'alpha', refusals: [400] });
  expect(authVerdict(spec('POST', '/schedules/x/trigger?tenant=alpha', as('alpha-w')))).toEqual({ tenant: 'alpha', refusals: [] });
});

it('knows the workflow routes and their scopes', () => {
  expect(scopeOf('POST', '/workflows')).toBe('tasks:write');
  expect(scopeOf('GET', '/Workflows/?status=running')).toBe('tasks:read');
  expect(scopeOf('HEAD', '/workflows/abc')).toBe('tasks:read');
  expect(scopeOf('POST', '/workflows/abc/cancel/')).toBe('tasks:write');
  expect(scopeOf('POST', '/workflows/abc')).toBeNull();
  expect(scopeOf('GET', '/workflows/abc/cancel')).toBeNull();
  expect(authVerdict(spec('POST', '/workflows', as('alpha-r')))).toEqual({ tenant: null, refusals: [403] });
  expect(authVerdict(spec('GET', '/workflows?tenant[]=a', as('alpha-r')))).toEqual({ tenant: 'alpha', refusals: [400] });
  expect(authVerdict(spec('GET', '/workflows/x?tenant[]=a', as('alpha-r')))).toEqual({ tenant: 'alpha', refusals: [400] });
  expect(authVerdict(spec('GET', '/workflows/x', as('alpha-r')))).toEqual({ tenant: 'alpha', refusals: [] });
});
