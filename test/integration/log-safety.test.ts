/**
 * No log line carries a payload, an idempotency key or a secret, whatever failed (issue 15). Real
 * failures are provoked with a marker in what they would leak: a Redis that refuses writes (a
 * replica: every script that writes answers READONLY, and ioredis attaches the command with all its
 * arguments to the error), a Redis AUTH with a wrong password, Postgres statements whose errors
 * quote values in their message or detail, and the API's 500 path. The lines must still say what
 * failed. The built api is spawned for the end-to-end half: run `npm run build` first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Pool } from 'pg';
import Redis from 'ioredis';
import { createPgPool } from '../../services/core/db/postgres';
import { createLogger } from '../../services/core/observability/logger';
import { RedisQueue } from '../../services/core/queue/redis-queue';
import { freePort, killAllChildren, spawnService, type ChildHandle } from '../support/processes';
import { silentLog, waitFor } from '../support/stack';
import { createTestDatabase, uniqueRedisPrefix, type TestDatabase } from '../support/test-env';

const MARKER = `mk${randomBytes(8).toString('hex')}`;
const REDIS_PASSWORD = `pw${randomBytes(8).toString('hex')}`;

let db: TestDatabase;
let pool: Pool;
let readOnlyRedis: ChildProcess;
let readOnlyPort = 0;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPgPool(db.url, 4, 'log-safety', silentLog);
  // A replica of a master that does not exist: reads and PING answer, every write is refused.
  readOnlyPort = await freePort();
  const noMaster = await freePort();
  readOnlyRedis = spawn(
    'redis-server',
    ['--port', String(readOnlyPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--replicaof', '127.0.0.1', String(noMaster), '--requirepass', REDIS_PASSWORD],
    { stdio: 'ignore' },
  );
  const probe = new Redis({ port: readOnlyPort, host: '127.0.0.1', password: REDIS_PASSWORD, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
  probe.on('error', () => undefined);
  // connect() refuses while a reconnect (retryStrategy) is under way, so a server slow to start is
  // found by the client's own retries: its status turns ready.
  await waitFor(async () => probe.status === 'ready' || (probe.status === 'wait' || probe.status === 'end' ? probe.connect().then(() => true, () => false) : false), 10_000, 'the read-only Redis');
  probe.disconnect();
});

afterAll(async () => {
  await killAllChildren();
  readOnlyRedis?.kill('SIGKILL');
  await pool?.end();
  await db?.drop();
});

/** The project's logger, writing its lines to memory. */
function capturingLogger(): { log: ReturnType<typeof createLogger>; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger('test', 'debug', { write: (s: string) => void lines.push(s) }), lines };
}

function parsed(lines: string[]): Record<string, unknown>[] {
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
}

function expectNoMarker(text: string[] | string, marker = MARKER): void {
  const lines = typeof text === 'string' ? text.split('\n') : text;
  expect(lines.filter((l) => l.includes(marker))).toEqual([]);
}

