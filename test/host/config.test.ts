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
    provider: acme
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

t.test('clickTracking and the /c/ settings', async (t) => {
  const acme = (extra: string) => loadConfig(config(extra)).tenants.get('acme')!;
  t.equal(acme('').clickTracking, undefined, 'off unless configured');
  const one = acme('    clickTracking:\n      templates:\n        spring_sale: https://shop.example.com/offers/\n')!.clickTracking!;
  t.equal(one.linkTtlMs, 7 * 24 * 60 * 60 * 1000, 'links live 7 days by default');
  t.equal(one.templates.get('spring_sale'), 'https://shop.example.com/offers/');
  const per = acme('    clickTracking:\n      linkTtl: 2d\n      templates:\n        two: { "0": "https://a.example/x/", "1": "http://b.example/?q=" }\n')!.clickTracking!;
  t.equal(per.linkTtlMs, 2 * 24 * 60 * 60 * 1000);
  t.same([...(per.templates.get('two') as Map<number, string>)], [[0, 'https://a.example/x/'], [1, 'http://b.example/?q=']], 'per button index');
  t.throws(() => acme('    clickTracking:\n      templates:\n        t: shop.example.com/\n'), { code: 'WAB_INPUT_INVALID', message: /tenants\.acme\.clickTracking\.templates\.t/ }, 'a base that is not an http(s) URL');
  t.throws(() => acme('    clickTracking:\n      templates:\n        t: { first: "https://a.example/" }\n'), { code: 'WAB_INPUT_INVALID', message: /clickTracking\.templates\.t/ }, 'a button index that is not a number');
  t.throws(() => acme('    clickTracking: { templates: {} }\n'), { code: 'WAB_INPUT_INVALID', message: /clickTracking\.templates/ }, 'no templates');
  t.throws(() => acme('    clickTracking: { linkTtl: 7 days, templates: { t: "https://a.example/" } }\n'), { code: 'WAB_INPUT_INVALID', message: /clickTracking\.linkTtl/ });

  const server = (s: string) => loadConfig(config(`server:\n${s}`)).server;
  t.same([server('  host: 127.0.0.1\n').clickRate, server('  host: 127.0.0.1\n').trustProxy], [600, false], 'defaults');
  t.same([server('  clickRate: 30\n  trustProxy: "10.0.0.0/8, 127.0.0.1"\n').clickRate, server('  trustProxy: true\n').trustProxy], [30, true]);
  t.throws(() => server('  clickRate: 0\n'), { code: 'WAB_INPUT_INVALID', message: /server\.clickRate/ });
});

t.test('trace: keep and the size cap', async (t) => {
  t.same(loadConfig(config('')).trace, { keepMs: 7 * 24 * 60 * 60 * 1000, maxEvents: 5_000_000 }, 'defaults: 7 days, 5 million events');
  t.same(loadConfig(config('trace: { keep: 36h, maxEvents: 20000 }\n')).trace, { keepMs: 36 * 60 * 60 * 1000, maxEvents: 20_000 });
  t.equal(loadConfig(config('trace: { keep: 0s }\n')).trace.keepMs, 0, '0s: off');
  t.throws(() => loadConfig(config('trace: { keep: a week }\n')), { code: 'WAB_INPUT_INVALID', message: /trace\.keep/ });
  t.throws(() => loadConfig(config('trace: { maxEvents: 10 }\n')), { code: 'WAB_INPUT_INVALID', message: /trace\.maxEvents/ });
  t.throws(() => loadConfig(config('trace: { kept: 1d }\n')), { code: 'WAB_INPUT_INVALID', message: /trace/ });
});
