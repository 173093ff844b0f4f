/**
 * test/integration/queue-properties.test.ts on the Redis Cluster, the queue in partitions
 * (test/support/cluster-mode.ts): 12 runs from a fixed seed (PROPERTY_RUNS, PROPERTY_SEED), one
 * known to reach the dangerous interleavings the test asserts it met within them; the
 * single-Redis file runs 40 random ones (more when they missed one).
 */
process.env.TEST_REDIS_MODE = 'cluster';
process.env.PROPERTY_RUNS ??= '12';
process.env.PROPERTY_SEED ??= '11';
require('../integration/queue-properties.test');
