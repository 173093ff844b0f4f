/**
 * Jest globalTeardown: drops this run's template database and, if this run started the private
 * services, stops them again. Services that were already running (a developer's
 * `scripts/local-services.sh start test`, or another run) are left alone, as they are when
 * KEEP_TEST_SERVICES is set (handy to keep them warm between runs or to inspect them afterwards).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { STALLS_PROFILE_STEM, TEST_CLUSTER_PROFILE } from './cluster-mode';
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

  // The cluster suites' clusters (test/support/cluster-mode.ts), each started by the first file that used it.
  const data = path.join(REPO_ROOT, '.data');
  const stalls = existsSync(data) ? readdirSync(data).filter((d) => d.startsWith(`${STALLS_PROFILE_STEM}-`)) : [];
  for (const profile of [TEST_CLUSTER_PROFILE, ...stalls]) {
    if (process.env.KEEP_TEST_SERVICES || otherRunsActive || !existsSync(path.join(data, profile, 'env'))) continue;
    execFileSync('bash', [path.join(REPO_ROOT, 'scripts/local-services.sh'), 'cluster-stop', profile], {
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
