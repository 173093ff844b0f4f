/**
 * One master of the test cluster stalled (CLIENT PAUSE): the tenants whose partitions it serves,
 * and those of the others, for tests of what must not wait on it.
 */
import Redis, { type Cluster } from 'ioredis';
import type { PartitionedQueue } from '../../services/core/queue/partitioned-queue';
import { partitionOf, slotOfTag } from '../../services/core/queue/partitions';

/** host:port of the master serving `tag`'s slot. */
export async function masterOf(client: Cluster | Redis, tag: string): Promise<string> {
  const slots = await (client as Cluster).cluster('SLOTS');
  const [host, port] = slots.find(([from, to]) => slotOfTag(tag) >= from && slotOfTag(tag) <= to)![2]!;
  return `${host}:${port}`;
}

const tagOf = (key: string) => key.slice(0, key.indexOf('}') + 1);

/** The master serving tenant `tenant`'s partition of `q`. */
export const masterOfTenant = (client: Cluster | Redis, q: PartitionedQueue, tenant: string): Promise<string> =>
  masterOf(client, tagOf(q.parts[partitionOf(tenant, q.parts.length)]!.keys.meta));

/** The first tenant `${prefix}-N` whose partition a master `wanted` accepts serves. */
export async function tenantOn(client: Cluster | Redis, q: PartitionedQueue, wanted: (master: string) => boolean, prefix = 'tenant'): Promise<string> {
  for (let i = 0; ; i++) {
    const t = `${prefix}-${i}`;
    if (wanted(await masterOfTenant(client, q, t))) return t;
  }
}

/**
 * Pauses `master`'s writes, scripts among them (until the returned function unpauses it or `ms`
 * pass). Not ALL: that pauses the UNPAUSE too, so the stall would last the whole `ms`.
 */
export async function pauseMaster(master: string, ms = 60_000): Promise<() => Promise<void>> {
  const [host, port] = master.split(':');
  const pauser = new Redis({ host, port: Number(port), lazyConnect: false, maxRetriesPerRequest: 1 });
  await pauser.client('PAUSE', ms, 'WRITE');
  return async () => {
    await pauser.client('UNPAUSE').catch(() => undefined);
    pauser.disconnect();
  };
}
