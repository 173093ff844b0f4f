/** Task ids: UUIDv7, ordered by creation time, random below the millisecond. */
import { UUID_PATTERN, uuidv7 } from '../../services/core/tasks/uuid';

it('is a version 7, RFC 9562 variant UUID carrying its millisecond timestamp', () => {
  const now = Date.UTC(2026, 10, 29, 10, 0, 0, 123);
  const id = uuidv7(now);
  expect(id).toMatch(UUID_PATTERN);
  expect(id[14]).toBe('7');
  expect('89ab').toContain(id[19]);
  expect(parseInt(id.slice(0, 8) + id.slice(9, 13), 16)).toBe(now);
});

it('sorts by creation time, and ids of one millisecond differ', () => {
  const ids = [uuidv7(1000), uuidv7(1001), uuidv7(2 ** 40), uuidv7(2 ** 47)];
  expect([...ids].sort()).toEqual(ids);
  const same = new Set(Array.from({ length: 1000 }, () => uuidv7(5000)));
  expect(same.size).toBe(1000);
});
