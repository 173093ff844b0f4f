/**
 * Fault scenarios on a Redis Cluster (3 masters with a replica each, a profile of this file's own):
 * real api and worker processes with the queue in 6 partitions, a mixed workload from 24 tenants
 * (spread over every master), and a master failing over mid-run (killed, or handed over), or a
 * worker killed while it holds leases in several partitions. Afterwards every accepted task is
 * final, in its expected state, succeeded at most once (test/support/fault-scenario.ts).
 */
import { killAllChildren } from '../support/processes';
import { runScenario, Row, ScenarioServices } from '../support/fault-scenario';
import { mixedPlan } from '../support/load-driver';
import { LocalRedisCluster } from '../support/redis-cluster';
import { createTestDatabase, TestDatabase } from '../support/test-env';

const PARTITIONS = 6;
const TENANTS = 24;
/** Half of test/faults' workload per scenario: three scenarios within the suite's time. */
const TASKS = Number(process.env.FAULT_TASKS ?? 1000);

class ClusterServices implements ScenarioServices {
  readonly cluster = new LocalRedisCluster('cluster-faults');
  private readonly dbs: TestDatabase[] = [];

  async createDatabase(): Promise<string> {
    const db = await createTestDatabase();
    this.dbs.push(db);
    return db.url;
  }

  redisEnv(): Record<string, string> {
    return { REDIS_ADDR: '127.0.0.1:1', REDIS_CLUSTER_NODES: this.cluster.nodes.join(','), REDIS_PARTITIONS: String(PARTITIONS) };
  }

  async close(): Promise<void> {
    await Promise.all(this.dbs.map((db) => db.drop()));
  }
}

const svc = new ClusterServices();
const rows: Row[] = [];

beforeAll(() => svc.cluster.start(), 120_000);
afterAll(async () => {
  await killAllChildren();
  svc.cluster.stop();
  await svc.close();
});

jest.setTimeout(180_000);

/** The mixed workload, each task posted as one of TENANTS tenants (the admin key names it). */
const plan = (label: string) => mixedPlan(TASKS, label).map((p, i) => ({ ...p, tenant: `tenant-${i % TENANTS}` }));

it('a master killed mid-run: its replica takes over, nothing accepted is lost, nothing succeeds twice', async () => {
  const row = await runScenario(svc, rows, 'cluster master killed', async ({ svc: s }) => {
    s.cluster.failover(0, 'kill');
  }, { plan: plan('master-killed') });
  expect(row.lost).toBe(0);
  // The killed node comes back as a replica: the cluster is whole again for the next scenario.
  svc.cluster.start();
  expect(svc.cluster.healthy()).toBe(true);
});

it('a manual failover mid-run (CLUSTER FAILOVER): nothing accepted is lost, nothing succeeds twice', async () => {
  const row = await runScenario(svc, rows, 'cluster manual failover', async ({ svc: s }) => {
    s.cluster.failover(1, 'manual');
  }, { plan: plan('manual-failover') });
  expect(row.lost).toBe(0);
});

it('SIGKILL a worker holding leases in every partition: the others reap them and finish its tasks', async () => {
  const row = await runScenario(svc, rows, 'cluster worker SIGKILL', async ({ set }) => {
    set.workers[0]!.kill();
    await set.workers[0]!.exited;
  }, { plan: plan('worker-kill') });
  expect(row.lost).toBe(0);
});
