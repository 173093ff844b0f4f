/**
 * A closed-loop HTTP driver for benchmarks: `connections` keep-alive clients POST as fast as they
 * can for `seconds`, and the rate of answered requests is reported.
 *
 * It speaks just enough HTTP/1.1 over raw sockets (one request at a time per connection, answers
 * framed by Content-Length or chunked). node:http's client cost ~65 µs of CPU per request here,
 * and the driver shares the machine's two cores with everything it measures; this costs a third
 * of that, so more of the machine goes to the system under test, as it would with a separate
 * load machine.
 */
import net from 'node:net';

export interface DriveResult {
  requests: number;
  ok: number;
  errors: number;
  seconds: number;
  perSecond: number;
  latencyMs: { p50: number; p95: number; p99: number };
}

interface Conn {
  socket: net.Socket | null;
  /** Bytes of the answer read so far. */
  buf: Buffer;
  done: ((status: number) => void) | null;
}

const HEADER_END = Buffer.from('\r\n\r\n');

/**
 * The status of a complete answer at the start of `buf` and its length, or null while it is
 * incomplete. Throws on something that is not HTTP/1.1.
 */
export function parseAnswer(buf: Buffer): { status: number; length: number } | null {
  const headEnd = buf.indexOf(HEADER_END);
  if (headEnd < 0) return null;
  const head = buf.toString('latin1', 0, headEnd);
  const status = Number(head.slice(9, 12));
  if (!head.startsWith('HTTP/1.') || !Number.isInteger(status)) throw new Error(`not an HTTP answer: ${head.slice(0, 40)}`);
  const bodyStart = headEnd + 4;
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (length) {
    const total = bodyStart + Number(length[1]);
    return buf.length >= total ? { status, length: total } : null;
  }
  if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
    // Walk the chunks to the terminating zero-length one.
    let at = bodyStart;
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', at);
      if (lineEnd < 0) return null;
      const size = parseInt(buf.toString('latin1', at, lineEnd), 16);
      if (size === 0) {
        const end = buf.indexOf(HEADER_END, lineEnd);
        return end < 0 ? null : { status, length: end + 4 };
      }
      at = lineEnd + 2 + size + 2;
      if (at > buf.length) return null;
    }
  }
  return { status, length: bodyStart };
}

/** A keep-alive poster for scripted sends: resolves with the status code (0 on a network error). */
export function poster(url: string, connections: number, headers: Record<string, string> = {}): { post(body: string): Promise<number>; close(): void } {
  const u = new URL(url);
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  const head = `POST ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\n${extra}Content-Type: application/json\r\nContent-Length: `;
  const conns: Conn[] = Array.from({ length: connections }, () => ({ socket: null, buf: Buffer.alloc(0), done: null }));
  const idle: Conn[] = [...conns];
  const waiting: (() => void)[] = [];
  let closed = false;

  const settle = (c: Conn, status: number) => {
    const done = c.done;
    c.done = null;
    c.buf = Buffer.alloc(0);
    done?.(status);
  };
  const connect = (c: Conn): net.Socket => {
    const socket = net.connect({ host: u.hostname, port: Number(u.port), noDelay: true });
    socket.on('data', (chunk: Buffer) => {
      c.buf = c.buf.length === 0 ? chunk : Buffer.concat([c.buf, chunk]);
      try {
        const answer = parseAnswer(c.buf);
        if (answer) settle(c, answer.status);
      } catch {
        socket.destroy();
      }
    });
    const lost = () => {
      if (c.socket === socket) c.socket = null;
      settle(c, 0);
    };
    socket.on('error', lost);
    socket.on('close', lost);
    return socket;
  };

  const post = async (body: string): Promise<number> => {
    if (closed) return 0;
    let c = idle.pop();
    while (!c) {
      await new Promise<void>((r) => waiting.push(r));
      c = idle.pop();
    }
    try {
      return await new Promise<number>((resolve) => {
        c.done = resolve;
        c.socket ??= connect(c);
        c.socket.write(`${head}${Buffer.byteLength(body)}\r\n\r\n${body}`);
      });
    } finally {
      idle.push(c);
      waiting.shift()?.();
    }
  };
  return {
    post,
    close: () => {
      closed = true;
      for (const c of conns) c.socket?.destroy();
    },
  };
}

export async function postLoop(url: string, opts: { connections: number; seconds: number; body: (i: number) => string; headers?: Record<string, string> }): Promise<DriveResult> {
  const client = poster(url, opts.connections, opts.headers);
  const deadline = Date.now() + opts.seconds * 1000;
  let requests = 0;
  let ok = 0;
  let errors = 0;
  const latencies: number[] = [];
  const started = Date.now();
  await Promise.all(
    Array.from({ length: opts.connections }, async () => {
      while (Date.now() < deadline) {
        const i = requests++;
        const t0 = performance.now();
        const status = await client.post(opts.body(i));
        latencies.push(performance.now() - t0);
        if (status >= 200 && status < 300) ok++;
        else errors++;
      }
    }),
  );
  client.close();
  const seconds = (Date.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0;
  return { requests, ok, errors, seconds, perSecond: ok / seconds, latencyMs: { p50: q(0.5), p95: q(0.95), p99: q(0.99) } };
}

if (require.main === module) {
  const [url, conns = '50', secs = '10', batch = '0'] = process.argv.slice(2);
  const n = Number(batch);
  const body = n > 0 ? () => JSON.stringify({ tasks: Array.from({ length: n }, () => ({ type: 'noop' })) }) : () => '{"type":"noop"}';
  void postLoop(url!, { connections: Number(conns), seconds: Number(secs), body }).then((r) => console.log(JSON.stringify(r)));
}
