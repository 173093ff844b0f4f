/**
 * The unfinished-task true-up on the test profile's Redis Cluster with one master stalled (CLIENT
 * PAUSE WRITE; not the control slot's, which holds the leader lock): the tenants of the other
 * masters' partitions are trued up within the wait, so their finished tasks free their places.
 * Before, the pass waited for every partition (and failed with any one down): while one master
 * stalled, a capped tenant of any partition was refused once it had submitted its cap.
 */
process.env.TEST_REDIS_MODE = 'cluster';
// It stalls masters: on a cluster of its jest worker's own (cluster-mode.ts, testClusterProfile).
process.env.TEST_CLUSTER_STALLS = '1';
import { UnfinishedTrueUp } from '../../services/api/limits/unfinished-true-up';
import { TenantAdmission } from '../../services/core/tenancy/admission';
import { setTenant } from '../../services/core/tenancy/tenant-store';
import { TEST_PARTITIONS } from '../support/cluster-mode';
import { partitionMasters, tenantWhere, whilePaused } from '../support/cluster-stall';
import { silentLog, stackFixture } from '../support/stack';

const fx = stackFixture({}, { each: true, timeoutMs: 120_000 });

it('a stalled master holds up neither the pass nor the other partitions\' true-up', async () => {
  const { stack } = fx;
  const prefix = stack.cfg.REDIS_KEY_PREFIX;
  const { masters, other: stalled } = await partitionMasters(stack.redis, prefix);
  const healthy = tenantWhere(masters, (m) => m !== stalled, 'cap');
  const other = tenantWhere(masters, (m) => m === stalled, 'cap');
  const limits = { rate: 0, burst: 0, maxUnfinished: 3 };
  for (const t of [healthy, other]) await setTenant(stack.pool, t, { max_unfinished: 3 });
  const admission = new TenantAdmission(stack.redis, prefix, TEST_PARTITIONS, 300);
  // Each takes its cap; none of those tasks is unfinished in Postgres (they ran and ended).
  for (const t of [healthy, other]) {
    const a = await admission.admit(t, 3, limits);
    expect(a.admitted).toBe(true);
    if (a.admitted) await admission.settle(t, a.reservation!, 0);
    expect((await admission.admit(t, 1, limits)).admitted).toBe(false);
  }
  const trueUp = new UnfinishedTrueUp({ pool: stack.pool, admission, lock: stack.queue, envCap: 0 }, 60_000, silentLog);
  await whilePaused(stalled, 4000, 'WRITE', async () => {
    const started = Date.now();
    await trueUp.runOnce().catch(() => undefined);
    // Before: the pass waited for the pause to end (about 4 s).
    expect(Date.now() - started).toBeLessThan(2500);
    // The healthy partition's tenant has its places back while the master still stalls.
    expect((await admission.admit(healthy, 1, limits)).admitted).toBe(true);
  });
}, 60_000);
