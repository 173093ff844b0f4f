/**
 * Checks `Authorization: Bearer <key>` against api_keys. A key checked in the last AUTH_CACHE_MS is
 * trusted without a query, so revocation and expiry reach every replica within that bound (at most
 * 1 s), while a busy client costs Postgres one lookup per key and period, not one per request.
 * Unknown ids are remembered as briefly, concurrent lookups of one id share one query, and lookups
 * go in batches with one query in flight, so random keys cannot make each request cost a query.
 * last_used_at is written in batches (every 5 s).
 */
import { timingSafeEqual } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Pool } from 'pg';
import type { Logger } from '../../core/observability/logger';
import { keyId, keyMatches } from '../../core/tenancy/api-key';
import { findCredentials, KeyCredential, markKeysUsed } from '../../core/tenancy/key-store';
import { ProblemError, unavailable } from '../problem';
import { OPEN_PRINCIPAL, Principal } from './principal';

export type AuthFailure = 'missing' | 'malformed' | 'unknown' | 'revoked_or_expired';

export interface AuthenticatorOptions {
  mode: 'keys' | 'off';
  cacheMs: number;
  log: Logger;
  /** Counts refused requests by reason. */
  onFailure?: (reason: AuthFailure) => void;
  /** Most key ids held in the cache; beyond it the oldest entries go first. */
  maxEntries?: number;
}

interface Entry {
  /** When its lookup began (performance.now(): a wall clock set back must not stretch the trust). */
  at: number;
  cred: KeyCredential | null;
  principal: Principal | null;
  /** The key that matched the hash, once one did: later requests compare bytes instead of hashing. */
  matched?: Buffer;
}

const LAST_USED_FLUSH_MS = 5000;
const LOOKUP_BATCH = 500;
const MAX_WAITING = 5000;

/** A lookup of one id: waiting for its batch (asked null), or its query begun at `asked`. */
interface Pending {
  entry: Promise<Entry>;
  asked: number | null;
}

export class Authenticator {
  private readonly cache = new Map<string, Entry>();
  private readonly pending = new Map<string, Pending>();
  private readonly waiting: { id: string; lookup: Pending; resolve: (e: Entry) => void; reject: (err: unknown) => void }[] = [];
  private querying = false;
  private readonly used = new Set<string>();
  private readonly flushTimer: NodeJS.Timeout | null;

  constructor(
    private readonly pool: Pool,
    private readonly opts: AuthenticatorOptions,
  ) {
    this.flushTimer = opts.mode === 'keys' ? setInterval(() => void this.flushUsed(), LAST_USED_FLUSH_MS).unref() : null;
  }

  /** The principal of a request's Authorization header; a cached key answers synchronously. */
  authenticate(header: string | string[] | undefined): Principal | Promise<Principal> {
    if (this.opts.mode === 'off') return OPEN_PRINCIPAL;
    const key = bearer(header);
    if (key === null) throw this.fail('missing', 'send an API key as Authorization: Bearer <key>');
    const id = keyId(key);
    if (id === null) throw this.fail('malformed', 'the API key is not a valid key');
    const entry = this.cache.get(id);
    if (entry && performance.now() - entry.at < this.opts.cacheMs) return this.verify(entry, key);
    return this.lookup(id).then((e) => this.verify(e, key));
  }

  /** Writes the pending last_used_at updates (also called at shutdown). */
  async flushUsed(): Promise<void> {
    if (this.used.size === 0) return;
    const ids = [...this.used];
    this.used.clear();
    try {
      await markKeysUsed(this.pool, ids);
    } catch (err) {
      this.opts.log.warn({ err, count: ids.length }, 'could not record when API keys were last used');
    }
  }

  async close(): Promise<void> {
    if (this.flushTimer) clearInterval(this.flushTimer);
    await this.flushUsed();
  }

