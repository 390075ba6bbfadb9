// Message timelines for operators ("what happened to this message?", docs/operations.md). A trace is
// diagnostics, not data CleverTap or a BSP depends on, so it stays out of the answer's way: a flow
// hands the Tracer an event, or a function that builds it from references it already holds (a send:
// the request, the BSP's answer), and goes on. Building and redacting happen later, in the Tracer's
// write, after the answers of that turn were sent, and the store serializes (SQLite on its own
// thread); writes gather for `intervalMs` so the store takes many events in one call (on SQLite
// transactions of their own, outside the group commit answers wait for; on Redis one script).
// While answers wait for the event loop, writes are put off (engine/host/background-gate.ts); events
// past `maxBuffered` are dropped and counted (wabridge_trace_dropped_total) rather than delay an
// answer. A write that fails is counted and logged, never retried, and never fails a message.
import { parseMsgId } from '../clevertap/normalize.js';
import type { CallbackRecord, Store, TraceEvent } from '../stores/store.js';
import type { BackgroundGate } from './background-gate.js';

export interface TracerOptions {
  /** How long timelines are kept; 0 turns tracing off. */
  keepMs: number;
  /** Events waiting to be written; past it new events are dropped (and counted). */
  maxBuffered?: number;
  /** How long events gather before a write: a store's cost per event falls with the batch's size. 0: the next turn. */
  intervalMs?: number;
  /** Events per store call at most. */
  maxBatch?: number;
  /** Puts writes off while answers wait for the event loop (at most its hold time in a row). */
  gate?: Pick<BackgroundGate, 'hold'>;
  onError?: (e: Error, dropped: number) => void;
  /** Events that will not be written: the buffer was full, or their write (or their builder) failed. */
  onDrop?: (reason: 'full' | 'failed', n: number) => void;
}

/** An event, or what builds it at write time (from references the recording flow had at hand). */
export type TraceEntry = TraceEvent | (() => TraceEvent);

export class Tracer {
  private buffer: TraceEntry[] = [];
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private writing = false;
  private flushing = false;
  private readonly inFlight = new Set<Promise<void>>();
  /** Events dropped because the buffer was full or their write failed. */
  dropped = 0;

  constructor(
    private readonly store: Pick<Store, 'appendTrace'>,
    private readonly o: TracerOptions,
  ) {}

  get enabled(): boolean {
    return this.o.keepMs > 0;
  }

  /** Costs the caller a push: no copy, no serialization, no store call. */
  record(e: TraceEntry): void {
    if (!this.enabled) return;
    if (this.buffer.length >= (this.o.maxBuffered ?? 20_000)) {
      this.drop('full', 1);
      return;
    }
    this.buffer.push(e);
    this.schedule(this.o.intervalMs ?? 100);
  }

  private drop(reason: 'full' | 'failed', n: number): void {
    this.dropped += n;
    this.o.onDrop?.(reason, n);
  }

  private schedule(ms: number): void {
    if (this.timer !== undefined) return;
    if (ms <= 0) this.timer = setImmediate(() => this.write());
    else {
      // Diagnostics never keep a process alive: the host flushes at close.
      this.timer = setTimeout(() => this.write(), ms);
      this.timer.unref();
    }
  }

