/**
 * A closed-loop HTTP driver for benchmarks: `connections` keep-alive clients POST as fast as they
 * can for `seconds`, and the rate of answered requests is reported. Plain node:http, so the
 * driver itself costs little CPU.
 */
import http from 'node:http';

export interface DriveResult {
  requests: number;
  ok: number;
  errors: number;
  seconds: number;
  perSecond: number;
  latencyMs: { p50: number; p95: number; p99: number };
}

/** A keep-alive poster for scripted sends: resolves with the status code (0 on a network error). */
export function poster(url: string, connections: number): { post(body: string): Promise<number>; close(): void } {
  const u = new URL(url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  return {
    post: (body) =>
      new Promise<number>((resolve) => {
        const req = http.request(
          { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', () => resolve(0));
        req.end(body);
      }),
    close: () => agent.destroy(),
  };
}

export async function postLoop(url: string, opts: { connections: number; seconds: number; body: (i: number) => string }): Promise<DriveResult> {
  const client = poster(url, opts.connections);
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
