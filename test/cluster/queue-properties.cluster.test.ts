/**
 * test/integration/queue-properties.test.ts on the Redis Cluster, the queue in partitions
 * (test/support/cluster-mode.ts); 25 random runs by default (PROPERTY_RUNS), within the suite's time.
 */
process.env.TEST_REDIS_MODE = 'cluster';
process.env.PROPERTY_RUNS ??= '25';
require('../integration/queue-properties.test');
