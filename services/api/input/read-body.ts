/**
 * Reads a request's body into `req.body` as bytes, inflated when it is compressed (gzip, deflate,
 * br, zstd where node has it), for the express routes; read-json parses it. It stands where
 * express.raw did, whose parser skips the body of a request once the client has closed its sending
 * side (it takes the socket for finished), and so answered such a request as if it had no body.
 * Errors carry body-parser's `type`s, which toProblem maps to 413, 415 and 400.
 */
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import zlib from 'node:zlib';
import type { NextFunction, Request, Response } from 'express';

type BodyError = Error & { status: number; type?: string };

function bodyError(status: number, message: string, type?: string): BodyError {
  return Object.assign(new Error(message), { status, ...(type ? { type } : {}) });
}

function decoder(coding: string): zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress | null {
  if (coding === 'gzip') return zlib.createGunzip();
  if (coding === 'deflate') return zlib.createInflate();
  if (coding === 'br') return zlib.createBrotliDecompress();
  const zstd = (zlib as unknown as { createZstdDecompress?: () => zlib.Gunzip }).createZstdDecompress;
  if (coding === 'zstd' && zstd) return zstd();
  return null;
}

/** Runs `fn` once the request's body has been read and dropped (or the client is gone), so an early answer is not lost to a reset. */
export function afterBody(req: IncomingMessage, fn: () => void): void {
  if (req.readableEnded || req.destroyed) {
    fn();
    return;
  }
  let called = false;
  const once = () => {
    if (!called) (called = true), fn();
  };
  req.once('end', once);
  req.once('close', once);
  req.on('error', () => undefined);
  req.resume();
}

/** Collects `stream` up to `limit` bytes; `length` (the declared one, uncompressed bodies only) must match. */
function collect(stream: Readable, limit: number, length: number | undefined, done: (err: BodyError | null, body?: Buffer) => void): void {
  if (length !== undefined && length > limit) {
    done(bodyError(413, 'request entity too large', 'entity.too.large'));
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;
  const finish = (err: BodyError | null, body?: Buffer) => {
    if (finished) return;
    finished = true;
    stream.removeListener('data', onData);
    done(err, body);
  };
  const onData = (chunk: Buffer) => {
    size += chunk.length;
    if (size > limit) finish(bodyError(413, 'request entity too large', 'entity.too.large'));
    else chunks.push(chunk);
  };
  stream.on('data', onData);
  stream.once('end', () => {
    if (length !== undefined && size !== length) finish(bodyError(400, 'request size did not match content length', 'request.size.invalid'));
    else finish(null, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
  });
  stream.once('close', () => finish(bodyError(400, 'request aborted', 'request.aborted')));
  stream.on('error', (err: Error & { status?: number }) => finish(Object.assign(err, { status: typeof err.status === 'number' && err.status >= 400 && err.status < 500 ? err.status : 400 })));
}

/** Express middleware: the body as bytes in `req.body` (left undefined for a request without one). */
export function readBody(limit: number) {
  return (req: Request, _res: Response, next: NextFunction): void => {
    const declared = req.headers['content-length'];
    if (req.headers['transfer-encoding'] === undefined && (declared === undefined || Number.isNaN(Number(declared)))) {
      next();
      return;
    }
    const coding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
    const inflate = coding === 'identity' ? null : decoder(coding);
    if (coding !== 'identity' && !inflate) {
      next(bodyError(415, `unsupported content encoding "${coding}"`, 'encoding.unsupported'));
      return;
    }
    if (inflate) {
      req.pipe(inflate);
      // A pipe does not pass on the request's end when the client goes away mid-body.
      req.once('close', () => {
        if (!req.complete) inflate.destroy(bodyError(400, 'request aborted', 'request.aborted'));
      });
    }
    collect(inflate ?? req, limit, inflate ? undefined : declared === undefined ? undefined : Number(declared), (err, body) => {
      if (inflate) {
        req.unpipe(inflate);
        inflate.on('error', () => undefined);
        inflate.destroy();
      }
      if (err) {
        afterBody(req, () => next(err));
        return;
      }
      req.body = body;
      // Whatever follows a compressed body's end is read and dropped, so the request can finish.
      if (inflate) req.resume();
      next();
    });
  };
}
