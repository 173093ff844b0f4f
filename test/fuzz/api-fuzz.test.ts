/**
 * Hostile input, item 9 of issue 15, and keys and tenants (issue 16): ≥ 20,000 generated and
 * mutated requests (bodies, encodings, headers, methods, paths, idempotency keys, batches, bursts,
 * broken framing; API keys of two tenants with several scope sets, an admin key, revoked and
 * expired keys, hostile Authorization and Tenant values) against the built api (AUTH_MODE=keys)
 * and a worker. No 5xx but load shedding, no exit, every error a problem body, the status the
 * credential calls for, no key's secret in any answer, WWW-Authenticate on every 401, and
 * afterwards every task row answered 201 exactly once, final, and its tenant's: no answer to one
 * tenant (created, replayed, read) ever named another's task. A failure prints its seed:
 * FUZZ_SEED=<n> replays it.
 */
import { createRedis } from '../../services/core/db/redis';
import { killAllChildren } from '../support/processes';
import { createTestDatabase, TestDatabase, testRedisAddr, uniqueRedisPrefix } from '../support/test-env';
import { formatReport, runFuzz } from './run';

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
const REQUESTS = Number(process.env.FUZZ_REQUESTS ?? 20_000);
// The limit's edges are what is tested, not its size; bodies built to a smaller limit cost less to build and read.
const MAX_BODY_BYTES = 256 * 1024;
const prefix = uniqueRedisPrefix('fuzz');

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await killAllChildren();
  const redis = createRedis({ addr: testRedisAddr(), name: 'fuzz-cleanup', offlineQueue: true });
  const keys = await redis.keys(`{${prefix}}:*`);
  if (keys.length) await redis.del(...keys);
  await redis.quit();
  await db.drop();
});

it(`answers ${REQUESTS} hostile requests without a 5xx, a crash, a malformed answer or an untold task (seed ${SEED})`, async () => {
  const report = await runFuzz({ seed: SEED, requests: REQUESTS, concurrency: 32, dbUrl: db.url, redisAddr: testRedisAddr(), redisPrefix: prefix, drainTimeoutMs: 60_000, apiEnv: { MAX_BODY_BYTES: String(MAX_BODY_BYTES) } });
  const text = formatReport(report);
  expect(report.sent).toBeGreaterThanOrEqual(REQUESTS);
  if (report.violations.length > 0) throw new Error(`${report.violations.length} kinds of violation\n${text}`);
  // The summary is worth seeing on success too: statuses, load shedding, tasks, time.
  console.log(text);
}, 300_000);
