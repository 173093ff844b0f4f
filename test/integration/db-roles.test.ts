/**
 * The api and the worker need rows, not the schema: logged in as users that are only members of
 * task_scheduler_app (migration 0006), each with its own login, the built services bootstrap their
 * admin key, accept, run, retry and finish tasks, while every schema change is refused to such a
 * user, and so is rewriting the record of applied migrations. Tables a later migration creates get
 * the same rights. The worker says once what its stats refresher cannot do then. Run `npm run build` first.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Client } from 'pg';
import { AUTH_ENV, AUTH_HEADER } from '../support/auth';
import { freePort, killAllChildren, spawnService, type ChildHandle } from '../support/processes';
import { waitFor } from '../support/stack';
import { createTestDatabase, testRedisAddr, uniqueRedisPrefix, type TestDatabase } from '../support/test-env';

const suffix = randomBytes(4).toString('hex');
const apiUser = `ts_api_${suffix}`;
const workerUser = `ts_worker_${suffix}`;

let db: TestDatabase;
let owner: Client;
let worker: ChildHandle;
let apiPort = 0;

/** The test database's URL with another user (the test server trusts loopback connections). */
function urlAs(user: string): string {
  const u = new URL(db.url);
  u.username = user;
  return u.toString();
}

async function connectAs(user: string): Promise<Client> {
  const c = new Client({ connectionString: urlAs(user) });
  await c.connect();
  return c;
}

beforeAll(async () => {
  db = await createTestDatabase();
  // The owner: the user the migrations ran as (the test template's superuser).
  owner = new Client({ connectionString: db.url });
  await owner.connect();
  for (const user of [apiUser, workerUser]) await owner.query(`CREATE ROLE ${user} LOGIN IN ROLE task_scheduler_app`);
  // Enough rows that the stats refresher finds `tasks` stale at once (finished: nothing to run),
  // and no autovacuum on it: an autovacuum ANALYZE first would leave nothing stale to warn about.
  await owner.query('ALTER TABLE tasks SET (autovacuum_enabled = false)');
  await owner.query(`INSERT INTO tasks (id, type, priority, max_retries, status)
                     SELECT gen_random_uuid(), 'noop', 'low', 0, 'succeeded' FROM generate_series(1, 1500)`);
  const env = { REDIS_ADDR: testRedisAddr(), REDIS_KEY_PREFIX: uniqueRedisPrefix('roles'), RETRY_BASE_MS: '10', RETRY_MAX_MS: '20', RETRY_JITTER_MS: '0', LOG_LEVEL: 'info' };
  apiPort = await freePort();
  await spawnService('dist/services/api/main.js', { ...env, ...AUTH_ENV, POSTGRES_URL: urlAs(apiUser), API_ADDR: `127.0.0.1:${apiPort}`, METRICS_ADDR: `127.0.0.1:${await freePort()}` });
  worker = await spawnService('dist/services/worker/main.js', { ...env, POSTGRES_URL: urlAs(workerUser), METRICS_ADDR: `127.0.0.1:${await freePort()}` });
});

afterAll(async () => {
  await killAllChildren();
  await owner?.end();
  await db?.drop();
  // Roles belong to the cluster; the database (and every session in it) is gone by now.
  const admin = new Client({ connectionString: process.env.TEST_PG_ADMIN_URL });
  await admin.connect();
  for (const user of [apiUser, workerUser, 'task_scheduler_api', 'task_scheduler_worker']) await admin.query(`DROP ROLE IF EXISTS ${user}`);
  await admin.end();
});

async function post(body: unknown): Promise<Response> {
  return fetch(`http://127.0.0.1:${apiPort}/tasks`, { method: 'POST', headers: { 'content-type': 'application/json', ...AUTH_HEADER }, body: JSON.stringify(body) });
}

