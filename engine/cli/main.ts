// `wabridge` command line: lint, test and dry-run mappings. Exit codes: 0 ok, 1 problems found,
// 2 usage or input error. Documented in docs/cli.md.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { WabError } from '../mapping/errors.js';
import { runGolden, runFixture, stableJson, DEFAULT_WEBHOOK_URL, type Fixture, type FixtureInputs } from '../mapping/golden.js';
import { loadMapping, mappingDirs, type Mapping } from '../mapping/loader.js';
import { checkSettings, resolveEnvRefs, secretNames } from '../mapping/settings.js';

const USAGE = `wabridge — CleverTap ⇄ WhatsApp BSP bridge

Usage:
  wabridge serve [--config wabridge.yaml] [--workers n|auto]
      Run the service (config also from WABRIDGE_CONFIG; PORT and LOG_LEVEL override it).
  wabridge demo
      The quickstart: wabridge on examples/wabridge.yaml with a simulated BSP and a CleverTap sink.
  wabridge dlq list|replay [id...] [--config wabridge.yaml] [--json]
      Show the callbacks CleverTap never accepted within the retry window, or put them back in the outbox.
  wabridge quarantine list|show <id>|replay [id...]|to-fixture <id> <bsp>/<case> [--config wabridge.yaml] [--url http://host:port] [--json]
      Webhooks the mapping could not map, through the running wabridge's admin API: list them, show one,
      replay them with the mapping loaded now, or write one (redacted) as a golden fixture of mappings/<bsp>/.
  wabridge trace <msgId|bspMessageId> [--config wabridge.yaml] [--json]
      What happened to one message: the CleverTap request, the BSP call, the answer, each webhook
      event, each callback attempt. Exit 1 when nothing is known of it.
  wabridge campaign [campaignID] [--batch id] [--config wabridge.yaml] [--json]
      Per tenant, what CleverTap was answered and sent back for one campaign (messages, answers by
      code, statuses, failures, replies, callbacks pending and dead); without an id, recent campaigns.
  wabridge new <bsp> [--mappings dir]
      Start a BSP folder (default mappings/<bsp>/): mapping.yaml, simulator.yaml, fixtures/settings.yaml
      and one fixture per kind, for a made-up API that lints and tests green; replace it part by part.
  wabridge lint [mappings-dir] [--json] [--explain]
      Validate every mapping against schemas/mapping.schema.json and compile every expression;
      --explain lists which expressions run on the compiled fast path and why others fall back to jsonata.
  wabridge test [mappings-dir] [--update] [--filter text] [--json]
      Run every golden fixture; --update rewrites expected.json from current output (review in git).
  wabridge map <bsp> <send|response|transport|webhook|handshake> [file|-] [options]
  wabridge map <bsp> media <media-id> [--lookup body.json]
  wabridge map <bsp> token [token-response.json]
      Dry run: print what the mapping produces for one input.
        --mappings dir      where mappings live (default: ./mappings)
        --settings f.yaml   tenant settings (default: mappings/<bsp>/fixtures/settings.yaml)
        --status 400        response: the BSP's HTTP status (default 200)
        --header k:v        response/webhook/handshake: a header (repeatable)
        --query k=v         webhook/handshake: a query parameter (repeatable)
        --message f.json    response/transport: the CleverTap payload that was sent
        --error kind:text   transport: timeout|connect|network and a message
        --lookup f.json     media: the BSP's answer to the look-up request
        --show-secrets      do not mask secret settings in the output

Exit codes: 0 ok, 1 problems found (lint errors, failing fixtures, mapping errors), 2 usage or input error.
`;

class UsageError extends Error {}

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function lint(dir: string, json: boolean, explain = false): Promise<number> {
  const dirs = mappingDirs(dir);
  if (dirs.length === 0) throw new UsageError(`no mapping.yaml found under ${dir}`);
  const results = dirs.map((d) => ({ dir: d, result: loadMapping(d) }));
  const problems = results.flatMap((r) => (r.result.ok ? [] : r.result.errors));
  // A BSP's simulator.yaml (local stand-in for demos and e2e tests) is checked with its mapping.
  const { SIMULATOR_FILE, loadSimulator } = await import('../standins/bsp-simulator.js');
  for (const d of dirs) {
    if (!existsSync(join(d, SIMULATOR_FILE))) continue;
    const sim = loadSimulator(d);
    if (!sim.ok) problems.push(...sim.errors);
  }
  if (json) {
    out(JSON.stringify({ ok: problems.length === 0, mappings: results.map((r) => ({ dir: r.dir, ok: r.result.ok, ...(r.result.ok ? { name: r.result.mapping.name, version: r.result.mapping.version, expressions: r.result.mapping.expressions.length, fastPath: r.result.mapping.expressions.filter((e) => e.fastPath).length, functions: r.result.mapping.functions } : {}) })), problems: problems.map((p) => p.toJSON()) }));
  } else {
    for (const p of problems) out(p.message);
    for (const r of results) {
      if (!r.result.ok) continue;
      const m = r.result.mapping;
      const fast = m.expressions.filter((e) => e.fastPath).length;
      out(`ok ${m.file} (${m.expressions.length} expressions, ${fast} on the compiled fast path, ${m.functions} functions, version ${m.version})`);
      // --explain: which expressions run as compiled JavaScript, and why the others fall back to jsonata.
      if (explain) for (const e of m.expressions) out(`   ${e.fastPath ? 'fast    ' : 'jsonata '} ${e.name}${e.declined ? ` — ${e.declined}` : ''}`);
    }
    out(`${results.length} mapping(s), ${problems.length} problem(s)`);
  }
  return problems.length === 0 ? 0 : 1;
}