/** `fn`'s rejection (it must reject). */
async function failure(fn: () => Promise<unknown>): Promise<Error> {
  try {
    await fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a failure');
}

/** Logs `err` every way the services do: under err (with and without a message), as the only argument, under error and under another key. */
function logEveryWay(log: ReturnType<typeof createLogger>, err: Error): void {
  log.error({ err, count: 1 }, 'it failed');
  log.error({ err });
  log.error(err);
  log.warn({ error: err }, 'under error');
  log.warn({ reason: err }, 'under another key');
}

describe('the logger, with real errors', () => {
  it('a Redis write refused: the command and its arguments (the payloads) stay out, the reply is logged', async () => {
    const redis = new Redis({ port: readOnlyPort, host: '127.0.0.1', password: REDIS_PASSWORD, maxRetriesPerRequest: 0 });
    try {
      const queue = new RedisQueue(redis, { prefix: uniqueRedisPrefix('logsafety'), strategy: 'weighted', weights: { critical: 8, high: 4, default: 2, low: 1 } });
      const err = await failure(() =>
        queue.enqueue([{ id: '0190b5d2-0000-7000-8000-000000000001', tenant: 'default', type: 'noop', priority: 'high', payload: { secret: MARKER }, maxAttempts: 3, createdAtMs: Date.now(), attempts: 0 }]),
      );
      // The error does carry it: that is what must not reach a line.
      expect(JSON.stringify(err)).toContain(MARKER);
      const { log, lines } = capturingLogger();
      logEveryWay(log, err);
      expectNoMarker(lines);
      for (const line of parsed(lines)) {
        const logged = (line.err ?? line.error ?? line.reason) as Record<string, unknown>;
        expect(logged).toMatchObject({ type: 'ReplyError', message: expect.stringMatching(/^READONLY You can't write against a read only replica/) });
        expect(logged.stack).toMatch(/^ReplyError: READONLY[^\n]*\n\s+at /);
        expect(logged).not.toHaveProperty('command');
      }
      expect(parsed(lines).map((l) => l.msg)).toEqual(['it failed', expect.stringMatching(/^READONLY/), expect.stringMatching(/^READONLY/), 'under error', 'under another key']);
    } finally {
      redis.disconnect();
    }
  });

  it('a Redis AUTH refused: the password stays out', async () => {
    const redis = new Redis({ port: readOnlyPort, host: '127.0.0.1', password: MARKER, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    const { log, lines } = capturingLogger();
    const seen: Error[] = [];
    redis.on('error', (err: Error) => {
      seen.push(err);
      log.warn({ err }, 'redis connection error');
    });
    await redis.connect().catch(() => undefined);
    await waitFor(async () => seen.length > 0, 5000, 'the AUTH error');
    redis.disconnect();
    expect(JSON.stringify(seen[0])).toContain(MARKER);
    expectNoMarker(lines);
    expect(parsed(lines)[0]!.err).toMatchObject({ type: 'ReplyError', message: expect.stringMatching(/^WRONGPASS/) });
  });

  it('Postgres: a value quoted in the message, a key in the detail', async () => {
    const invalid = await failure(() => pool.query('SELECT $1::uuid', [MARKER]));
    expect(invalid.message).toContain(MARKER);
    await pool.query('CREATE TABLE log_safety_keys (key text PRIMARY KEY)');
    await pool.query('INSERT INTO log_safety_keys VALUES ($1)', [MARKER]);
    const duplicate = await failure(() => pool.query('INSERT INTO log_safety_keys VALUES ($1)', [MARKER]));
    expect((duplicate as unknown as { detail: string }).detail).toContain(MARKER);
    const { log, lines } = capturingLogger();
    logEveryWay(log, invalid);
    logEveryWay(log, duplicate);
    expectNoMarker(lines);
    const [first] = parsed(lines);
    expect(first!.err).toMatchObject({ type: 'DatabaseError', code: '22P02', severity: 'ERROR', routine: expect.any(String), message: 'invalid input syntax for type uuid […]' });
    expect(parsed(lines)[5]!.err).toMatchObject({ code: '23505', constraint: 'log_safety_keys_pkey', table: 'log_safety_keys', message: 'duplicate key value violates unique constraint […]' });
    for (const line of parsed(lines)) expect(line.err ?? line.error ?? line.reason).not.toHaveProperty('detail');
  });

  it('a JSON parse error and a thrown string are cut at their first quoted value', () => {
    let parseError: Error | undefined;
    try {
      JSON.parse(`${MARKER}{`);
    } catch (err) {
      parseError = err as Error;
    }
    const { log, lines } = capturingLogger();
    logEveryWay(log, parseError!);
    log.error({ err: `value "${MARKER}" refused` }, 'a string');
    expectNoMarker(lines);
    expect(parsed(lines)[0]!.err).toMatchObject({ type: 'SyntaxError' });
    expect(parsed(lines)[5]!.err).toBe('value […]');
  });
});

describe('the api process, LOG_LEVEL=debug', () => {
  let api: ChildHandle;
  let url = '';

  beforeAll(async () => {
    // Statements that fail with the row's or the key's values in their detail: the 500 path.
    await pool.query(`ALTER TABLE tasks ADD CONSTRAINT log_safety_no_boom CHECK (payload->>'boom' IS NULL) NOT VALID`);
    await pool.query(`CREATE UNIQUE INDEX log_safety_unique ON tasks ((payload->>'unique'))`);
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    api = await spawnService('dist/services/api/main.js', {
      POSTGRES_URL: db.url,
      REDIS_ADDR: `127.0.0.1:${readOnlyPort}`,
      REDIS_PASS: REDIS_PASSWORD,
      REDIS_KEY_PREFIX: uniqueRedisPrefix('logsafetyapi'),
      API_ADDR: `127.0.0.1:${port}`,
      METRICS_ADDR: `127.0.0.1:${await freePort()}`,
      LOG_LEVEL: 'debug',
      // Its requests carry the marker as their bearer token: they must reach the routes' error paths.
      AUTH_MODE: 'off',
    });
  });

  afterAll(async () => {
    await api?.stop();
  });

  const post = (path: string, body: unknown, key?: string) =>
    fetch(`${url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${MARKER}`, 'x-client-note': MARKER, ...(key ? { 'idempotency-key': key } : {}) },
      body: JSON.stringify(body),
    });

  /** The api's output, once a line matching `what` appeared. */
  const outputWith = (what: RegExp) => waitFor(async () => (what.test(api.output()) ? api.output() : null), 5000, `a line matching ${what}`);

  it('a push Redis refuses: the task is accepted, and the line names the failure without the payload or key', async () => {
    const res = await post('/tasks', { type: 'noop', payload: { secret: MARKER } }, `key-${MARKER}`);
    expect(res.status).toBe(201);
    const batch = await post('/tasks/batch', { tasks: [{ type: 'noop', payload: { secret: MARKER }, idempotency_key: `batch-${MARKER}` }] });
    expect(batch.status).toBe(200);
    // One line: the batch's failed push follows within LogThrottle's interval, so it is held back
    // and counted in the next line (both go through the same line, which the first shows).
    await outputWith(/tasks stored but not queued/);
    await new Promise((r) => setTimeout(r, 300));
    const out = api.output();
    expectNoMarker(out);
    const line = out.split('\n').find((l) => l.includes('tasks stored but not queued'))!;
    expect(JSON.parse(line).err).toMatchObject({ type: 'ReplyError', message: expect.stringMatching(/^READONLY/) });
  });

  it('statements failing with values in their detail answer 500, and the lines give code and constraint only', async () => {
    const check = await post('/tasks', { type: 'noop', payload: { boom: MARKER } }, `boom-${MARKER}`);
    expect(check.status).toBe(500);
    expect(await post('/tasks', { type: 'noop', payload: { unique: MARKER } })).toHaveProperty('status', 201);
    const duplicate = await post('/tasks', { type: 'noop', payload: { unique: MARKER } }, `dup-${MARKER}`);
    expect(duplicate.status).toBe(500);
    const out = await outputWith(/"code":"23505"[\s\S]*request failed|request failed[\s\S]*"code":"23505"/);
    expectNoMarker(out);
    const failed = out.split('\n').filter((l) => l.includes('"msg":"request failed"')).map((l) => JSON.parse(l).err as Record<string, unknown>);
    expect(failed).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ code: '23514', constraint: 'log_safety_no_boom', table: 'tasks' }),
        expect.objectContaining({ code: '23505', constraint: 'log_safety_unique', table: 'tasks' }),
      ]),
    );
  });
});
