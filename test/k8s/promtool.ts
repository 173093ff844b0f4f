/** The promtool binary for tests that check rules and PromQL, installed on first use when missing. */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../../cdk8s/sources';

export function promtool(): string {
  const has = () => {
    try {
      execFileSync('promtool', ['--version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  if (!has()) {
    // Debian's `prometheus` package; scripts/prometheus-local.sh installs it without starting a server.
    const installer = path.join(REPO_ROOT, 'scripts/prometheus-local.sh');
    if (existsSync(installer)) execFileSync('bash', [installer, 'install'], { stdio: 'inherit' });
    else execFileSync('bash', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus'], { stdio: 'inherit' });
  }
  return 'promtool';
}
