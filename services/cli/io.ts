/** Where the CLI writes: stdout for results (scriptable), stderr for messages. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Both stdout and stderr are terminals: progress may be drawn (on stderr). */
  tty?: boolean;
  /** Standard input, read whole (`workflows submit -`), or stopped once past `maxBytes`. */
  stdin?(maxBytes: number): Promise<string>;
}

export const processIo: Io = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  tty: process.stdout.isTTY === true && process.stderr.isTTY === true,
  stdin: async (maxBytes) => {
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const c of process.stdin) {
      chunks.push(c as Buffer);
      total += (c as Buffer).length;
      // Endless input (`< /dev/zero`) would otherwise fill the heap.
      if (total > maxBytes) break;
    }
    return Buffer.concat(chunks).toString('utf8');
  },
};
