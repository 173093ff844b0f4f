/**
 * The built api's /metrics while its Redis is connected but answers nothing (stopped with SIGSTOP:
 * what a blocked or partitioned Redis looks like from a client): the scrape is still answered,
 * with dependency_up{dependency="redis"} 0 for DependencyDown (and the api's other series).
 * The Redis is a private redis-server of this test, so stopping it stalls nobody else.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, killAllChildren, spawnService } from '../support/processes';
import { waitFor } from '../support/stack';
import { createTestDatabase, uniqueRedisPrefix, type TestDatabase } from '../support/test-env';

/** Prometheus's default scrape_timeout: a scrape not answered by then is a failed scrape. */
const SCRAPE_TIMEOUT_MS = 10_000;

let db: TestDatabase;
let redis: ChildProcess;
let dir: string;
let metricsUrl: string;
let apiUrl: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = mkdtempSync(path.join(os.tmpdir(), 'ts-stalled-redis-'));
  const redisPort = await freePort();
  redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const metricsPort = await freePort();
  metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  const apiPort = await freePort();
  apiUrl = `http://127.0.0.1:${apiPort}`;
  await spawnService('dist/services/api/main.js', {
    POSTGRES_URL: db.url,
    REDIS_ADDR: `127.0.0.1:${redisPort}`,
    REDIS_KEY_PREFIX: uniqueRedisPrefix('stalled'),
    API_ADDR: `127.0.0.1:${apiPort}`,
    METRICS_ADDR: `127.0.0.1:${metricsPort}`,
    AUTH_MODE: 'off',
    LOG_LEVEL: 'info',
  });
});

afterAll(async () => {
  redis?.kill('SIGCONT');
  redis?.kill('SIGKILL');
  await killAllChildren();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

const scrape = async () => (await fetch(metricsUrl, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) })).text();

it('a scrape while Redis stalls is answered, with dependency_up 0 for redis', async () => {
  // Connected to Redis (asked through /readyz, so no scrape has read and cached the gauges yet).
  const readyz = async () => ((await (await fetch(`${apiUrl}/readyz`)).json()) as { checks: Record<string, string> }).checks;
  await waitFor(async () => (await readyz().catch(() => null))?.redis === 'ok', 10_000, 'the api to reach Redis');

  redis.kill('SIGSTOP');
  const body = await scrape().catch((err: Error) => `no answer within the scrape timeout: ${err.message}`);
  expect(body).toMatch(/^dependency_up\{dependency="redis",service="api"\} 0$/m);
  expect(body).toMatch(/^dependency_up\{dependency="postgres",service="api"\} 1$/m);
  expect(body).toMatch(/^http_requests_total\{route="\/readyz",method="GET",status="200",service="api"\} \d+$/m);
});
