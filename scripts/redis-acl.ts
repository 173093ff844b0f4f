/**
 * `npm run -s redis:acl -- --user NAME [--prefix ts]`: prints the `ACL SETUSER` line that gives
 * one task-scheduler service (api or worker) exactly what it needs in Redis (see
 * services/core/db/redis-acl.ts). The password is read from REDIS_ACL_PASSWORD and only its sha256
 * is printed, so the line can be piped to redis-cli or kept in an ACL file without leaking it:
 *
 *   REDIS_ACL_PASSWORD=… npm run -s redis:acl -- --user task-scheduler-api | redis-cli --tls -h HOST --user admin --askpass
 */
import { createHash } from 'node:crypto';
import { aclSetUserLine } from '../services/core/db/redis-acl';

function main(argv: string[], env: NodeJS.ProcessEnv): number {
  let user = '';
  let prefix = 'ts';
  for (let i = 0; i < argv.length; i++) {
    const [flag, value] = [argv[i], argv[++i]];
    if (flag === '--user' && value) user = value;
    else if (flag === '--prefix' && value) prefix = value;
    else return usage(`unknown or incomplete argument ${JSON.stringify(flag)}`);
  }
  if (!user) return usage('--user is required');
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(prefix)) return usage('--prefix must be REDIS_KEY_PREFIX (letters, digits, _ . -)');
  const password = env.REDIS_ACL_PASSWORD ?? '';
  if (password.length < 16) return usage('set REDIS_ACL_PASSWORD to the user\'s password (at least 16 characters)');
  try {
    process.stdout.write(`${aclSetUserLine(user, prefix, createHash('sha256').update(password).digest('hex'))}\n`);
  } catch (err) {
    return usage((err as Error).message);
  }
  return 0;
}

function usage(problem: string): number {
  process.stderr.write(`redis:acl: ${problem}\nusage: REDIS_ACL_PASSWORD=… npm run -s redis:acl -- --user NAME [--prefix REDIS_KEY_PREFIX]\n`);
  return 2;
}

process.exitCode = main(process.argv.slice(2), process.env);
