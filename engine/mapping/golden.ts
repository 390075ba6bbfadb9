// Golden fixtures: every mappings/<bsp>/fixtures/<case>/ is run through the mapping and compared
// with its expected.json. The same runner serves `wabridge test` and the tap suite.
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { WabError } from './errors.js';
import { loadMapping, mappingDirs, type Mapping } from './loader.js';
import { describeError, projectSchema, usefulErrors, validatorFor } from './schema-validator.js';
import { checkSettings } from './settings.js';
import { mapResponse, mapTransportError, type TransportFailure } from './send.js';
import { handshake, mapWebhook, sign, verifySignature } from './webhook.js';
import { prepareSend, toCanonical } from './pipeline.js';
import { planMediaDownload, planMediaLookup } from './media.js';
import { planToken, readToken } from './token-cache.js';
import { lineDiff } from './diff.js';

export interface Fixture {
  description: string;
  kind: 'send' | 'response' | 'transport' | 'webhook' | 'handshake' | 'media' | 'token';
  settings?: Record<string, unknown>;
  status?: number;
  headers?: Record<string, string>;
  query?: Record<string, string>;
  url?: string;
  sign?: boolean;
  message?: string;
  error?: TransportFailure;
  mediaId?: string;
  /** send/media: the access token the host would have obtained (mappings with auth.token). */
  token?: string;
}

export interface CaseResult {
  mapping: string;
  name: string;
  dir: string;
  description: string;
  outcome: 'pass' | 'fail' | 'updated' | 'error';
  /** Readable explanation of a failure: a diff, a contract violation or an error. */
  detail?: string;
}

export interface GoldenReport {
  cases: CaseResult[];
  /** Mappings that did not load; their fixtures could not run. */
  loadErrors: WabError[];
}

/** Default CleverTap message for response/transport fixtures that name none. */
const DEFAULT_MESSAGE = {
  payloadVersion: 0.1,
  to: '919999999999',
  wabaNumber: '919888888888',
  msgId: '25596363|1639561857|20220227|25596363',
  type: 'text',
  isTemplate: false,
  text: { body: 'Hello from wabridge' },
};

export const DEFAULT_WEBHOOK_URL = 'http://127.0.0.1:3000/v1/tenants/test/webhook';

/** input.json, or input.txt: form-encoded for a webhook, plain text otherwise (e.g. an HTML error page). */
export function readInput(dir: string, kind: Fixture['kind']): { text: string; contentType: string } | undefined {
  const json = join(dir, 'input.json');
  if (existsSync(json)) return { text: readFileSync(json, 'utf8'), contentType: 'application/json' };
  const txt = join(dir, 'input.txt');
  if (existsSync(txt)) return { text: readFileSync(txt, 'utf8'), contentType: kind === 'webhook' ? 'application/x-www-form-urlencoded' : 'text/plain' };
  return undefined;
}

export function readFixture(dir: string): Fixture {
  const file = join(dir, 'fixture.yaml');
  if (!existsSync(file)) throw new WabError('WAB_FIXTURE_INVALID', 'missing fixture.yaml', dir);
  const value = parseYaml(readFileSync(file, 'utf8')) as unknown;
  const validate = validatorFor(projectSchema('fixture.schema.json'));
  if (!validate(value)) {
    const msg = usefulErrors(validate.errors ?? []).map((e) => `${e.instancePath || '(top)'} ${describeError(e)}`).join('; ');
    throw new WabError('WAB_FIXTURE_INVALID', msg, file);
  }
  return value as Fixture;
}

function stripWhere(e: WabError): string {
  return e.where ? e.message.slice(e.where.length + 2) : e.message;
}

function contractProblems(mapping: Mapping, key: 'requestBody' | 'webhookBody', value: unknown): string | undefined {
  const schema = mapping.contracts[key];
  if (!schema) return undefined;
  const validate = validatorFor(join(mapping.dir, schema));
  if (validate(value)) return undefined;
  const lines = usefulErrors(validate.errors ?? []).map((e) => `  ${e.instancePath || '/'} ${describeError(e)}`);
  return `${key} does not validate against ${schema}:\n${[...new Set(lines)].join('\n')}`;
}

