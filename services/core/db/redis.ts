/** Redis connections, configured for a queue: fail fast while Redis is away, reconnect forever. */
import Redis from 'ioredis';
import { splitAddr } from '../config/parsers';

export interface RedisConnOptions {
  addr: string;
  password?: string;
  name: string;
  /** Queue commands while disconnected (worker) or fail them at once (API → 503). */
  offlineQueue: boolean;
}

export function createRedis(o: RedisConnOptions): Redis {
  const { host, port } = splitAddr(o.addr);
  return new Redis({
    host: host ?? '127.0.0.1',
    port,
    password: o.password || undefined,
    connectionName: o.name,
    enableAutoPipelining: true,
    enableOfflineQueue: o.offlineQueue,
    maxRetriesPerRequest: 2,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    lazyConnect: false,
  });
}

/**
 * Resolves once the connection is ready, or after `timeoutMs` (false). A service without an offline
 * queue waits for this before it accepts work: otherwise its first calls fail while the socket is
 * still connecting (the API would then leave the first tasks to the reconciler).
 */
export function redisReady(redis: Redis, timeoutMs: number): Promise<boolean> {
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