  private write(): void {
    this.timer = undefined;
    // One write at a time: while the store is slow, events pile up into the next (bigger) write
    // instead of into many concurrent ones.
    if (this.writing || this.buffer.length === 0) return;
    if (!this.flushing && this.o.gate?.hold()) {
      this.schedule(Math.max(this.o.intervalMs ?? 100, 10));
      return;
    }
    const max = this.o.maxBatch ?? 1000;
    const batch = this.buffer.length <= max ? this.buffer : this.buffer.slice(0, max);
    this.buffer = batch === this.buffer ? [] : this.buffer.slice(max);
    const rows: TraceEvent[] = [];
    let failed = 0;
    let failure: Error | undefined;
    for (const entry of batch) {
      try {
        rows.push(withCampaign(typeof entry === 'function' ? entry() : entry));
      } catch (e) {
        // (a builder that threw: this event alone is lost)
        failed++;
        failure ??= e as Error;
      }
    }
    if (failed > 0) {
      this.drop('failed', failed);
      this.o.onError?.(failure!, failed);
    }
    if (rows.length === 0) return this.next();
    this.writing = true;
    const w = this.store.appendTrace(rows, this.o.keepMs).then(
      () => undefined,
      (e: unknown) => {
        this.drop('failed', rows.length);
        this.o.onError?.(e as Error, rows.length);
      },
    );
    this.inFlight.add(w);
    void w.finally(() => {
      this.inFlight.delete(w);
      this.writing = false;
      this.next();
    });
  }

  private next(): void {
    if (this.buffer.length > 0) this.schedule(this.buffer.length >= (this.o.maxBatch ?? 1000) ? 0 : (this.o.intervalMs ?? 100));
  }

  /** Writes what is buffered, pressure or not, and waits for every write in flight (at close, and in tests). */
  async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.buffer.length > 0 || this.inFlight.size > 0) {
        if (this.buffer.length > 0 && !this.writing) {
          if (this.timer !== undefined) {
            clearTimeout(this.timer as NodeJS.Timeout);
            clearImmediate(this.timer as NodeJS.Immediate);
            this.timer = undefined;
          }
          this.write();
        }
        await Promise.all(this.inFlight);
      }
    } finally {
      this.flushing = false;
    }
  }
}

/** The event with its campaign (campaign reports read by it), found from its msgId unless the flow knew it. */
function withCampaign(e: TraceEvent): TraceEvent {
  if (e.msgId !== undefined && e.campaignId === undefined && e.msgId.includes('|')) {
    const c = parseMsgId(e.msgId).campaignId;
    if (c) e.campaignId = c;
  }
  return e;
}

/**
 * One trace event per callback: a status under its msgId, an incoming one under the msgId it answers
 * (context) or else its own BSP id (from its dedupe key, see incomingDedupeKey).
 */
export function callbackEvents(records: readonly CallbackRecord[], type: 'callback' | 'dead', at: number, data: Record<string, unknown>): TraceEvent[] {
  const out: TraceEvent[] = [];
  for (const r of records) {
    const payload = r.payload as { status?: string; context?: { id?: string }; error?: { code?: number } };
    const msgId = r.msgId ?? payload.context?.id;
    const e: TraceEvent = { at, tenant: r.tenant, type, data: { ...data, callbackId: r.id, kind: r.kind, attempt: r.attempts + 1 } };
    if (r.kind === 'status') e.data.status = payload.status;
    if (payload.error?.code !== undefined) e.data.errorCode = payload.error.code;
    if (r.implied) e.data.implied = true;
    if (msgId !== undefined) e.msgId = msgId;
    else {
      const prefix = `${r.tenant}|in|`;
      if (r.dedupeKey.startsWith(prefix) && !r.dedupeKey.startsWith(`${prefix}sha256:`)) e.providerMessageId = r.dedupeKey.slice(prefix.length);
      else continue; // nothing could find it
    }
    out.push(e);
  }
  return out;
}

/**
 * Header (and query) names whose values are credentials: never kept in a trace or the quarantine, as
 * the logger never writes them, and never shown by the console's playground.
 */
export const CREDENTIAL_NAME = /auth|token|key|secret|signature|cookie|password|credential/i;
export const REDACTED = '[redacted]';

// The same few header names come with every send and answer: each is tested once. Bounded, as a
// webhook's sender chooses its header names.
const secretName = new Map<string, boolean>();

function isSecretHeader(name: string): boolean {
  let secret = secretName.get(name);
  if (secret === undefined) {
    if (secretName.size >= 1000) secretName.clear();
    secretName.set(name, (secret = CREDENTIAL_NAME.test(name)));
  }
  return secret;
}

