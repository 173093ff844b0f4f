// BullMQ 6 reference worker for the benchmark: one worker, a no-op processor, removeOnComplete.
// Prints "ready" once connected; exits on SIGTERM.
const { Worker } = require('bullmq');

const [host, port] = (process.env.REDIS_ADDR || '127.0.0.1:6379').split(':');
const worker = new Worker('bench', async () => undefined, {
  connection: { host, port: Number(port) },
  concurrency: Number(process.env.CONCURRENCY || 100),
  removeOnComplete: { count: 0 },
  removeOnFail: { count: 0 },
  prefix: process.env.BULL_PREFIX || 'bull',
});
worker.waitUntilReady().then(() => console.log('{"msg":"listening"}'));
process.on('SIGTERM', () => worker.close().then(() => process.exit(0)));
