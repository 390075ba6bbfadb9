// Access tokens a mapping declares under auth.token (OAuth2 client credentials and the like):
// fetched per tenant on first use, shared by concurrent requests, refreshed a minute before they
// expire, and dropped when the BSP answers 401 so the next message fetches a fresh one.
import { WabError } from './errors.js';
import type { Mapping } from './loader.js';
import { buildRequest, parseResponseBody, type BspResponse, type HttpRequest } from './send.js';

export type Fetch = (req: HttpRequest) => Promise<BspResponse>;

const MARGIN_MS = 60_000;
/** Lifetime assumed when the token answer does not say (one hour, the usual OAuth2 default). */
const DEFAULT_TTL_S = 60 * 60;

/** The token request a mapping declares, or undefined when it needs none for these settings. */
export async function planToken(mapping: Mapping, settings: Record<string, unknown>): Promise<HttpRequest | undefined> {
  const t = mapping.auth?.token;
  if (!t) return undefined;
  if (t.when && !(await t.when.evaluate({ settings }))) return undefined;
  return buildRequest(t.request, { settings }, 'auth.token.request');
}

/** Reads the token and its lifetime from the token endpoint's answer. */
export async function readToken(mapping: Mapping, settings: Record<string, unknown>, r: BspResponse): Promise<{ token: string; expiresIn: number }> {
  const t = mapping.auth!.token!;
  if (r.status < 200 || r.status >= 300) {
    throw new WabError('WAB_TOKEN', `token endpoint answered HTTP ${r.status}${r.text ? `: ${r.text.slice(0, 200)}` : ''}`);
  }
  const input = { status: r.status, headers: r.headers, body: parseResponseBody(r), settings };
  const token = await t.value.evaluate(input);
  if (typeof token !== 'string' || token === '') throw new WabError('WAB_MAPPING_OUTPUT', `auth.token.value: must give the token string, got ${JSON.stringify(token)}`);
  const expiresIn = t.expiresIn ? Number(await t.expiresIn.evaluate(input)) : DEFAULT_TTL_S;
  return { token, expiresIn: Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : DEFAULT_TTL_S };
}

export class TokenCache {
  private readonly tokens = new Map<string, { token: string; expiresAt: number }>();
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(
    private readonly fetch: Fetch,
    private readonly now: () => number = Date.now,
  ) {}

  /** The tenant's current token for this mapping, or undefined when the mapping uses none. */
  async get(mapping: Mapping, tenant: string, settings: Record<string, unknown>): Promise<string | undefined> {
    if (!mapping.auth?.token) return undefined;
    const key = `${tenant}|${mapping.name}|${mapping.version}`;
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt - MARGIN_MS > this.now()) return cached.token;
    const running = this.inflight.get(key);
    if (running) return running;
    const p = (async () => {
      const req = await planToken(mapping, settings);
      if (!req) return undefined as unknown as string;
      const { token, expiresIn } = await readToken(mapping, settings, await this.fetch(req));
      this.tokens.set(key, { token, expiresAt: this.now() + expiresIn * 1000 });
      return token;
    })().finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return (await p) || undefined;
  }

  /** The BSP refused the token: forget it. */
  invalidate(mapping: Mapping, tenant: string): void {
    this.tokens.delete(`${tenant}|${mapping.name}|${mapping.version}`);
  }
}
