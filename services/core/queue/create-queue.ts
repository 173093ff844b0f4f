/** The queue a service runs on: one keyspace partition (a single Redis, today's key names) or several (a Redis Cluster). */
import type Redis from 'ioredis';
import type { Cluster } from 'ioredis';
import { PartitionedQueue } from './partitioned-queue';
import { RedisQueue, RedisQueueOptions } from './redis-queue';

export type AnyQueue = RedisQueue | PartitionedQueue;

export function createQueue(redis: Redis | Cluster, opts: Omit<RedisQueueOptions, 'partition'> & { partitions: number }): AnyQueue {
  const { partitions, ...rest } = opts;
  // A Cluster client takes the same commands for keys of one slot, which is all the queue sends.
  const conn = redis as Redis;
  return partitions > 1 ? new PartitionedQueue(conn, { ...rest, partitions }) : new RedisQueue(conn, rest);
}
