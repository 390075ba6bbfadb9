// `wabridge quarantine`: the webhooks a mapping could not map, through the admin API of the running
// host. Replay must re-map with the mapping that host has loaded now (after a fixed one was
// hot-reloaded) and deliver through its webhook path, so nothing here opens the store itself.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { loadConfig } from '../host/config.js';
import { WabError } from '../mapping/errors.js';
import { loadBaseSettings } from '../mapping/golden.js';
import { loadMapping } from '../mapping/loader.js';
import { fixtureError, quarantineFixture } from '../mapping/quarantine-fixture.js';
import type { QuarantineRecord } from '../stores/store.js';
import { configPath } from './serve.js';

export interface QuarantineOptions {
  config?: string;
  /** The host's base URL; default from the configuration (server.host and port). */
  url?: string;
  mappings?: string;
  json: boolean;
}

const out = (line: string) => process.stdout.write(`${line}\n`);

/** Where the admin API is and its token, from the configuration the host runs with. */
function target(opts: QuarantineOptions) {
  const cfg = loadConfig(configPath(opts.config));
  const token = process.env.WABRIDGE_ADMIN_TOKEN || cfg.server.adminToken;
  if (!token) throw new WabError('WAB_INPUT_INVALID', 'the admin API is disabled: set server.adminToken (or WABRIDGE_ADMIN_TOKEN)');
  const host = cfg.server.host === '0.0.0.0' || cfg.server.host === '::' ? '127.0.0.1' : cfg.server.host;
  return { base: (opts.url ?? `http://${host.includes(':') ? `[${host}]` : host}:${cfg.server.port}`).replace(/\/+$/, ''), token, mappingsDir: opts.mappings ?? cfg.server.mappingsDir };
}

