/**
 * POST of a JSON body over node:http on a keep-alive agent. The load driver's clients send
 * thousands of requests a scenario, and global fetch (undici) costs the test process several times
 * the CPU per request, on the cores the services under test share (docs/benchmarks.md).
 */
import http from 'node:http';

export interface JsonAnswer {
  status: number;
  body: Record<string, unknown>;
}

export class JsonPoster {
  private readonly agent: http.Agent;

  constructor(sockets: number) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: sockets });
  }

  /** Rejects on a connection error, a timeout or a body that is not JSON, as fetch + res.json() would. */
  post(url: string, headers: Record<string, string>, body: string, timeoutMs: number): Promise<JsonAnswer> {
    return new Promise((resolve, reject) => {
      const payload = Buffer.from(body);
      const req = http.request(url, { method: 'POST', agent: this.agent, headers: { ...headers, 'content-length': String(payload.length) } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        // A connection closed part way through the answer (the api killed mid-response).
        res.on('close', () => {
          if (!res.complete) reject(new Error('the answer was cut off'));
        });
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> });
          } catch (err) {
            reject(err as Error);
          }
        });
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
