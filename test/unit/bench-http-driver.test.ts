/** The benchmark's raw HTTP/1.1 client: it must frame answers exactly, or rates would be wrong. */
import http from 'node:http';
import { AddressInfo } from 'node:net';
import { parseAnswer, poster } from '../../scripts/bench/http-driver';

const b = (s: string) => Buffer.from(s, 'latin1');

describe('parseAnswer', () => {
  it('frames an answer by Content-Length, and waits while it is incomplete', () => {
    const full = 'HTTP/1.1 201 Created\r\nContent-Type: application/json\r\ncontent-length: 7\r\n\r\n{"a":1}';
    expect(parseAnswer(b(full))).toEqual({ status: 201, length: full.length });
    expect(parseAnswer(b(full.slice(0, -1)))).toBeNull();
    expect(parseAnswer(b(full.slice(0, 30)))).toBeNull();
  });

  it('frames a chunked answer at its zero-length chunk', () => {
    const full = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n';
    expect(parseAnswer(b(full))).toEqual({ status: 200, length: full.length });
    expect(parseAnswer(b(full.slice(0, -2)))).toBeNull();
  });

  it('refuses what is not HTTP', () => {
    expect(() => parseAnswer(b('SSH-2.0-x\r\n\r\n'))).toThrow(/not an HTTP answer/);
  });
});

it('posts over keep-alive connections and reports each status', async () => {
  let connections = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => {
      const status = body === '"bad"' ? 400 : 201;
      // Alternate framings: fixed length, then chunked.
      if (body.includes('chunked')) res.writeHead(status).end(body);
      else res.writeHead(status, { 'Content-Length': Buffer.byteLength(body) }).end(body);
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = poster(`http://127.0.0.1:${(server.address() as AddressInfo).port}/tasks`, 3);
  try {
    const bodies = Array.from({ length: 30 }, (_, i) => (i === 7 ? '"bad"' : JSON.stringify({ i, framing: i % 2 ? 'chunked' : 'length' })));
    const statuses = await Promise.all(bodies.map((body) => client.post(body)));
    expect(statuses.filter((s) => s === 201)).toHaveLength(29);
    expect(statuses[7]).toBe(400);
    expect(connections).toBe(3);
  } finally {
    client.close();
    await new Promise((r) => server.close(r));
  }
});
