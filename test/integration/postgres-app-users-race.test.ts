/**
 * scripts/postgres-app-users.sh beside a migrator creating the same role: docker-compose starts the
 * postgres-users service and the migrator together, and migration 0006 creates task_scheduler_app
 * too ("whichever runs first"). The script must succeed when the role appears meanwhile; the api
 * and the worker wait for it to complete successfully. Roles belong to a whole Postgres cluster,
 * so this runs a private one (a local-services.sh profile of its own), where none exists yet.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { parseEnvFile, REPO_ROOT } from '../support/global-setup';

const services = path.join(REPO_ROOT, 'scripts/local-services.sh');
const profile = `app-users-${process.pid}`;
let adminUrl: string;

beforeAll(() => {
  const r = spawnSync('bash', [services, 'start', profile], { encoding: 'utf8', timeout: 180_000 });
  if (r.status !== 0) throw new Error(`local-services.sh start ${profile} failed:\n${r.stderr}`);
  adminUrl = parseEnvFile(readFileSync(path.join(REPO_ROOT, '.data', profile, 'env'), 'utf8')).PG_ADMIN_URL!;
}, 200_000);

afterAll(() => {
  spawnSync('bash', [services, 'stop', profile], { stdio: 'ignore' });
  rmSync(path.join(REPO_ROOT, '.data', profile), { recursive: true, force: true });
});

test('the script succeeds when the migrator creates task_scheduler_app while it runs', async () => {
  const u = new URL(adminUrl);
  // The migrator in the middle of migration 0006: the role is created, not yet committed.
  const migrator = new Client({ connectionString: adminUrl });
  await migrator.connect();
  await migrator.query('BEGIN');
  await migrator.query('CREATE ROLE task_scheduler_app NOLOGIN');

  const script = spawn('sh', [path.join(REPO_ROOT, 'scripts/postgres-app-users.sh')], {
    env: { PATH: process.env.PATH, PGHOST: u.hostname, PGPORT: u.port, PGUSER: 'postgres', PGDATABASE: 'postgres', API_DB_PASSWORD: 'api', WORKER_DB_PASSWORD: 'worker' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  script.stdout.on('data', (d: Buffer) => (output += d.toString()));
  script.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => script.on('exit', (code) => resolve(code)));

  // The script's CREATE ROLE waits on the migrator's transaction; then the migrator commits.
  const watcher = new Client({ connectionString: adminUrl });
  await watcher.connect();
  try {
    const waiting = async () =>
      (await watcher.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'psql' AND wait_event_type = 'Lock'")).rows[0].n === 1;
    while (!(await waiting())) {
      if (script.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await migrator.query('COMMIT');
    expect({ code: await exited, output }).toEqual({ code: 0, output: '' });
    const { rows } = await watcher.query(
      "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member WHERE m.roleid = 'task_scheduler_app'::regrole ORDER BY 1",
    );
    expect(rows.map((r) => r.rolname)).toEqual(['task_scheduler_api', 'task_scheduler_worker']);
  } finally {
    await migrator.end();
    await watcher.end();
  }
});
