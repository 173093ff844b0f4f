/** close() (services/core/process/lifecycle.ts): busy keep-alive connections end once answered. */
import http from 'node:http';
import net from 'node:net';
import { close, listen } from '../../services/core/process/lifecycle';

function get(port: number, agent: http.Agent, path: string): Promise<{ status: number; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    http
      .get({ port, host: '127.0.0.1', path, agent }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode!, connection: res.headers.connection }));
      })
      .on('error', reject);
  });
}

it.each([
  ['answered at once', false],
  ['streamed (headers out before close)', true],
])('a keep-alive connection busy at close, its answer %s, ends with it instead of at the keep-alive timeout', async (_name, streamed) => {
  const server = http.createServer((req, res) => {
    if (req.url === '/slow') {
      if (streamed) res.writeHead(200, { 'Content-Type': 'text/plain' }).write('part');
      setTimeout(() => res.end('done'), 300);
    } else res.end('ok');
  });
  server.keepAliveTimeout = 60_000;
  const { port } = await listen(server, '127.0.0.1:0');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    expect((await get(port, agent, '/')).status).toBe(200);
    const slow = get(port, agent, '/slow');
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    const closed = close(server);
    const res = await slow;
    expect(res.status).toBe(200);
    if (!streamed) expect(res.connection).toBe('close');
    await closed;
    expect(Date.now() - t0).toBeLessThan(2000);
  } finally {
    agent.destroy();
    server.closeAllConnections();
  }
});

it('pipelined requests taken before close are all answered; the last answer closes the connection', async () => {
  const server = http.createServer((_req, res) => void setTimeout(() => res.end('ok'), 300));
  server.keepAliveTimeout = 60_000;
  const { port } = await listen(server, '127.0.0.1:0');
  const socket = net.connect(port, '127.0.0.1');
  try {
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (data += d));
    const ended = new Promise((r) => socket.once('close', r));
    socket.write('GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    await close(server);
    await ended;
    expect(Date.now() - t0).toBeLessThan(2000);
    const answers = data.split('HTTP/1.1 ').slice(1);
    expect(answers.map((a) => /Connection: (\S+)/.exec(a)?.[1])).toEqual(['keep-alive', 'close']);
  } finally {
    socket.destroy();
    server.closeAllConnections();
  }
});
