/**
 * The web console's built files (dist/console: index.html, style.css, the compiled ES modules),
 * read into memory once: a fixed set of names is served, so no request path ever reaches the
 * file system.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';

export interface ConsoleAsset {
  body: Buffer;
  contentType: string;
  etag: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/** A file's body and type, with an ETag of that body (so one rewritten, like index.html's api-base, gets its own). */
export function consoleAsset(body: Buffer, contentType: string): ConsoleAsset {
  return { body, contentType, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
}

/** dist/console beside the compiled API (dist/services/api/console), or under dist/ when run from source (ts-jest). */
export function defaultConsoleDir(): string {
  const candidates = [path.resolve(__dirname, '../../../console'), path.resolve(__dirname, '../../../dist/console')];
  return candidates.find((d) => existsSync(path.join(d, 'index.html'))) ?? candidates[0]!;
}

/** Every servable file under `dir` by its path relative to it ('app.js', 'pages/tasks.js'); empty when not built. */
export function loadConsoleAssets(dir: string): Map<string, ConsoleAsset> {
  const assets = new Map<string, ConsoleAsset>();
  if (!existsSync(dir)) return assets;
  const walk = (sub: string) => {
    for (const name of readdirSync(path.join(dir, sub))) {
      const rel = sub ? `${sub}/${name}` : name;
      const full = path.join(dir, rel);
      if (statSync(full).isDirectory()) walk(rel);
      else {
        const type = TYPES[path.extname(name)];
        // Source maps and anything unexpected stay private.
        if (!type) continue;
        assets.set(rel, consoleAsset(readFileSync(full), type));
      }
    }
  };
  walk('');
  return assets;
}
