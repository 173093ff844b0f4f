/**
 * The last calls to Redis at a worker's stop (unlocks, its last announcement, closing the client).
 * Each waits a second at most: what one leaves behind lapses with its TTL, and with Redis away the
 * client's reconnect attempts held the stop for seconds each, one after the other.
 */
import { withTimeout } from '../core/process/with-timeout';

export const GOODBYE_MS = 1000;

export function goodbye(call: Promise<unknown>): Promise<void> {
  return withTimeout(call, GOODBYE_MS).then(
    () => undefined,
    () => undefined,
  );
}
