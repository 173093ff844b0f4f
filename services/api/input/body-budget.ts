/**
 * The request body bytes the API holds at once. A request is admitted before its body is read, for
 * its declared length (or the body limit when it declares none or is compressed), and gives it back
 * when its response is done; one that does not fit is answered 503 at once. What a request costs
 * (body, parsed value, payload JSON, statement, answer) is a small multiple of its body, so this
 * bounds the API's memory by a setting instead of by how much clients send at once.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { getHeapStatistics } from 'node:v8';
import { ProblemError } from '../problem';

export class BodyBudget {
  private used = 0;

  constructor(readonly limit: number) {}

  /** MAX_INFLIGHT_BODY_BYTES, where 0 means a sixteenth of the heap limit; never below one body. */
  static fromSettings(setting: number, maxBodyBytes: number): BodyBudget {
    const bytes = setting > 0 ? setting : Math.floor(getHeapStatistics().heap_size_limit / 16);
    return new BodyBudget(Math.max(bytes, maxBodyBytes));
  }

  get inUse(): number {
    return this.used;
  }

  /**
   * Reserves the request's bytes until its response closes; false (and nothing reserved) when they
   * do not fit.
   */
  admit(req: IncomingMessage, res: ServerResponse, maxBodyBytes: number): boolean {
    const bytes = reservation(req, maxBodyBytes);
    // A client gone while its key was looked up: its 'close' has passed and would never give the
    // bytes back, and no body will be read.
    if (bytes === 0 || res.closed || res.destroyed) return true;
    if (this.used + bytes > this.limit) return false;
    this.used += bytes;
    res.once('close', () => (this.used -= bytes));
    return true;
  }
}

function reservation(req: IncomingMessage, maxBodyBytes: number): number {
  const encoding = req.headers['content-encoding'];
  const length = req.headers['content-length'];
  const plain = encoding === undefined || encoding.toLowerCase() === 'identity';
  if (plain && length !== undefined && /^\d+$/.test(length)) return Math.min(Number(length), maxBodyBytes);
  return plain && length === undefined && req.headers['transfer-encoding'] === undefined ? 0 : maxBodyBytes;
}

export function busy(): ProblemError {
  return new ProblemError(503, 'Service unavailable', 'the API is holding as many request bodies as it may; retry shortly', [], { 'Retry-After': '1' });
}
