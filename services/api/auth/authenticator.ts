/**
 * Checks `Authorization: Bearer <key>` against api_keys. A key checked in the last AUTH_CACHE_MS is
 * trusted without a query, so revocation and expiry reach every replica within that bound (at most
 * 1 s), while a busy client costs Postgres one lookup per key and period, not one per request.
 * Only keys presented with their secret enter the cache of valid keys (AUTH_CACHE_KEYS); unknown
 * ids and wrong secrets are remembered apart, in a small cache of their own, so random keys cannot
 * push valid ones out. Lookups go in batches with one query in flight per lane: ids seen valid here
 * have a lane of their own, so a flood of random keys neither delays nor refuses their lookups.
 * last_used_at is written in batches (every 5 s).
 */
import { timingSafeEqual } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Pool } from 'pg';
import type { Logger } from '../../core/observability/logger';
import { keyId, keyMatches } from '../../core/tenancy/api-key';
import { findCredentials, KeyCredential, markKeysUsed, recentKeyIds } from '../../core/tenancy/key-store';
import { ProblemError, unavailable } from '../problem';
import { LookupLane, Ticket } from './lookup-lane';
import { OPEN_PRINCIPAL, Principal } from './principal';

export type AuthFailure = 'missing' | 'malformed' | 'unknown' | 'revoked_or_expired';

/**
 * What a lookup of one id came to: a key seen valid here read again (`verified`), an id that
 * exists but was not yet presented with its secret here (`found`), no such id (`not_found`), or
 * refused with 503 because too many unknown ids were waiting (`refused`).
 */
export type KeyLookup = 'verified' | 'found' | 'not_found' | 'refused';

export interface AuthenticatorOptions {
  mode: 'keys' | 'off';
  cacheMs: number;
  log: Logger;
  /** Counts refused requests by reason. */
  onFailure?: (reason: AuthFailure) => void;
  /** Counts lookups of ids by what they came to. */
  onLookup?: (result: KeyLookup) => void;
  /** Most valid keys held in the cache (AUTH_CACHE_KEYS); beyond it the least recently read go first. */
  maxEntries?: number;
  /** How often the ids of the keys in use are read again (preload); default a minute. */
  preloadEveryMs?: number;
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
const PRELOAD_EVERY_MS = 60_000;
const LOOKUP_BATCH = 500;
/** Ids not seen valid here waiting for a lookup; beyond it, 503 at once. */
const MAX_WAITING = 5000;
/** Unknown ids (and ids not yet presented with their secret) remembered, for AUTH_CACHE_MS at most. */
const MAX_UNVERIFIED = 10_000;

export class Authenticator {
  /** Keys presented with their secret, in the order they were last read. */
  private readonly verified = new Map<string, Entry>();
  /** Every other id looked up: unknown, or not yet matched. */
  private readonly unverified = new Map<string, Entry>();
  /** Ids of keys in use when this replica started (preload), until one is presented with its secret. */
  private readonly expected = new Set<string>();
  private readonly pending = new Map<string, Ticket<Entry>>();
  private readonly knownLane: LookupLane<Entry>;
  private readonly unknownLane: LookupLane<Entry>;
  private readonly maxVerified: number;
  private readonly used = new Set<string>();
  private readonly flushTimer: NodeJS.Timeout | null;
  private readonly preloadTimer: NodeJS.Timeout | null;

  constructor(
    private readonly pool: Pool,
    private readonly opts: AuthenticatorOptions,
  ) {
    this.maxVerified = opts.maxEntries ?? 10_000;
    const answer = (ids: string[], asked: number) => this.answer(ids, asked);
    // The known lane holds at most one waiting lookup per id of `verified` and `expected`.
    this.knownLane = new LookupLane(answer, 2 * this.maxVerified, LOOKUP_BATCH);
    this.unknownLane = new LookupLane(answer, MAX_WAITING, LOOKUP_BATCH);
    this.flushTimer = opts.mode === 'keys' ? setInterval(() => void this.flushUsed(), LAST_USED_FLUSH_MS).unref() : null;
    // Read again now and then: a key created after this replica started (on another replica, or
    // never used yet) is then looked up in the known keys' lane too, not with a flood's ids.
    this.preloadTimer =
      opts.mode === 'keys'
        ? setInterval(() => void this.preload().catch((err: unknown) => opts.log.warn({ err }, 'could not read the API keys in use')), opts.preloadEveryMs ?? PRELOAD_EVERY_MS).unref()
        : null;
  }

  /** The principal of a request's Authorization header; a cached key answers synchronously. */
  authenticate(header: string | string[] | undefined): Principal | Promise<Principal> {
    if (this.opts.mode === 'off') return OPEN_PRINCIPAL;
    const key = bearer(header);
    if (key === null) throw this.fail('missing', 'send an API key as Authorization: Bearer <key>');
    const id = keyId(key);
    if (id === null) throw this.fail('malformed', 'the API key is not a valid key');
    const entry = this.verified.get(id) ?? this.unverified.get(id);
    if (entry && performance.now() - entry.at < this.opts.cacheMs) return this.verify(id, entry, key);
    return this.lookup(id).then((e) => this.verify(id, e, key));
  }

