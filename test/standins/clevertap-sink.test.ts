// The CleverTap callback stand-in: accepts exactly what the callback schemas allow, refuses the rest
// with 400, counts status replays by msgId|status, prints one redacted line per callback, and can
// play "down".
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { redactPhone, startCleverTapSink, throttledPrint, type CleverTapSink } from '../../engine/standins/clevertap-sink.js';

const example = (name: string) => JSON.parse(readFileSync(fileURLToPath(new URL(`../../examples/clevertap/callbacks/canonical/${name}`, import.meta.url)), 'utf8')) as Record<string, unknown>;

async function sink(t: Test): Promise<{ sink: CleverTapSink; lines: string[] }> {
  const lines: string[] = [];
  const s = await startCleverTapSink({ print: (l) => lines.push(l) });
  t.teardown(() => s.close());
  return { sink: s, lines };
}

async function post(url: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body), headersTimeout: 3000, bodyTimeout: 3000 });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

t.test('redactPhone keeps the first 4 and last 2 digits', async (t) => {
  t.equal(redactPhone('919999999912'), '9199…12');
  t.equal(redactPhone('+91 99999 99912'), '9199…12');
  t.equal(redactPhone('12345'), '…');
});

t.test('status callbacks: accepted, printed with msgId, replays counted', async (t) => {
  const { sink: s, lines } = await sink(t);
  t.match(s.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.equal(s.statusUrl('demo'), `${s.url}/callbacks/demo/status`);
  t.equal(s.inboundUrl('demo'), `${s.url}/callbacks/demo/inbound`);

  const delivered = { payloadVersion: '0.1', statuses: [{ msgId: '1|2|3|4', status: 'delivered', timestamp: '1647441774' }] };
  t.match(await post(s.statusUrl('demo'), delivered), { status: 200, body: { status: 'success' } });
  t.same(lines, ['clevertap-sink: status delivered msgId=1|2|3|4 (tenant demo)']);

  t.equal((await post(s.statusUrl('demo'), delivered)).status, 200, 'a replay is accepted too');
  t.match(lines[1], /status delivered msgId=1\|2\|3\|4 \(tenant demo\) \[replay x1\]/);
  t.equal(s.replays(), 1);
  t.match(s.statuses('demo'), [{ key: '1|2|3|4|delivered', msgId: '1|2|3|4', status: 'delivered', count: 2 }]);

  t.equal((await post(s.statusUrl('other'), delivered)).status, 200);
  t.equal(s.replays(), 1, 'replays are counted per tenant');
  t.equal(s.statuses().length, 2);

  const failed = example('status-failed.json');
  t.equal((await post(s.statusUrl('demo'), failed)).status, 200);
  const entry = (failed.statuses as Record<string, unknown>[])[0]!;
  t.match(lines.at(-1), new RegExp(`status failed msgId=${String(entry.msgId).replace(/\|/g, '\\|')} error=\\d{4} `));
  for (const name of ['status-sent.json', 'status-read.json', 'status-clicked.json']) {
    t.equal((await post(s.statusUrl('demo'), example(name))).status, 200, `${name} accepted`);
  }
  t.equal(s.received().length, 7);
  t.ok(s.received().every((c) => c.accepted && c.answered === 200));
  t.equal(lines.length, 7, 'one line per callback');
});

t.test('incoming callbacks: accepted, printed with the phone redacted and the msgId replied to', async (t) => {
  const { sink: s, lines } = await sink(t);
  const text = { payloadVersion: '0.1', from: '919999999999', wabaNumber: '15550783881', timestamp: '1647441774', type: 'text', text: { body: 'Hi' }, context: { id: '1|2|3|4' } };
  t.equal((await post(s.inboundUrl('demo'), text)).status, 200);
  t.same(lines, ['clevertap-sink: incoming text from 9199…99 re msgId=1|2|3|4 (tenant demo)']);
  t.notMatch(lines[0], /919999999999/, 'the number itself is never printed');
  for (const name of ['incoming-button.json', 'incoming-file.json', 'incoming-image.json', 'incoming-location.json', 'incoming-text.json']) {
    t.equal((await post(s.inboundUrl('demo'), example(name))).status, 200, `${name} accepted`);
  }
  t.equal(lines.length, 6);
  t.match(s.received()[1], { kind: 'incoming', tenant: 'demo', accepted: true });
});

t.test('invalid bodies are refused with 400 and the schema errors', async (t) => {
  const { sink: s, lines } = await sink(t);
  const noMsgId = await post(s.statusUrl('demo'), { payloadVersion: '0.1', statuses: [{ status: 'delivered', timestamp: '1647441774' }] });
  t.equal(noMsgId.status, 400);
  t.match(noMsgId.body, { message: 'Bad Request', errors: [/missing required key 'msgId'/] });
  t.match(lines[0], /^clevertap-sink: REFUSED status/);

  const failedWithoutError = await post(s.statusUrl('demo'), { payloadVersion: '0.1', statuses: [{ msgId: 'a', status: 'failed', timestamp: '1' }] });
  t.equal(failedWithoutError.status, 400, 'failed needs an error');

  const badFrom = await post(s.inboundUrl('demo'), { payloadVersion: '0.1', from: '+91 9999', wabaNumber: '15550783881', timestamp: '1', type: 'text', text: { body: 'x' } });
  t.equal(badFrom.status, 400);
  t.notMatch(lines.at(-1), /9999$/);

  t.equal((await post(s.statusUrl('demo'), '{not json')).status, 400);
  t.equal(s.received().filter((c) => !c.accepted).length, 4);
  t.equal(s.statuses().length, 0, 'nothing refused is recorded as a status');

  const wrong = await request(`${s.url}/callbacks/demo/other`, { method: 'POST', body: '{}' });
  t.equal(wrong.statusCode, 404);
  await wrong.body.dump();
});

t.test('setDown answers 503 (or the given status) until brought back up', async (t) => {
  const { sink: s, lines } = await sink(t);
  const delivered = { payloadVersion: '0.1', statuses: [{ msgId: '9|9|9|9', status: 'delivered', timestamp: '1647441774' }] };
  s.setDown(true);
  t.equal((await post(s.statusUrl('demo'), delivered)).status, 503);
  t.match(lines[0], /DOWN \(503\).*msgId=9\|9\|9\|9/);
  s.setDown({ status: 500 });
  t.equal((await post(s.statusUrl('demo'), delivered)).status, 500);
  t.throws(() => s.setDown({ status: 200 }), /400-599/);
  s.setDown(false);
  t.equal((await post(s.statusUrl('demo'), delivered)).status, 200);
  t.equal(s.replays(), 0, 'callbacks refused while down are not replays');
  t.match(s.statuses(), [{ key: '9|9|9|9|delivered', count: 1 }]);
  s.clear();
  t.equal(s.received().length, 0);
});

t.test('incomingAudioType plays an account that knows one spelling of audio', async (t) => {
  const audio = { payloadVersion: '0.1', from: '919999999999', wabaNumber: '919999999998', timestamp: '1647441774', type: 'audio', audio: { mediaURL: 'https://m.test/a.ogg', mimeType: 'audio/ogg' } };
  const voice = { ...audio, type: 'voice' };
  const { sink: both } = await sink(t);
  t.equal((await post(both.inboundUrl('demo'), audio)).status, 200, 'default: audio accepted');
  t.equal((await post(both.inboundUrl('demo'), voice)).status, 200, 'default: voice accepted');

  const lines: string[] = [];
  const voiceOnly = await startCleverTapSink({ print: (l) => lines.push(l), incomingAudioType: 'voice' });
  t.teardown(() => voiceOnly.close());
  t.equal((await post(voiceOnly.inboundUrl('demo'), voice)).status, 200, 'voice accepted');
  const refused = await post(voiceOnly.inboundUrl('demo'), audio);
  t.match(refused, { status: 400, body: { errors: ['type: "audio" is not a type this account knows; it expects "voice"'] } });
  t.match(voiceOnly.received().map((c) => [c.answered, c.accepted]), [[200, true], [400, false]]);
  t.match(lines.at(-1), /REFUSED incoming audio/);

  const audioOnly = await startCleverTapSink({ print: () => undefined, incomingAudioType: 'audio' });
  t.teardown(() => audioOnly.close());
  t.equal((await post(audioOnly.inboundUrl('demo'), voice)).status, 400, 'voice refused by an audio account');
  t.equal((await post(audioOnly.inboundUrl('demo'), { ...audio, type: 'text', audio: undefined, text: { body: 'hi' } })).status, 200, 'other types untouched');
});

t.test('the demo prints at most N sink lines a second and counts the rest in one line', async (t) => {
  const lines: string[] = [];
  const print = throttledPrint((l) => lines.push(l), 3);
  for (let i = 0; i < 10; i++) print(`line ${i}`);
  t.strictSame(lines, ['line 0', 'line 1', 'line 2']);
  print.flush();
  t.strictSame(lines.slice(3), ['clevertap-sink: … and 7 more callbacks in the last second, not printed']);
  print('after');
  t.equal(lines.at(-1), 'after', 'a new second prints again');
  print.flush();
  t.equal(lines.length, 5, 'nothing held: no summary line');
});
