/** The operator CLI against a real Postgres: keys and tenants, exit statuses, nothing half-written. */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import path from 'node:path';
import { Pool } from 'pg';
import Redis from 'ioredis';
import { createRedis } from '../../services/core/db/redis';
import { createQueue } from '../../services/core/queue/create-queue';
import { hashKey } from '../../services/core/tenancy/api-key';
import { runCliCaptured } from '../support/cli-run';
import { createTestDatabase, TestDatabase, testRedisAddr, uniqueRedisPrefix } from '../support/test-env';

let db: TestDatabase;
let pool: Pool;
beforeAll(async () => {
  db = await createTestDatabase();
  pool = new Pool({ connectionString: db.url, max: 2 });
});
afterAll(async () => {
  await pool.end();
  await db.drop();
});

const cli = (...argv: string[]) => runCliCaptured(argv, { POSTGRES_URL: db.url });
const count = async (table: string) => (await pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n as number;

describe('keys', () => {
  it('create prints the key once and stores only its hash; creates the tenant', async () => {
    const r = await cli('keys', 'create', '--tenant', 'acme', '--scopes', 'tasks:write,tasks:read', '--expires-in', '30d', '--json');
    expect(r.code).toBe(0);
    const made = JSON.parse(r.out) as { id: string; tenant: string; scopes: string[]; key: string; expires_at: string };
    expect(made).toMatchObject({ tenant: 'acme', scopes: ['tasks:write', 'tasks:read'] });
    expect(made.key).toMatch(/^tsk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(made.key.slice(4, 20)).toBe(made.id);
    expect(Date.parse(made.expires_at) - Date.now()).toBeGreaterThan(29 * 86_400_000);
    const { rows } = await pool.query('SELECT secret_hash, row_to_json(k)::text AS text FROM api_keys k WHERE id = $1', [made.id]);
    expect(rows[0].secret_hash.equals(hashKey(made.key))).toBe(true);
    expect(rows[0].text).not.toContain(made.key.slice(21));
    expect((await pool.query("SELECT 1 FROM tenants WHERE name = 'acme'")).rowCount).toBe(1);

    const plain = await cli('keys', 'create', '--tenant', 'acme', '--scopes', 'admin');
    expect(plain.code).toBe(0);
    expect(plain.out).toMatch(/^tsk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}\n$/);
    expect(plain.err).toMatch(/shown only this once/);
  });

  it('create counts a description in characters, as the API and Postgres do', async () => {
    const emoji = '\u{1F511}';
    const made = await cli('keys', 'create', '--tenant', 'acme', '--scopes', 'tasks:read', '--description', emoji.repeat(150), '--json');
    expect(made.code).toBe(0);
    const { id } = JSON.parse(made.out) as { id: string };
    expect((await pool.query('SELECT description FROM api_keys WHERE id = $1', [id])).rows[0].description).toBe(emoji.repeat(150));
    const long = await cli('keys', 'create', '--tenant', 'acme', '--scopes', 'tasks:read', '--description', emoji.repeat(201));
    expect(long.code).not.toBe(0);
    expect(long.err).toMatch(/--description must be at most 200 characters/);
  });

  it('list shows keys without secrets, by tenant; revoke is idempotent', async () => {
    const made = JSON.parse((await cli('keys', 'create', '--tenant', 'listing', '--scopes', 'tasks:read', '--json')).out) as { id: string; key: string };
    const listed = JSON.parse((await cli('keys', 'list', '--tenant', 'listing', '--json')).out) as { id: string; revoked_at: string | null }[];
    expect(listed.map((k) => k.id)).toEqual([made.id]);
    expect(JSON.stringify(listed)).not.toContain(made.key.slice(21));
    const table = await cli('keys', 'list');
    expect(table.out).toMatch(/^ID\s+TENANT\s+SCOPES/);
    expect(table.out).toContain(made.id);
    expect((await cli('keys', 'revoke', made.id)).code).toBe(0);
    const first = (await pool.query('SELECT revoked_at FROM api_keys WHERE id = $1', [made.id])).rows[0].revoked_at as Date;
    expect((await cli('keys', 'revoke', made.id)).code).toBe(0);
    expect((await pool.query('SELECT revoked_at FROM api_keys WHERE id = $1', [made.id])).rows[0].revoked_at).toEqual(first);
    const missing = await cli('keys', 'revoke', '0123456789abcdef');
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/no key with id 0123456789abcdef/);
  });

  it.each([
    [['keys', 'create', '--scopes', 'tasks:read'], /--tenant is required/],
    [['keys', 'create', '--tenant', 'x'], /--scopes is required/],
    [['keys', 'create', '--tenant', 'Bad Name', '--scopes', 'tasks:read'], /--tenant must be/],
    [['keys', 'create', '--tenant', 'x', '--scopes', 'tasks:read,root'], /unknown scope "root"/],
    [['keys', 'create', '--tenant', 'x', '--scopes', 'tasks:read', '--expires-in', '30 days'], /--expires-in must be/],
    [['keys', 'create', '--tenant', 'x', '--scopes', 'tasks:read', '--bogus'], /bogus/],
    // A repeated option is refused, not taken at its last value (here: a read-only key turned admin).
    [['keys', 'create', '--tenant', 'x', '--scopes', 'tasks:read', '--scopes', 'admin'], /--scopes is given more than once/],
    [['keys', 'create', '--tenant', 'x', '--tenant=y', '--scopes', 'tasks:read'], /--tenant is given more than once/],
    [['tenants', 'set', 'x', '--max-running', '5', '--max-running', '0'], /--max-running is given more than once/],
    [['keys', 'revoke'], /missing the key ID/],
    [['keys', 'revoke', 'nope'], /ID must be a key id/],
    [['keys', 'rotate'], /unknown keys subcommand "rotate"/],
    [['keys'], /keys needs a subcommand/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['tenants', 'set'], /missing the tenant NAME/],
    [['tenants', 'set', 'x', '--weight', '0'], /--weight must be a whole number from 1 to 1000/],
    [['tenants', 'set', 'x', '--rate-limit', '-5'], /--rate-limit/],
    [['tenants', 'set', 'x', '--burst', '1.5'], /--burst must be a whole number/],
    [['tenants', 'set', 'x', '--max-running'], /--max-running/],
  ])('%j is a usage error (exit 2) that writes nothing', async (argv, message) => {
    const before = [await count('api_keys'), await count('tenants')];
    const r = await cli(...argv);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
    expect(r.err).toMatch(/usage: task-scheduler/);
    expect([await count('api_keys'), await count('tenants')]).toEqual(before);
  });
});

