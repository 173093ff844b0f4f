/**
 * Two built API processes sharing one Postgres and Redis, as two replicas: a revoked key is refused
 * by both within AUTH_CACHE_MS, and a tenant's rate limit holds across both (over any 5 s window,
 * admitted ≤ rate × 5 + burst, plus 5 %).
 */
import http from 'node:http';
import { Pool } from 'pg';
import { createKey, revokeKey } from '../../services/core/tenancy/key-store';
import { setTenant } from '../../services/core/tenancy/tenant-store';
import { ChildHandle, freePort, killAllChildren, spawnService } from '../support/processes';
import { createTestDatabase, TestDatabase, testRedisAddr, uniqueRedisPrefix } from '../support/test-env';

let db: TestDatabase;
let pool: Pool;
const apis: { url: string; child: ChildHandle }[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new Pool({ connectionString: db.url, max: 4 });
  const env = { POSTGRES_URL: db.url, REDIS_ADDR: testRedisAddr(), REDIS_KEY_PREFIX: uniqueRedisPrefix('twoapis'), LOG_LEVEL: 'info', AUTH_CACHE_MS: '500' };
  for (let i = 0; i < 2; i++) {
    const port = await freePort();
    apis.push({ url: `http://127.0.0.1:${port}`, child: await spawnService('dist/services/api/main.js', { ...env, API_ADDR: `127.0.0.1:${port}`, METRICS_ADDR: `127.0.0.1:${await freePort()}` }) });
  }
});
afterAll(async () => {
  for (const a of apis) await a.child.stop('SIGTERM', 10_000).catch(() => a.child.kill());
  await killAllChildren();
  await pool.end();
  await db.drop();
});

const post = (url: string, key: string, agent?: http.Agent) =>
  new Promise<number>((resolve) => {
    const body = '{"type":"noop"}';
    const req = http.request(`${url}/tasks`, { method: 'POST', agent, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end(body);
  });

it('a revoked key is refused by every replica within AUTH_CACHE_MS', async () => {
  const { id, key } = await createKey(pool, { tenant: 'revoke-me', scopes: ['tasks:write'], expiresInMs: null });
  for (const a of apis) expect(await post(a.url, key)).toBe(201);
  await revokeKey(pool, id);
  const revokedAt = Date.now();
  // Keep both replicas' caches warm while waiting: requests alone must not extend a key's life.
  const until = revokedAt + 1000;
  const lastAccepted: number[] = [0, 0];
  while (Date.now() < until) {
    await Promise.all(apis.map(async (a, i) => {
      if ((await post(a.url, key)) === 201) lastAccepted[i] = Date.now() - revokedAt;
    }));
  }
  for (const a of apis) for (let i = 0; i < 3; i++) expect(await post(a.url, key)).toBe(401);
  // Within the configured cache time, with room for one in-flight lookup.
  for (const ms of lastAccepted) expect(ms).toBeLessThan(1000);
});

it("a tenant's rate limit holds across both replicas", async () => {
  const RATE = 100;
  const BURST = 50;
  // Long enough for two replicas with a bucket each to admit about twice the bound.
  const WINDOW_S = 5;
  const { key } = await createKey(pool, { tenant: 'limited', scopes: ['tasks:write'], expiresInMs: null });
  await setTenant(pool, 'limited', { rate_limit: RATE, burst: BURST });
  // The replicas re-read tenant settings at most every second.
  await new Promise((r) => setTimeout(r, 1100));
  const deadline = Date.now() + (WINDOW_S + 1) * 1000;
  const counts = { admitted: 0, refused: 0, other: 0 };
  await Promise.all(
    apis.flatMap((a) =>
      Array.from({ length: 8 }, async () => {
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        while (Date.now() < deadline) {
          const s = await post(a.url, key, agent);
          if (s === 201) counts.admitted++;
          else if (s === 429) counts.refused++;
          else counts.other++;
        }
        agent.destroy();
      }),
    ),
  );
  expect(counts.other).toBe(0);
  expect(counts.refused).toBeGreaterThan(0);
  const { rows } = await pool.query<{ t: number }>("SELECT extract(epoch FROM created_at) * 1000 AS t FROM tasks WHERE tenant = 'limited' ORDER BY created_at");
  const times = rows.map((r) => Number(r.t));
  expect(times.length).toBe(counts.admitted);
  let worst = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i]! - times[j]! >= WINDOW_S * 1000) j++;
    worst = Math.max(worst, i - j + 1);
  }
  expect(worst).toBeLessThanOrEqual((RATE * WINDOW_S + BURST) * 1.05);
  // And the limiter admits what it promises (not far below the rate over the whole run).
  expect(counts.admitted).toBeGreaterThanOrEqual(RATE * WINDOW_S);
});
