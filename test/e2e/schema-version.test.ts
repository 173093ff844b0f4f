/**
 * The built api and worker check the database's schema at start-up: one older than the build's
 * newest migration (the migrator has not run) is refused with a clear message; a newer one (a
 * rolling upgrade's migrator ran first) is accepted.
 */
import { Client } from 'pg';
import { bundledSchemaVersion } from '../../services/migrator/migrate';
import { freePort, spawnService } from '../support/processes';
import { createTestDatabase, TestDatabase, testRedisAddr, uniqueRedisPrefix } from '../support/test-env';

let db: TestDatabase;
beforeEach(async () => {
  db = await createTestDatabase();
});
afterEach(async () => {
  await db.drop();
});

async function sql(text: string): Promise<void> {
  const c = new Client({ connectionString: db.url });
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}

const env = async (): Promise<Record<string, string>> => ({
  POSTGRES_URL: db.url,
  REDIS_ADDR: testRedisAddr(),
  REDIS_KEY_PREFIX: uniqueRedisPrefix('schema'),
  API_ADDR: `127.0.0.1:${await freePort()}`,
  METRICS_ADDR: `127.0.0.1:${await freePort()}`,
  AUTH_MODE: 'off',
});

it.each(['api', 'worker'])('the %s refuses a database whose schema is older than its newest migration', async (service) => {
  const newest = bundledSchemaVersion();
  await sql(`DELETE FROM schema_migrations WHERE version = ${newest}`);
  // The one before it (numbers may skip).
  const c = new Client({ connectionString: db.url });
  await c.connect();
  const previous = (await c.query<{ v: number }>('SELECT max(version)::int AS v FROM schema_migrations').finally(() => c.end())).rows[0]!.v;
  const outcome = await spawnService(`dist/services/${service}/main.js`, await env(), { timeoutMs: 15_000 }).then(
    async (child) => {
      await child.stop('SIGKILL');
      return 'started';
    },
    (err: Error) => err.message,
  );
  expect(outcome).toMatch(new RegExp(`exited \\(code 1[\\s\\S]*schema is at version ${previous}, older than this build's ${newest}: run the migrator first`));
});

it.each(['api', 'worker'])('the %s starts on a newer schema (a rolling upgrade migrated first)', async (service) => {
  await sql("INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, '9999_from_the_next_release.sql', 'x')");
  const child = await spawnService(`dist/services/${service}/main.js`, await env(), { timeoutMs: 15_000 });
  const code = await child.stop('SIGTERM', 15_000);
  expect({ code, output: code === 0 ? '' : child.output() }).toEqual({ code: 0, output: '' });
});
