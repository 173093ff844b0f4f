import { isDeepStrictEqual } from 'node:util';

/**
 * `expect(actual).toEqual(expected)` for checks run thousands of times (invariants after every
 * step): jest's matcher costs 50–80 µs a call, so it runs only when the two differ, for its message.
 */
export function expectEqual<T>(actual: T, expected: T): void {
  if (!isDeepStrictEqual(actual, expected)) expect(actual).toEqual(expected);
}
