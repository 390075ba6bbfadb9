// Mapping cost per message: for every `send` and `webhook` golden fixture of every mapping, time the
// CleverTap normalizer and the mapping step separately. Reports medians in microseconds; the last
// line is one JSON object for scripts. `--quick` runs fewer iterations.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { loadMapping, mappingDirs } from '../engine/mapping-loader.js';
import { toCanonical } from '../engine/pipeline.js';
import { planSend } from '../engine/send.js';
import { mapWebhook } from '../engine/webhook.js';
import { checkSettings } from '../engine/settings.js';

const quick = process.argv.includes('--quick');
const iterations = quick ? 300 : 3000;
const warmup = quick ? 100 : 500;

async function time(fn: () => unknown): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) await fn();
  return Number(process.hrtime.bigint() - start) / 1000 / iterations;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const results: Record<string, { normalizeUs: number[]; sendUs: number[]; webhookUs: number[] }> = {};
for (const dir of mappingDirs('mappings')) {
  const loaded = loadMapping(dir);
  if (!loaded.ok) throw new Error(loaded.errors.map((e) => e.message).join('\n'));
  const mapping = loaded.mapping;
  const settingsFile = join(dir, 'fixtures', 'settings.yaml');
  const settings = checkSettings(mapping.settings, existsSync(settingsFile) ? parseYaml(readFileSync(settingsFile, 'utf8')) : {});
  const r = (results[mapping.name] = { normalizeUs: [], sendUs: [], webhookUs: [] } as (typeof results)[string]);
  for (const c of readdirSync(join(dir, 'fixtures'), { withFileTypes: true }).filter((d) => d.isDirectory())) {
    const caseDir = join(dir, 'fixtures', c.name);
    const fixture = parseYaml(readFileSync(join(caseDir, 'fixture.yaml'), 'utf8')) as { kind: string };
    const json = join(caseDir, 'input.json');
    const form = join(caseDir, 'input.txt');
    if (!existsSync(json) && !(fixture.kind === 'webhook' && existsSync(form))) continue;
    const text = readFileSync(existsSync(json) ? json : form, 'utf8');
    const contentType = existsSync(json) ? 'application/json' : 'application/x-www-form-urlencoded';
    if (fixture.kind === 'send') {
      const canonical = toCanonical(text);
      if (!canonical.ok || canonical.message.isValidation) continue;
      const message = canonical.message;
      r.normalizeUs.push(await time(() => toCanonical(text)));
      r.sendUs.push(await time(() => planSend(mapping, message, settings)));
    } else if (fixture.kind === 'webhook') {
      const req = { url: 'http://127.0.0.1/webhook', headers: { 'content-type': contentType }, query: {}, rawBody: text };
      r.webhookUs.push(await time(() => mapWebhook(mapping, req, settings)));
    }
  }
}

const summary: Record<string, number> = {};
for (const [name, r] of Object.entries(results)) {
  const row = { normalize: median(r.normalizeUs), send: median(r.sendUs), webhook: median(r.webhookUs) };
  console.log(`${name}: median per message over ${r.sendUs.length} send fixtures: normalize ${row.normalize.toFixed(1)} µs, send mapping ${row.send.toFixed(1)} µs; over ${r.webhookUs.length} webhook fixtures: ${row.webhook.toFixed(1)} µs`);
  summary[`${name}_normalize_us`] = Number(row.normalize.toFixed(2));
  summary[`${name}_send_us`] = Number(row.send.toFixed(2));
  summary[`${name}_webhook_us`] = Number(row.webhook.toFixed(2));
}
console.log(JSON.stringify({ iterations, ...summary }));
