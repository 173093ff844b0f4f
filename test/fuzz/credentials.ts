/**
 * Credentials for fuzz requests: which key a request presents and how (Authorization lines, a
 * Tenant header, ?tenant=), written with placeholders (`{{key:alpha-rw}}`) that the runner fills
 * with the run's keys (keyring.ts). Most requests carry a key that may do what they ask, so their
 * answers are checked as strictly as before keys existed; the rest carry hostile credentials, and
 * the model (authVerdict) says what each must get.
 */
import { AuthUse, KEYS, keyDef, Scope, scopeOf, Spec, TENANTS } from './model';

type Rnd = () => number;

/** Requests that carry a key allowed to do what they ask. */
export const GOOD_SHARE = 0.8;

const pick = <T>(rnd: Rnd, xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
const int = (rnd: Rnd, min: number, max: number) => min + Math.floor(rnd() * (max - min + 1));

export const key = (name: string): string => `{{key:${name}}}`;
const part = (what: 'id' | 'secret' | 'short' | 'flip', name: string) => `{{${what}:${name}}}`;

interface Credential {
  label: string;
  /** Authorization and Tenant lines, sent before the request's own headers. */
  headers: [string, string][];
  /** Added to the query string, already encoded. */
  query?: string;
  auth: Omit<AuthUse, 'label'>;
  secrets?: string[];
}

const ACTIVE = KEYS.filter((k) => k.state === 'active').map((k) => k.name);
const NON_ADMIN = KEYS.filter((k) => k.state === 'active' && !k.scopes.includes('admin')).map((k) => k.name);

/** Active keys that hold `scope` (admin holds every scope). */
function holders(scope: Scope): string[] {
  return KEYS.filter((k) => k.state === 'active' && (k.scopes.includes(scope) || k.scopes.includes('admin'))).map((k) => k.name);
}

function bearer(name: string, label = 'good'): Credential {
  return { label, headers: [['Authorization', `Bearer ${key(name)}`]], auth: { key: name } };
}

function nameTenant(c: Credential, tenant: string, rnd: Rnd, label = c.label): Credential {
  const how = rnd();
  const query = `tenant=${encodeURIComponent(tenant)}`;
  if (how < 0.5) return { ...c, label, headers: [...c.headers, ['Tenant', tenant]] };
  if (how < 0.9) return { ...c, label, query };
  return { ...c, label, headers: [...c.headers, ['Tenant', tenant]], query };
}

/** A key allowed to do what the request asks; a quarter of them name a tenant they may act on. */
function goodCredential(rnd: Rnd, scope: Scope): Credential {
  const name = pick(rnd, holders(scope));
  const k = keyDef(name);
  const c = bearer(name);
  if (rnd() < 0.75) return c;
  // An admin key acts on any tenant it names; other keys may name only their own.
  return nameTenant(c, k.scopes.includes('admin') ? pick(rnd, TENANTS) : k.tenant, rnd, 'good.tenant');
}

const hex = (rnd: Rnd, n: number) => Array.from({ length: n }, () => '0123456789abcdef'[Math.floor(rnd() * 16)]).join('');
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const b64url = (rnd: Rnd, n: number) => Array.from({ length: n }, () => B64URL[Math.floor(rnd() * 64)]).join('');
/** Text as the latin1 string node sends byte for byte (UTF-8 bytes above 0x7f, on the wire). */
const wire = (text: string) => Buffer.from(text, 'utf8').toString('latin1');

/** Tenant values that are not tenant names (or are, at the edges), for the Tenant header. */
function oddTenant(rnd: Rnd): string {
  return pick(rnd, [
    '',
    'Alpha',
    'ALPHA',
    'al pha',
    '-alpha',
    '.alpha',
    '_x',
    'alpha,beta',
    'alpha;beta',
    '*',
    '..',
    'default',
    'a'.repeat(63),
    'a'.repeat(64),
    wire('é'),
    wire('ålpha'),
    `alpha${'\u00a0'}`,
    'x'.repeat(int(rnd, 100, 8000)),
  ]);
}

/** The same for ?tenant= (already encoded). */
function oddTenantQuery(rnd: Rnd, own: string): string {
  return pick(rnd, [
    'tenant=',
    'tenant',
    'tenant=Alpha',
    'tenant=al%20pha',
    'tenant=al+pha',
    `tenant=${own}%20`,
    'tenant=%zz',
    'tenant=alpha%00',
    'tenant=%C3%A9',
    `tenant=${own}&tenant=${own}`,
    'tenant=alpha&tenant=beta',
    `tenant[]=${own === 'alpha' ? 'beta' : 'alpha'}`,
    'tenant=%61lpha',
    `tenant=${'a'.repeat(64)}`,
    `tenant=${'q'.repeat(int(rnd, 100, 6000))}`,
  ]);
}

/** A credential that must be refused, or that asks for more than its key may do. */
function hostileCredential(rnd: Rnd, scope: Scope): Credential {
  const x = pick(rnd, ACTIVE);
  const refused = (label: string, value: string, secrets?: string[]): Credential => ({ label, headers: [['Authorization', value]], auth: { key: null }, secrets });
  const kinds: (() => Credential)[] = [
    () => ({ label: 'none', headers: [], auth: { key: null } }),
    () =>
      refused(
        'scheme',
        pick(rnd, [
          `Basic ${Buffer.from('alpha:secret').toString('base64')}`,
          `Token ${key(x)}`,
          key(x),
          'Bearer',
          'Bearer ',
          'Bearer    ',
          '',
          'Digest username="alpha", response="0"',
          `Bearer,${key(x)}`,
          `Bearer "${key(x)}"`,
          `Bearer ${key(x)} extra`,
          `Bearer ${key(x)}, Bearer ${key(pick(rnd, ACTIVE))}`,
          `Bearer ${key(x)};`,
          `Bearer=${key(x)}`,
          `Bearer ${part('id', x)}`,
          `Bearer tsk_${part('id', x)}`,
          `Bearer ${part('secret', x)}`,
          `NTLM TlRMTVNTUAABAAAAB4IIAAAAAAAAAAAAAAAAAAAAAAA=`,
        ]),
      ),
    // A scheme in another case, or more spaces: the key's answer, or a refusal.
    () => ({ label: 'lenient', headers: [['Authorization', pick(rnd, [`bearer ${key(x)}`, `BEARER ${key(x)}`, `Bearer  ${key(x)}`, `Bearer ${key(x)}  `, `Bearer\t${key(x)}`])]], auth: { key: x, lenient: true } }),
    () => {
      const n = int(rnd, 100, 6000);
      return refused('huge', pick(rnd, [`Bearer ${'A'.repeat(n)}`, `Bearer tsk_0123456789abcdef_${'A'.repeat(n)}`, 'Bearer '.repeat(Math.ceil(n / 7)).trim(), 'x'.repeat(n), `Bearer ${key(x)}${'='.repeat(n)}`]));
    },
    () =>
      refused(
        'non-ascii',
        pick(rnd, [
          `Bearer ${wire('tsk_é0123456789abcde_')}${'A'.repeat(43)}`,
          `Bearer ${key(x)}${wire('é')}`,
          'Bearer \u00ff\u00fe',
          `Bearer ${key(x)}\u00a0`,
          `B${wire('é')}arer ${key(x)}`,
          `Bearer ${wire('🔑')}`,
          `Bearer tsk_${part('id', x)}_${wire('ééééééééééééééééééééé')}A`,
          `Bearer ${wire('ｔｓｋ')}_${part('id', x)}_${part('secret', x)}`,
        ]),
      ),
    () =>
      refused(
        'almost',
        pick(rnd, [
          `Bearer ${key(x)}x`,
          `Bearer x${key(x)}`,
          `Bearer tsk_${part('id', x)}_${part('short', x)}`,
          `Bearer TSK_${part('id', x)}_${part('secret', x)}`,
          `Bearer tsk-${part('id', x)}-${part('secret', x)}`,
          `Bearer tsk_${part('id', x)}${part('secret', x)}`,
          `Bearer tsk_${part('id', x)}__${part('secret', x)}`,
          `Bearer tsk_${part('id', x)}_${part('secret', x)}=`,
          `Bearer tsk_${part('id', x)}0_${part('secret', x)}`,
          `Bearer tsk__${part('secret', x)}`,
        ]),
      ),
    () => {
      const y = pick(rnd, ACTIVE.filter((n) => n !== x));
      return refused('wrong-secret', rnd() < 0.5 ? `Bearer tsk_${part('id', x)}_${part('secret', y)}` : `Bearer tsk_${part('id', x)}_${part('flip', x)}`);
    },
    () => {
      const secret = b64url(rnd, 43);
      return refused('unknown', `Bearer tsk_${hex(rnd, 16)}_${secret}`, [secret]);
    },
    () => refused('revoked', `Bearer ${key('revoked')}`),
    () => refused('expired', `Bearer ${key('expired')}`),
    // A key without the route's scope.
    () => bearer(scope === 'tasks:write' ? 'alpha-r' : pick(rnd, ['alpha-w', 'beta-w']), 'scope'),
    // A key that is not admin naming another tenant.
    () => {
      const name = pick(rnd, NON_ADMIN);
      return nameTenant(bearer(name), pick(rnd, TENANTS.filter((t) => t !== keyDef(name).tenant)), rnd, 'other-tenant');
    },
    () => {
      const c = bearer(x, 'bad-tenant');
      return rnd() < 0.5 ? { ...c, headers: [...c.headers, ['Tenant', oddTenant(rnd)]] } : { ...c, query: oddTenantQuery(rnd, keyDef(x).tenant) };
    },
    // The tenant named twice, or both ways.
    () => {
      const own = keyDef(x).tenant;
      const c = bearer(x, 'two-tenants');
      const other = pick(rnd, TENANTS);
      switch (int(rnd, 0, 2)) {
        case 0:
          return { ...c, headers: [...c.headers, ['Tenant', own], ['Tenant', rnd() < 0.5 ? own : other]] };
        case 1:
          return { ...c, query: `tenant=${own}`, headers: [...c.headers, ['Tenant', other]] };
        default:
          return { ...c, query: `tenant=${other}`, headers: [...c.headers, ['Tenant', own]] };
      }
    },
    // Two Authorization lines: node keeps the first.
    () => {
      const y = pick(rnd, ACTIVE);
      const bad = pick(rnd, ['Bearer', `Basic ${Buffer.from('a:b').toString('base64')}`, `Bearer ${key('revoked')}`, `Bearer tsk_${part('id', x)}_${part('flip', x)}`]);
      switch (int(rnd, 0, 2)) {
        case 0:
          return { label: 'two-keys', headers: [['Authorization', `Bearer ${key(x)}`], ['Authorization', bad]], auth: { key: x, duplicated: true } };
        case 1:
          return { label: 'two-keys', headers: [['Authorization', bad], ['Authorization', `Bearer ${key(x)}`]], auth: { key: null, duplicated: true } };
        default:
          return { label: 'two-keys', headers: [['Authorization', `Bearer ${key(x)}`], ['Authorization', `Bearer ${key(y)}`]], auth: { key: x, duplicated: true } };
      }
    },
  ];
  return pick(rnd, kinds)();
}

function apply(s: Spec, c: Credential): Spec {
  const path = c.query === undefined ? s.path : `${s.path}${s.path.includes('?') ? '&' : '?'}${c.query}`;
  return { ...s, path, headers: [...c.headers, ...s.headers], auth: { label: c.label, ...c.auth }, secrets: c.secrets };
}

/**
 * `s` with a credential: allowed for its route with probability `goodShare`, else hostile. Routes
 * that take no key get one all the same (it must change nothing). A spec with one keeps it.
 */
export function withCredential(s: Spec, rnd: Rnd, goodShare = GOOD_SHARE): Spec {
  if (s.auth) return s;
  const scope = scopeOf(s.method, s.path) ?? 'tasks:write';
  return apply(s, rnd() < goodShare ? goodCredential(rnd, scope) : hostileCredential(rnd, scope));
}

/** `s` sent with the key `name`, naming `tenant` (header or query) when given. */
export function asKey(s: Spec, name: string, rnd: Rnd, tenant?: string): Spec {
  const c = bearer(name);
  return apply(s, tenant === undefined ? c : nameTenant(c, tenant, rnd, 'good.tenant'));
}
