// Message timelines for operators ("what happened to this message?", docs/operations.md). A trace is
// diagnostics, not data CleverTap or a BSP depends on: the send and webhook paths hand their events to
// the Tracer and go on, and the Tracer writes everything one turn of the event loop produced in one
// store call (on SQLite it joins that turn's group commit; on Redis it is one script). A trace write
// that fails is counted and logged, never retried, and never fails a message.
import { parseMsgId } from '../clevertap/normalize.js';
import type { CallbackRecord, Store, TraceEvent } from '../stores/store.js';

export interface TracerOptions {
  /** How long timelines are kept; 0 turns tracing off. */
  keepMs: number;
  /** Events held while the store is slow; past it new events are dropped (and counted). */
  maxBuffered?: number;
  onError?: (e: Error, dropped: number) => void;
}

export class Tracer {
  private buffer: TraceEvent[] = [];
  private scheduled = false;
  private writing = 0;
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

  record(e: TraceEvent): void {
    if (!this.enabled) return;
    if (this.buffer.length >= (this.o.maxBuffered ?? 50_000)) {
      this.dropped++;
      return;
    }
    // Campaign reports read by it (engine/host/campaigns.ts).
    if (e.msgId !== undefined && e.campaignId === undefined && e.msgId.includes('|')) {
      const c = parseMsgId(e.msgId).campaignId;
      if (c) e.campaignId = c;
    }
    this.buffer.push(e);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.write());
    }
  }

  private write(): void {
    this.scheduled = false;
    // One write at a time: while the store is slow, events pile up into the next (bigger) write
    // instead of into many concurrent ones.
    if (this.writing > 0 || this.buffer.length === 0) return;
    const batch = this.buffer;
    this.buffer = [];
    this.writing++;
    const w = this.store.appendTrace(batch, this.o.keepMs).then(
      () => undefined,
      (e: unknown) => {
        this.dropped += batch.length;
        this.o.onError?.(e as Error, batch.length);
      },
    );
    this.inFlight.add(w);
    void w.finally(() => {
      this.inFlight.delete(w);
      this.writing--;
      if (this.buffer.length > 0 && !this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.write());
      }
    });
  }

  /** Writes what is buffered and waits for every write in flight (at close, and in tests). */
  async flush(): Promise<void> {
    while (this.buffer.length > 0 || this.inFlight.size > 0) {
      await Promise.all(this.inFlight);
      if (this.buffer.length > 0 && this.writing === 0) this.write();
    }
  }
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

/** Header names whose values are credentials: never kept in a trace or the quarantine, as the logger never writes them. */
const SECRET_HEADER = /auth|token|key|secret|signature|cookie|password|credential/i;
export const REDACTED = '[redacted]';

/** Headers as a trace (and the quarantine) keeps them: credentials replaced, every value a string. */
export function safeHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    out[k] = SECRET_HEADER.test(k) ? REDACTED : Array.isArray(v) ? v.join(', ') : v;
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