async function test(dir: string, opts: { update: boolean; filter?: string; json: boolean }): Promise<number> {
  if (mappingDirs(dir).length === 0) throw new UsageError(`no mapping.yaml found under ${dir}`);
  const report = await runGolden(dir, opts);
  const count = (o: string) => report.cases.filter((c) => c.outcome === o).length;
  const failed = count('fail') + count('error') + report.loadErrors.length;
  if (opts.json) {
    out(JSON.stringify({ ok: failed === 0, passed: count('pass'), failed: count('fail'), errors: count('error'), updated: count('updated'), loadErrors: report.loadErrors.map((e) => e.toJSON()), cases: report.cases }));
  } else {
    for (const e of report.loadErrors) out(e.message);
    for (const c of report.cases) {
      const mark = { pass: 'ok    ', fail: 'FAIL  ', updated: 'update', error: 'ERROR ' }[c.outcome];
      out(`${mark} ${c.mapping}/${c.name} — ${c.description}`);
      if (c.detail) out(c.detail.replace(/^/gm, '       '));
    }
    out(`${count('pass')} passed, ${count('fail') + count('error')} failed${count('updated') ? `, ${count('updated')} updated` : ''}`);
  }
  return failed === 0 ? 0 : 1;
}

function readInput(file: string | undefined): string {
  if (file === undefined || file === '-') return readFileSync(0, 'utf8');
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
  }
}

function pairs(list: string[] | undefined, sep: string, what: string): Record<string, string> {
  const res: Record<string, string> = {};
  for (const item of list ?? []) {
    const i = item.indexOf(sep);
    if (i <= 0) throw new UsageError(`${what} must look like name${sep}value, got '${item}'`);
    res[item.slice(0, i).trim()] = item.slice(i + 1).trim();
  }
  return res;
}

function mask(text: string, mapping: Mapping, settings: Record<string, unknown>): string {
  let masked = text;
  for (const name of secretNames(mapping.settings)) {
    const v = settings[name];
    if (typeof v === 'string' && v.length >= 4) masked = masked.split(v).join(`«secret:${name}»`);
  }
  return masked;
}

