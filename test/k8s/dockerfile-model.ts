/** The Dockerfile as stages of instructions (parsed with dockerfile-ast), for the image tests. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DockerfileParser } from 'dockerfile-ast';
import { REPO_ROOT } from '../../cdk8s/sources';

export interface Instruction {
  keyword: string;
  args: string;
  /** --from=…, --chown=… and the like. */
  flags: Record<string, string>;
}

export interface Stage {
  name: string;
  /** The stage or image it starts from. */
  from: string;
  instructions: Instruction[];
}

export const DOCKERFILE = path.join(REPO_ROOT, 'Dockerfile');

export function readDockerfile(): string {
  return readFileSync(DOCKERFILE, 'utf8');
}

export function stages(text = readDockerfile()): Map<string, Stage> {
  const out = new Map<string, Stage>();
  let current: Stage | undefined;
  for (const i of DockerfileParser.parse(text).getInstructions()) {
    const keyword = i.getKeyword();
    const args = i.getArgumentsContent() ?? '';
    if (keyword === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args.trim());
      if (!m) throw new Error(`unexpected FROM ${args}`);
      current = { name: m[2] ?? `stage${out.size}`, from: m[1]!, instructions: [] };
      out.set(current.name, current);
      continue;
    }
    if (!current) continue;
    const flags: Record<string, string> = {};
    const withFlags = i as unknown as { getFlags?: () => { getName(): string; getValue(): string | null }[] };
    for (const f of withFlags.getFlags?.() ?? []) flags[f.getName()] = f.getValue() ?? '';
    current.instructions.push({ keyword, args, flags });
  }
  return out;
}

/** The chain of stages a target is built from, base first (e.g. runtime, api). */
export function stageChain(all: Map<string, Stage>, target: string): Stage[] {
  const chain: Stage[] = [];
  for (let s = all.get(target); s; s = all.get(s.from)) chain.unshift(s);
  if (chain.length === 0) throw new Error(`no stage ${target}`);
  return chain;
}

/** The last value of an instruction along a chain (USER, ENTRYPOINT, CMD, WORKDIR…). */
export function last(chain: Stage[], keyword: string): string | undefined {
  return chain.flatMap((s) => s.instructions).filter((i) => i.keyword === keyword).pop()?.args;
}

/** `COPY a b dest` → { sources: [a, b], dest }. */
export function copyArgs(i: Instruction): { sources: string[]; dest: string } {
  const parts = i.args.trim().split(/\s+/);
  return { sources: parts.slice(0, -1), dest: parts[parts.length - 1]! };
}
