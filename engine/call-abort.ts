// The abort handles of outgoing HTTP calls. undici takes an EventEmitter as a request's `signal`
// (documented beside AbortSignal); on Node 20 an AbortController with undici's listener on its
// EventTarget costs about 4 µs per call, this about 0.1 µs. undici reads `aborted` and `reason`
// (an abort without a reason becomes its RequestAbortedError).
import { EventEmitter } from 'node:events';

export class CallAbort extends EventEmitter {
  aborted = false;
  reason: unknown = undefined;
  timer: NodeJS.Timeout | undefined;

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.emit('abort');
  }
}

/**
 * A client's calls in flight, each with its own handle, so that shutting down can abort them all.
 * (One long-lived signal combined into every call with AbortSignal.any leaks on Node 20: it keeps an
 * entry for every signal ever combined with it, nodejs/node#55351, ~60 bytes a call.)
 */
export class CallGroup {
  private readonly calls = new Set<CallAbort>();
  /** Set by abortAll(): the reason every call still open, or started after, is aborted with. */
  reason: Error | undefined;

  /** A handle for a new call; it aborts with a TimeoutError saying `message` after `timeoutMs`. */
  start(timeoutMs: number, message: string): CallAbort {
    const call = new CallAbort();
    if (this.reason) call.abort(this.reason);
    call.timer = setTimeout(() => call.abort(new DOMException(message, 'TimeoutError')), timeoutMs);
    this.calls.add(call);
    return call;
  }

  /** The call is over, whichever way it ended. */
  end(call: CallAbort): void {
    clearTimeout(call.timer);
    this.calls.delete(call);
  }

  abortAll(reason: Error): void {
    this.reason = reason;
    for (const call of this.calls) call.abort(reason);
  }
}
