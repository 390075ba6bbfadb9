// A hand-written baseline of mappings/meta-cloud/mapping.yaml for the benchmark: the same CleverTap
// message → Meta Cloud API request, and Meta webhook → events, written as plain TypeScript the way one
// would for production (no JSONata, no generic engine). test/mapping/handwritten-baseline.test.ts proves it
// gives what the engine gives for every Meta send and webhook fixture, so timings compare like with like.
//
// Deliberate differences from the engine, none of which any fixture reaches:
// - the URL is concatenated, not parsed and re-serialized with `new URL` (equal for a canonical baseUrl);
// - numeric coordinate strings become numbers with `Number`, so "\u00a037.5" gives 37.5 where the
//   mapping passes the string on (JSONata's $trim leaves a no-break space);
// - truthiness is JavaScript's: an empty object counts as present, where JSONata counts it as absent;
// - webhook events are not checked against schemas/events.schema.json (mapWebhook does that).
import type { Body, Button, Card, CanonicalMessage, Header, Template, TextParameter } from '../../engine/clevertap/model.js';
import type { AnswerCode, SendPlan } from '../../engine/mapping/send.js';
import type { IncomingEvent, StatusEvent, WebhookEvent } from '../../engine/mapping/webhook.js';
import { fileURLToPath } from 'node:url';

/** The folder of the mapping this file re-implements by hand: what the baseline is compared with. */
export const BASELINE_MAPPING_DIR = fileURLToPath(new URL('../../mappings/meta-cloud', import.meta.url));

export type MetaSettings = {
  phoneNumberId: string;
  accessToken: string;
  apiVersion: string;
  baseUrl: string;
};

/** A message Meta cannot take: CleverTap gets this failure and Meta is not called. */
class Refusal extends Error {
  constructor(
    readonly code: AnswerCode,
    message: string,
  ) {
    super(message);
  }
}

// ---- send -----------------------------------------------------------------------------------

export function metaSend(message: CanonicalMessage, settings: MetaSettings): SendPlan {
  // CleverTap's endpoint check is answered without calling Meta.
  if (message.isValidation) return { kind: 'answer', answer: { status: 'success' } };
  let body: string;
  try {
    const type = message.isTemplate ? 'template' : message.type === 'file' ? 'document' : message.type;
    body = JSON.stringify({
      messaging_product: 'whatsapp',
      recipient_type: 'individual',
      to: message.to,
      type,
      [type]: message.isTemplate ? template(message.template) : freeform(message),
      biz_opaque_callback_data: message.msgId,
    });
  } catch (e) {
    if (e instanceof Refusal) return { kind: 'answer', answer: { status: 'failure', error: { code: e.code, message: e.message } } };
    throw e;
  }
  return {
    kind: 'request',
    request: {
      method: 'POST',
      url: `${settings.baseUrl}/${settings.apiVersion}/${settings.phoneNumberId}/messages`,
      headers: { Authorization: `Bearer ${settings.accessToken}`, 'Content-Type': 'application/json' },
      body,
    },
  };
}

type Media = { mediaURL?: string; caption?: string; filename?: string };

const mediaObject = (m: Media | undefined) => ({ link: m?.mediaURL, caption: m?.caption, filename: m?.filename });

const textParams = (params: TextParameter[]) => params.map((p) => ({ type: 'text', text: p.text }));

function freeform(m: CanonicalMessage): object {
  switch (m.type) {
    case 'text':
      return { preview_url: false, body: m.text?.body };
    case 'location':
      return { latitude: coordinate(m.location?.latitude), longitude: coordinate(m.location?.longitude) };
    case 'audio':
      return { link: m.audio?.mediaURL };
    case 'image':
    case 'video':
    case 'file':
      return mediaObject(m[m.type]);
    default:
      throw new Refusal(2004, `Message type '${m.type}' is not supported`);
  }
}

/** CleverTap sends coordinates as strings; Meta's location message takes numbers. */
const NUMERIC = /^\s*[-+]?[0-9]+(\.[0-9]+)?\s*$/;
function coordinate(v: string | undefined): string | number | undefined {
  return typeof v === 'string' && NUMERIC.test(v) ? Number(v) : v;
}

/** JSONata's $trim: runs of space, tab, CR and LF become one space, then one leading/trailing space goes. */
function trimSpace(s: string): string {
  let r = s.replace(/[ \t\n\r]+/g, ' ');
  if (r.startsWith(' ')) r = r.slice(1);
  if (r.endsWith(' ')) r = r.slice(0, -1);
  return r;
}

function template(t: Template | undefined): object {
  const components: object[] = [];
  const h = header(t?.header);
  if (h) components.push(h);
  const b = body(t?.body);
  if (b) components.push(b);
  const expiry = t?.limitedTimeOffer?.expirationTimeMs;
  if (expiry !== undefined) {
    components.push({ type: 'limited_time_offer', parameters: [{ type: 'limited_time_offer', limited_time_offer: { expiration_time_ms: expiry } }] });
  }
  const cards = t?.carousel?.cards;
  if (cards && cards.length > 0) components.push({ type: 'carousel', cards: cards.map(card) });
  pushButtons(components, t?.buttons);
  return { name: t?.name, language: { code: t?.language }, components: components.length > 0 ? components : undefined };
}

