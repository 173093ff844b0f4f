/**
 * A dependency (a Redis partition, Postgres) did not answer within a bound the code sets: the
 * caller may try again, so the API answers it 503 (isDependencyOutage), not 500.
 */
export class DependencyTimeoutError extends Error {
  override readonly name = 'DependencyTimeoutError';
}

/** `p`, or a rejection once `ms` pass without its answer (`what` names the wait in the error). */
export function withTimeout<T>(p: Promise<T>, ms: number, what = 'no answer'): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new DependencyTimeoutError(`${what} within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e as Error);
      },
    );
  });
}