async function statusOf(id: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${apiPort}/tasks/${id}`, { headers: AUTH_HEADER });
  return ((await res.json()) as { status: string }).status;
}

it('the api and worker, each with its own DML-only login, serve real traffic', async () => {
  const ids: string[] = [];
  for (const body of [{ type: 'noop' }, { type: 'flaky', payload: { fail_attempts: 1 }, max_retries: 2 }, { type: 'noop', idempotency_key: 'once' }]) {
    const res = await post(body);
    expect(res.status).toBe(201);
    ids.push(((await res.json()) as { id: string }).id);
  }
  const replay = await post({ type: 'noop', idempotency_key: 'once' });
  expect(((await replay.json()) as { id: string }).id).toBe(ids[2]);
  for (const id of ids) await waitFor(async () => (await statusOf(id)) === 'succeeded', 20_000, `task ${id} to succeed`);
  const { rows } = await owner.query<{ usename: string; n: string }>(
    'SELECT usename, count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND usename IN ($1, $2) GROUP BY usename ORDER BY usename',
    [apiUser, workerUser],
  );
  expect(rows.map((r) => r.usename)).toEqual([apiUser, workerUser]);
});

it('every schema change, and rewriting schema_migrations, is refused to such a user', async () => {
  const app = await connectAs(workerUser);
  try {
    for (const ddl of [
      'CREATE TABLE intruder (x int)',
      'ALTER TABLE tasks ADD COLUMN intruder int',
      'DROP TABLE task_runs',
      'TRUNCATE tasks',
      'CREATE INDEX intruder_idx ON tasks (type)',
      'ALTER TABLE api_keys DISABLE TRIGGER ALL',
      "INSERT INTO schema_migrations (version, name, checksum) VALUES (999, '0999_x.sql', 'x')",
      'DELETE FROM schema_migrations',
      'CREATE SCHEMA intruder',
    ]) {
      await expect(app.query(ddl)).rejects.toMatchObject({ code: '42501' });
    }
    // Reading the schema version is allowed: pods wait for it with their own credentials.
    expect((await app.query('SELECT max(version) AS v FROM schema_migrations')).rows[0].v).toBeGreaterThanOrEqual(6);
  } finally {
    await app.end();
  }
});

it('a table a later migration creates (as the owner) gets the same rights', async () => {
  await owner.query('CREATE TABLE later_table (id int PRIMARY KEY)');
  const app = await connectAs(apiUser);
  try {
    await app.query('INSERT INTO later_table VALUES (1)');
    await app.query('UPDATE later_table SET id = 2');
    expect((await app.query('DELETE FROM later_table RETURNING id')).rows).toEqual([{ id: 2 }]);
    await expect(app.query('DROP TABLE later_table')).rejects.toMatchObject({ code: '42501' });
  } finally {
    await app.end();
  }
});

it('the worker says once that its stats refresher cannot ANALYZE, and what that costs', async () => {
  const pattern = /"msg":"cannot ANALYZE these tables[^"]*autovacuum[^"]*MAINTAIN/;
  await waitFor(async () => pattern.test(worker.output()), 15_000, 'the stats refresher warning');
  expect(worker.output().match(new RegExp(pattern.source, 'g'))).toHaveLength(1);
  expect(worker.output()).toMatch(/"tables":\["tasks"/);
});

it('scripts/postgres-app-users.sh (docker-compose, the dev chart) makes the two logins, members of task_scheduler_app, and may run again', async () => {
  const admin = new URL(process.env.TEST_PG_ADMIN_URL!);
  const run = (apiPassword: string) =>
    execFileSync('sh', [path.resolve(__dirname, '../../scripts/postgres-app-users.sh')], {
      env: { PATH: process.env.PATH ?? '', PGHOST: admin.hostname, PGPORT: admin.port, PGUSER: admin.username, PGDATABASE: db.name, API_DB_PASSWORD: apiPassword, WORKER_DB_PASSWORD: 'w-password' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  run('first-password');
  run('second-password');
  const { rows } = await owner.query<{ rolname: string; rolcanlogin: boolean; rolsuper: boolean; member: boolean; password: string }>(
    `SELECT rolname, rolcanlogin, rolsuper, pg_has_role(rolname, 'task_scheduler_app', 'MEMBER') AS member, rolpassword AS password
       FROM pg_authid WHERE rolname IN ('task_scheduler_api', 'task_scheduler_worker') ORDER BY rolname`,
  );
  expect(rows.map(({ password, ...r }) => ({ ...r, hasPassword: /^SCRAM-SHA-256\$|^md5/.test(password) }))).toEqual([
    { rolname: 'task_scheduler_api', rolcanlogin: true, rolsuper: false, member: true, hasPassword: true },
    { rolname: 'task_scheduler_worker', rolcanlogin: true, rolsuper: false, member: true, hasPassword: true },
  ]);
});