/** Text headers without parameters are fixed in the approved template: no component. */
function header(h: Header | undefined): object | undefined {
  if (!h) return undefined;
  switch (h.type) {
    case 'audio':
      throw new Refusal(2001, "Audio headers are not supported by Meta's WhatsApp Cloud API templates (header formats: text, image, video, document, location)");
    case 'text':
      return h.parameters.length > 0 ? { type: 'header', parameters: textParams(h.parameters) } : undefined;
    case 'location':
      return {
        type: 'header',
        parameters: [{ type: 'location', location: { latitude: trimSpace(h.latitude), longitude: trimSpace(h.longitude), name: h.name, address: h.address } }],
      };
    case 'image':
    case 'video':
      return { type: 'header', parameters: [{ type: h.type, [h.type]: mediaObject(h) }] };
    case 'file':
      return { type: 'header', parameters: [{ type: 'document', document: mediaObject(h) }] };
    default:
      throw new Refusal(2001, `Unknown header type '${(h as { type?: unknown }).type ?? ''}'`);
  }
}

/** A body without parameters is fixed text in the approved template: no component. */
function body(b: Body | undefined): object | undefined {
  return b && b.parameters.length > 0 ? { type: 'body', parameters: textParams(b.parameters) } : undefined;
}

function pushButtons(components: object[], buttons: Button[] | undefined): void {
  if (!buttons) return;
  for (const b of buttons) {
    const c = button(b);
    if (c) components.push(c);
  }
}

/** Only dynamic URLs, copy codes and quick replies with a payload take parameters. */
function button(b: Button): object | undefined {
  switch (b.subType) {
    case 'dynamicUrl':
      if (b.urlSuffix === undefined) throw new Refusal(2001, `Dynamic URL button ${b.index} has no URL suffix`);
      return { type: 'button', sub_type: 'url', index: b.index, parameters: [{ type: 'text', text: b.urlSuffix }] };
    case 'copyCode':
      if (b.couponCode === undefined) throw new Refusal(2001, `Copy-code button ${b.index} has no coupon code`);
      return { type: 'button', sub_type: 'copy_code', index: b.index, parameters: [{ type: 'coupon_code', coupon_code: b.couponCode }] };
    case 'quickReply':
      return b.payload !== undefined && b.payload !== ''
        ? { type: 'button', sub_type: 'quick_reply', index: b.index, parameters: [{ type: 'payload', payload: b.payload }] }
        : undefined;
    default:
      return undefined;
  }
}

function card(c: Card, i: number): object {
  if (c.header && c.header.type !== 'image' && c.header.type !== 'video') {
    throw new Refusal(2001, `Carousel card ${i}: Meta media cards need an image or video header, got '${c.header.type}'`);
  }
  const components: object[] = [];
  const h = header(c.header);
  if (h) components.push(h);
  const b = body(c.body);
  if (b) components.push(b);
  pushButtons(components, c.buttons);
  return { card_index: c.index ?? i, components };
}

// ---- webhook --------------------------------------------------------------------------------

interface MetaError {
  code?: number;
  title?: string;
  message?: string;
  error_data?: { details?: string };
}
interface MetaStatus {
  id?: string;
  status?: string;
  timestamp?: string;
  biz_opaque_callback_data?: string;
  errors?: MetaError[] | MetaError;
}
interface MetaMedia {
  id?: string;
  mime_type?: string;
  caption?: string;
  filename?: string;
}
interface MetaReply {
  id?: string;
  title?: string;
}
interface MetaInbound {
  id?: string;
  from?: string;
  timestamp?: string;
  type?: string;
  context?: { id?: string };
  text?: { body?: string };
  image?: MetaMedia;
  sticker?: MetaMedia;
  video?: MetaMedia;
  audio?: MetaMedia;
  document?: MetaMedia;
  location?: { latitude?: number; longitude?: number; name?: string; address?: string; url?: string };
  button?: { payload?: string; text?: string };
  interactive?: { type?: string; button_reply?: MetaReply; list_reply?: MetaReply };
  reaction?: { message_id?: string; emoji?: string };
}
interface MetaValue {
  metadata?: { display_phone_number?: string };
  statuses?: MetaStatus[] | MetaStatus;
  messages?: MetaInbound[] | MetaInbound;
}
interface MetaChange {
  field?: string;
  value?: MetaValue[] | MetaValue;
}
interface MetaWebhook {
  entry?: { changes?: MetaChange[] | MetaChange }[] | { changes?: MetaChange[] | MetaChange };
}

/** JSONata path semantics for one step: a lone value is a list of one, absent/null is empty. */
function list<T>(v: T[] | T | undefined | null): T[] {
  return Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
}