export interface FixtureInputs {
  /** The case's input body (CleverTap payload, BSP response or BSP webhook). */
  input?: { text: string; contentType: string };
  /** response/transport: the CleverTap payload that was sent. */
  messageText?: string;
}

/** Runs one fixture; returns what goes in expected.json, or a contract problem. `dir` only names it in errors. */
export async function runFixture(mapping: Mapping, dir: string, fixture: Fixture, inputs: FixtureInputs, baseSettings: Record<string, unknown>): Promise<{ actual: unknown; problem?: string }> {
  try {
    const settings = checkSettings(mapping.settings, { ...baseSettings, ...fixture.settings }, `${dir}/fixture.yaml settings`);
    const input = inputs.input;
    switch (fixture.kind) {
      case 'send': {
        if (!input) throw new WabError('WAB_FIXTURE_INVALID', 'a send fixture needs input.json (the CleverTap payload)', dir);
        const plan = await prepareSend(mapping, input.text, settings, fixture.token);
        if (plan.kind === 'answer') return { actual: { answer: plan.answer } };
        const r = plan.request;
        let body: unknown = r.body;
        const type = Object.entries(r.headers).find(([k]) => k.toLowerCase() === 'content-type')?.[1] ?? '';
        if (r.body !== undefined && type.includes('json')) body = JSON.parse(r.body);
        const actual = { request: { method: r.method, url: r.url, headers: r.headers, ...(body === undefined ? {} : { body }) } };
        return { actual, problem: type.includes('json') ? contractProblems(mapping, 'requestBody', body) : undefined };
      }
      case 'response':
      case 'transport': {
        const messageText = inputs.messageText ?? JSON.stringify(DEFAULT_MESSAGE);
        const message = toCanonical(messageText);
        if (!message.ok) throw new WabError('WAB_FIXTURE_INVALID', `message: ${message.answer.status === 'failure' ? message.answer.error.message : ''}`, dir);
        if (fixture.kind === 'transport') {
          if (!fixture.error) throw new WabError('WAB_FIXTURE_INVALID', 'a transport fixture needs error: {kind, message}', dir);
          return { actual: { answer: await mapTransportError(mapping, message.message, settings, fixture.error) } };
        }
        const mapped = await mapResponse(mapping, message.message, settings, {
          status: fixture.status ?? 200,
          headers: { 'content-type': input?.contentType ?? 'application/json', ...fixture.headers },
          text: input?.text ?? '',
        });
        return { actual: mapped };
      }
      case 'webhook': {
        if (!input) throw new WabError('WAB_FIXTURE_INVALID', 'a webhook fixture needs input.json or input.txt (the BSP body)', dir);
        const headers: Record<string, string> = { 'content-type': input.contentType, ...fixture.headers };
        const req = { url: fixture.url ?? DEFAULT_WEBHOOK_URL, headers, query: fixture.query ?? {}, rawBody: input.text };
        const sig = mapping.webhook?.signature;
        const given = sig && Object.keys(headers).some((h) => h.toLowerCase() === sig.header.toLowerCase());
        if (sig && !given && fixture.sign !== false) {
          // Sign as the BSP would: proves the declared scheme accepts a genuine request.
          const payload = sig.payload ? String(await sig.payload.evaluate({ ...req, body: undefined, settings })) : input.text;
          headers[sig.header] = sign(mapping, payload, String(settings[sig.secret]));
        }
        const verdict = await verifySignature(mapping, req, settings);
        if (!verdict.ok) return { actual: { rejected: verdict.reason } };
        if (input.contentType === 'application/json') {
          const problem = contractProblems(mapping, 'webhookBody', JSON.parse(input.text));
          if (problem) return { actual: undefined, problem: `the fixture's input: ${problem}` };
        }
        return { actual: { events: await mapWebhook(mapping, req, settings) } };
      }
      case 'handshake': {
        const result = await handshake(mapping, { headers: fixture.headers ?? {}, query: fixture.query ?? {} }, settings);
        return { actual: result ?? { handshake: false } };
      }
      case 'token': {
        const request = await planToken(mapping, settings);
        if (!request) return { actual: { token: false } };
        if (!input) return { actual: { request } };
        const read = await readToken(mapping, settings, { status: fixture.status ?? 200, headers: { 'content-type': input.contentType, ...fixture.headers }, text: input.text });
        return { actual: { request, ...read } };
      }
      case 'media': {
        if (!fixture.mediaId) throw new WabError('WAB_FIXTURE_INVALID', 'a media fixture needs mediaId', dir);
        const lookup = await planMediaLookup(mapping, fixture.mediaId, settings, fixture.token);
        // Without the look-up's answer only the look-up itself can be shown.
        if (lookup && !input) return { actual: { lookup } };
        const lookupBody = input ? (input.contentType === 'application/json' ? JSON.parse(input.text) : input.text) : undefined;
        const download = await planMediaDownload(mapping, fixture.mediaId, settings, lookupBody, fixture.token);
        return { actual: lookup ? { lookup, download } : { download } };
      }
    }
  } catch (e) {
    if (e instanceof WabError && e.code !== 'WAB_FIXTURE_INVALID' && e.code !== 'WAB_SETTINGS_INVALID') {
      return { actual: { error: { code: e.code, message: stripWhere(e) } } };
    }
    throw e;
  }
}

