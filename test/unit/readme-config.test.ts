import { readFileSync } from 'node:fs';
import path from 'node:path';
import { embedConfigTable } from '../../services/core/config/config-table';

it('the README configuration table matches the typed config table', () => {
  const readme = readFileSync(path.resolve(__dirname, '../../README.md'), 'utf8');
  // If this fails, run `npm run docs:config` and commit README.md.
  expect(readme).toBe(embedConfigTable(readme));
});
