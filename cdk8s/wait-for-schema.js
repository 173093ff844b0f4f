// Init container of the api and worker pods (run as `node -e` in their own image, cwd /app):
// waits until the migrator has brought schema_migrations to EXPECTED_SCHEMA_VERSION, so a new pod
// never serves against an old schema. Polls every WAIT_INTERVAL_MS (default 2000) forever; the
// Deployment's progress deadline bounds the wait. The URL's TLS parameters mean what they mean to
// the services (the image's compiled services/core/db/postgres-connection.js reads them).
const { Client } = require('pg');
const { postgresConnection } = require('./dist/services/core/db/postgres-connection');
const want = Number(process.env.EXPECTED_SCHEMA_VERSION);
const every = Number(process.env.WAIT_INTERVAL_MS || 2000);
const log = (msg, extra) => console.log(JSON.stringify({ msg, want, ...extra }));
async function version() {
  const client = new Client({ ...postgresConnection(process.env.POSTGRES_URL), connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    const { rows } = await client.query('SELECT coalesce(max(version), 0) AS v FROM schema_migrations');
    return Number(rows[0].v);
  } finally {
    await client.end().catch(() => {});
  }
}
(async () => {
  if (!Number.isInteger(want) || want < 1) throw new Error('EXPECTED_SCHEMA_VERSION must be a positive integer');
  for (;;) {
    try {
      const v = await version();
      if (v >= want) return log('schema ready', { version: v });
      log('waiting for schema', { version: v });
    } catch (err) {
      log('waiting for schema', { error: err.message });
    }
    await new Promise((r) => setTimeout(r, every));
  }
})().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