function caseDirs(mappingDir: string): string[] {
  const root = join(mappingDir, 'fixtures');
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .sort()
    .map((d) => join(root, d))
    .filter((d) => statSync(d).isDirectory());
}

export function loadBaseSettings(mappingDir: string): Record<string, unknown> {
  const p = join(mappingDir, 'fixtures', 'settings.yaml');
  return existsSync(p) ? ((parseYaml(readFileSync(p, 'utf8')) as Record<string, unknown> | null) ?? {}) : {};
}

export const stableJson = (v: unknown): string => `${JSON.stringify(v, null, 2)}\n`;

/** Runs every fixture of one loaded mapping (the host runs them before swapping in an edited mapping). */
export async function runMappingFixtures(mapping: Mapping, opts: { update?: boolean; filter?: string } = {}): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  const base = loadBaseSettings(mapping.dir);
  for (const caseDir of caseDirs(mapping.dir)) {
    const name = caseDir.slice(join(mapping.dir, 'fixtures').length + 1);
    if (opts.filter && !`${mapping.name}/${name}`.includes(opts.filter)) continue;
    const shown = relative(process.cwd(), caseDir) || caseDir;
    const result: CaseResult = { mapping: mapping.name, name, dir: shown, description: '', outcome: 'pass' };
    results.push(result);
    try {
      const fixture = readFixture(caseDir);
      result.description = fixture.description;
      const inputs: FixtureInputs = { input: readInput(caseDir, fixture.kind) };
      if (fixture.message) inputs.messageText = readFileSync(join(caseDir, fixture.message), 'utf8');
      const { actual, problem } = await runFixture(mapping, shown, fixture, inputs, base);
      if (problem) {
        result.outcome = 'fail';
        result.detail = problem;
        continue;
      }
      const expectedFile = join(caseDir, 'expected.json');
      const actualText = stableJson(actual);
      const expectedText = existsSync(expectedFile) ? readFileSync(expectedFile, 'utf8') : undefined;
      const same = expectedText !== undefined && stableJson(JSON.parse(expectedText)) === actualText;
      if (same) continue;
      if (opts.update) {
        writeFileSync(expectedFile, actualText);
        result.outcome = 'updated';
      } else {
        result.outcome = 'fail';
        result.detail = expectedText === undefined ? 'no expected.json yet (run `wabridge test --update`, then review it)' : lineDiff(stableJson(JSON.parse(expectedText)), actualText);
      }
    } catch (e) {
      result.outcome = 'error';
      result.detail = e instanceof Error ? e.message : String(e);
    }
  }
  return results;
}

/** Runs every fixture of every mapping under `root` (a mappings folder or one mapping folder). */
export async function runGolden(root: string, opts: { update?: boolean; filter?: string } = {}): Promise<GoldenReport> {
  const report: GoldenReport = { cases: [], loadErrors: [] };
  for (const dir of mappingDirs(root)) {
    const loaded = loadMapping(dir);
    if (!loaded.ok) report.loadErrors.push(...loaded.errors);
    else report.cases.push(...(await runMappingFixtures(loaded.mapping, opts)));
  }
  return report;
}
