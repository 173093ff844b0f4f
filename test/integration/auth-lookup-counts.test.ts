/** auth_key_lookups_total's result for a key deleted after this replica had seen it valid. */
import { Authenticator, KeyLookup } from '../../services/api/auth/authenticator';
import { createKey } from '../../services/core/tenancy/key-store';
import { stackFixture, silentLog } from '../support/stack';

const fx = stackFixture();

it('a lookup of a key deleted after it was seen valid here counts as not_found, not verified', async () => {
  const count: Partial<Record<KeyLookup, number>> = {};
  // cacheMs 0: every request needs a lookup of its own.
  const a = new Authenticator(fx.stack.pool, { mode: 'keys', cacheMs: 0, log: silentLog, onLookup: (r) => void (count[r] = (count[r] ?? 0) + 1) });
  try {
    const k = await createKey(fx.stack.pool, { tenant: 'acme', scopes: ['tasks:write'], expiresInMs: null });
    expect((await a.authenticate(`Bearer ${k.key}`)).tenant).toBe('acme');
    expect((await a.authenticate(`Bearer ${k.key}`)).tenant).toBe('acme');
    expect(count).toEqual({ found: 1, verified: 1 });
    await fx.stack.pool.query('DELETE FROM api_keys WHERE id = $1', [k.id]);
    await expect(Promise.resolve().then(() => a.authenticate(`Bearer ${k.key}`))).rejects.toMatchObject({ status: 401 });
    expect(count).toEqual({ found: 1, verified: 1, not_found: 1 });
  } finally {
    await a.close();
  }
});
