// Mapping cost per message, over every `send` and `webhook` golden fixture of every mapping, three
// ways side by side in this process: wabridge as it runs (compiled fast path), wabridge on plain
// jsonata evaluation (the same mapping loaded with WAB_JSONATA_FASTPATH=0), and, for meta-cloud, the
// hand-written JavaScript mapping in bench/handwritten/ (test/mapping/handwritten-baseline.test.ts proves it
// gives the same results). "Mapping" is the whole step the engine runs per message: CleverTap's
// canonical message → the BSP's HTTP request (planSend: URL, headers, serialized body), and a BSP
// webhook body → checked CleverTap events (mapWebhook: parse, map, check).
//
// For meta-cloud a fourth variant, planSend with contracts.enforce on (every body checked against
// Meta's Message schema before the BSP call), gives the guard's cost as a ratio to planSend without it.
//
// Variants are timed in interleaved rounds, so a neighbour's load drifts over all of them alike; each
// figure is a ratio of two variants on the same fixture, then the median over fixtures.
//   node --import tsx bench/mapping.ts [--quick] [--only <mapping>] [--cases]   (last line: one JSON object)
// --cases prints each fixture's figures (investigation: which fixtures hold the medians).
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { loadMapping, mappingDirs, type Mapping } from '../engine/mapping/loader.js';
import { toCanonical } from '../engine/mapping/pipeline.js';
import { planSend } from '../engine/mapping/send.js';
import { mapWebhook, type WebhookRequest } from '../engine/mapping/webhook.js';
import { checkSettings } from '../engine/mapping/settings.js';
import type { CanonicalMessage } from '../engine/clevertap/model.js';
import { metaSend, metaWebhookEvents, type MetaSettings } from './handwritten/meta-cloud.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface MappingFigures {
  /** Meta fixtures: wabridge ÷ hand-written, median per fixture (lower is better). */
  mapping_vs_handwritten: number;
  mapping_vs_handwritten_send: number;
  mapping_vs_handwritten_webhook: number;
  /** Meta fixtures: jsonata ÷ wabridge, median per fixture (higher is better). */
  mapping_speedup_vs_jsonata: number;
  /** The same over every mapping's fixtures. */
  mapping_speedup_vs_jsonata_all: number;
  /** Per mapping: median µs per message for each variant. */
  mappings: Record<string, { sends: number; webhooks: number; send_us: number; send_jsonata_us: number; webhook_us: number; webhook_jsonata_us: number; normalize_us: number }>;
  meta_handwritten_send_us: number;
  meta_handwritten_webhook_us: number;
  /** Meta sends: planSend with contracts.enforce ÷ without, median per fixture (the guard's cost; 1 = free). */
  meta_enforce_send_ratio: number;
  /** Meta sends with contracts.enforce: median µs per message. */
  meta_enforce_send_us: number;
}

export const USAGE = `node --import tsx bench/mapping.ts [--quick] [--only <mapping>] [--cases]
  Mapping cost per message over every send and webhook golden fixture: the compiled fast path, plain
  jsonata, the hand-written Meta mapping, and Meta's planSend with contracts.enforce (the JSON line's
  meta_enforce_send_ratio: with ÷ without). --quick: fewer, shorter rounds; --only meta-cloud: one
  mapping (with --quick: 3 rounds of 2 ms per variant and fixture); --cases: each fixture's figures.`;

type Variant = () => unknown;

/**
 * Times variants in interleaved rounds; returns µs per call for each. A round gives every variant
 * about the same wall time, so fast and slow variants are both measured over many calls.
 */
