// wabridge's own click tracking for dynamic-URL buttons (docs/click-tracking.md). No BSP reports a
// click on a WhatsApp button, so the button points at wabridge instead: the suffix the BSP receives
// is a token, the template registered at the BSP reads <publicUrl>/c/{{1}}, and GET /c/<token>
// counts the click, queues CleverTap's `Clicked` status and redirects to the URL the button had.
//
// CleverTap sends only the suffix ("Only the suffix of the URL"); the base before {{1}} lives in the
// template at the BSP, which once tracked is wabridge's own. So the tenant's configuration names the
// original base per template, and the original URL is that base + the suffix, exactly what WhatsApp
// would have opened.
import { randomBytes } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { CanonicalMessage } from '../clevertap/model.js';
import { failure, type Answer } from '../mapping/send.js';
import type { ClickLink, NewCallback, Store } from '../stores/store.js';
import { statusCallbackFor } from './callbacks.js';
import type { ClickTracking, TenantConfig } from './config.js';
import type { Metrics } from './metrics.js';

/** 16 random bytes (128 bits) in base64url: 22 characters, safe in a URL path. */
export function newClickToken(): string {
  return randomBytes(16).toString('base64url');
}

const TOKEN = /^[A-Za-z0-9_-]{22}$/;

/**
 * The message with the suffix of each tracked dynamic-URL button replaced by a new token, and the
 * links to record. Untracked templates and buttons pass unchanged. An original URL that does not
 * parse is the payload's fault: 2001 naming the button.
 */
export function trackButtons(message: CanonicalMessage, tenant: string, tracking: ClickTracking, now: number, token: () => string = newClickToken): { message: CanonicalMessage; links: ClickLink[] } | { answer: Answer } {
  const template = message.template;
  const bases = template && !message.isValidation ? tracking.templates.get(template.name) : undefined;
  if (!template || bases === undefined) return { message, links: [] };
  const links: ClickLink[] = [];
  const buttons = [];
  for (const b of template.buttons) {
    const base = typeof bases === 'string' ? bases : bases.get(b.index);
    if (b.subType !== 'dynamicUrl' || b.urlSuffix === undefined || base === undefined) {
      buttons.push(b);
      continue;
    }
    let url: URL;
    try {
      url = new URL(base + b.urlSuffix);
    } catch {
      return { answer: failure(2001, `button ${b.index} (dynamicUrl): '${base}' followed by its suffix is not a URL, so it cannot be tracked`) };
    }
    const link = { token: token(), tenant, msgId: message.msgId, url: url.href, expiresAt: now + tracking.linkTtlMs };
    links.push(link);
    buttons.push({ ...b, urlSuffix: link.token });
  }
  if (links.length === 0) return { message, links };
  return { message: { ...message, template: { ...template, buttons } }, links };
}

/**
 * The send flow's step: rewrites the tracked buttons and records their links durably before the
 * message can reach the BSP (a click may come seconds after delivery). A store that cannot record
 * them answers 2004, which CleverTap retries: the message is not sent with links that go nowhere.
 */
export async function trackLinks(store: Store, tenant: TenantConfig, message: CanonicalMessage, logger: Logger): Promise<{ message: CanonicalMessage } | { answer: Answer }> {
  if (!tenant.clickTracking) return { message };
  const now = Date.now();
  const tracked = trackButtons(message, tenant.id, tenant.clickTracking, now);
  if ('answer' in tracked || tracked.links.length === 0) return tracked;
  try {
    await store.saveClickLinks(tracked.links, now);
  } catch (e) {
    logger.error({ tenant: tenant.id, msgId: message.msgId, err: (e as Error).message }, 'tracked links not recorded');
    return { answer: failure(2004, `wabridge could not record this message's tracked links: ${(e as Error).message}`) };
  }
  return { message: tracked.message };
}

/** CleverTap's `Clicked` entry for the first click on a link; one per link (its dedupe key is the token). */
export function clickCallback(link: ClickLink, shortUrl: string, userAgent: string, now: number): NewCallback {
  const cb = statusCallbackFor(link.tenant, link.msgId, { event: 'status', status: 'clicked', url: link.url, shortUrl, userAgent, timestamp: String(Math.floor(now / 1000)) });
  return { ...cb, dedupeKey: `${link.tenant}|click|${link.token}` };
}

/**
 * Clicks per client address: a token bucket of `perMinute`, refilled continuously. Per process (a
 * fleet's limit is the sum); the map is bounded, and under a flood of addresses the full buckets go
 * first, then the oldest.
 */
