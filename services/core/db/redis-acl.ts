/**
 * The least privilege a task-scheduler service needs in Redis, as one ACL: the keys of its own
 * namespace (`{prefix}:*` and its partitions' `{prefix:k*`, every key the queue builds, see
 * queue/keys.ts), the namespace's Pub/Sub
 * channels (`{prefix}:*`: workers hear of cancelled tasks on `{prefix}:cancel`, of delayed tasks on `{prefix}:due`),
 * and exactly the commands the services send. This list is the one source of the ACL: operators
 * print it with `npm run -s redis:acl`, test/integration/redis-acl.test.ts runs real traffic
 * through it, and test/unit/redis-acl.test.ts fails when a Lua script calls a command missing here.
 *
 * What is left out on purpose: CONFIG (CONFIG GET also reads `requirepass` and `masterauth`; the
 * eviction-policy check then reports `unknown`), KEYS/SCAN/FLUSH*, DEBUG, MONITOR, CLIENT other
 * than naming its own connection, SCRIPT (ioredis loads scripts through EVAL when EVALSHA answers
 * NOSCRIPT), MODULE, ACL, and every key outside the namespace. EVAL runs only the commands and
 * keys allowed here: Redis checks each call a script makes against the caller's ACL.
 */

/** Commands the services send themselves, besides the scripts. */
const CLIENT_COMMANDS = [
  // ioredis on connect: names the connection and checks the server has loaded its data (INFO).
  'client|setname',
  'info',
  'ping',
  'quit',
  // Every state change: the queue's Lua scripts (queue/lua/*.lua).
  'evalsha',
  'eval',
  // The doorbell idle workers wait on; dead-letter listing; the reconciler's consistent read.
  'blpop',
  'lrange',
  'multi',
  'exec',
  'hmget',
  'zmscore',
  // Tenant admission (tenancy/admission.ts): a place given back, and the true-up's read of the counts.
  'hincrby',
  'hgetall',
  // Workers hear of cancelled tasks (queue/redis-queue.ts onCancel) and of delayed tasks due soon (onDue).
  'subscribe',
  'unsubscribe',
  // A Redis Cluster client (db/redis.ts createRedisCluster, REDIS_CLUSTER_NODES): ioredis reads the
  // slot map and checks cluster_state on connect and after a MOVED or a failover, and follows an
  // ASK redirection while a slot moves. Topology only; a single Redis answers them with an error.
  'cluster|slots',
  'cluster|info',
  'asking',
] as const;

/** Commands the Lua scripts call (test/unit/redis-acl.test.ts checks the scripts, and the services' direct calls). */
const SCRIPT_COMMANDS = [
  'del', 'get', 'set',
  'hdel', 'hexists', 'hget', 'hincrby', 'hlen', 'hmget', 'hscan', 'hset',
  'lindex', 'llen', 'lpop', 'lpos', 'lpush', 'lrange', 'lrem', 'lset', 'rpush',
  // Fair dispatch (queue/lua/includes/tenants.lua): the parked tenants and the tenant registry.
  'exists', 'sadd', 'scard', 'sismember', 'smembers', 'smismember', 'srem',
  'zadd', 'zcard', 'zrange', 'zrangebyscore', 'zrem', 'zremrangebyscore', 'zscore',
  // The last minute's counts of GET /queues expire with their bucket (queue/lua/includes/rates.lua).
  'pexpire',
  'time',
  // cancel.lua tells the worker holding a cancelled task; enqueue's caller announces a delayed task due soonest.
  'publish',
] as const;

/** Every command the ACL allows, sorted and without repeats. */
export const REDIS_ACL_COMMANDS: readonly string[] = [...new Set<string>([...CLIENT_COMMANDS, ...SCRIPT_COMMANDS])].sort();

/** The key pattern of a namespace: everything under the hash tag `{prefix}`. */
export function aclKeyPattern(prefix: string): string {
  return `{${prefix}}:*`;
}

/**
 * The keys of a namespace's partitions (REDIS_PARTITIONS > 1): hash tags `{prefix:k<k>.<salt>}`
 * (queue/partitions.ts). A prefix holds no `:`, so no other namespace's keys match.
 */
export function aclPartitionKeyPattern(prefix: string): string {
  return `{${prefix}:k*`;
}

/**
 * The rules after `ACL SETUSER <user>` (or `user <name>` in an ACL file or redis-server's
 * arguments), starting from nothing (`reset`). `password` is ACL syntax: `#<hex sha256>` (what
 * operators keep: the line never holds the password) or `><password>`.
 */
export function aclRules(prefix: string, password: string): string[] {
  if (!/^(#[0-9a-f]{64}|>\S+)$/.test(password)) throw new Error('password must be #<64 lowercase hex digits of sha256> or ><password>');
  return ['reset', 'on', password, 'resetchannels', `&${aclKeyPattern(prefix)}`, `~${aclKeyPattern(prefix)}`, `~${aclPartitionKeyPattern(prefix)}`, '-@all', ...REDIS_ACL_COMMANDS.map((c) => `+${c}`)];
}

/** The whole `ACL SETUSER …` command as redis-cli takes it (no argument needs quoting). */
export function aclSetUserLine(user: string, prefix: string, passwordSha256: string): string {
  if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(user)) throw new Error('user must be letters, digits, _ . : - (at most 128)');
  return ['ACL', 'SETUSER', user, ...aclRules(prefix, `#${passwordSha256}`)].join(' ');
}
