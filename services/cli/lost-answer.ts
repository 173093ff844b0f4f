/** What a failed change that may still have happened says (the CLI cannot tell whether the API acted). */
import { ApiError, ConnectionError } from '../client';

/**
 * No answer, or a 5xx (the API may have acted first): `err` is thrown on, its message saying that
 * the action may have happened and what to check before running it again.
 */
export function mayHaveHappened(err: unknown, note: string): never {
  if (err instanceof ConnectionError || (err instanceof ApiError && err.status >= 500)) err.message += `; ${note}`;
  throw err;
}
