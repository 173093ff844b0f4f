/** `keys create|list|revoke`: API keys in Postgres. A key's text is printed once, at creation. */
import type { Pool } from 'pg';
import { MAX_KEY_DESCRIPTION } from '../api/schemas/admin';
import { isScope, Scope } from '../core/tenancy/api-key';
import { createKey, KeyRow, listKeys, revokeKey } from '../core/tenancy/key-store';
import { isTenantName } from '../core/tenancy/tenant';
import { parse, parseDuration, UsageError } from './args';
import { json, table } from './output';
import type { Io } from './io';

export const KEYS_USAGE = `keys create --tenant NAME --scopes SCOPES [--expires-in DURATION] [--description TEXT] [--json]
  keys list [--tenant NAME] [--json]
  keys revoke ID [--json]`;

const publicKey = (k: KeyRow) => ({ id: k.id, tenant: k.tenant, scopes: k.scopes, description: k.description, created_at: k.created_at, expires_at: k.expires_at, revoked_at: k.revoked_at, last_used_at: k.last_used_at });

export async function keysCommand(args: string[], pool: () => Pool, io: Io): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'create': {
      const { values } = parse(rest, { tenant: { type: 'string' }, scopes: { type: 'string' }, 'expires-in': { type: 'string' }, description: { type: 'string' }, json: { type: 'boolean' } }, { min: 0, max: 0, names: '' });
      const tenant = tenantOption(values.tenant, true)!;
      if (typeof values.scopes !== 'string') throw new UsageError('--scopes is required (a comma-separated list of tasks:write, tasks:read, admin)');
      const scopes = [...new Set(values.scopes.split(',').map((s) => s.trim()))];
      const bad = scopes.filter((s) => !isScope(s));
      if (bad.length > 0 || scopes.length === 0) throw new UsageError(`--scopes: unknown scope ${JSON.stringify(bad[0] ?? '')}; use tasks:write, tasks:read, admin`);
      const expiresInMs = typeof values['expires-in'] === 'string' ? parseDuration(values['expires-in'], '--expires-in') : null;
      const description = typeof values.description === 'string' ? values.description : '';
      // Characters as the API and Postgres count them (code points, not UTF-16 units).
      if ([...description].length > MAX_KEY_DESCRIPTION) throw new UsageError(`--description must be at most ${MAX_KEY_DESCRIPTION} characters`);
      const created = await createKey(pool(), { tenant, scopes: scopes as Scope[], expiresInMs, description });
      if (values.json) io.out(json({ ...publicKey(created), key: created.key }));
      else {
        io.out(`${created.key}\n`);
        io.err(`created key ${created.id} for tenant ${created.tenant} (${created.scopes.join(', ')}${created.expires_at ? `, expires ${created.expires_at.toISOString()}` : ''}); it is shown only this once\n`);
      }
      return 0;
    }
    case 'list': {
      const { values } = parse(rest, { tenant: { type: 'string' }, json: { type: 'boolean' } }, { min: 0, max: 0, names: '' });
      const keys = (await listKeys(pool(), tenantOption(values.tenant, false))).map(publicKey);
      io.out(values.json ? json(keys) : table(keys, ['id', 'tenant', 'scopes', 'created_at', 'expires_at', 'revoked_at', 'last_used_at', 'description']));
      return 0;
    }
    case 'revoke': {
      const { values, positionals } = parse(rest, { json: { type: 'boolean' } }, { min: 1, max: 1, names: 'the key ID (see keys list)' });
      const id = positionals[0]!;
      if (!/^[0-9a-f]{16}$/.test(id)) throw new UsageError(`ID must be a key id of 16 hex digits (see keys list), got ${JSON.stringify(id)}`);
      const revoked = await revokeKey(pool(), id);
      if (!revoked) {
        io.err(`no key with id ${id}\n`);
        return 1;
      }
      if (values.json) io.out(json(publicKey(revoked)));
      else io.err(`revoked key ${id} of tenant ${revoked.tenant}; every API replica refuses it within AUTH_CACHE_MS\n`);
      return 0;
    }
    default:
      throw new UsageError(sub === undefined ? 'keys needs a subcommand: create, list or revoke' : `unknown keys subcommand ${JSON.stringify(sub)}`);
  }
}

function tenantOption(v: string | boolean | undefined, required: boolean): string | undefined {
  if (v === undefined) {
    if (required) throw new UsageError('--tenant is required');
    return undefined;
  }
  if (typeof v !== 'string' || !isTenantName(v)) throw new UsageError(`--tenant must be 1-63 characters of a-z 0-9 _ . - starting with a letter or digit, got ${JSON.stringify(v)}`);
  return v;
}