describe('tenants', () => {
  it('set creates or updates only the given limits; "default" clears one; list shows them', async () => {
    const r = await cli('tenants', 'set', 'noisy', '--rate-limit', '100', '--burst', '200', '--max-unfinished', '5000', '--max-running', '8', '--weight', '3', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ name: 'noisy', rate_limit: 100, burst: 200, max_unfinished: 5000, max_running: 8, weight: 3 });
    expect(JSON.parse((await cli('tenants', 'set', 'noisy', '--weight', '5', '--rate-limit', 'default', '--json')).out)).toMatchObject({
      rate_limit: null,
      burst: 200,
      max_unfinished: 5000,
      max_running: 8,
      weight: 5,
    });
    const listed = JSON.parse((await cli('tenants', 'list', '--json')).out) as { name: string }[];
    expect(listed.map((t) => t.name)).toEqual(expect.arrayContaining(['default', 'noisy']));
    expect((await cli('tenants', 'list')).out).toMatch(/^NAME\s+RATE_LIMIT/);
  });

  it('an unreachable Postgres is a failure (exit 1) naming the problem', async () => {
    const { code, err } = await runCliCaptured(['tenants', 'list'], { POSTGRES_URL: 'postgres://nobody@127.0.0.1:1/none' });
    expect(code).toBe(1);
    expect(err).toMatch(/ECONNREFUSED|connect/);
  });
});