/** Headers as a trace (and the quarantine) keeps them: credentials replaced, every value a string. */
export function safeHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k in headers) {
    const v = headers[k];
    if (v === undefined) continue;
    out[k] = isSecretHeader(k) ? REDACTED : Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

/** A URL without its query values (some BSPs take an API key there) and without user info. */
export function safeUrl(url: string): string {
  // Every send is traced: the usual BSP URL has neither, and is kept without parsing it again.
  if (/^https?:\/\/[^?@]*$/.test(url)) return url;
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    for (const k of [...new Set(u.searchParams.keys())]) u.searchParams.set(k, '[redacted]');
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}

function when(at: number): string {
  return new Date(at).toISOString();
}

function describe(e: TraceEvent): string[] {
  const d = e.data as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- written by this file's callers, read for display only
  switch (e.type) {
    case 'send': {
      const lines = [`received  from CleverTap: to ${d.to ?? '?'}, ${d.messageType ?? '?'}${d.template ? ` ${d.template}` : ''}, campaign ${d.campaignId ?? '-'}; mapping ${d.mapping}@${d.mappingVersion}`];
      if (d.bsp) {
        const b = d.bsp;
        const res = b.status !== undefined ? `HTTP ${b.status}` : b.error ? `no answer (${b.error})` : 'no answer before the deadline';
        lines.push(`bsp       ${b.method} ${b.url} → ${res}${b.providerMessageId ? `, BSP id ${b.providerMessageId}` : ''}${b.ms !== undefined ? ` in ${b.ms} ms` : ''}`);
      }
      const a = d.answer;
      lines.push(`answered  ${a?.status === 'success' ? 'success' : `${a?.error?.code} ${a?.error?.message ?? ''}`} after ${d.ms} ms`);
      return lines;
    }
    case 'status': {
      const mapped = d.held ? `held: BSP id not correlated yet` : `→ CleverTap ${d.status}`;
      const implied = Array.isArray(d.implies) && d.implies.length > 0 ? `; implies ${d.implies.join(', ')}` : '';
      const err = d.error ? ` (${d.error.code} ${d.error.title})` : '';
      return [`webhook   status ${d.status}${err} ${mapped}${implied}`];
    }
    case 'incoming':
      return [`webhook   incoming ${d.messageType} from ${d.from}${e.msgId ? ` replying to ${e.msgId}` : ''}`];
    case 'late':
      return [`late      the BSP accepted after the deadline: BSP id ${e.providerMessageId}, correlated anyway (CleverTap was told 2004)`];
    case 'resolved':
      return [`resolved  held ${d.status} of BSP id ${e.providerMessageId} → msgId ${e.msgId}`];
    case 'callback': {
      const res = d.httpStatus !== undefined ? `HTTP ${d.httpStatus}` : d.error;
      return [`callback  ${d.kind === 'incoming' ? 'incoming' : d.status}${d.implied ? ' (implied)' : ''} attempt ${d.attempt} → ${res} in ${d.ms} ms: ${d.outcome}`];
    }
    case 'dead':
      return [`dead      ${d.kind === 'incoming' ? 'incoming' : d.status}${d.implied ? ' (implied)' : ''} callback ${d.callbackId} to the dead-letter list: ${d.reason}`];
    default:
      return [`${String(e.type)} ${JSON.stringify(d)}`];
  }
}

/** The timeline as `wabridge trace` prints it, one line per step. */
export function formatTrace(events: readonly TraceEvent[]): string {
  const out: string[] = [];
  for (const e of events) {
    const head = `${when(e.at)}  ${e.tenant}  `;
    describe(e).forEach((line, i) => out.push(`${i === 0 ? head : ' '.repeat(head.length)}${line}`));
  }
  return out.join('\n');
}
