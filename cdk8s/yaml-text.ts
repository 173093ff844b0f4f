/**
 * YAML as the generated files write it: no line folding (scripts stay readable), and strings that
 * YAML 1.1 reads as something else (`on`, `yes`, `off`, `no`, …) quoted. Kubernetes and Helm parse
 * YAML 1.1, where `--appendonly yes` in a container's args would be a boolean and be refused.
 */
import { stringify } from 'yaml';

export function yamlText(value: unknown): string {
  return stringify(value, { lineWidth: 0, version: '1.1' });
}
