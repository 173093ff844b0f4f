/** The operator CLI run in the test's own process (runCli), with what it wrote kept for assertions. */
import { runCli } from '../../services/cli/main';

export interface CliRun {
  code: number;
  out: string;
  err: string;
}

/**
 * Runs `task-scheduler argv…` with `env` as its whole environment; `stdin` is what it reads for
 * `-` (none to read without), `tty` whether it may draw progress.
 */
export async function runCliCaptured(argv: string[], env: NodeJS.ProcessEnv, opts: { stdin?: string; tty?: boolean } = {}): Promise<CliRun> {
  let out = '';
  let err = '';
  const { stdin, tty } = opts;
  const io = { out: (t: string) => void (out += t), err: (t: string) => void (err += t), ...(stdin === undefined ? {} : { stdin: async () => stdin }), ...(tty === undefined ? {} : { tty }) };
  const code = await runCli(argv, env, io);
  return { code, out, err };
}