async function map(positionals: string[], v: Record<string, unknown>): Promise<number> {
  const [bsp, kind, file] = positionals;
  const kinds = ['send', 'response', 'transport', 'webhook', 'handshake', 'media', 'token'];
  if (!bsp || !kind || !kinds.includes(kind)) throw new UsageError(`map needs <bsp> and one of ${kinds.join('|')}`);
  const root = (v.mappings as string | undefined) ?? 'mappings';
  const loaded = loadMapping(join(root, bsp));
  if (!loaded.ok) {
    for (const e of loaded.errors) process.stderr.write(`${e.message}\n`);
    return 1;
  }
  const mapping = loaded.mapping;
  const settingsFile = (v.settings as string | undefined) ?? join(mapping.dir, 'fixtures', 'settings.yaml');
  let rawSettings: Record<string, unknown>;
  try {
    rawSettings = resolveEnvRefs(parseYaml(readFileSync(settingsFile, 'utf8')) ?? {}, process.env) as Record<string, unknown>;
  } catch (e) {
    throw new UsageError(`cannot read settings ${settingsFile}: ${(e as Error).message}`);
  }
  const settings = checkSettings(mapping.settings, rawSettings, settingsFile);
  const fixture: Fixture = { description: 'wabridge map', kind: kind as Fixture['kind'] };
  if (v.status !== undefined) fixture.status = Number(v.status);
  if (v.header) fixture.headers = pairs(v.header as string[], ':', '--header');
  if (v.query) fixture.query = pairs(v.query as string[], '=', '--query');
  if (v.error) {
    const [k, ...rest] = String(v.error).split(':');
    fixture.error = { kind: k as 'timeout', message: rest.join(':') || k! };
  }
  const inputs: FixtureInputs = {};
  if (kind === 'media') {
    if (!file) throw new UsageError('map <bsp> media needs the media id (and --lookup body.json for the look-up response)');
    fixture.mediaId = file;
    if (v.lookup) inputs.input = { text: readInput(v.lookup as string), contentType: 'application/json' };
  } else if (kind === 'token') {
    if (file) inputs.input = { text: readInput(file), contentType: 'application/json' };
  } else if (kind !== 'transport' && kind !== 'handshake') {
    const text = readInput(file);
    const isForm = kind === 'webhook' && !/^\s*[[{]/.test(text);
    inputs.input = { text, contentType: isForm ? 'application/x-www-form-urlencoded' : 'application/json' };
  }
  if (v.message) inputs.messageText = readInput(v.message as string);
  const { actual, problem } = await runFixture(mapping, file ?? '-', { ...fixture, url: DEFAULT_WEBHOOK_URL }, inputs, settings);
  const text = v.json ? JSON.stringify(actual) : stableJson(actual).trimEnd();
  out(v['show-secrets'] ? text : mask(text, mapping, settings));
  if (problem) process.stderr.write(`${problem}\n`);
  const failedEval = typeof actual === 'object' && actual !== null && 'error' in actual;
  return problem || failedEval ? 1 : 0;
}

async function newBsp(positionals: string[], root: string): Promise<number> {
  const [bsp, ...extra] = positionals;
  if (!bsp || extra.length > 0) throw new UsageError('new needs exactly one <bsp> name, e.g. wabridge new acme');
  const files = await (await import('./new.js')).scaffold(bsp, root);
  for (const f of files) out(`created ${f}`);
  const dir = join(root, bsp);
  out(`\nNext: replace the made-up API in ${dir}/ with ${bsp}'s documented one, one fixture at a time`);
  out(`(docs/writing-a-mapping.md); \`wabridge lint ${root}\` and \`wabridge test ${root} --filter ${bsp}/\` keep you honest,`);
  out('and review every expected.json (--update rewrites them) against the documentation.');
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
        json: { type: 'boolean' },
        explain: { type: 'boolean' },
        update: { type: 'boolean' },
        filter: { type: 'string' },
        mappings: { type: 'string' },
        settings: { type: 'string' },
        status: { type: 'string' },
        header: { type: 'string', multiple: true },
        query: { type: 'string', multiple: true },
        message: { type: 'string' },
        error: { type: 'string' },
        lookup: { type: 'string' },
        config: { type: 'string' },
        workers: { type: 'string' },
        url: { type: 'string' },
        batch: { type: 'string' },
        'show-secrets': { type: 'boolean' },
      },
    });
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values: v, positionals } = parsed;
  const [cmd, ...rest] = positionals;
  if (v.version) {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    out(pkg.version);
    return 0;
  }
  if (v.help || !cmd) {
    out(USAGE);
    return cmd || v.help ? 0 : 2;
  }
  try {
    switch (cmd) {
      case 'lint':
        return await lint(rest[0] ?? 'mappings', Boolean(v.json), Boolean(v.explain));
      case 'test':
        return await test(rest[0] ?? 'mappings', { update: Boolean(v.update), filter: v.filter, json: Boolean(v.json) });
      case 'map':
        return await map(rest, v);
      case 'new':
        return await newBsp(rest, (v.mappings as string | undefined) ?? 'mappings');
      // Loaded on demand: lint/test/map should not pay for starting fastify and SQLite.
      case 'serve':
        return await (await import('./serve.js')).serve(v.config, v.workers);
      case 'demo':
        return await (await import('./serve.js')).demo(v.config);
      case 'dlq':
        return await (await import('./serve.js')).dlq(rest[0], v.config, rest.slice(1), Boolean(v.json));
      case 'quarantine':
        return await (await import('./quarantine.js')).quarantine(rest[0], rest.slice(1), { config: v.config, url: v.url, mappings: v.mappings, json: Boolean(v.json) });
      case 'trace':
        return await (await import('./trace.js')).trace(rest[0], v.config, Boolean(v.json));
      case 'campaign':
        return await (await import('./trace.js')).campaign(rest[0], v.batch, v.config, Boolean(v.json));
      default:
        throw new UsageError(`unknown command '${cmd}'`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`wabridge: ${e.message}\n`);
      return 2;
    }
    if (e instanceof WabError) {
      process.stderr.write(`wabridge: ${e.code}: ${e.message}\n`);
      return e.code === 'WAB_INPUT_INVALID' || e.code === 'WAB_SETTINGS_INVALID' ? 2 : 1;
    }
    throw e;
  }
}
