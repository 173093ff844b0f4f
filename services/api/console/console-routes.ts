/**
 * GET {UI_BASE_PATH}/…: the web console's static files, with a strict Content-Security-Policy.
 * The console holds no data of its own: it calls the public API with the operator's key, so it
 * needs no key to be fetched.
 */
import type { Express, NextFunction, Request, Response } from 'express';
import { notFound, ProblemError } from '../problem';
import { ConsoleAsset, consoleAsset, defaultConsoleDir, loadConsoleAssets } from './console-assets';

export interface ConsoleOptions {
  /** UI_BASE_PATH, e.g. '/ui'. */
  basePath: string;
  /** Where the built console is (default: dist/console). */
  dir?: string;
}

// Only the console's own files: no inline script or style, no other origin, never framed.
export const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const API_BASE_MARKER = '__API_BASE__';

export function addConsoleRoutes(app: Express, opts: ConsoleOptions): void {
  const base = opts.basePath.replace(/\/+$/, '');
  const assets = loadConsoleAssets(opts.dir ?? defaultConsoleDir());
  const index = assets.get('index.html');
  if (index) {
    // The API's root relative to the console's (behind an ingress sub-path both move together).
    const apiBase = '../'.repeat(base.split('/').length - 1);
    // Its ETag is of the page as served: one page per base path, where the file's ETag was shared by all.
    assets.set('index.html', consoleAsset(Buffer.from(index.body.toString('utf8').replace(API_BASE_MARKER, apiBase)), index.contentType));
  }
  const lastSegment = base.slice(base.lastIndexOf('/') + 1);

  app.use(base, (req: Request, res: Response, next: NextFunction) => {
    const pathOnly = req.originalUrl.split('?')[0]!;
    // Only exactly the base path and what is under it; /uifoo is someone else's.
    if (pathOnly !== base && !pathOnly.startsWith(`${base}/`)) {
      next();
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      next(new ProblemError(405, 'Method not allowed', `${req.method} is not allowed on ${pathOnly}; use GET, HEAD`, [], { Allow: 'GET, HEAD' }));
      return;
    }
    // The page's relative URLs need the trailing slash; a relative Location keeps an ingress prefix.
    if (pathOnly === base) {
      res.status(308).set('Location', `${lastSegment}/`).end();
      return;
    }
    const name = pathOnly.slice(base.length + 1) || 'index.html';
    const asset = assets.get(name);
    if (!asset) {
      next(notFound(assets.size === 0 ? 'the web console is not built (npm run build)' : `no console file ${name}`));
      return;
    }
    send(req, res, asset);
  });
}

function send(req: Request, res: Response, asset: ConsoleAsset): void {
  res.set({
    'Content-Security-Policy': CONSOLE_CSP,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'X-Frame-Options': 'DENY',
    'Cross-Origin-Opener-Policy': 'same-origin',
    // File names carry no version: revalidate every time (a 304 is cheap), never store elsewhere.
    'Cache-Control': 'private, no-cache',
    ETag: asset.etag,
    'Content-Type': asset.contentType,
  });
  if (req.get('If-None-Match') === asset.etag) {
    res.status(304).end();
    return;
  }
  res.status(200).set('Content-Length', String(asset.body.length));
  if (req.method === 'HEAD') res.end();
  else res.end(asset.body);
}
