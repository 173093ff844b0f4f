/**
 * Jest globalTeardown: drops this run's template database and, if this run started the private
 * services, stops them again. Services that were already running (a developer's
 * `scripts/local-services.sh start test`, or another run) are left alone, as they are when
 * KEEP_TEST_SERVICES is set (handy to keep them warm between runs or to inspect them afterwards).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { TEST_CLUSTER_PROFILE } from './cluster-mode';
import { isAlive, REPO_ROOT, STATE_KEY, type TestServicesState } from './global-setup';

export default async function globalTeardown(): Promise<void> {
  const state = (globalThis as Record<string, unknown>)[STATE_KEY] as TestServicesState | undefined;
  if (!state) return;

  const admin = new Client({ connectionString: state.adminUrl, application_name: 'jest-global-teardown' });
  let otherRunsActive = false;
  await admin.connect();
  try {
    // A template database cannot be dropped until it is demoted.
    await admin.query(`ALTER DATABASE "${state.template}" WITH IS_TEMPLATE false`);
    await admin.query(`DROP DATABASE IF EXISTS "${state.template}" WITH (FORCE)`);
    // Another jest run in this clone may have reused the services we started (its template is
    // named after its pid); stopping them would pull the floor from under it.
    const { rows } = await admin.query<{ datname: string }>(String.raw`SELECT datname FROM pg_database WHERE datname ~ '^ts_template_\d+_'`);
    otherRunsActive = rows.some(({ datname }) => isAlive(Number(datname.split('_')[2])));
  } finally {
    await admin.end();
  }

  // The cluster suites' cluster (test/support/cluster-mode.ts), started by the first of them.
  if (!process.env.KEEP_TEST_SERVICES && !otherRunsActive && existsSync(path.join(REPO_ROOT, '.data', TEST_CLUSTER_PROFILE, 'env'))) {
    execFileSync('bash', [path.join(REPO_ROOT, 'scripts/local-services.sh'), 'cluster-stop', TEST_CLUSTER_PROFILE], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  }
  if (state.startedServices && !process.env.KEEP_TEST_SERVICES && !otherRunsActive) {
    execFileSync('bash', [path.join(REPO_ROOT, 'scripts/local-services.sh'), 'stop', 'test'], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  }
}
