/**
 * How a POSTGRES_URL becomes node-postgres connection options, TLS included, in one place (every
 * pool, the migrator, the API's readiness check, the CLI and the pods' wait-for-schema step).
 *
 * The URL takes libpq's parameters, so the same URL works with psql: `sslmode` and `sslrootcert`
 * (a PEM bundle of the CAs that may sign the server's certificate; `system` for the CAs Node
 * trusts). node-postgres reads them too, but not the way libpq does (it treats `require` and
 * `verify-ca` as `verify-full`, `prefer` as well, and a `ssl` object passed beside the URL is
 * replaced by the URL's), so they are taken out of the URL and turned into an explicit `ssl`
 * option here, with one rule: a connection that uses TLS always verifies the server.
 *
 * - absent or `disable`: no TLS (loopback and laptops only);
 * - `verify-full`, and `require` (as node-postgres 8 already does): the chain and the host name;
 * - `verify-ca`: the chain only (a proxy or an address not in the certificate), so it needs a
 *   private CA in `sslrootcert`: with a public one, anyone holding any certificate would pass;
 * - `prefer`, `allow`, `no-verify` are refused: each may end up without TLS or without checking
 *   who answers, which is what TLS is here to prevent.
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type { ClientConfig } from 'pg';

export class PostgresUrlError extends Error {
  override name = 'PostgresUrlError';
}

/** URL parameters that concern TLS; all are removed from the URL node-postgres gets. */
const TLS_PARAMS = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'sslpassword', 'ssl', 'uselibpqcompat', 'sslnegotiation'];

export type SslMode = 'disable' | 'verify-full' | 'verify-ca';

export interface PostgresTls {
  mode: SslMode;
  /** CA bundle file from sslrootcert; undefined: Node's CAs (`sslrootcert=system`, or none given). */
  caFile?: string;
}

/** The TLS parameters of a POSTGRES_URL, validated; throws PostgresUrlError naming the problem. */
export function postgresTls(url: string): PostgresTls {
  const params = parseUrl(url).searchParams;
  const given = params.get('sslmode') ?? 'disable';
  const rootcert = params.get('sslrootcert') ?? undefined;
  for (const p of ['sslcert', 'sslkey', 'sslpassword']) {
    if (params.has(p)) throw new PostgresUrlError(`POSTGRES_URL: ${p} (client certificates) is not supported; authenticate with a password`);
  }
  for (const p of ['ssl', 'uselibpqcompat', 'sslnegotiation']) {
    if (params.has(p)) throw new PostgresUrlError(`POSTGRES_URL: ${p} is not supported; use sslmode (disable, verify-full or verify-ca) and sslrootcert`);
  }
  const caFile = rootcert === 'system' ? undefined : rootcert;
  switch (given) {
    case 'disable':
      if (rootcert) throw new PostgresUrlError('POSTGRES_URL: sslrootcert is set but sslmode=disable; use sslmode=verify-full');
      return { mode: 'disable' };
    case 'require':
    case 'verify-full':
      return { mode: 'verify-full', caFile };
    case 'verify-ca':
      if (!caFile) throw new PostgresUrlError('POSTGRES_URL: sslmode=verify-ca needs sslrootcert=<file of your private CA> (with public CAs it would accept any certificate they issued); use verify-full otherwise');
      return { mode: 'verify-ca', caFile };
    case 'prefer':
    case 'allow':
    case 'no-verify':
      throw new PostgresUrlError(`POSTGRES_URL: sslmode=${given} may connect without TLS or without verifying the server; use verify-full (or verify-ca), or disable on a loopback address`);
    default:
      throw new PostgresUrlError(`POSTGRES_URL: unknown sslmode=${given}; use disable, verify-full or verify-ca`);
  }
}

/**
 * Options for pg's Client or Pool: the URL without its TLS parameters, and the `ssl` option they
 * mean. The CA file is read here, once: a replaced bundle takes effect when the process restarts.
 */
export function postgresConnection(url: string): Pick<ClientConfig, 'connectionString' | 'ssl'> {
  const tls = postgresTls(url);
  const u = parseUrl(url);
  for (const p of TLS_PARAMS) u.searchParams.delete(p);
  return { connectionString: u.toString(), ssl: tls.mode === 'disable' ? false : sslOptions(tls) };
}

function sslOptions(tls: PostgresTls): ConnectionOptions {
  const ca = tls.caFile ? readFileSync(tls.caFile, 'utf8') : undefined;
  if (tls.mode === 'verify-ca') return { ca, rejectUnauthorized: true, checkServerIdentity: () => undefined };
  // Node checks the chain and the host name (pg passes it as servername; an address is matched
  // against the certificate's IP SANs).
  return { ca, rejectUnauthorized: true };
}

function parseUrl(url: string): URL {
  try {
    return new URL(url);
  } catch {
    // Never echo the URL: it carries the password.
    throw new PostgresUrlError('POSTGRES_URL is not a URL (postgres://user:password@host:port/db?sslmode=…)');
  }
}
