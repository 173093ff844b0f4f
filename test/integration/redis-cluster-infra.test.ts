/**
 * The local Redis Cluster the cluster suites and benchmarks run on (scripts/redis-cluster.sh via
 * test/support/redis-cluster.ts), and the services' cluster client (createRedisClient with
 * REDIS_CLUSTER_NODES): 3 masters with a replica each; keys spread by hash tag; a master's failover
 * (killed, or handed over with CLUSTER FAILOVER) keeps every acknowledged key readable through the
 * promoted replica; the killed node comes back as a replica; stop leaves no process behind.
 */
import { randomBytes } from 'node:crypto';
import Redis, { Cluster } from 'ioredis';
import { configWith } from '../../services/core/config/config';
import { splitAddr } from '../../services/core/config/parsers';
import { aclRules } from '../../services/core/db/redis-acl';
import { createRedisClient, redisEndpoint, redisReady } from '../../services/core/db/redis';
import { LocalRedisCluster, processRunning } from '../support/redis-cluster';

const cluster = new LocalRedisCluster('cluster-infra');
let client: Cluster;
const direct: Redis[] = [];

/** A plain connection to one node (not following redirections). */
function node(addr: string): Redis {
  const { host, port } = splitAddr(addr);
  const conn = new Redis({ host, port, lazyConnect: false, maxRetriesPerRequest: 1 });
  direct.push(conn);
  return conn;
}

/**
 * The slot ranges in slot order, each with its master's and replicas' host:port, from CLUSTER NODES
 * (CLUSTER SLOTS leaves out a replica until its master has sent it data).
 */
async function slotRanges(): Promise<{ from: number; to: number; master: string; replicas: string[] }[]> {
  const lines = String(await client.cluster('NODES')).trim().split('\n').map((l) => l.split(' '));
  const addr = (f: string[]) => f[1]!.split('@')[0]!;
  return lines
    .filter((f) => /master/.test(f[2]!) && !/fail/.test(f[2]!) && f.length > 8)
    .map((f) => {
      const [from, to = from] = f[8]!.split('-').map(Number);
      const replicas = lines.filter((r) => /slave/.test(r[2]!) && !/fail/.test(r[2]!) && r[3] === f[0]).map(addr);
      return { from: from!, to: to!, master: addr(f), replicas };
    })
    .sort((a, b) => a.from - b.from);
}

// One key per hash tag, and the slot of each.
const tagged = Array.from({ length: 300 }, (_, i) => `{infra:t${i}}:k`);
const slotOf = new Map<string, number>();

beforeAll(() => {
  cluster.start();
}, 120_000);

afterAll(async () => {
  client?.disconnect();
  for (const conn of direct) conn.disconnect();
  cluster.stop();
});

test('the cluster comes up with 3 masters, one replica each, serving all 16384 slots; the factory connects to it', async () => {
  expect(cluster.nodes).toHaveLength(6);
  expect(cluster.pids.every((pid) => pid !== null && processRunning(pid))).toBe(true);
  expect(cluster.healthy()).toBe(true);

  // REDIS_CLUSTER_NODES set: the services' factory gives a Cluster client, with the same options.
  const endpoint = redisEndpoint(configWith({ REDIS_CLUSTER_NODES: cluster.nodes.join(',') }));
  const made = createRedisClient({ ...endpoint, name: 'cluster-infra', offlineQueue: true });
  expect(made).toBeInstanceOf(Cluster);
  client = made as Cluster;
  expect(await redisReady(client, 15_000)).toBe(true);

  const ranges = await slotRanges();
  expect(ranges).toHaveLength(3);
  expect(ranges.reduce((n, r) => n + r.to - r.from + 1, 0)).toBe(16384);
  expect(ranges.every((r) => r.replicas.length === 1)).toBe(true);
  const members = ranges.flatMap((r) => [r.master, ...r.replicas]).sort();
  expect(members).toEqual([...cluster.nodes].sort());
  expect(client.nodes('master')).toHaveLength(3);
  expect(await client.call('CLIENT', 'GETNAME')).toBe('cluster-infra');

  // Empty REDIS_CLUSTER_NODES: the single connection, as before.
  const single = createRedisClient({ ...redisEndpoint(configWith({ REDIS_ADDR: '127.0.0.1:1' })), name: 'single', offlineQueue: false });
  expect(single).toBeInstanceOf(Redis);
  expect(single).not.toBeInstanceOf(Cluster);
  single.disconnect();
});

