// The ops console's static files under /console (docs/console.md): plain HTML, CSS and ES modules, no
// build step. They hold no data (everything comes from the admin API with the bearer token the
// operator types in), so they are served without a token. Only the files found in the folder at start
// are served, by exact name: a path that is not one of them (../, encoded or not) is a 404.
// The folder sits beside this module in the sources (engine/host/console/) and beside the bundle
// (dist/bundle/console/, copied by bin/build.js), so one relative URL finds it in both.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, RawServerDefault } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';

export const CONSOLE_DIR = fileURLToPath(new URL('./console/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

// The console talks to its own origin only, runs only its own scripts, and is never framed.
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

/** The console's files by URL path below /console/, read once. */
export function loadConsoleAssets(dir = CONSOLE_DIR): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  if (!existsSync(dir)) return assets;
  for (const file of walk(dir)) {
    const type = TYPES[extname(file)];
    if (!type) continue;
    const body = readFileSync(file);
    assets.set(relative(dir, file).split(sep).join('/'), { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
  }
  return assets;
}

export function registerConsole(app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Logger>, assets = loadConsoleAssets()): void {
  app.get('/console', async (_req, reply) => reply.redirect('/console/', 302));
  app.get<{ Params: { '*': string } }>('/console/*', async (req, reply) => {
    const path = req.params['*'] || 'index.html';
    const asset = assets.get(path);
    if (!asset) return reply.code(404).send({ message: `no console file '${path}'`, code: 'WAB_NOT_FOUND' });
    reply.headers(SECURITY_HEADERS);
    // Revalidated on every load (a 304 costs a round trip, no body): an upgraded wabridge never runs an old console.
    reply.header('cache-control', 'no-cache').header('etag', asset.etag);
    if (req.headers['if-none-match'] === asset.etag) return reply.code(304).send();
    return reply.type(asset.type).send(asset.body);
  });
}
