/**
 * API keys: `tsk_<id>_<secret>`. The id (16 hex) is public and finds the key's row; the secret is
 * 32 random bytes (256 bits, base64url). Only sha256 of the whole key is stored, and it is compared
 * in constant time. The fixed prefix and shape let secret scanners recognize a leaked key.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const KEY_PREFIX = 'tsk_';
const KEY_PATTERN = /^tsk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export const SCOPES = ['tasks:write', 'tasks:read', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export function isScope(s: string): s is Scope {
  return (SCOPES as readonly string[]).includes(s);
}

export interface NewKey {
  id: string;
  key: string;
  hash: Buffer;
}

export function generateKey(): NewKey {
  const id = randomBytes(8).toString('hex');
  const key = `${KEY_PREFIX}${id}_${randomBytes(32).toString('base64url')}`;
  return { id, key, hash: hashKey(key) };
}

/** The id of a well-formed key, or null (then no row is looked up). */
export function keyId(key: string): string | null {
  return KEY_PATTERN.exec(key)?.[1] ?? null;
}

export function hashKey(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}

/** Whether `key` hashes to `storedHash`, in time that does not depend on where they differ. */
export function keyMatches(key: string, storedHash: Buffer): boolean {
  const h = hashKey(key);
  return h.length === storedHash.length && timingSafeEqual(h, storedHash);
}