export class ClickRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly perMs: number;

  constructor(
    private readonly perMinute: number,
    private readonly maxAddresses = 100_000,
  ) {
    this.perMs = perMinute / 60_000;
  }

  /** 0 when the click may go; otherwise the seconds until it could. */
  take(address: string, now: number): number {
    let b = this.buckets.get(address);
    if (!b) {
      if (this.buckets.size >= this.maxAddresses) this.evict(now);
      b = { tokens: this.perMinute, at: now };
      this.buckets.set(address, b);
    }
    b.tokens = Math.min(this.perMinute, b.tokens + (now - b.at) * this.perMs);
    b.at = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.perMs / 1000));
  }

  get size(): number {
    return this.buckets.size;
  }

  // Down to 90 %: a flood of new addresses pays one scan per tenth of the map, not one per address.
  private evict(now: number): void {
    const target = Math.floor(this.maxAddresses * 0.9);
    for (const [k, b] of this.buckets) if (b.tokens + (now - b.at) * this.perMs >= this.perMinute) this.buckets.delete(k);
    for (const k of this.buckets.keys()) {
      if (this.buckets.size <= target) break;
      this.buckets.delete(k);
    }
  }
}

export interface ClickDeps {
  store: Store;
  /** server.publicUrl (read per click: a host started on port 0 learns it after listening); the short URL is <publicUrl>/c/<token>. */
  publicUrl: () => string;
  limiter: ClickRateLimiter;
  metrics: Metrics;
  logger: Logger;
}

export type ClickOutcome = { kind: 'redirect'; url: string } | { kind: 'unknown' } | { kind: 'limited'; retryAfterS: number } | { kind: 'unavailable'; reason: string };

// CleverTap passes the User-Agent on verbatim; a header can be 16 KB.
const MAX_USER_AGENT = 1024;

/**
 * One request to /c/<token>. Only a link recorded at send time is ever a redirect target. HEAD (link
 * checkers, previews) redirects without counting.
 */
export async function handleClick(deps: ClickDeps, token: string, req: { address: string; userAgent: string | undefined; head: boolean }): Promise<ClickOutcome> {
  const now = Date.now();
  const wait = deps.limiter.take(req.address, now);
  if (wait > 0) {
    deps.metrics.clicks.inc({ outcome: 'limited' });
    return { kind: 'limited', retryAfterS: wait };
  }
  if (!TOKEN.test(token)) {
    deps.metrics.clicks.inc({ outcome: 'unknown' });
    return { kind: 'unknown' };
  }
  let link: ClickLink | undefined;
  try {
    link = await deps.store.findClickLink(token, now);
  } catch (e) {
    deps.logger.error({ err: (e as Error).message }, 'click: store unavailable');
    return { kind: 'unavailable', reason: (e as Error).message };
  }
  if (!link) {
    deps.metrics.clicks.inc({ outcome: 'unknown' });
    return { kind: 'unknown' };
  }
  if (req.head) return { kind: 'redirect', url: link.url };
  const shortUrl = `${deps.publicUrl()}/c/${token}`;
  try {
    const clicks = await deps.store.recordClick(token, now, clickCallback(link, shortUrl, (req.userAgent ?? '').slice(0, MAX_USER_AGENT), now));
    deps.metrics.clicks.inc({ outcome: clicks === 1 ? 'first' : 'repeat' });
    deps.logger.info({ tenant: link.tenant, msgId: link.msgId, clicks }, 'link clicked');
  } catch (e) {
    // The person clicking still gets where the button promised; the click is lost and said so.
    deps.metrics.clicks.inc({ outcome: 'unrecorded' });
    deps.logger.error({ tenant: link.tenant, msgId: link.msgId, err: (e as Error).message }, 'click not recorded');
  }
  return { kind: 'redirect', url: link.url };
}

const GONE_HTML = '<!doctype html><meta charset="utf-8"><title>Link expired</title><p>This link is unknown or has expired.</p>\n';

function answer(reply: FastifyReply, out: ClickOutcome, wantsHtml: boolean): FastifyReply {
  switch (out.kind) {
    case 'redirect':
      // no-store: every click must reach wabridge; no-referrer: the destination never sees the token.
      return reply.code(302).header('location', out.url).header('cache-control', 'no-store').header('referrer-policy', 'no-referrer').send();
    case 'limited':
      return reply.code(429).header('retry-after', String(out.retryAfterS)).send({ message: `too many clicks from this address; try again in ${out.retryAfterS} s`, code: 'WAB_RATE_LIMITED' });
    case 'unavailable':
      return reply.code(503).header('retry-after', '1').send({ message: `click tracking store unavailable: ${out.reason}`, code: 'WAB_STORE_UNAVAILABLE' });
    case 'unknown':
      if (wantsHtml) return reply.code(404).header('cache-control', 'no-store').type('text/html; charset=utf-8').send(GONE_HTML);
      return reply.code(404).header('cache-control', 'no-store').send({ message: 'this link is unknown or has expired', code: 'WAB_CLICK_LINK_UNKNOWN' });
  }
}

/** The handler of GET (and HEAD) /c/:token. */
export function clickRoute(deps: ClickDeps) {
  return async (req: FastifyRequest<{ Params: { token: string } }>, reply: FastifyReply) => {
    const out = await handleClick(deps, req.params.token, { address: req.ip, userAgent: req.headers['user-agent'], head: req.method === 'HEAD' });
    return answer(reply, out, (req.headers.accept ?? '').includes('text/html'));
  };
}
