/**
 * The client's generated types (services/client/api-schema.ts) are what `npm run client:types` makes
 * from the OpenAPI document today: a schema change without regenerating them fails here.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
// Type-only: `npm test`'s tsc checks the script this test runs as a child process.
import type * as _clientTypes from '../../scripts/client-types';

const ROOT = path.resolve(__dirname, '../..');

it('services/client/api-schema.ts matches the OpenAPI document (run `npm run client:types` and commit it when this fails)', () => {
  const fresh = execFileSync(process.execPath, ['--import', 'tsx', 'scripts/client-types.ts', '--print'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  expect(fresh).toContain('export interface components');
  expect(readFileSync(path.join(ROOT, 'services/client/api-schema.ts'), 'utf8')).toBe(fresh);
}, 60_000);
