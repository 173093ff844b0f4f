/**
 * Private TLS servers for the transport-security tests: a CA and a server certificate made with
 * openssl in a temp dir, a redis-server with only a TLS port, and a Postgres cluster with ssl=on
 * that refuses connections without TLS. Both bind 127.0.0.1 on free ports and are stopped by
 * process id.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isAlive } from './global-setup';
import { freePort } from './processes';

export interface Certificates {
  dir: string;
  /** The CA that signed the servers' certificate. */
  caFile: string;
  /** Another CA, which signed nothing the servers present. */
  otherCaFile: string;
  certFile: string;
  keyFile: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * A CA and a certificate for the name `localhost` signed by it, plus an unrelated CA. The address
 * 127.0.0.1 is not in the certificate, so connecting by address shows whether the host is checked.
 */
export function makeCertificates(dir: string): Certificates {
  mkdirSync(dir, { recursive: true });
  for (const ca of ['ca', 'other-ca']) {
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-days', '2', '-subj', `/CN=task-scheduler test ${ca}`], dir);
  }
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost'], dir);
  writeFileSync(path.join(dir, 'server.ext'), 'subjectAltName=DNS:localhost\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'server.ext'], dir);
  return { dir, caFile: path.join(dir, 'ca.crt'), otherCaFile: path.join(dir, 'other-ca.crt'), certFile: path.join(dir, 'server.crt'), keyFile: path.join(dir, 'server.key') };
}

export interface Server {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

async function waitUntil(check: () => boolean, what: string, log: () => string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms; log:\n${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stopPid(pid: number, signal: NodeJS.Signals): Promise<void> {
  if (!isAlive(pid)) return;
  process.kill(pid, signal);
  const deadline = Date.now() + 10_000;
  while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (isAlive(pid)) process.kill(pid, 'SIGKILL');
}

/** redis-server listening on a TLS port only (no plain port); clients need not present certificates. */
export async function startTlsRedis(certs: Certificates, extraArgs: string[] = []): Promise<Server> {
  const port = await freePort();
  const dir = path.join(certs.dir, 'redis');
  mkdirSync(dir, { recursive: true });
  let log = '';
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--tls-cert-file', certs.certFile, '--tls-key-file', certs.keyFile,
      '--tls-ca-cert-file', certs.caFile, '--tls-auth-clients', 'no', '--save', '', '--appendonly', 'no', '--dir', dir, ...extraArgs],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const pid = child.pid!;
  await waitUntil(() => /Ready to accept connections/.test(log) || child.exitCode !== null, 'redis-server did not start', () => log);
  if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}):\n${log}`);
  return { port, pid, stop: () => stopPid(pid, 'SIGTERM') };
}

function pgBin(): string {
  const dirs = existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql').map((v) => `/usr/lib/postgresql/${v}/bin`) : [];
  const found = dirs.filter((d) => existsSync(path.join(d, 'initdb'))).sort().pop();
  if (!found) throw new Error('no Postgres server binaries under /usr/lib/postgresql (scripts/local-services.sh installs them)');
  return found;
}

const asRoot = process.getuid?.() === 0;

/** Runs a Postgres server binary as `postgres` when we are root (Postgres refuses to run as root). */
function pgCommand(bin: string, args: string[]): [string, string[]] {
  return asRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
}

/**
 * A Postgres cluster of its own with ssl=on and pg_hba accepting TLS connections only (trust: the
 * test is about the transport). The superuser is `postgres`, database `postgres`.
 */
export async function startTlsPostgres(certs: Certificates): Promise<Server> {
  const bin = pgBin();
  const home = path.join(certs.dir, 'pg');
  const data = path.join(home, 'data');
  mkdirSync(home, { recursive: true });
  // The server reads its key and certificate as `postgres`; the key must be private to it.
  for (const f of ['server.crt', 'server.key']) writeFileSync(path.join(home, f), readFileSync(path.join(certs.dir, f)));
  chmodSync(path.join(home, 'server.key'), 0o600);
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    // Every directory on the way must be traversable by `postgres`.
    for (let d = home; d !== path.dirname(d) && d.startsWith(certs.dir); d = path.dirname(d)) chmodSync(d, 0o755);
    chmodSync(certs.dir, 0o755);
    chownSync(home, uid, gid);
    for (const f of ['server.crt', 'server.key']) chownSync(path.join(home, f), uid, gid);
  }
  const [initCmd, initArgs] = pgCommand(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C']);
  execFileSync(initCmd, initArgs, { stdio: ['ignore', 'ignore', 'pipe'] });
  writeFileSync(path.join(data, 'pg_hba.conf'), 'local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n');
  const port = await freePort();
  const [cmd, args] = pgCommand(path.join(bin, 'postgres'), [
    '-D', data, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${home}`,
    '-c', 'ssl=on', '-c', `ssl_cert_file=${path.join(home, 'server.crt')}`, '-c', `ssl_key_file=${path.join(home, 'server.key')}`,
    '-c', 'fsync=off', '-c', 'max_connections=40',
  ]);
  let log = '';
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  await waitUntil(() => /ready to accept connections/.test(log) || child.exitCode !== null, 'postgres did not start', () => log);
  if (child.exitCode !== null) throw new Error(`postgres exited (${child.exitCode}):\n${log}`);
  // Postgres's own record of its pid: the child may be runuser, not the postmaster.
  const pid = Number(readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
  return {
    port,
    pid,
    // SIGINT: fast shutdown (connections are closed, nothing waits for clients).
    stop: async () => {
      await stopPid(pid, 'SIGINT');
      await new Promise<void>((r) => (child.exitCode !== null ? r() : child.once('exit', () => r())));
    },
  };
}
