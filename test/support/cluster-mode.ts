/**
 * TEST_REDIS_MODE=cluster: the integration stack (stack.ts) runs on the test profile's Redis
 * Cluster (3 masters, 3 replicas) with the queue in TEST_PARTITIONS partitions. The cluster suites
 * (test/cluster/) set it and require an integration suite, so the same tests run on both.
 */
import Redis, { type Cluster } from 'ioredis';
import { splitAddr } from '../../services/core/config/parsers';
import { LocalRedisCluster } from './redis-cluster';
import { uniqueRedisPrefix } from './test-env';

/** Two partitions per master: what docs/redis-cluster.md advises. */
export const TEST_PARTITIONS = 6;

export const TEST_CLUSTER_PROFILE = 'test-cluster';

export function clusterMode(): boolean {
  return process.env.TEST_REDIS_MODE === 'cluster';
}

class TestCluster extends LocalRedisCluster {
  /** Deletes every key of a namespace (control slot and partitions), master by master (KEYS is per node). */
  async deleteKeys(prefix: string): Promise<void> {
    for (const addr of this.nodes) {
      const { host, port } = splitAddr(addr);
      const node = new Redis({ host, port, lazyConnect: false, maxRetriesPerRequest: 1 });
      try {
        if (!/role:master/.test(await node.info('replication'))) continue;
        // One DEL per hash tag (keys of different slots cannot share one): a partition loses all
        // its keys at once, as a single Redis loses the namespace.
        const byTag = new Map<string, string[]>();
        for (const pattern of [`{${prefix}}:*`, `{${prefix}:k*`]) {
          for (const key of await node.keys(pattern)) {
            const tag = key.slice(0, key.indexOf('}') + 1);
            byTag.set(tag, [...(byTag.get(tag) ?? []), key]);
          }
        }
        for (const keys of byTag.values()) await node.del(...keys);
      } finally {
        node.disconnect();
      }
    }
  }
}

/** The profiles of the clusters test files that stall a master run on: this, a dash and a jest worker id. */
export const STALLS_PROFILE_STEM = `${TEST_CLUSTER_PROFILE}-stalls`;

/**
 * The profile of the cluster this test file runs on. A file that stalls a master (CLIENT PAUSE)
 * sets TEST_CLUSTER_STALLS=1 and gets a cluster of its jest worker's own: on the shared one, the
 * cluster tests the other worker runs meanwhile would stall with it. A worker runs its files one
 * at a time, so they never stall each other.
 */
export function testClusterProfile(): string {
  return process.env.TEST_CLUSTER_STALLS === '1' ? `${STALLS_PROFILE_STEM}-${process.env.JEST_WORKER_ID ?? '1'}` : TEST_CLUSTER_PROFILE;
}

let shared: TestCluster | null = null;
let serving: Promise<void> | null = null;

/** The test file's cluster (testClusterProfile), started (or reused) once per test process; global-teardown stops it. */
export function testCluster(): TestCluster {
  if (!shared) shared = new TestCluster(testClusterProfile()).start();
  return shared;
}

/**
 * Resolves once `client` has written to every master `rounds` rounds in a row (48 tags land on
 * every master of three, each holding a third of the slots). A just-created cluster can still
 * change the slot map its first clients read, and a new client's node connections come up lazily:
 * a command in flight when either happens fails with "Connection is closed".
 */
async function settle(client: Cluster, rounds: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (let good = 0; good < rounds; ) {
    try {
      await Promise.all(Array.from({ length: 48 }, (_, i) => client.set(`{probe-${i}}:ready`, '1', 'PX', 5000)));
      good++;
    } catch (err) {
      good = 0;
      if (Date.now() > deadline) throw err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** testCluster(), once a probe client has written to every master three rounds in a row. */
export async function testClusterReady(): Promise<TestCluster> {
  const cluster = testCluster();
  serving ??= (async () => {
    const probe = cluster.client('test-cluster-probe');
    try {
      await settle(probe, 3);
    } finally {
      probe.disconnect();
    }
  })();
  await serving;
  return cluster;
}

/** A client of the ready test cluster whose own connections to every master are up and answering. */
export async function readyClient(name: string): Promise<Cluster> {
  const client = (await testClusterReady()).client(name);
  try {
    await settle(client, 2);
  } catch (err) {
    client.disconnect();
    throw err;
  }
  return client;
}

/**
 * A client of the ready test cluster for one test file, and a key prefix of each test's own whose
 * keys are deleted after it (read both inside a test, not at the file's top level).
 */
export function clusterClientFixture(name: string, stem: string): { readonly client: Cluster; readonly prefix: string } {
  let client: Cluster | undefined;
  let prefix = '';
  beforeAll(async () => {
    client = await readyClient(name);
  }, 120_000);
  afterAll(() => client?.disconnect());
  beforeEach(() => {
    prefix = uniqueRedisPrefix(stem);
  });
  afterEach(() => testCluster().deleteKeys(prefix));
  return {
    get client() {
      return client!;
    },
    get prefix() {
      return prefix;
    },
  };
}
