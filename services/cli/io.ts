/** Where the CLI writes: stdout for results (scriptable), stderr for messages. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Both stdout and stderr are terminals: progress may be drawn (on stderr). */
  tty?: boolean;
  /** Standard input, read whole (`workflows submit -`). */
  stdin?(): Promise<string>;
}

export const processIo: Io = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  tty: process.stdout.isTTY === true && process.stderr.isTTY === true,
  stdin: async () => {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  },
};
