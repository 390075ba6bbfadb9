// CleverTap's incoming callback for an inbound audio message, under both spellings a tenant can choose.
import t from 'tap';
import { incomingCallbackFor } from '../../engine/host/callbacks.js';
import { projectSchema, validatorFor } from '../../engine/mapping/schema-validator.js';
import type { IncomingEvent } from '../../engine/mapping/webhook.js';

const valid = validatorFor(projectSchema('clevertap/incoming-callback.schema.json'));
const event = (message: Partial<IncomingEvent['message']>): IncomingEvent => ({
  event: 'incoming',
  providerMessageId: 'wamid.1',
  message: { from: '919999999999', wabaNumber: '+91 98888 88888', timestamp: '1700000000', type: 'text', ...message },
});
const voiceNote = event({ type: 'audio', audio: { mediaURL: 'https://m.test/a.ogg', mimeType: 'audio/ogg; codecs=opus', caption: 'dropped' } as never });

t.test('audio: type "audio" by default, "voice" when the tenant says so, the object keyed audio either way', async (t) => {
  const asAudio = incomingCallbackFor({ id: 'acme', incomingAudioType: 'audio' }, voiceNote).payload as Record<string, unknown>;
  t.same(asAudio, { payloadVersion: '0.1', from: '919999999999', wabaNumber: '919888888888', timestamp: '1700000000', type: 'audio', audio: { mediaURL: 'https://m.test/a.ogg', mimeType: 'audio/ogg; codecs=opus' } });
  t.ok(valid(asAudio), 'valid against the schema');

  const asVoice = incomingCallbackFor({ id: 'acme', incomingAudioType: 'voice' }, voiceNote, 'm|1').payload as Record<string, unknown>;
  t.same(asVoice, { ...asAudio, type: 'voice', context: { id: 'm|1' } });
  t.notOk('voice' in asVoice, 'no voice object: the doc has none');
  t.ok(valid(asVoice), `valid against the schema ${JSON.stringify(valid.errors)}`);
});

t.test('the setting changes nothing but audio', async (t) => {
  const text = event({ type: 'text', text: { body: 'hi' } });
  const image = event({ type: 'image', image: { mediaURL: 'https://m.test/i.png', mimeType: 'image/png' } });
  for (const e of [text, image]) {
    const a = incomingCallbackFor({ id: 'acme', incomingAudioType: 'audio' }, e);
    const v = incomingCallbackFor({ id: 'acme', incomingAudioType: 'voice' }, e);
    t.same(v, a, e.message.type);
  }
  const cb = incomingCallbackFor({ id: 'acme', incomingAudioType: 'voice' }, voiceNote);
  t.equal(cb.tenant, 'acme');
  t.equal(cb.dedupeKey, incomingCallbackFor({ id: 'acme', incomingAudioType: 'audio' }, voiceNote).dedupeKey, 'same dedupe key under either spelling');
});
