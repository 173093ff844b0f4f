/** Jest runs TypeScript through ts-jest in transpile-only mode; `npm run typecheck` is the type gate. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] },
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
  testTimeout: 60000,
  maxWorkers: 2,
  // A fresh clone has no timing cache: the slowest files start first anyway (see the file).
  testSequencer: '<rootDir>/test/support/sequencer.js',
};
