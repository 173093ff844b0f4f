/** Redis connections, configured for a queue: fail fast while Redis is away, reconnect forever. */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import Redis, { Cluster, type ClusterNode } from 'ioredis';
import type { Config } from '../config/config';
import { splitAddr } from '../config/parsers';

/** Where and as whom to connect: the transport settings of the config, in one object. */
export interface RedisEndpoint {
  addr: string;
  /** Redis Cluster seed nodes (host:port); empty or absent: the single instance at `addr`. */
  clusterNodes?: readonly string[];
  /** ACL user; empty or absent: the `default` user. */
  username?: string;
  password?: string;
  /** TLS with the server's certificate verified (against `caFile`, or Node's CAs). */
  tls?: { caFile?: string };
}

export interface RedisConnOptions extends RedisEndpoint {
  name: string;
  /** Queue commands while disconnected (worker) or fail them at once (API → 503). */
  offlineQueue: boolean;
}

/**
 * The endpoint a service's settings describe (REDIS_ADDR or REDIS_CLUSTER_NODES, REDIS_USERNAME,
 * REDIS_PASS, REDIS_TLS, REDIS_TLS_CA_FILE).
 */
export function redisEndpoint(
  cfg: Pick<Config, 'REDIS_ADDR' | 'REDIS_USERNAME' | 'REDIS_PASS' | 'REDIS_TLS' | 'REDIS_TLS_CA_FILE'> & Partial<Pick<Config, 'REDIS_CLUSTER_NODES'>>,
): RedisEndpoint {
  return {
    addr: cfg.REDIS_ADDR,
    clusterNodes: cfg.REDIS_CLUSTER_NODES ?? [],
    username: cfg.REDIS_USERNAME,
    password: cfg.REDIS_PASS,
    tls: cfg.REDIS_TLS === 'true' ? { caFile: cfg.REDIS_TLS_CA_FILE || undefined } : undefined,
  };
}

/**
 * Options for tls.connect. The CA file is read once, here: a replaced bundle takes effect when the
 * process restarts (docs/security.md, rotation). Node verifies the chain and the host name (or IP
 * address) by default; nothing here turns either off.
 */
export function redisTlsOptions(host: string | undefined, tls: NonNullable<RedisEndpoint['tls']>): ConnectionOptions {
  return {
    ca: tls.caFile ? readFileSync(tls.caFile, 'utf8') : undefined,
    // SNI needs a name; for an address, Node checks the certificate's IP SANs against the host.
    // Without a host (the nodes of a cluster, each its own), Node checks each node's certificate
    // against the host it connects to.
    servername: host === undefined || isIP(host) ? undefined : host,
  };
}

/** Reconnection backoff of every connection: 100 ms doubling to 2 s, forever. */
const reconnectDelay = (times: number): number => Math.min(50 * 2 ** Math.min(times, 6), 2000);

export function createRedis(o: RedisConnOptions): Redis {
  const { host, port } = splitAddr(o.addr);
  const h = host ?? '127.0.0.1';
  return new Redis({
    host: h,
    port,
    username: o.username || undefined,
    password: o.password || undefined,
    tls: o.tls ? redisTlsOptions(h, o.tls) : undefined,
    connectionName: o.name,
    // No CLIENT SETINFO on connect: Redis before 7.2 does not know it, so the least-privilege ACL
    // (redis-acl.ts) could not name it there, and every refusal would land in the ACL LOG.
    disableClientInfo: true,
    // Off: every hot path already sends one script per batch, so there was rarely a second command
    // in the same tick to merge, while building a pipeline per tick cost ~9 µs of CPU per call
    // (measured: 40 → 31 µs per evalsha). Burst: workers 1.76–1.79 → 1.51–1.56 s of CPU, api
    // 0.95–1.03 → 0.83–0.86 s; the drain did not slow down (3 runs each, interleaved).
    enableAutoPipelining: false,
    enableOfflineQueue: o.offlineQueue,
    maxRetriesPerRequest: 2,
    retryStrategy: reconnectDelay,
    lazyConnect: false,
  });
}

/**
 * A connection to what the endpoint names: an ioredis `Cluster` when it lists cluster nodes
 * (REDIS_CLUSTER_NODES), else the single instance at `addr` (createRedis). Nothing uses the
 * cluster yet: the queue needs its keyspace partitioned first (docs/redis-cluster.md).
 */
export function createRedisClient(o: RedisConnOptions): Redis | Cluster {
  return o.clusterNodes && o.clusterNodes.length > 0 ? createRedisCluster({ ...o, clusterNodes: o.clusterNodes }) : createRedis(o);
}

/**
 * An ioredis `Cluster` over the seed nodes, with the single connection's settings: the same ACL user,
 * password and TLS (every node's certificate is verified against the address the node is reached
 * at: the seeds' names, then the addresses the cluster announces in CLUSTER SLOTS), connection
 * name, and offline-queue choice. The cluster client follows MOVED/ASK redirections, refreshes its
 * slot map when a node fails, and retries a command while a failover leaves its slot unserved
 * (CLUSTERDOWN), every 100 ms, up to 16 times. The ACL of redis-acl.ts allows what it sends
 * (CLUSTER SLOTS and CLUSTER INFO, ASKING).
 */
export function createRedisCluster(o: RedisConnOptions & { clusterNodes: readonly string[] }): Cluster {
  const seeds: ClusterNode[] = o.clusterNodes.map((addr) => {
    const { host, port } = splitAddr(addr);
    return { host: host ?? '127.0.0.1', port };
  });
  return new Cluster(seeds, {
    redisOptions: {
      username: o.username || undefined,
      password: o.password || undefined,
      tls: o.tls ? redisTlsOptions(undefined, o.tls) : undefined,
      connectionName: o.name,
      disableClientInfo: true,
      maxRetriesPerRequest: 2,
    },
    // With TLS, connect to the seeds by name (the name their certificates carry) instead of the
    // address ioredis would resolve it to first.
    dnsLookup: o.tls ? (address, callback) => callback(null, address) : undefined,
    enableAutoPipelining: false,
    enableOfflineQueue: o.offlineQueue,
    // No seed reachable: try again with the same backoff as a single connection, forever.
    clusterRetryStrategy: reconnectDelay,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    maxRedirections: 16,
    // Reads go to masters: the queue reads what it has just written.
    scaleReads: 'master',
    lazyConnect: false,
  });
}

/**
 * Resolves once the connection is ready, or after `timeoutMs` (false). A service without an offline
 * queue waits for this before it accepts work: otherwise its first calls fail while the socket is
 * still connecting (the API would then leave the first tasks to the reconciler).
 */
export function redisReady(redis: Redis | Cluster, timeoutMs: number): Promise<boolean> {
  if (redis.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      resolve(ok);
    };
    const onReady = () => done(true);
    const timer = setTimeout(() => done(false), timeoutMs);
    redis.on('ready', onReady);
  });
}
