/** Starts and stops the API's HTTP server; tests listen on port 0 through the same path. */
import http from 'node:http';
import { Socket, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { randomUUID } from 'node:crypto';
import { ProblemError } from './problem';
import { requestIdFor } from './request-id';
import { close, listen } from '../core/process/lifecycle';
import { afterAnswered, oneAtATime } from './pipelining';

export interface RunningServer {
  address: AddressInfo;
  /** Stops accepting connections and waits for in-flight requests to finish. */
  stop(): Promise<void>;
}

/** What a slow or greedy client may hold (HTTP_* settings). */
export interface ServerLimits {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxConnections: number;
}

export const DEFAULT_LIMITS: ServerLimits = { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 65_000, maxConnections: 10_000 };

export async function startServer(app: http.RequestListener, addr: string, limits: ServerLimits = DEFAULT_LIMITS): Promise<RunningServer> {
  // Node checks the header and request timeouts on this cadence; its 30 s default let a slow
  // header hold a socket for up to 30 s past its timeout.
  const server = http.createServer({ connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(limits.headersTimeoutMs / 2))) }, oneAtATime(app, refusePipelined));
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.maxConnections = limits.maxConnections;
  // A client may close its sending side once its request is out and wait for the answer. Node's
  // default drops such a connection unanswered, after the request may have created a task.
  (server as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  // Node answers these itself, with an empty body; every error of the API is a problem body.
  server.on('checkExpectation', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const body = problemBody(417, 'Expectation failed', 'only Expect: 100-continue is supported');
    res
      .writeHead(417, { 'Content-Type': 'application/problem+json', 'Content-Length': Buffer.byteLength(body), 'X-Request-Id': requestIdFor(req.headers['x-request-id']), Connection: 'close' })
      .end(body);
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, title, detail] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request header fields too large', 'the request line and headers must fit in 16 KiB']
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'Request timeout', 'the request did not arrive in time']
          : [400, 'Bad request', 'the request is not valid HTTP/1.1'];
    const body = problemBody(status, title, detail);
    const answer = () => {
      if (!socket.writable) {
        socket.destroy();
        return;
      }
      socket.end(`HTTP/1.1 ${status} ${title}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${randomUUID()}\r\nConnection: close\r\n\r\n${body}`);
      // Closed once the answer is out, so nothing more is read: a request that timed out must not
      // complete behind its 408 (the fuzz test saw tasks created for requests answered 408).
      if (socket instanceof Socket) socket.destroySoon();
      else socket.once('finish', () => socket.destroy());
    };
    // Requests pipelined ahead of the bad one are answered first: written at once, this answer was
    // read as theirs (a 400 for a POST /tasks whose task was created). Nothing more is read meanwhile.
    if (socket instanceof Socket) {
      socket.pause();
      afterAnswered(socket, answer);
    } else answer();
  });
  const address = await listen(server, addr);
  // close() ends busy keep-alive connections after their newest answer (core/process/lifecycle.ts).
  const stop = () => close(server);
  return { address, stop };
}

/** A request pipelined beyond what a connection may have waiting (pipelining.ts): nothing was done. */
function refusePipelined(req: http.IncomingMessage, res: http.ServerResponse): void {
  const body = problemBody(503, 'Service unavailable', 'too many requests are pipelined on this connection; read the answers, then send the rest');
  res
    .writeHead(503, { 'Content-Type': 'application/problem+json', 'Content-Length': Buffer.byteLength(body), 'Retry-After': '1', 'X-Request-Id': requestIdFor(req.headers['x-request-id']) })
    .end(body);
}

function problemBody(status: number, title: string, detail: string): string {
  return JSON.stringify(new ProblemError(status, title, detail).body());
}
