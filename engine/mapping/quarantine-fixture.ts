// A quarantined webhook as the files of a golden fixture case (fixture.yaml and input.json or
// input.txt), redacted by redact-fixture.ts. One place for both users: `wabridge quarantine to-fixture`
// writes them under mappings/, the console's export only shows them (the console never writes mapping
// files), so the two cannot drift.
import { stringify as toYaml } from 'yaml';
import { runFixture, stableJson, type Fixture } from './golden.js';
import type { Mapping } from './loader.js';
import { redactWebhook, type WebhookForFixture } from './redact-fixture.js';

/** What a quarantine entry must tell about itself (structurally the store's QuarantineRecord). */
export interface QuarantinedWebhook {
  id: string;
  mapping: string;
  mappingVersion?: string;
  receivedAt: number;
  part?: { index: number; of: number };
  error: { code: string; message: string; where?: string };
  request: WebhookForFixture;
}

export interface FixtureFiles {
  fixture: Fixture;
  /** File name → content, as they go in mappings/<bsp>/fixtures/<case>/. */
  files: Record<string, string>;
  /** The name of the input file among `files`, and its content type for the golden runner. */
  input: { file: 'input.json' | 'input.txt'; contentType: string };
}

/** `mapping`: the BSP's mapping when it loads (its signature header and fixtures.redact key names); else the generic rules. */
export function quarantineFixture(rec: QuarantinedWebhook, mapping: Pick<Mapping, 'webhook' | 'fixtures'> | undefined): FixtureFiles {
  const red = redactWebhook(rec.request, mapping ? { signatureHeader: mapping.webhook?.signature?.header, keys: mapping.fixtures.redact } : {});
  const fixture: Fixture = {
    description: `Quarantined webhook ${rec.id} (${rec.mapping}@${rec.mappingVersion ?? '?'}, ${new Date(rec.receivedAt).toISOString()}${rec.part ? `, item ${rec.part.index + 1} of ${rec.part.of} of a batch` : ''}), redacted: ${rec.error.code}${rec.error.where ? ` at ${rec.error.where}` : ''}`,
    kind: 'webhook',
    headers: red.headers,
    ...(Object.keys(red.query).length > 0 ? { query: red.query } : {}),
  };
  const json = 'json' in red.body;
  const file = json ? 'input.json' : 'input.txt';
  return {
    fixture,
    files: {
      'fixture.yaml': `# yaml-language-server: $schema=../../../../schemas/fixture.schema.json\n${toYaml(fixture, { lineWidth: 0 })}`,
      [file]: 'json' in red.body ? stableJson(red.body.json) : red.body.text,
    },
    input: { file, contentType: json ? 'application/json' : 'application/x-www-form-urlencoded' },
  };
}

/**
 * Why the case fails with `mapping` now (the mapping's error, or WAB_FIXTURE_INPUT when the input
 * breaks the BSP's declared webhook contract, as the golden runner reports it), or undefined when it
 * maps. Red is what a fresh case should be before the fix; green before the fix means the redaction
 * removed the cause.
 */
export async function fixtureError(mapping: Mapping, name: string, f: FixtureFiles, baseSettings: Record<string, unknown>): Promise<{ code: string; message: string } | undefined> {
  const { actual, problem } = await runFixture(mapping, name, f.fixture, { input: { text: f.files[f.input.file]!, contentType: f.input.contentType } }, baseSettings);
  if (problem !== undefined) return { code: 'WAB_FIXTURE_INPUT', message: problem };
  return (actual as { error?: { code: string; message: string } } | undefined)?.error;
}
