/**
 * TEST_REDIS_MODE=cluster: the integration stack (stack.ts) runs on the test profile's Redis
 * Cluster (3 masters, 3 replicas) with the queue in TEST_PARTITIONS partitions. The cluster suites
 * (test/cluster/) set it and require an integration suite, so the same tests run on both.
 */
import Redis from 'ioredis';
import { splitAddr } from '../../services/core/config/parsers';
import { LocalRedisCluster } from './redis-cluster';

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

let shared: TestCluster | null = null;
let serving: Promise<void> | null = null;

/** The test profile's cluster, started (or reused) once per test process; global-teardown stops it. */
export function testCluster(): TestCluster {
  if (!shared) shared = new TestCluster(TEST_CLUSTER_PROFILE).start();
  return shared;
}

/**
 * testCluster(), once a client has written to every master three rounds in a row: a cluster just
 * created can still change the slot map its first clients read, and a client that reconnects then
 * fails the commands in flight ("Connection is closed").
 */
export async function testClusterReady(): Promise<TestCluster> {
  const cluster = testCluster();
  serving ??= (async () => {
    const probe = cluster.client('test-cluster-probe');
    try {
      const deadline = Date.now() + 30_000;
      for (let good = 0; good < 3; ) {
        try {
          // 48 tags land on every master of three (each holds a third of the slots).
          await Promise.all(Array.from({ length: 48 }, (_, i) => probe.set(`{probe-${i}}:ready`, '1', 'PX', 5000)));
          good++;
        } catch (err) {
          good = 0;
          if (Date.now() > deadline) throw err;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      probe.disconnect();
    }
  })();
  await serving;
  return cluster;
}
