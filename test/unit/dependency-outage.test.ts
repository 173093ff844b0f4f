/**
 * Which errors the API answers 503 with Retry-After (a dependency that will answer again) and
 * which stay 500 (bugs). Redis Cluster replies during a failover, ioredis's own give-ups and the
 * code's own time bounds were 500s: clients that retry 503s gave up on them.
 */
import { ReplyError } from 'ioredis';
import ClusterAllFailedError from 'ioredis/built/errors/ClusterAllFailedError';
import { MaxRetriesPerRequestError } from 'ioredis/built/errors';
import { isDependencyOutage, toProblem } from '../../services/api/problem';
import { DependencyTimeoutError, withTimeout } from '../../services/core/process/with-timeout';

const reply = (text: string): Error => new ReplyError(text) as Error;

const outages: [string, unknown][] = [
  ['CLUSTERDOWN', reply('CLUSTERDOWN The cluster is down')],
  ['CLUSTERDOWN of a hash slot', reply('CLUSTERDOWN Hash slot not served')],
  ['TRYAGAIN', reply('TRYAGAIN Multiple keys request during rehashing of slot')],
  ['MASTERDOWN', reply('MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to \'no\'.')],
  ['LOADING', reply('LOADING Redis is loading the dataset in memory')],
  ['READONLY', reply("READONLY You can't write against a read only replica.")],
  ['too many redirections', new Error('Too many Cluster redirections. Last error: ReplyError: CLUSTERDOWN The cluster is down')],
  ['slots cache', new ClusterAllFailedError('Failed to refresh slots cache.', new Error('connect ECONNREFUSED'))],
  ['no startup node', new Error('None of startup nodes is available')],
  ['cluster not ready', new Error("Cluster isn't ready and enableOfflineQueue options is false")],
  ['command timeout', new Error('Command timed out')],
  ['max retries', new MaxRetriesPerRequestError(2)],
  ['connection closed', new Error('Connection is closed.')],
  ['a code-set bound', new DependencyTimeoutError('partition 3 did not answer a overview call within 2000 ms')],
  ['ECONNREFUSED', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' })],
];

test.each(outages)('%s is a dependency outage: 503 with Retry-After', (_name, err) => {
  expect(isDependencyOutage(err)).toBe(true);
  const problem = toProblem(err);
  expect(problem.status).toBe(503);
  expect(Number(problem.headers['Retry-After'])).toBeGreaterThan(0);
});

test('withTimeout past its bound rejects with an outage', async () => {
  const err = await withTimeout(new Promise(() => undefined), 5, 'pushing: no answer').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(DependencyTimeoutError);
  expect(toProblem(err).status).toBe(503);
});

const bugs: [string, unknown][] = [
  ['CROSSSLOT', reply("CROSSSLOT Keys in request don't hash to the same slot")],
  ['a script error', reply('ERR user_script:12: Script attempted to access nonexistent global variable')],
  ['NOSCRIPT', reply('NOSCRIPT No matching script. Please use EVAL.')],
  ['WRONGTYPE', reply('WRONGTYPE Operation against a key holding the wrong kind of value')],
  ['a message that only mentions a reply word', new Error('unexpected answer: READONLY flag missing')],
  ['a plain error', new Error('inserted 1 of 2 tasks')],
];

test.each(bugs)('%s stays a 500', (_name, err) => {
  expect(isDependencyOutage(err)).toBe(false);
  expect(toProblem(err).status).toBe(500);
});
