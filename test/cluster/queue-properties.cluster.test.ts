/**
 * test/integration/queue-properties.test.ts on the Redis Cluster, the queue in partitions
 * (test/support/cluster-mode.ts): 24 runs from a fixed seed (PROPERTY_RUNS, PROPERTY_SEED), one
 * known to reach the dangerous interleavings the test asserts it met; the single-Redis file
 * runs 80 random ones.
 */
process.env.TEST_REDIS_MODE = 'cluster';
process.env.PROPERTY_RUNS ??= '24';
process.env.PROPERTY_SEED ??= '11';
require('../integration/queue-properties.test');
