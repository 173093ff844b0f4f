/** Request ids: every response carries one, and logs of the request name it. */
import { randomUUID } from 'node:crypto';

/** The caller's X-Request-Id when it is a sane token, else a new one. */
export function requestIdFor(incoming: string | string[] | undefined): string {
  return typeof incoming === 'string' && /^[\x21-\x7e]{1,128}$/.test(incoming) ? incoming : randomUUID();
}