/** JSONata's $string for the scalars Meta sends: numbers keep 15 significant digits. */
function text(v: string | number | undefined): string | undefined {
  return typeof v === 'number' ? String(Number(v.toPrecision(15))) : v;
}

const digits = (v: string | number | undefined) => text(v)?.replace(/[^0-9]/g, '');

/** The Meta webhook body (parsed) → status and incoming events, in the order Meta lists them. */
export function metaWebhookEvents(body: unknown, _settings?: unknown): WebhookEvent[] {
  const events: WebhookEvent[] = [];
  for (const entry of list((body as MetaWebhook | null | undefined)?.entry)) {
    for (const change of list(entry?.changes)) {
      if (change?.field !== undefined && change.field !== 'messages') continue;
      for (const value of list(change?.value)) {
        for (const s of list(value?.statuses)) {
          const e = statusEvent(s);
          if (e) events.push(e);
        }
        for (const m of list(value?.messages)) {
          const e = incomingEvent(m, value);
          if (e) events.push(e);
        }
      }
    }
  }
  return events;
}

function statusEvent(s: MetaStatus): StatusEvent | undefined {
  const status = s.status;
  if (status !== 'sent' && status !== 'delivered' && status !== 'read' && status !== 'failed') return undefined;
  const failed = status === 'failed';
  const err = Array.isArray(s.errors) ? s.errors[0] : s.errors;
  return {
    event: 'status',
    providerMessageId: s.id,
    msgId: s.biz_opaque_callback_data,
    status,
    timestamp: text(s.timestamp),
    error: failed ? { code: statusCode(err?.code), title: err?.title || err?.message || 'Message failed' } : undefined,
    providerError: failed && err ? { code: text(err.code), title: err.title || err.message, details: err.error_data?.details } : undefined,
  };
}

const SENDER_PROBLEM = new Set([0, 3, 10, 190, 131005, 131045, 133010]);
const BAD_PAYLOAD = new Set([100, 131008, 131009, 131051, 131052, 131053, 132000, 132001, 132005, 132007, 132012, 132015, 132016, 132068, 132069]);
const NOT_ALLOWED = new Set([131021, 131030]);
const THROTTLED = new Set([4, 80007, 130429, 131056]);
const WINDOW_CLOSED = new Set([131047, 470]);
const POLICY = new Set([368, 130472, 130497, 131031, 131048, 131049, 131050]);

/** Meta error code → CleverTap status error code (docs/meta-cloud.md). */
function statusCode(code: number | undefined): number {
  if (code === undefined) return 1009;
  if (SENDER_PROBLEM.has(code) || (code >= 200 && code <= 299)) return 1000;
  if (BAD_PAYLOAD.has(code)) return 1001;
  if (NOT_ALLOWED.has(code)) return 1002;
  if (THROTTLED.has(code)) return 1004;
  if (code === 131026) return 1007;
  if (WINDOW_CLOSED.has(code)) return 1008;
  if (POLICY.has(code)) return 1010;
  return 1009;
}

const inboundMedia = (x: MetaMedia | undefined) => ({ mediaId: x?.id, mimeType: x?.mime_type, caption: x?.caption, filename: x?.filename });

function incomingContent(msg: MetaInbound): { type: string } & Record<string, unknown> | undefined {
  switch (msg.type) {
    case 'text':
      return { type: 'text', text: { body: msg.text?.body } };
    case 'image':
    case 'sticker':
      return { type: 'image', image: inboundMedia(msg[msg.type]) };
    case 'video':
      return { type: 'video', video: inboundMedia(msg.video) };
    case 'audio':
      return { type: 'audio', audio: inboundMedia(msg.audio) };
    case 'document':
      return { type: 'file', file: inboundMedia(msg.document) };
    case 'location': {
      const l = msg.location;
      return { type: 'location', location: { latitude: text(l?.latitude), longitude: text(l?.longitude), name: l?.name, address: l?.address, url: l?.url } };
    }
    case 'button':
      return { type: 'button', button: { payload: msg.button?.payload, text: msg.button?.text } };
    case 'interactive': {
      const kind = msg.interactive?.type;
      const reply = kind === 'button_reply' || kind === 'list_reply' ? msg.interactive?.[kind] : undefined;
      return reply ? { type: 'button', button: { payload: reply.id, text: reply.title } } : undefined;
    }
    case 'reaction': {
      const emoji = msg.reaction?.emoji;
      return emoji ? { type: 'text', text: { body: emoji } } : undefined;
    }
    default:
      return undefined;
  }
}

function incomingEvent(msg: MetaInbound, value: MetaValue): IncomingEvent | undefined {
  const content = incomingContent(msg);
  if (!content) return undefined;
  return {
    event: 'incoming',
    providerMessageId: msg.id,
    replyTo: msg.type === 'reaction' ? msg.reaction?.message_id : msg.context?.id,
    message: {
      from: digits(msg.from) as string,
      wabaNumber: digits(value.metadata?.display_phone_number),
      timestamp: text(msg.timestamp) as string,
      ...content,
    },
  };
}