  private verify(entry: Entry, key: string): Principal {
    if (entry.cred === null || !this.matches(entry, key)) throw this.fail('unknown', 'the API key is not valid');
    if (!entry.cred.active || entry.principal === null) throw this.fail('revoked_or_expired', 'the API key was revoked or has expired');
    this.used.add(entry.cred.id);
    return entry.principal;
  }

  /** Constant-time either way: against the key that matched before, else against the stored hash. */
  private matches(entry: Entry, key: string): boolean {
    const presented = Buffer.from(key, 'latin1');
    if (entry.matched) return presented.length === entry.matched.length && timingSafeEqual(presented, entry.matched);
    if (!keyMatches(key, entry.cred!.secret_hash)) return false;
    entry.matched = presented;
    return true;
  }

  /**
   * Ids not in the cache are looked up in batches, one query in flight at a time: a flood of
   * random keys costs Postgres one query per batch, and beyond MAX_WAITING ids waiting, new ones are
   * answered 503 at once instead of queueing without bound.
   */
  private lookup(id: string): Promise<Entry> {
    const p = this.pending.get(id);
    // A query begun AUTH_CACHE_MS or more ago may have read the key before a revocation this
    // request came after: the request waits for a query of its own instead.
    if (p && (p.asked === null || performance.now() - p.asked < this.opts.cacheMs)) return p.entry;
    if (this.waiting.length >= MAX_WAITING) return Promise.reject(unavailable('too many API keys are being checked at once; retry shortly', 1));
    const lookup: Pending = { entry: undefined as unknown as Promise<Entry>, asked: null };
    lookup.entry = new Promise<Entry>((resolve, reject) => this.waiting.push({ id, lookup, resolve, reject }));
    this.pending.set(id, lookup);
    this.pump();
    return lookup.entry;
  }

  private pump(): void {
    if (this.querying || this.waiting.length === 0) return;
    this.querying = true;
    const batch = this.waiting.splice(0, LOOKUP_BATCH);
    // An answer is as old as the query's start: a key revoked while it ran is trusted at most
    // AUTH_CACHE_MS from then, not from when the answer came back.
    const asked = performance.now();
    for (const w of batch) w.lookup.asked = asked;
    findCredentials(this.pool, batch.map((w) => w.id))
      .then(
        (found) => {
          for (const w of batch) {
            const cred = found.get(w.id) ?? null;
            const principal: Principal | null = cred ? { tenant: cred.tenant, keyTenant: cred.tenant, scopes: new Set(cred.scopes), keyId: cred.id } : null;
            const entry: Entry = { at: asked, cred, principal };
            this.remember(w.id, entry);
            w.resolve(entry);
          }
        },
        (err: unknown) => batch.forEach((w) => w.reject(err)),
      )
      .finally(() => {
        for (const w of batch) if (this.pending.get(w.id) === w.lookup) this.pending.delete(w.id);
        this.querying = false;
        this.pump();
      });
  }

  private remember(id: string, entry: Entry): void {
    this.cache.delete(id);
    this.cache.set(id, entry);
    const max = this.opts.maxEntries ?? 10_000;
    // A Map iterates in insertion order: the first keys are the least recently fetched.
    for (const old of this.cache.keys()) {
      if (this.cache.size <= max) break;
      this.cache.delete(old);
    }
  }

  private fail(reason: AuthFailure, detail: string): ProblemError {
    this.opts.onFailure?.(reason);
    return unauthorized(detail, reason === 'missing' ? undefined : 'invalid_token');
  }
}

/** 401 with the challenge RFC 6750 asks for; the detail never repeats the key. */
export function unauthorized(detail: string, error?: string): ProblemError {
  const challenge = error ? `Bearer realm="task-scheduler", error="${error}"` : 'Bearer realm="task-scheduler"';
  return new ProblemError(401, 'Unauthorized', detail, [], { 'WWW-Authenticate': challenge });
}

function bearer(header: string | string[] | undefined): string | null {
  if (typeof header !== 'string') return null;
  const m = /^Bearer +(\S+) *$/i.exec(header);
  return m ? m[1]! : null;
}
