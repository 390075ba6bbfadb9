// HTTP to BSPs: one undici Agent per host process, keep-alive pools per origin, and failures
// classified the way mappings see them (timeout, connect, network).
import { Agent } from 'undici';
import { HttpCalls } from './http-call.js';
import type { BspResponse, HttpRequest, TransportFailure } from '../mapping/send.js';

export class TransportError extends Error {
  constructor(readonly failure: TransportFailure) {
    super(`${failure.kind}: ${failure.message}`);
    this.name = 'TransportError';
  }
}

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT', 'CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT']);
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT', 'ABORT_ERR']);

function classify(e: unknown): TransportFailure {
  const err = e as { code?: unknown; name?: string; message?: string; cause?: { code?: unknown } };
  // Node and undici codes are strings; a DOMException's numeric code (23 for a timeout) is not news
  const code = typeof err.code === 'string' ? err.code : typeof err.cause?.code === 'string' ? err.cause.code : '';
  const message = `${code ? `${code} ` : ''}${err.message ?? String(e)}`.trim();
  if (TIMEOUT_CODES.has(code) || err.name === 'AbortError' || err.name === 'TimeoutError') return { kind: 'timeout', message };
  if (CONNECT_CODES.has(code)) return { kind: 'connect', message };
  return { kind: 'network', message };
}

export class BspClient {
  readonly agent: Agent;
  /** The calls in flight: close() aborts them. */
  private readonly calls: HttpCalls;

  constructor(opts: { connectionsPerOrigin?: number } = {}) {
    this.agent = new Agent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 600_000, connections: opts.connectionsPerOrigin ?? 2048, connect: { timeout: 5_000 } });
    this.calls = new HttpCalls(this.agent);
  }

  /** Sends the request; resolves with any HTTP answer, rejects with TransportError. */
  async send(req: HttpRequest, timeoutMs: number, maxBodyBytes = 1_048_576): Promise<BspResponse> {
    try {
      return await this.calls.call(req, timeoutMs, `BSP did not answer within ${timeoutMs} ms`, maxBodyBytes);
    } catch (e) {
      throw new TransportError(classify(e));
    }
  }

  /**
   * Lets calls in flight finish for at most `graceMs`, then aborts them. Calls kept open past
   * CleverTap's deadline (to correlate a late success) must not hold the exit past the drain time.
   */
  async close(graceMs = 0): Promise<void> {
    const cut = setTimeout(() => {
      this.calls.abortAll(new Error('wabridge is stopping'));
    }, graceMs);
    try {
      await this.agent.close();
    } finally {
      clearTimeout(cut);
    }
  }
}
