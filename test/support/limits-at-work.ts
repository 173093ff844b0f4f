/**
 * Authentication and tenant limits at work, for tests that read their counters: a request without
 * a key (401), then a tenant with a rate limit of 1/s and one allowed a single unfinished task,
 * each sent three tasks (at least two 429s).
 */
import type { Pool } from 'pg';
import { createKey } from '../../services/core/tenancy/key-store';
import { setTenant } from '../../services/core/tenancy/tenant-store';

/** The statuses of the six limited requests (the 401 is checked here). `sleepMs`: how long the capped tenant's task runs. */
export async function limitsAtWork(apiUrl: string, pool: Pool, sleepMs: number): Promise<number[]> {
  const send = (key: string | null, body: Record<string, unknown>) =>
    fetch(`${apiUrl}/tasks`, { method: 'POST', headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) }, body: JSON.stringify(body) }).then((r) => r.status);
  const unauthenticated = await send(null, { type: 'noop' });
  if (unauthenticated !== 401) throw new Error(`a request without a key got ${unauthenticated}, not 401`);
  const rated = (await createKey(pool, { tenant: 'rated', scopes: ['tasks:write'], expiresInMs: null })).key;
  await setTenant(pool, 'rated', { rate_limit: 1, burst: 1 });
  const capped = (await createKey(pool, { tenant: 'capped', scopes: ['tasks:write'], expiresInMs: null })).key;
  await setTenant(pool, 'capped', { max_unfinished: 1 });
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) statuses.push(await send(rated, { type: 'noop' }), await send(capped, { type: 'sleeper', payload: { sleep_ms: sleepMs } }));
  return statuses;
}