async function interleaved(variants: Variant[], rounds: number, roundMs: number): Promise<number[]> {
  const perCall: number[] = [];
  // calibrate: calls per round for each variant (after a warm-up that also lets V8 optimize)
  const batch: number[] = [];
  for (const v of variants) {
    for (let i = 0; i < 50; i++) await v();
    const t0 = performance.now();
    let n = 0;
    while (performance.now() - t0 < roundMs) {
      await v();
      n++;
    }
    batch.push(Math.max(1, n));
  }
  const total = variants.map(() => 0);
  const calls = variants.map(() => 0);
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < variants.length; k++) {
      const v = variants[k]!;
      const n = batch[k]!;
      const t0 = performance.now();
      for (let i = 0; i < n; i++) await v();
      total[k]! += performance.now() - t0;
      calls[k]! += n;
    }
  }
  for (let k = 0; k < variants.length; k++) perCall.push((total[k]! / calls[k]!) * 1000);
  return perCall;
}

export const median = (xs: number[]): number => {
  const s = [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const r2 = (x: number) => Math.round(x * 100) / 100;

const caseLine = (name: string, fast: number, jsonata: number, hand: number | undefined) =>
  `  ${name.padEnd(52)} ${fast.toFixed(2).padStart(7)} µs  jsonata ${jsonata.toFixed(1).padStart(6)} µs  ${(jsonata / fast).toFixed(1).padStart(5)}×` +
  (hand === undefined ? '' : `  hand-written ${hand.toFixed(2)} µs (${(fast / hand).toFixed(2)}×)`);

function load(dir: string, fastPath: boolean): Mapping {
  const saved = process.env.WAB_JSONATA_FASTPATH;
  if (fastPath) delete process.env.WAB_JSONATA_FASTPATH;
  else process.env.WAB_JSONATA_FASTPATH = '0';
  try {
    const loaded = loadMapping(dir);
    if (!loaded.ok) throw new Error(loaded.errors.map((e) => e.message).join('\n'));
    return loaded.mapping;
  } finally {
    if (saved === undefined) delete process.env.WAB_JSONATA_FASTPATH;
    else process.env.WAB_JSONATA_FASTPATH = saved;
  }
}

/**
 * `dir`'s mapping with contracts.enforce on, loaded the way a user turns it on: a mapping that extends
 * it and sets only that key (in a temporary folder beside a link to it; nothing in mappings/ changes).
 */
export function loadEnforced(dir: string): Mapping {
  const tmp = mkdtempSync(join(tmpdir(), 'wab-enforce-'));
  try {
    const name = basename(dir);
    symlinkSync(dir, join(tmp, name), 'dir');
    const own = join(tmp, `${name}-enforced`);
    mkdirSync(own);
    writeFileSync(
      join(own, 'mapping.yaml'),
      `# yaml-language-server: $schema=../../schemas/mapping.schema.json\nname: ${name}-enforced\ntitle: ${name} with contracts.enforce\nextends: ${name}\ncontracts:\n  enforce: true\n`,
    );
    const m = load(own, true);
    if (!m.send.guard) throw new Error(`${name} has no contracts.requestBody to enforce`);
    return m;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

export interface Fixture {
  name: string;
  kind: 'send' | 'webhook';
  text: string;
  contentType: string;
  settings: Record<string, unknown>;
}

/** A webhook fixture as the BSP's request. */
export const webhookRequest = (fx: Fixture): WebhookRequest => ({ url: 'http://127.0.0.1/webhook', headers: { 'content-type': fx.contentType }, query: {}, rawBody: fx.text });

/** A mapping's send and webhook golden fixtures: kind, input text, its content type, checked settings. */
export function fixtures(dir: string, mapping: Mapping): Fixture[] {
  const settingsFile = join(dir, 'fixtures', 'settings.yaml');
  const base = existsSync(settingsFile) ? (parseYaml(readFileSync(settingsFile, 'utf8')) as Record<string, unknown>) : {};
  const out: Fixture[] = [];
  for (const c of readdirSync(join(dir, 'fixtures'), { withFileTypes: true }).filter((d) => d.isDirectory())) {
    const caseDir = join(dir, 'fixtures', c.name);
    const fixture = parseYaml(readFileSync(join(caseDir, 'fixture.yaml'), 'utf8')) as { kind: string; settings?: Record<string, unknown> };
    if (fixture.kind !== 'send' && fixture.kind !== 'webhook') continue;
    const json = join(caseDir, 'input.json');
    const form = join(caseDir, 'input.txt');
    const file = existsSync(json) ? json : fixture.kind === 'webhook' && existsSync(form) ? form : undefined;
    if (!file) continue;
    out.push({
      name: c.name,
      kind: fixture.kind,
      text: readFileSync(file, 'utf8'),
      contentType: file === json ? 'application/json' : 'application/x-www-form-urlencoded',
      settings: checkSettings(mapping.settings, { ...base, ...fixture.settings }),
    });
  }
  return out;
}

export async function runMappingBench(opts: { quick: boolean; only?: string; cases?: boolean; log?: (line: string) => void }): Promise<MappingFigures> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const rounds = opts.quick ? 3 : 8;
  const roundMs = opts.quick ? 2 : 5;
  const mappings: MappingFigures['mappings'] = {};
  const speedups: number[] = [];
  const metaSpeedups: number[] = [];
  const vsHand: { send: number[]; webhook: number[] } = { send: [], webhook: [] };
  const hand: { send: number[]; webhook: number[] } = { send: [], webhook: [] };
  const enforce: { ratio: number[]; us: number[] } = { ratio: [], us: [] };

  for (const dir of mappingDirs(join(ROOT, 'mappings'))) {
    if (opts.only !== undefined && !dir.endsWith(opts.only)) continue;
    const fast = load(dir, true);
    const slow = load(dir, false);
    const isMeta = fast.name === 'meta-cloud';
    const enforced = isMeta ? loadEnforced(dir) : undefined;
    const row = { send: [] as number[], sendJ: [] as number[], webhook: [] as number[], webhookJ: [] as number[], normalize: [] as number[] };
    const cases = fixtures(dir, fast);
    // Warm-up over every fixture first, so that V8 has optimized the shared code before the first
    // fixture is timed (otherwise the first fixtures measure the JIT, not the mapping).
    for (let round = 0; round < (opts.quick ? 100 : 300); round++) {
      for (const fx of cases) {
        if (fx.kind === 'send') {
          const c = toCanonical(fx.text);
          if (c.ok && !c.message.isValidation) {
            await planSend(fast, c.message, fx.settings);
            if (enforced) await planSend(enforced, c.message, fx.settings);
            if (isMeta) metaSend(c.message, fx.settings as MetaSettings);
          }
        } else {
          const req = webhookRequest(fx);
          await mapWebhook(fast, req, fx.settings);
          if (isMeta && fx.contentType === 'application/json') metaWebhookEvents(JSON.parse(fx.text), fx.settings);
        }
      }
    }
    for (const fx of cases) {
      if (fx.kind === 'send') {
        const canonical = toCanonical(fx.text);
        if (!canonical.ok || canonical.message.isValidation) continue;
        const message: CanonicalMessage = canonical.message;
        const variants: Variant[] = [() => planSend(fast, message, fx.settings), () => planSend(slow, message, fx.settings), () => toCanonical(fx.text)];
        if (isMeta) variants.push(() => metaSend(message, fx.settings as MetaSettings));
        // Only sends that reach the guard (not those send.reject answers) say what it costs.
        const guarded = enforced !== undefined && (await planSend(fast, message, fx.settings)).kind === 'request';
        if (guarded) {
          if ((await planSend(enforced, message, fx.settings)).kind !== 'request') log(`  ${fx.name}: refused by contracts.enforce (timed all the same)`);
          variants.push(() => planSend(enforced, message, fx.settings));
        }
        const [a, b, n, c, e] = await interleaved(variants, rounds, roundMs);
        if (opts.cases) log(caseLine(fx.name, a!, b!, c) + (e === undefined ? '' : `  enforce ${e.toFixed(2)} µs (${(e / a!).toFixed(2)}×)`));
        if (e !== undefined) {
          enforce.ratio.push(e / a!);
          enforce.us.push(e);
        }
        row.send.push(a!);
        row.sendJ.push(b!);
        row.normalize.push(n!);
        speedups.push(b! / a!);
        if (isMeta) {
          metaSpeedups.push(b! / a!);
          vsHand.send.push(a! / c!);
          hand.send.push(c!);
        }
      } else {
        const req = webhookRequest(fx);
        const variants: Variant[] = [() => mapWebhook(fast, req, fx.settings), () => mapWebhook(slow, req, fx.settings)];
        if (isMeta && fx.contentType === 'application/json') variants.push(() => metaWebhookEvents(JSON.parse(fx.text), fx.settings));
        const [a, b, c] = await interleaved(variants, rounds, roundMs);
        if (opts.cases) log(caseLine(fx.name, a!, b!, c));
        row.webhook.push(a!);
        row.webhookJ.push(b!);
        speedups.push(b! / a!);
        if (isMeta) metaSpeedups.push(b! / a!);
        if (c !== undefined) {
          vsHand.webhook.push(a! / c);
          hand.webhook.push(c);
        }
      }
    }
    const m = (mappings[fast.name] = {
      sends: row.send.length,
      webhooks: row.webhook.length,
      send_us: r2(median(row.send)),
      send_jsonata_us: r2(median(row.sendJ)),
      webhook_us: r2(median(row.webhook)),
      webhook_jsonata_us: r2(median(row.webhookJ)),
      normalize_us: r2(median(row.normalize)),
    });
    log(
      `${fast.name.padEnd(11)} send (${m.sends}): ${m.send_us} µs, jsonata ${m.send_jsonata_us} µs | webhook (${m.webhooks}): ${m.webhook_us} µs, jsonata ${m.webhook_jsonata_us} µs | normalize ${m.normalize_us} µs`,
    );
  }
  const figures: MappingFigures = {
    mapping_vs_handwritten: r2(median([...vsHand.send, ...vsHand.webhook])),
    mapping_vs_handwritten_send: r2(median(vsHand.send)),
    mapping_vs_handwritten_webhook: r2(median(vsHand.webhook)),
    mapping_speedup_vs_jsonata: r2(median(metaSpeedups)),
    mapping_speedup_vs_jsonata_all: r2(median(speedups)),
    mappings,
    meta_handwritten_send_us: r2(median(hand.send)),
    meta_handwritten_webhook_us: r2(median(hand.webhook)),
    meta_enforce_send_ratio: r2(median(enforce.ratio)),
    meta_enforce_send_us: r2(median(enforce.us)),
  };
  log(
    `meta-cloud vs hand-written JavaScript (${hand.send.length} sends at ${figures.meta_handwritten_send_us} µs, ${hand.webhook.length} webhooks at ${figures.meta_handwritten_webhook_us} µs): ` +
      `${figures.mapping_vs_handwritten}× (send ${figures.mapping_vs_handwritten_send}×, webhook ${figures.mapping_vs_handwritten_webhook}×)`,
  );
  log(`speed-up over jsonata evaluation: meta-cloud ${figures.mapping_speedup_vs_jsonata}×, all mappings ${figures.mapping_speedup_vs_jsonata_all}×`);
  if (enforce.ratio.length > 0) log(`meta-cloud contracts.enforce (${enforce.ratio.length} sends): ${figures.meta_enforce_send_us} µs, ${figures.meta_enforce_send_ratio}× planSend without it`);
  return figures;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1] && (process.argv.includes('--help') || process.argv.includes('-h'))) {
  console.log(USAGE);
} else if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const only = process.argv.indexOf('--only');
  const figures = await runMappingBench({ quick: process.argv.includes('--quick'), cases: process.argv.includes('--cases'), ...(only > 0 ? { only: process.argv[only + 1] } : {}) });
  console.log(JSON.stringify(figures));
}
