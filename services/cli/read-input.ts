/** A file or stdin read whole, but never past a bound: /dev/zero or an endless pipe would fill the heap. */
import { open } from 'node:fs/promises';
import { UsageError } from './args';
import type { Io } from './io';

const CHUNK = 1 << 20;

/** `source` ('-': stdin) as bytes; more than `maxBytes` is a usage error naming the bound. */
export async function readBounded(source: string, maxBytes: number, io: Io, what: string): Promise<Buffer> {
  const where = source === '-' ? 'stdin' : source;
  let raw: Buffer;
  if (source === '-') {
    if (!io.stdin) throw new UsageError(`cannot read ${what} from stdin here`);
    raw = Buffer.from(await io.stdin(maxBytes), 'utf8');
  } else {
    try {
      raw = await readFileUpTo(source, maxBytes + 1);
    } catch (err) {
      throw new UsageError(`cannot read ${source}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  if (raw.length > maxBytes) throw new UsageError(`${where} is larger than ${maxBytes} bytes, more than any API accepts`);
  return raw;
}

/** At most `limit` bytes of the file (a device or FIFO may never end). */
async function readFileUpTo(file: string, limit: number): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    while (total < limit) {
      const buf = Buffer.alloc(Math.min(CHUNK, limit - total));
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      chunks.push(buf.subarray(0, bytesRead));
      total += bytesRead;
    }
    return Buffer.concat(chunks);
  } finally {
    await fh.close();
  }
}
