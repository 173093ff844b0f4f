/**
 * Sends fuzz requests: well-framed ones through node:http (keep-alive pool, or a connection of
 * their own), broken framing as raw bytes on a socket, whose answers are parsed here.
 */
import http from 'node:http';
import net from 'node:net';
import type { Spec } from './model';

export interface Answer {
  status: number;
  /** Lower-case names. */
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export type Outcome =
  | { kind: 'answer'; answer: Answer }
  /** The connection ended without a complete answer. `wroteAll`: the whole request had been handed to the socket. */
  | { kind: 'closed'; code: string; wroteAll: boolean }
  | { kind: 'timeout' }
  /** node:http refused to send it (a generator bug, not the server's). */
  | { kind: 'unsendable'; message: string };

export interface Target {
  host: string;
  port: number;
  agent: http.Agent;
  /** How long a request may wait for its answer. */
  timeoutMs: number;
}

const MAX_ANSWER_BYTES = 4 * 1048576;

export function headerValue(headers: Answer['headers'], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** One request through node:http, bytes exactly as in the spec (duplicated headers as separate lines). */
export function sendHttp(t: Target, s: Spec, fresh: boolean): Promise<Outcome> {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of s.headers) {
    const cur = headers[k];
    headers[k] = cur === undefined ? v : Array.isArray(cur) ? [...cur, v] : [cur, v];
  }
  const has = (name: string) => s.headers.some(([k]) => k.toLowerCase() === name);
  if (s.framing === 'length' && !has('content-length')) headers['Content-Length'] = String(s.body.length);
  if (s.framing === 'chunked') headers['Transfer-Encoding'] = 'chunked';
  // With Expect: 100-continue the body waits for the server's go-ahead (node emits 'continue').
  const waitContinue = s.headers.some(([k, v]) => k.toLowerCase() === 'expect' && /100-continue/i.test(v));

  return new Promise<Outcome>((resolve) => {
    let settled = false;
    let wroteAll = false;
    const done = (o: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(o);
    };
    let req: http.ClientRequest;
    try {
      req = http.request({ host: t.host, port: t.port, method: s.method, path: s.path, headers, agent: fresh || waitContinue ? false : t.agent });
    } catch (err) {
      done({ kind: 'unsendable', message: (err as Error).message });
      return;
    }
    const timer = setTimeout(() => {
      done({ kind: 'timeout' });
      req.destroy();
    }, t.timeoutMs);
    req.on('finish', () => (wroteAll = true));
    req.on('error', (err: NodeJS.ErrnoException) => done({ kind: 'closed', code: err.code ?? err.message, wroteAll }));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= MAX_ANSWER_BYTES) chunks.push(c);
      });
      res.on('error', (err: NodeJS.ErrnoException) => done({ kind: 'closed', code: err.code ?? err.message, wroteAll }));
      res.on('aborted', () => done({ kind: 'closed', code: 'aborted', wroteAll }));
      res.on('end', () => {
        done({ kind: 'answer', answer: { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) } });
        // An answer before the body was asked for: the connection is of no further use.
        if (!wroteAll) req.destroy();
      });
    });

    const write = async () => {
      if (s.framing === 'none') {
        req.end();
        return;
      }
      if (s.framing === 'length') {
        req.end(s.body);
        return;
      }
      const n = Math.max(1, s.chunks ?? 2);
      const step = Math.ceil(s.body.length / n) || 1;
      for (let i = 0; i < s.body.length; i += step) {
        if (req.destroyed) return;
        req.write(s.body.subarray(i, i + step));
        await new Promise((r) => setImmediate(r));
      }
      if (!req.destroyed) req.end();
    };
    if (waitContinue) {
      req.on('continue', () => void write());
      req.flushHeaders();
    } else void write();
  });
}

export interface RawResult {
  data: Buffer;
  /** The server closed the connection (false: we gave up after waitMs). */
  closed: boolean;
  error?: string;
}

/** Writes `bytes` on a new connection and collects everything until the server closes it. */
export function sendRaw(host: string, port: number, bytes: Buffer, halfClose: boolean, waitMs: number): Promise<RawResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let error: string | undefined;
    let settled = false;
    const socket = net.connect({ host, port, allowHalfOpen: true }, () => {
      socket.write(bytes);
      if (halfClose) socket.end();
    });
    const finish = (closed: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ data: Buffer.concat(chunks), closed, error });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    socket.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_ANSWER_BYTES) chunks.push(c);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => (error = err.code ?? err.message));
    // allowHalfOpen: the server's FIN ends reading; close once both sides are done.
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
  });
}

/**
 * The answers in a byte stream (HTTP/1.x, bodies by Content-Length, chunked, or up to the end).
 * `incomplete` says what was left that does not parse as a whole answer.
 */
export function parseAnswers(data: Buffer): { answers: Answer[]; incomplete?: string } {
  const answers: Answer[] = [];
  let at = 0;
  while (at < data.length) {
    const end = data.indexOf('\r\n\r\n', at, 'latin1');
    if (end < 0) return { answers, incomplete: `an unterminated head: ${JSON.stringify(data.subarray(at, at + 120).toString('latin1'))}` };
    const lines = data.subarray(at, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    if (!m) return { answers, incomplete: `not a status line: ${JSON.stringify((lines[0] ?? '').slice(0, 120))}` };
    const status = Number(m[1]);
    const headers: Record<string, string | string[] | undefined> = {};
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':');
      if (i <= 0) continue;
      const k = line.slice(0, i).trim().toLowerCase();
      const v = line.slice(i + 1).trim();
      const cur = headers[k];
      headers[k] = cur === undefined ? v : Array.isArray(cur) ? [...cur, v] : [cur, v];
    }
    at = end + 4;
    if (status >= 100 && status < 200) continue;
    let body: Buffer;
    const length = headerValue(headers, 'content-length');
    if (status === 204 || status === 304) body = Buffer.alloc(0);
    else if (length !== undefined) {
      const n = Number(length);
      if (at + n > data.length) return { answers, incomplete: `a body shorter than its Content-Length ${n}` };
      body = data.subarray(at, at + n);
      at += n;
    } else if (/chunked/i.test(headerValue(headers, 'transfer-encoding') ?? '')) {
      const parts: Buffer[] = [];
      for (;;) {
        const eol = data.indexOf('\r\n', at, 'latin1');
        if (eol < 0) return { answers, incomplete: 'an unterminated chunk' };
        const n = parseInt(data.subarray(at, eol).toString('latin1'), 16);
        if (!Number.isFinite(n)) return { answers, incomplete: 'a bad chunk size' };
        at = eol + 2;
        if (n === 0) {
          const trailerEnd = data.indexOf('\r\n', at, 'latin1');
          at = trailerEnd < 0 ? data.length : trailerEnd + 2;
          break;
        }
        parts.push(data.subarray(at, at + n));
        at += n + 2;
      }
      body = Buffer.concat(parts);
    } else {
      body = data.subarray(at);
      at = data.length;
    }
    answers.push({ status, headers, body });
  }
  return { answers };
}
