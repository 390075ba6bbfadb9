// Signed, expiring links for inbound media. CleverTap gets a URL it can fetch; the token names the
// tenant and the BSP's media id, and only this service can mint one.
import { createHmac, timingSafeEqual } from 'node:crypto';

export interface MediaRef {
  tenant: string;
  mediaId: string;
  mimeType?: string;
}

interface Claims extends MediaRef {
  exp: number; // epoch seconds
}

export class MediaLinks {
  constructor(
    private readonly secret: string,
    private readonly baseUrl: string,
    private readonly ttlMs: number,
  ) {}

  private mac(payload: string): string {
    return createHmac('sha256', this.secret).update(payload).digest('base64url');
  }

  url(ref: MediaRef, now = Date.now()): string {
    const claims: Claims = { ...ref, exp: Math.floor((now + this.ttlMs) / 1000) };
    const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return `${this.baseUrl}/v1/media/${payload}.${this.mac(payload)}`;
  }

  /** The reference a token stands for, or why it is refused. */
  verify(token: string, now = Date.now()): { ok: true; ref: MediaRef } | { ok: false; reason: string } {
    const [payload, mac] = token.split('.');
    if (!payload || !mac) return { ok: false, reason: 'malformed media token' };
    const expected = Buffer.from(this.mac(payload));
    const given = Buffer.from(mac);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'media token signature does not match' };
    let claims: Claims;
    try {
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Claims;
    } catch {
      return { ok: false, reason: 'malformed media token' };
    }
    if (claims.exp * 1000 < now) return { ok: false, reason: 'media link expired' };
    return { ok: true, ref: { tenant: claims.tenant, mediaId: claims.mediaId, mimeType: claims.mimeType } };
  }
}
