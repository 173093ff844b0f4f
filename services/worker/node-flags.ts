/**
 * Node flags the worker runs with, wherever it is started: the image's CMD (Dockerfile), `npm start`
 * (scripts/start.sh), `npm run worker`, and the tests' and benchmarks' processes (spawnService).
 * test/unit/worker-node-flags.test.ts and test/k8s/dockerfile.test.ts check that they agree.
 * A young generation of 2 × 8 MiB instead of 2 × 16 MiB: about 10 MB less peak RSS draining a backlog,
 * at the same rate (docs/benchmarks.md, seventh sitting).
 */
export const WORKER_SCRIPT = 'dist/services/worker/main.js';
export const WORKER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8'];
