/**
 * `npm run synth` (tsx cdk8s/main.ts): writes charts/manifests/<env>.yaml and charts/task-scheduler/.
 *   --out DIR    write under DIR instead of the repository root
 *   --root DIR   read migrations/, alerts/ and grafana/ from DIR (e.g. an export of a commit)
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { readSources, REPO_ROOT } from './sources';
import { renderOutputs, writeOutputs } from './synth';

const { values } = parseArgs({ options: { out: { type: 'string' }, root: { type: 'string' } } });
const out = path.resolve(values.out ?? REPO_ROOT);
const sources = readSources(path.resolve(values.root ?? REPO_ROOT));
const files = renderOutputs(sources);
writeOutputs(out, files);
process.stdout.write(
  `synth: ${Object.keys(files).length} files under ${path.relative(process.cwd(), out) || '.'} ` +
    `(schema version ${sources.schemaVersion}, ${sources.ruleFiles.length} rule files, ${sources.dashboards.length} dashboards)\n`,
);