async function api(t: { base: string; token: string }, path: string, body?: unknown): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(`${t.base}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${t.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(60_000),
    });
  } catch (e) {
    throw new WabError('WAB_INPUT_INVALID', `cannot reach wabridge at ${t.base} (is it running? --url sets where): ${(e as Error).message}`);
  }
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* keep the text */
  }
  if (!res.ok) {
    const message = typeof parsed === 'object' && parsed !== null && 'message' in parsed ? String((parsed as { message: unknown }).message) : text;
    throw new WabError('WAB_INPUT_INVALID', `${path}: HTTP ${res.status}: ${message}`);
  }
  return parsed;
}

const iso = (ms: number) => new Date(ms).toISOString();

function line(q: QuarantineRecord): string {
  const part = q.part ? ` item ${q.part.index + 1}/${q.part.of}` : '';
  return `${q.id}  ${iso(q.receivedAt)}  ${q.tenant}  ${q.mapping}@${q.mappingVersion ?? '?'}${part}  attempts=${q.attempts}  ${q.error.code} ${q.error.where ?? ''} ${q.error.message}`;
}

export async function quarantine(action: string | undefined, args: string[], opts: QuarantineOptions): Promise<number> {
  const t = target(opts);
  switch (action) {
    case 'list': {
      const r = (await api(t, '/v1/admin/quarantine?limit=1000')) as { size: number; quarantined: QuarantineRecord[] };
      if (opts.json) out(JSON.stringify(r));
      else {
        for (const q of r.quarantined) out(line(q));
        out(`${r.size} quarantined webhook(s)${r.size > r.quarantined.length ? `, the oldest ${r.quarantined.length} shown` : ''}`);
      }
      return 0;
    }
    case 'show': {
      const id = args[0];
      if (!id) throw new WabError('WAB_INPUT_INVALID', 'quarantine show needs an id (see quarantine list)');
      out(JSON.stringify(await api(t, `/v1/admin/quarantine/${encodeURIComponent(id)}`), null, 2));
      return 0;
    }
    case 'replay': {
      const r = (await api(t, '/v1/admin/quarantine/replay', args.length > 0 ? { ids: args } : {})) as {
        replayed: number;
        failed: number;
        size: number;
        results: { id: string; outcome: string; accepted?: number; duplicates?: number; error?: QuarantineRecord['error']; quarantined?: string[]; reason?: string }[];
      };
      if (opts.json) out(JSON.stringify(r));
      else {
        for (const x of r.results) {
          const detail =
            x.outcome === 'failed' ? `${x.error?.code} ${x.error?.where ?? ''} ${x.error?.message}` : x.outcome === 'skipped' ? (x.reason ?? '') : x.outcome === 'missing' ? '' : `accepted=${x.accepted} duplicates=${x.duplicates}${x.quarantined ? ` still quarantined as ${x.quarantined.join(', ')}` : ''}`;
          out(`${x.id}  ${x.outcome}  ${detail}`);
        }
        out(`${r.replayed} replayed, ${r.failed} still failing; ${r.size} left in quarantine`);
      }
      return r.results.some((x) => x.outcome !== 'replayed') ? 1 : 0;
    }
    case 'to-fixture':
      return toFixture(t, args);
    default:
      throw new WabError('WAB_INPUT_INVALID', `quarantine needs list, show <id>, replay [id...] or to-fixture <id> <bsp>/<case>, got '${action ?? ''}'`);
  }
}

/** Writes mappings/<bsp>/fixtures/<case>/ from a quarantined webhook, redacted, and says whether it fails now. */
async function toFixture(t: ReturnType<typeof target>, args: string[]): Promise<number> {
  const [id, where] = args;
  const m = where === undefined ? null : /^([A-Za-z0-9_.-]+)\/([A-Za-z0-9_.-]+)$/.exec(where);
  if (!id || !m) throw new WabError('WAB_INPUT_INVALID', 'quarantine to-fixture needs <id> <bsp>/<case>, e.g. to-fixture 12 acme/webhook-inbound-order');
  const [, bsp, name] = m as unknown as [string, string, string];
  const mappingDir = join(t.mappingsDir, bsp);
  if (!existsSync(join(mappingDir, 'mapping.yaml'))) throw new WabError('WAB_INPUT_INVALID', `no mapping ${bsp} in ${t.mappingsDir}`);
  const dir = join(mappingDir, 'fixtures', name);
  if (existsSync(dir)) throw new WabError('WAB_INPUT_INVALID', `${dir} exists already: choose another case name`);
  const rec = (await api(t, `/v1/admin/quarantine/${encodeURIComponent(id)}`)) as QuarantineRecord;
  const loaded = loadMapping(mappingDir);
  // The mapping knows its BSP's key names (fixtures.redact); one that does not load gets the generic rules.
  const made = quarantineFixture(rec, loaded.ok ? loaded.mapping : undefined);
  mkdirSync(dir, { recursive: true });
  for (const [file, text] of Object.entries(made.files)) writeFileSync(join(dir, file), text);
  const inputFile = made.input.file;
  const shown = relative(process.cwd(), dir) || dir;
  out(`wrote ${shown}/fixture.yaml and ${inputFile} (${rec.mapping} webhook ${rec.id}, phone numbers, names, texts, ids and secrets replaced: review before committing)`);
  if (!loaded.ok) {
    out(`${bsp} does not load now: ${loaded.errors.map((e) => e.message).join('; ')}`);
    return 1;
  }
  // Red first: the case has no expected.json yet, so `wabridge test` fails it; what matters is whether
  // the mapping on disk still maps it to an error (`--update` now would record that error as expected).
  const error = await fixtureError(loaded.mapping, shown, made, loadBaseSettings(mappingDir));
  if (error) out(`red: ${bsp} still fails on it: ${error.code}: ${error.message}\nnext: fix ${bsp}/mapping.yaml (not --update before: it would record this error as expected), then \`wabridge test --update --filter ${bsp}/${name}\`, review expected.json, reload, and \`wabridge quarantine replay ${rec.id}\``);
  else out(`note: ${bsp}'s mapping on disk maps this input already (fixed already, or the redaction removed what made it fail: compare with \`wabridge quarantine show ${rec.id}\`); \`wabridge test --update --filter ${bsp}/${name}\` writes expected.json`);
  return 0;
}
