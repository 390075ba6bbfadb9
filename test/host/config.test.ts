// wabridge.yaml's tenant keys that shape what CleverTap receives: defaults, accepted values, and a
// wrong value refused at start with file:line:col.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../engine/host/config.js';

const dir = mkdtempSync(join(tmpdir(), 'wabridge-config-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const config = (extra: string): string => {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    file,
    `tenants:
  acme:
    provider: meta-cloud
    auth: { basic: { username: u, password: p } }
    callbacks: { status: "http://127.0.0.1:1/s", inbound: "http://127.0.0.1:1/i" }
${extra}`,
  );
  return file;
};

t.test('incomingAudioType', async (t) => {
  t.equal(loadConfig(config('')).tenants.get('acme')!.incomingAudioType, 'audio', 'default: audio');
  t.equal(loadConfig(config('    incomingAudioType: voice\n')).tenants.get('acme')!.incomingAudioType, 'voice');
  t.equal(loadConfig(config('    incomingAudioType: audio\n')).tenants.get('acme')!.incomingAudioType, 'audio');
  t.throws(() => loadConfig(config('    incomingAudioType: Voice\n')), { code: 'WAB_INPUT_INVALID', message: /:6:\d+: tenants\.acme\.incomingAudioType: must be one of "audio", "voice"/ });
});