  /**
   * Reads the ids of the keys most recently used (AUTH_CACHE_KEYS at most), so that after a
   * restart their first lookups take the known keys' lane too, not the one a flood fills.
   */
  async preload(): Promise<number> {
    if (this.opts.mode === 'off') return 0;
    const ids = await recentKeyIds(this.pool, this.maxVerified);
    this.expected.clear();
    for (const id of ids) this.expected.add(id);
    return this.expected.size;
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
    if (this.preloadTimer) clearInterval(this.preloadTimer);
    await this.flushUsed();
  }

  private verify(id: string, entry: Entry, key: string): Principal {
    if (entry.cred === null || !this.matches(id, entry, key)) throw this.fail('unknown', 'the API key is not valid');
    if (!entry.cred.active || entry.principal === null) throw this.fail('revoked_or_expired', 'the API key was revoked or has expired');
    this.used.add(entry.cred.id);
    return entry.principal;
  }

  /** Constant-time either way: against the key that matched before, else against the stored hash. */
  private matches(id: string, entry: Entry, key: string): boolean {
    const presented = Buffer.from(key, 'latin1');
    if (entry.matched) return presented.length === entry.matched.length && timingSafeEqual(presented, entry.matched);
    if (!keyMatches(key, entry.cred!.secret_hash)) return false;
    entry.matched = presented;
    if (this.unverified.get(id) === entry) {
      this.unverified.delete(id);
      this.expected.delete(id);
      this.keep(this.verified, id, entry, this.maxVerified);
    }
    return true;
  }

  /**
   * Ids not in the cache are looked up in batches. Those of keys seen valid here (or in use when it
   * started) go in their own lane, so the unknown ids of a flood (5,000 waiting at most, then 503)
   * cannot hold them up.
   */
  private lookup(id: string): Promise<Entry> {
    const p = this.pending.get(id);
    // A query begun AUTH_CACHE_MS or more ago may have read the key before a revocation this
    // request came after: the request waits for a query of its own instead.
    if (p && (p.asked === null || performance.now() - p.asked < this.opts.cacheMs)) return p.result;
    const ticket = (this.verified.has(id) || this.expected.has(id) ? this.knownLane : this.unknownLane).enqueue(id);
    if (ticket === null) {
      this.opts.onLookup?.('refused');
      return Promise.reject(unavailable('too many API keys are being checked at once; retry shortly', 1));
    }
    this.pending.set(id, ticket);
    const settled = () => {
      if (this.pending.get(id) === ticket) this.pending.delete(id);
    };
    ticket.result.then(settled, settled);
    return ticket.result;
  }

  /** Reads a batch of ids (asked: when the query began) and caches what it found. */
  private async answer(ids: string[], asked: number): Promise<Entry[]> {
    const found = await findCredentials(this.pool, ids);
    return ids.map((id) => this.remember(id, found.get(id) ?? null, asked));
  }

  /**
   * An answer is as old as its query's start: a key revoked while it ran is trusted at most
   * AUTH_CACHE_MS from then. A key seen valid stays in the valid keys' cache while its hash is the
   * same; anything else goes to the unverified cache until a request presents its secret.
   */
  private remember(id: string, cred: KeyCredential | null, at: number): Entry {
    const principal: Principal | null = cred ? { tenant: cred.tenant, keyTenant: cred.tenant, scopes: new Set(cred.scopes), keyId: cred.id } : null;
    const entry: Entry = { at, cred, principal };
    if (cred === null) this.expected.delete(id);
    const known = this.verified.get(id);
    // A key seen valid here and deleted since is not_found: what the lookup came to, not the cache.
    this.opts.onLookup?.(cred === null ? 'not_found' : known ? 'verified' : 'found');
    // Lookups of one id may overlap: a newer answer that came first stays.
    const current = known ?? this.unverified.get(id);
    if (current && current.at > at) return entry;
    if (known?.cred && cred && known.cred.secret_hash.equals(cred.secret_hash)) {
      entry.matched = known.matched;
      this.keep(this.verified, id, entry, this.maxVerified);
      return entry;
    }
    this.verified.delete(id);
    this.keep(this.unverified, id, entry, MAX_UNVERIFIED);
    return entry;
  }

  /** Sets `id` last in the map (a Map iterates in insertion order) and drops the first beyond `max`. */
  private keep(cache: Map<string, Entry>, id: string, entry: Entry, max: number): void {
    cache.delete(id);
    cache.set(id, entry);
    for (const old of cache.keys()) {
      if (cache.size <= max) break;
      cache.delete(old);
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
