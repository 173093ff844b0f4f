/**
 * The API keys of a fuzz run (model.ts KEYS), made through the CLI's own code (`keys create`,
 * `keys revoke`, `keys list`) in the run's database, and the filling of the placeholders requests
 * carry: `{{key:NAME}}` the key, `{{id:NAME}}` its id, `{{secret:NAME}}` its secret, `{{short:NAME}}`
 * the secret less its last character, `{{flip:NAME}}` the secret with its first character changed.
 */
import { runCli } from '../../services/cli/main';
import { KEYS, TENANTS } from './model';

interface RunKey {
  id: string;
  key: string;
  secret: string;
}

const PLACEHOLDER = /\{\{(key|id|secret|short|flip):([a-z0-9-]+)\}\}/g;

export class KeyRing {
  constructor(private readonly keys: ReadonlyMap<string, RunKey>) {}

  /** Every key's name and secret part (revoked and expired ones too): no answer may contain one. */
  get secrets(): [string, string][] {
    return [...this.keys].map(([name, k]) => [name, k.secret]);
  }

  fill(text: string): string {
    if (!text.includes('{{')) return text;
    return text.replace(PLACEHOLDER, (_, what: string, name: string) => {
      const k = this.keys.get(name);
      if (!k) throw new Error(`no fuzz key ${name}`);
      switch (what) {
        case 'key':
          return k.key;
        case 'id':
          return k.id;
        case 'secret':
          return k.secret;
        case 'short':
          return k.secret.slice(0, -1);
        default:
          return (k.secret[0] === 'A' ? 'B' : 'A') + k.secret.slice(1);
      }
    });
  }

  /** Raw request bytes with their placeholders filled (latin1 keeps every other byte as it is). */
  fillBytes(bytes: Buffer): Buffer {
    return bytes.includes('{{') ? Buffer.from(this.fill(bytes.toString('latin1')), 'latin1') : bytes;
  }
}

async function cli(dbUrl: string, args: string[]): Promise<string> {
  let out = '';
  let err = '';
  const code = await runCli(args, { POSTGRES_URL: dbUrl }, { out: (t) => (out += t), err: (t) => (err += t) });
  if (code !== 0) throw new Error(`task-scheduler ${args[0]} ${args[1]} exited ${code}: ${err.slice(0, 500)}`);
  return out;
}

/**
 * Creates the run's keys; `ready` settles once the expired key has expired (it is made with the
 * CLI's shortest lifetime, 1 s) and `keys list` shows every key as the model says.
 */
export async function createKeys(dbUrl: string): Promise<{ ring: KeyRing; ready: Promise<void> }> {
  // The tenants without a key of their own (an admin acts on them) exist by their settings.
  for (const t of TENANTS.filter((t) => !KEYS.some((k) => k.tenant === t))) await cli(dbUrl, ['tenants', 'set', t, '--json']);
  const made = await Promise.all(
    KEYS.map(async (k) => {
      const args = ['keys', 'create', '--tenant', k.tenant, '--scopes', k.scopes.join(','), '--description', `fuzz ${k.name}`, '--json'];
      if (k.state === 'expired') args.push('--expires-in', '1s');
      const row = JSON.parse(await cli(dbUrl, args)) as { id: string; key: string; expires_at: string | null };
      if (k.state === 'revoked') await cli(dbUrl, ['keys', 'revoke', row.id, '--json']);
      const secret = row.key.slice(`tsk_${row.id}_`.length);
      return [k.name, { id: row.id, key: row.key, secret, expiresAt: row.expires_at }] as const;
    }),
  );
  const ring = new KeyRing(new Map(made.map(([name, k]) => [name, { id: k.id, key: k.key, secret: k.secret }])));
  const expiresAt = Math.max(0, ...made.map(([, k]) => (k.expiresAt ? Date.parse(k.expiresAt) : 0)));
  const ready = (async () => {
    // Postgres's clock decides expiry; a little margin for the two clocks' reading of it.
    await new Promise((r) => setTimeout(r, Math.max(0, expiresAt - Date.now() + 100)));
    const listed = JSON.parse(await cli(dbUrl, ['keys', 'list', '--json'])) as { id: string; revoked_at: string | null; expires_at: string | null }[];
    for (const [name, k] of made) {
      const row = listed.find((r) => r.id === k.id);
      const state = KEYS.find((d) => d.name === name)!.state;
      const expired = row?.expires_at != null && Date.parse(row.expires_at) <= Date.now();
      const revoked = row?.revoked_at != null;
      if (!row || revoked !== (state === 'revoked') || expired !== (state === 'expired')) throw new Error(`fuzz key ${name} is not ${state}: ${JSON.stringify(row)}`);
    }
  })();
  ready.catch(() => undefined);
  return { ring, ready };
}
