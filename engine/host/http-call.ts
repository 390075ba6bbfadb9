// Outgoing HTTP calls whose answers are small texts (BSP sends, token fetches, CleverTap callbacks),
// made through undici's dispatch() with a handler that collects the body. undici's request() wraps
// every answer in a Readable stream and an AsyncResource, and its abort signal needs a listener per
// call: about a third of a call's CPU for a body of a few hundred bytes. Each call here has its own
// timeout, and a group can abort every call still open when the process stops.
import type { Dispatcher } from 'undici';

export interface HttpCallRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  /** The body as UTF-8 text, cut at the call's byte cap. */
  text: string;
}

interface Target {
  origin: string;
  path: string;
}

// Requests go to a handful of URLs (a tenant's send endpoint, its token endpoint): parsing each once.
const targets = new Map<string, Target>();

function targetOf(url: string): Target {
  let t = targets.get(url);
  if (t) return t;
  const u = new URL(url);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`URL must start with http: or https:, got ${u.protocol}`);
  t = { origin: u.origin, path: u.pathname + u.search };
  if (targets.size >= 1024) targets.clear();
  targets.set(url, t);
  return t;
}

class Call implements Dispatcher.DispatchHandler {
  controller: Dispatcher.DispatchController | undefined;
  /** Set when aborted before undici started the request (it waits in the pool's queue). */
  reason: Error | undefined;
  timer: NodeJS.Timeout | undefined;
  settled = false;
  status = 0;
  headers: Record<string, string | string[] | undefined> = {};
  chunks: Buffer[] = [];
  size = 0;

  constructor(
    private readonly group: HttpCalls,
    private readonly cap: number,
    private readonly resolve: (a: HttpAnswer) => void,
    private readonly reject: (e: Error) => void,
  ) {}

  onRequestStart(controller: Dispatcher.DispatchController): void {
    if (this.reason) return controller.abort(this.reason);
    this.controller = controller;
    this.status = 0;
    this.chunks = [];
    this.size = 0;
  }

  onResponseStart(_c: Dispatcher.DispatchController, status: number, headers: Record<string, string | string[] | undefined>): void {
    // 1xx answers come before the real one
    if (status < 200) return;
    this.status = status;
    this.headers = headers;
  }

  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    this.size += chunk.length;
    // past the cap the start is kept (for an error text) and the rest is read and dropped
    if (this.size <= this.cap) this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    if (this.settle()) return;
    const headers: Record<string, string> = {};
    for (const k in this.headers) {
      const v = this.headers[k];
      if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
    }
    const c = this.chunks;
    this.resolve({ status: this.status, headers, text: c.length === 1 ? c[0]!.toString('utf8') : Buffer.concat(c).toString('utf8') });
  }

  onResponseError(_c: Dispatcher.DispatchController | null, err: Error): void {
    if (!this.settle()) this.reject(err);
  }

  abort(reason: Error): void {
    if (this.settled) return;
    if (this.controller) return this.controller.abort(reason);
    // Not started yet: answer now, and abort when undici gets to it.
    this.reason = reason;
    this.onResponseError(null, reason);
  }

  /** Ends the call's bookkeeping; true when it had already ended. */
  private settle(): boolean {
    if (this.settled) return true;
    this.settled = true;
    clearTimeout(this.timer);
    this.group.open.delete(this);
    return false;
  }
}

/** The calls of one client through one dispatcher. */
export class HttpCalls {
  /** @internal the calls in flight */
  readonly open = new Set<Call>();
  /** Set by abortAll(): the reason every call still open, or started after, is aborted with. */
  reason: Error | undefined;

  constructor(readonly dispatcher: Dispatcher) {}

  /**
   * Resolves with any HTTP answer; rejects with undici's error, with a DOMException named
   * TimeoutError saying `timeoutMessage` after `timeoutMs`, or with abortAll's reason.
   */
  call(req: HttpCallRequest, timeoutMs: number, timeoutMessage: string, maxBodyBytes: number): Promise<HttpAnswer> {
    return new Promise<HttpAnswer>((resolve, reject) => {
      const call = new Call(this, maxBodyBytes, resolve, reject);
      if (this.reason) return call.abort(this.reason);
      let target: Target;
      try {
        target = targetOf(req.url);
      } catch (e) {
        return call.abort(e as Error);
      }
      this.open.add(call);
      call.timer = setTimeout(() => call.abort(new DOMException(timeoutMessage, 'TimeoutError')), timeoutMs);
      this.dispatcher.dispatch(
        { origin: target.origin, path: target.path, method: req.method as Dispatcher.HttpMethod, headers: req.headers, body: req.body ?? null, headersTimeout: timeoutMs, bodyTimeout: timeoutMs },
        call,
      );
    });
  }

  abortAll(reason: Error): void {
    this.reason = reason;
    for (const call of this.open) call.abort(reason);
  }
}