test('keys with different hash tags spread over the 3 masters; keys sharing one tag stay on one', async () => {
  const before = await Promise.all(client.nodes('master').map((m) => m.dbsize()));
  await Promise.all(tagged.map((k) => client.set(k, k)));
  const after = await Promise.all(client.nodes('master').map((m) => m.dbsize()));
  const added = after.map((n, i) => n - before[i]!);
  expect(added.reduce((a, b) => a + b, 0)).toBe(tagged.length);
  expect(added.every((n) => n > 0)).toBe(true);

  // Each key is on the master of its slot.
  const ranges = await slotRanges();
  for (const k of tagged) slotOf.set(k, Number(await client.cluster('KEYSLOT', k)));
  for (const k of tagged.slice(0, 30)) {
    const owner = ranges.find((r) => r.from <= slotOf.get(k)! && slotOf.get(k)! <= r.to)!;
    expect(await node(owner.master).get(k)).toBe(k);
  }

  // Today's keyspace: one tag, one slot, one master, however many keys.
  const one = Array.from({ length: 100 }, (_, i) => `{infra}:k${i}`);
  const before1 = await Promise.all(client.nodes('master').map((m) => m.dbsize()));
  await Promise.all(one.map((k) => client.set(k, '1')));
  const after1 = await Promise.all(client.nodes('master').map((m) => m.dbsize()));
  expect(after1.map((n, i) => n - before1[i]!).sort((a, b) => a - b)).toEqual([0, 0, 100]);
});

test('an ACL user made from redis-acl.ts works through the cluster client with the same options', async () => {
  const user = 'infra-acl';
  const password = randomBytes(16).toString('hex');
  const prefix = 'infraacl';
  // ACL users are per node: every master and replica.
  for (const addr of cluster.nodes) await node(addr).call('ACL', 'SETUSER', user, ...aclRules(prefix, `>${password}`));
  const limited = cluster.client('infra-limited', { username: user, password });
  try {
    expect(await redisReady(limited, 15_000)).toBe(true);
    await limited.set(`{${prefix}}:k`, 'v');
    expect(await limited.get(`{${prefix}}:k`)).toBe('v');
    await expect(limited.set('{elsewhere}:k', 'v')).rejects.toThrow(/NOPERM/);
  } finally {
    limited.disconnect();
  }
});

test('a killed master fails over: its replica is promoted and serves every acknowledged key', async () => {
  // Acknowledged by the replicas before the kill (replication is asynchronous).
  for (const m of client.nodes('master')) expect(await m.wait(1, 5000)).toBe(1);
  const ranges = await slotRanges();
  const pidsBefore = [...cluster.pids];

  const r = cluster.failover(1);
  expect(r.oldMaster).toBe(ranges[1]!.master);
  expect(r.newMaster).toBe(ranges[1]!.replicas[0]);
  expect(processRunning(pidsBefore[r.oldMasterNode]!)).toBe(false);
  expect(cluster.pids[r.oldMasterNode]).toBeNull();

  // Every key reads back through the cluster client (it follows the new slot map)...
  expect(await Promise.all(tagged.map((k) => client.get(k)))).toEqual(tagged);
  // ...and those of the failed-over range are on the promoted replica, which takes writes now.
  const moved = tagged.filter((k) => ranges[1]!.from <= slotOf.get(k)! && slotOf.get(k)! <= ranges[1]!.to);
  expect(moved.length).toBeGreaterThan(0);
  const promoted = node(r.newMaster);
  expect(await promoted.mget(...moved.slice(0, 1))).toEqual(moved.slice(0, 1));
  for (const k of moved.slice(0, 20)) expect(await promoted.get(k)).toBe(k);
  await client.set(moved[0]!, 'after');
  expect(await promoted.get(moved[0]!)).toBe('after');
  expect((await slotRanges())[1]!.master).toBe(r.newMaster);

  // start() brings the killed node back, as the replica of its successor.
  cluster.start();
  expect(cluster.pids.every((pid) => pid !== null && processRunning(pid))).toBe(true);
  const role = (await node(r.oldMaster).role()) as unknown as [string, string, number];
  expect(role[0]).toBe('slave');
  expect(`${role[1]}:${role[2]}`).toBe(r.newMaster);
  expect(cluster.healthy()).toBe(true);
});

test('a manual failover (CLUSTER FAILOVER) swaps master and replica without losing keys', async () => {
  for (const m of client.nodes('master')) expect(await m.wait(1, 5000)).toBe(1);
  const ranges = await slotRanges();
  const r = cluster.failover(0, 'manual');
  expect(r.oldMaster).toBe(ranges[0]!.master);
  expect((await slotRanges())[0]!.master).toBe(r.newMaster);
  // Nobody was killed: the old master is now its replica.
  expect(cluster.pids.every((pid) => pid !== null && processRunning(pid))).toBe(true);
  const role = (await node(r.oldMaster).role()) as unknown as [string, string, number];
  expect(role[0]).toBe('slave');
  const values = await Promise.all(tagged.map((k) => client.get(k)));
  expect(values.filter((v, i) => v !== tagged[i] && v !== 'after')).toEqual([]);
});

test('stop leaves no process behind', () => {
  const pids = cluster.pids.filter((p): p is number => p !== null);
  expect(pids).toHaveLength(6);
  client.disconnect();
  cluster.stop();
  expect(pids.filter(processRunning)).toEqual([]);
  expect(cluster.healthy()).toBe(false);
});