describe('repartition', () => {
  let redis: Redis;
  const prefix = uniqueRedisPrefix('clirepart');
  const env = () => ({ REDIS_ADDR: testRedisAddr(), REDIS_KEY_PREFIX: prefix });
  const run = (argv: string[], e: NodeJS.ProcessEnv = env()) => runCliCaptured(['repartition', ...argv], e);
  beforeAll(() => {
    redis = createRedis({ addr: testRedisAddr(), name: 'cli-test', offlineQueue: true });
  });
  afterAll(async () => {
    for (const pattern of [`{${prefix}}:*`, `{${prefix}:k*`]) {
      const keys = await redis.keys(pattern);
      if (keys.length) await redis.del(...keys);
    }
    await redis.quit();
  });

  it('bad arguments or settings are usage errors (exit 2), one line, nothing touched', async () => {
    for (const [argv, message, e] of [
      [[], /--to is required/],
      [['--to', '0'], /--to must be a whole number from 1 to 256, got "0"/],
      [['--to', 'four'], /--to must be a whole number/],
      [['--to', '4', '--from', '300'], /--from must be a whole number/],
      [['--to', '4', '--bogus'], /bogus/],
      [['--to', '4', 'extra'], /unexpected argument "extra"/],
      [['--to', '4'], /REDIS_KEY_PREFIX="a:b"/, { REDIS_ADDR: testRedisAddr(), REDIS_KEY_PREFIX: 'a:b' }],
    ] as [string[], RegExp, NodeJS.ProcessEnv?][]) {
      const r = await run(argv, e);
      expect({ argv, code: r.code }).toEqual({ argv, code: 2 });
      expect(r.err).toMatch(message);
      expect(r.err.trim().split('\n')).toHaveLength(1);
    }
    expect(await redis.keys(`{${prefix}*`)).toEqual([]);
  });

  it('moves the queue, prints a summary (or --json), refuses while leases are held', async () => {
    const q = createQueue(redis, { prefix, strategy: 'weighted', weights: { critical: 8, high: 4, default: 2, low: 1 }, partitions: 1 });
    await q.enqueue(Array.from({ length: 12 }, (_, i) => ({ id: `cli-${i}`, tenant: `t${i % 4}`, type: 'noop', priority: 'default' as const, payload: {}, maxAttempts: 3, createdAtMs: Date.now(), attempts: 0 })));
    const r = await run(['--to', '3']);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toMatch(new RegExp(`^repartitioned prefix ${prefix} from 1 to 3 partition\\(s\\) in [\\d.]+s\n`));
    expect(r.out).toMatch(/tasks moved: 12 \(ready 12, retrying 0, dead 0\); tombstones 0\n {2}tenants: 4 \(4 changed partition\)/);
    expect(r.out).toMatch(/REDIS_PARTITIONS=3/);
    expect(await redis.get(`{${prefix}}:layout`)).toBe('3');
    const again = await run(['--to', '3', '--json']);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.out)).toMatchObject({ prefix, from: 3, to: 3, changed: false, tasks: 0 });

    const q3 = createQueue(redis, { prefix, strategy: 'weighted', weights: { critical: 8, high: 4, default: 2, low: 1 }, partitions: 3 });
    await q3.lease({ max: 2, visibilityMs: 60_000 });
    const refused = await run(['--to', '1']);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/^task-scheduler: refused: (1 lease\(s\) in \{[^}]*\}, )*\d lease\(s\) in \{[^}]*\}; stop every worker.*--force.*\n$/);
    expect(await redis.get(`{${prefix}}:layout`)).toBe('3');
    const forced = await run(['--to', '1', '--force', '--json']);
    expect(forced.code).toBe(0);
    expect(JSON.parse(forced.out)).toMatchObject({ from: 3, to: 1, changed: true, tasks: 10, ready: 10, leasesDropped: 2 });
  });

  it('an unreachable Redis is a failure (exit 1)', async () => {
    const r = await run(['--to', '2'], { REDIS_ADDR: '127.0.0.1:1', REDIS_KEY_PREFIX: prefix });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^task-scheduler: .*(ECONNREFUSED|not reachable|connect).*\n$/);
  });
});

it('runs as the built bin entry (npm run -s cli)', async () => {
  const main = path.resolve(__dirname, '../../dist/services/cli/main.js');
  const out = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [main, 'tenants', 'list', '--json'], { env: { PATH: process.env.PATH, POSTGRES_URL: db.url } }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
  expect(out.code).toBe(0);
  expect((JSON.parse(out.stdout) as { name: string }[]).map((t) => t.name)).toContain('default');
  const usage = await new Promise<number>((resolve) => execFile(process.execPath, [main, 'keys', 'create'], { env: { PATH: process.env.PATH } }, (error) => resolve(Number(error?.code ?? 0))));
  expect(usage).toBe(2);
});

it("docker-compose's dev-key service creates a working key and prints it", async () => {
  const root = path.resolve(__dirname, '../..');
  const compose = parse(readFileSync(path.join(root, 'docker-compose.yml'), 'utf8')) as { services: Record<string, { entrypoint?: string[]; command?: string[]; depends_on?: Record<string, { condition: string }> }> };
  const svc = compose.services['dev-key']!;
  expect(svc.entrypoint).toEqual(['/bin/sh', '-c']);
  expect(svc.depends_on?.migrator?.condition).toBe('service_completed_successfully');
  // Compose turns $$ into $; the command then runs in the image's /app, as here in the checkout.
  const script = svc.command![0]!.replace(/\$\$/g, '$');
  const out = await new Promise<string>((resolve, reject) =>
    execFile('/bin/sh', ['-c', script], { cwd: root, env: { PATH: process.env.PATH, POSTGRES_URL: db.url } }, (error, stdout) => (error ? reject(error) : resolve(stdout))),
  );
  const key = /(tsk_[0-9a-f]{16}_[A-Za-z0-9_-]{43})/.exec(out)?.[1];
  expect(key).toBeDefined();
  expect(out).toContain(`Authorization: Bearer ${key}`);
  const { rows } = await pool.query('SELECT tenant, scopes FROM api_keys WHERE id = $1', [key!.slice(4, 20)]);
  expect(rows[0]).toEqual({ tenant: 'default', scopes: ['tasks:write', 'tasks:read', 'admin'] });
});
