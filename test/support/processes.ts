/**
 * End-to-end helpers: run the built entrypoints (dist/services/…/main.js) as real child
 * processes, so tests exercise start-up, signals and crashes the way production does.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { WORKER_NODE_FLAGS, WORKER_SCRIPT } from '../../services/worker/node-flags';

const REPO_ROOT = path.resolve(__dirname, '../..');
const OUTPUT_LIMIT = 200 * 1024;

export interface ChildHandle {
  pid: number;
  /** Sends `signal`, waits up to timeoutMs, then SIGKILLs. Resolves to the exit code (null if killed by a signal). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  /** SIGKILL, for fault tests; does not wait (await `exited` for that). */
  kill(): void;
  /** Collected stdout+stderr (the last ~200 KB). */
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface SpawnOptions {
  /** A line of output that means "ready". Default: the services' pino `"msg":"listening"` line. */
  readyLine?: RegExp;
  timeoutMs?: number;
  /** Extra node flags before the script, e.g. ['--cpu-prof']. */
  nodeArgs?: string[];
}

const children = new Set<ChildProcess>();

// Last line of defence: never leave services running after the test process goes away.
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** Starts `node <script>` (path relative to the repo root) and resolves once it prints readyLine. */
export function spawnService(script: string, env: Record<string, string>, opts: SpawnOptions = {}): Promise<ChildHandle> {
  const readyLine = opts.readyLine ?? /"msg":"listening"/;
  const timeoutMs = opts.timeoutMs ?? 20_000;
  // A minimal base environment: the child sees exactly what the test passes, not the developer's shell.
  const baseEnv: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' };
  // A service runs with the node flags it ships with (the worker's: services/worker/node-flags.ts).
  const flags = script === WORKER_SCRIPT ? WORKER_NODE_FLAGS : [];
  const child = spawn(process.execPath, [...flags, ...(opts.nodeArgs ?? []), path.resolve(REPO_ROOT, script)], {
    cwd: REPO_ROOT,
    env: { ...baseEnv, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);

  let output = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
    child.once('error', (err) => {
      output += `\n[spawn error] ${err.message}\n`;
      children.delete(child);
      resolve({ code: null, signal: null });
    });
  });

  return new Promise<ChildHandle>((resolve, reject) => {
    let ready = false;
    const handle: ChildHandle = {
      pid: child.pid ?? -1,
      output: () => output,
      kill: () => void child.kill('SIGKILL'),
      exited,
      async stop(signal: NodeJS.Signals = 'SIGTERM', stopTimeoutMs = 10_000) {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), stopTimeoutMs)));
        const first = await Promise.race([exited, timedOut]);
        clearTimeout(timer);
        if (first === 'timeout') child.kill('SIGKILL');
        return (await exited).code;
      },
    };

    const fail = (why: string) => {
      if (ready) return;
      ready = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${script} ${why}; output:\n${output}`));
    };
    const timer = setTimeout(() => fail(`printed no line matching ${readyLine} within ${timeoutMs} ms`), timeoutMs);
    void exited.then(({ code, signal }) => fail(`exited (code ${code}, signal ${signal}) before it was ready`));

    // Lines are matched per stream, so a chunk boundary never splits the ready line.
    const watch = (stream: NodeJS.ReadableStream) => {
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        output += chunk;
        if (output.length > OUTPUT_LIMIT) output = output.slice(-OUTPUT_LIMIT);
        if (ready) return;
        const lines = (partial + chunk).split('\n');
        partial = lines.pop() ?? '';
        if (lines.some((l) => readyLine.test(l))) {
          ready = true;
          clearTimeout(timer);
          resolve(handle);
        }
      });
    };
    watch(child.stdout!);
    watch(child.stderr!);
  });
}

/** SIGKILLs every child still running and waits for them; for afterAll. */
export async function killAllChildren(): Promise<void> {
  const waits = [...children].map(
    (child) => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    }),
  );
  await Promise.all(waits);
}

/** Ports freePort() handed out in this process: the kernel may offer a closed one again at once. */
const handedOut = new Set<number>();

/**
 * A port that was free a moment ago on 127.0.0.1, and not handed out before by this process (two
 * services started side by side would otherwise be offered the same one). Another process may
 * still take it first: startWithFreePort() retries that.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = net.createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as net.AddressInfo;
        server.close(() => resolve(port));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

/**
 * Starts a service on ports from freePort(), again on fresh ones (up to `attempts` times in all)
 * when it exits because another process took one of them in between (EADDRINUSE).
 */
export async function startWithFreePort<T>(start: () => Promise<T>, attempts = 3): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await start();
    } catch (err) {
      if (n >= attempts || !/EADDRINUSE/.test(String((err as Error).message))) throw err;
    }
  }
}
