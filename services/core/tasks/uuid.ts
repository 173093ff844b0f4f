/**
 * UUIDv7 (RFC 9562): a millisecond timestamp followed by random bits. Time-ordered ids keep the
 * tasks primary-key index append-mostly under a high insert rate, unlike random v4 ids.
 */
import { randomUUID } from 'node:crypto';

/**
 * The random part comes from a v4 UUID: node hands those out from a cached pool of random bytes,
 * ~4× cheaper than asking for 16 fresh bytes per id. Its variant bits are v7's; its version
 * nibble and first 48 bits are replaced, which leaves 74 random bits as RFC 9562 asks.
 */
export function uuidv7(nowMs: number = Date.now()): string {
  const random = randomUUID(); // xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx
  const ts = nowMs.toString(16).padStart(12, '0');
  return `${ts.slice(0, 8)}-${ts.slice(8, 12)}-7${random.slice(15)}`;
}

export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
