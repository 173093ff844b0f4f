/** `tenants set|list`: tenants and their limits in Postgres (`default` resets a limit to the environment's). */
import type { Pool } from 'pg';
import { isTenantName, TenantChanges, TenantRow } from '../core/tenancy/tenant';
import { listTenants, setTenant } from '../core/tenancy/tenant-store';
import { parse, parseLimit, UsageError } from './args';
import { json, table } from './output';
import type { Io } from './io';

export const TENANTS_USAGE = `tenants set NAME [--rate-limit TASKS_PER_S] [--burst N] [--max-unfinished N] [--max-running N] [--weight W] [--json]
  tenants list [--json]
  (a limit of 0 is unlimited; "default" uses the environment's TENANT_* setting)`;

const LIMITS = {
  'rate-limit': ['rate_limit', 0, 10_000_000],
  burst: ['burst', 0, 100_000_000],
  'max-unfinished': ['max_unfinished', 0, 1_000_000_000],
  'max-running': ['max_running', 0, 1_000_000],
  weight: ['weight', 1, 1000],
} as const;

const shown = (t: TenantRow) => ({ name: t.name, rate_limit: t.rate_limit, burst: t.burst, max_unfinished: t.max_unfinished, max_running: t.max_running, weight: t.weight, created_at: t.created_at, updated_at: t.updated_at });
const COLUMNS = ['name', 'rate_limit', 'burst', 'max_unfinished', 'max_running', 'weight', 'updated_at'];

export async function tenantsCommand(args: string[], pool: () => Pool, io: Io): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'set': {
      const options = Object.fromEntries([...Object.keys(LIMITS), 'json'].map((k) => [k, { type: k === 'json' ? ('boolean' as const) : ('string' as const) }]));
      const { values, positionals } = parse(rest, options, { min: 1, max: 1, names: 'the tenant NAME' });
      const name = positionals[0]!;
      if (!isTenantName(name)) throw new UsageError(`NAME must be 1-63 characters of a-z 0-9 _ . - starting with a letter or digit, got ${JSON.stringify(name)}`);
      // Every value is checked before anything is written: a bad one changes nothing.
      const changes: TenantChanges = {};
      for (const [option, [field, min, max]] of Object.entries(LIMITS)) {
        const v = values[option];
        if (typeof v === 'string') changes[field] = parseLimit(v, `--${option}`, min, max);
      }
      const row = await setTenant(pool(), name, changes);
      io.out(values.json ? json(shown(row)) : table([shown(row)], COLUMNS));
      return 0;
    }
    case 'list': {
      const { values } = parse(rest, { json: { type: 'boolean' } }, { min: 0, max: 0, names: '' });
      const rows = (await listTenants(pool())).map(shown);
      io.out(values.json ? json(rows) : table(rows, COLUMNS));
      return 0;
    }
    default:
      throw new UsageError(sub === undefined ? 'tenants needs a subcommand: set or list' : `unknown tenants subcommand ${JSON.stringify(sub)}`);
  }
}
