/** test/integration/queue-tenants-rejoin.test.ts on the Redis Cluster, the queue in partitions (test/support/cluster-mode.ts). */
process.env.TEST_REDIS_MODE = 'cluster';
require('../integration/queue-tenants-rejoin.test');
