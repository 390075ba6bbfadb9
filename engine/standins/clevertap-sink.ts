// A local stand-in for CleverTap's callback URLs, for the quickstart demo and end-to-end tests.
// POST /callbacks/:tenant/status and /callbacks/:tenant/inbound; every body is held to the schema
// wabridge promises (schemas/clevertap/*-callback.schema.json) and refused with 400 when it breaks
// it. Status entries are deduplicated by `${msgId}|${status}` so replays can be counted. One printed
// line per callback, phone numbers redacted. Binds 127.0.0.1 only.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describeError, pointerToPath, projectSchema, usefulErrors, validatorFor } from '../mapping/schema-validator.js';
import { readBody, sendJson } from './http.js';
import { dotted } from '../mapping/yaml-source.js';

export interface SinkLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export type CallbackKind = 'status' | 'incoming';

export interface SinkCallback {
  seq: number;
  at: string;
  kind: CallbackKind;
  tenant: string;
  /** HTTP status the sink answered. */
  answered: number;
  accepted: boolean;
  body: unknown;
  /** Schema problems, when refused with 400. */
  errors?: string[];
  /** Status callbacks: how many of its entries had been received before (same msgId and status). */
  replays?: number;
}

export interface SinkStatus {
  tenant: string;
  key: string;
  msgId: string;
  status: string;
  /** The entry as first received. */
  entry: Record<string, unknown>;
  /** How many times this key was received (1 = no replay). */
  count: number;
}

export interface CleverTapSinkOptions {
  port?: number;
  host?: '127.0.0.1';
  logger?: SinkLogger;
  /** Receives one line per callback; default: console.log. */
  print?: (line: string) => void;
  /**
   * Plays a CleverTap account that knows only this `type` for an inbound audio message and refuses
   * the other with 400 (the doc spells it both ways). Default: both accepted.
   */
  incomingAudioType?: 'audio' | 'voice';
}

export interface CleverTapSink {
  url: string;
  port: number;
  statusUrl(tenant: string): string;
  inboundUrl(tenant: string): string;
  /** Every callback received (accepted or not), oldest first. */
  received(): SinkCallback[];
  /** Accepted status entries, one per `${msgId}|${status}` per tenant, with their counts. */
  statuses(tenant?: string): SinkStatus[];
  /** How many accepted status entries were replays of one already received. */
  replays(): number;
  /** While down, every callback is answered 503 (or the status given) and not recorded as accepted. */
  setDown(down: boolean | { status: number }): void;
  clear(): void;
  close(): Promise<void>;
}

const SCHEMAS: Record<CallbackKind, string> = {
  status: 'clevertap/status-callback.schema.json',
  incoming: 'clevertap/incoming-callback.schema.json',
};

/** "919999999999" → "9199…99": enough to tell numbers apart in a demo, not enough to leak them. */
export function redactPhone(n: unknown): string {
  const s = String(n ?? '');
  const digits = s.replace(/[^0-9]/g, '');
  if (digits.length <= 6) return '…';
  return `${digits.slice(0, 4)}…${digits.slice(-2)}`;
}


function validate(kind: CallbackKind, body: unknown, audioType: 'audio' | 'voice' | undefined): string[] {
  const v = validatorFor(projectSchema(SCHEMAS[kind]));
  if (v(body)) {
    const type = (body as { type?: unknown }).type;
    const other = audioType === 'audio' ? 'voice' : audioType === 'voice' ? 'audio' : undefined;
    return kind === 'incoming' && other !== undefined && type === other ? [`type: "${other}" is not a type this account knows; it expects "${audioType}"`] : [];
  }
  const problems = usefulErrors(v.errors ?? []).map((e) => `${dotted(pointerToPath(e.instancePath)) || '(body)'}: ${describeError(e)}`);
  return [...new Set(problems)];
}

type StatusEntry = { msgId: string; status: string; timestamp?: string; error?: { code: number; title: string } };

/**
 * A demo under load receives thousands of callbacks a second: nobody reads that many lines, and
 * writing them costs the process more than receiving them. Up to `perSecond` lines are printed in
 * each second; the rest are counted and told in one line when the second is over.
 */
export function throttledPrint(print: (line: string) => void, perSecond: number): ((line: string) => void) & { flush(): void } {
  let printed = 0;
  let held = 0;
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    timer = undefined;
    if (held > 0) print(`clevertap-sink: … and ${held} more callback${held === 1 ? '' : 's'} in the last second, not printed`);
    printed = 0;
    held = 0;
  };
  const out = (line: string) => {
    if (!timer) {
      timer = setTimeout(flush, 1000);
      timer.unref();
    }
    if (printed < perSecond) {
      printed++;
      print(line);
    } else held++;
  };
  return Object.assign(out, {
    flush() {
      clearTimeout(timer);
      flush();
    },
  });
}

export async function startCleverTapSink(opts: CleverTapSinkOptions = {}): Promise<CleverTapSink> {
  const print = opts.print ?? ((line: string) => console.log(line));
  const log = opts.logger;
  let down: false | number = false;
  let calls: SinkCallback[] = [];
  let seen = new Map<string, SinkStatus>();
  let replayCount = 0;

  const describe = (kind: CallbackKind, tenant: string, body: unknown): string => {
    const b = (body ?? {}) as Record<string, unknown>;
    if (kind === 'status') {
      const entries = Array.isArray(b.statuses) ? (b.statuses as StatusEntry[]) : [];
      const parts = entries.map((s) => `${s?.status} msgId=${s?.msgId ?? '?'}${s?.error ? ` error=${s.error.code} ${JSON.stringify(s.error.title)}` : ''}`);
      return `status ${parts.join(', ') || '(no statuses)'}`;
    }
    const ctx = b.context as { id?: unknown } | undefined;
    return `incoming ${String(b.type)} from ${redactPhone(b.from)}${ctx?.id ? ` re msgId=${String(ctx.id)}` : ''}`;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const m = /^\/callbacks\/([^/]+)\/(status|inbound)\/?$/.exec(url.pathname);
    const raw = await readBody(req);
    if (!m || req.method !== 'POST') return sendJson(res, 404, { message: 'Not Found' });
    const tenant = decodeURIComponent(m[1]!);
    const kind: CallbackKind = m[2] === 'status' ? 'status' : 'incoming';
    const record: SinkCallback = { seq: calls.length + 1, at: new Date().toISOString(), kind, tenant, answered: 0, accepted: false, body: undefined };
    calls.push(record);

    if (down !== false) {
      record.answered = down;
      try {
        record.body = JSON.parse(raw);
      } catch {
        record.body = raw;
      }
      print(`clevertap-sink: DOWN (${down}) ${describe(kind, tenant, record.body)} (tenant ${tenant})`);
      return sendJson(res, down, { message: 'Service Unavailable' });
    }
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch (e) {
      record.answered = 400;
      record.body = raw;
      record.errors = [`body is not JSON: ${(e as Error).message}`];
      print(`clevertap-sink: REFUSED ${kind} (tenant ${tenant}): ${record.errors[0]}`);
      return sendJson(res, 400, { message: 'Bad Request', errors: record.errors });
    }
    record.body = body;
    const errors = validate(kind, body, opts.incomingAudioType);
    if (errors.length > 0) {
      record.answered = 400;
      record.errors = errors;
      print(`clevertap-sink: REFUSED ${describe(kind, tenant, body)} (tenant ${tenant}): ${errors.join('; ')}`);
      log?.warn({ tenant, kind, errors }, 'clevertap-sink: callback refused');
      return sendJson(res, 400, { message: 'Bad Request', errors });
    }
    record.answered = 200;
    record.accepted = true;
    if (kind === 'status') {
      let replays = 0;
      for (const s of (body as { statuses: StatusEntry[] }).statuses) {
        const key = `${s.msgId}|${s.status}`;
        const mapKey = `${tenant}\n${key}`;
        const prev = seen.get(mapKey);
        if (prev) {
          prev.count++;
          replays++;
        } else {
          seen.set(mapKey, { tenant, key, msgId: s.msgId, status: s.status, entry: { ...s }, count: 1 });
        }
      }
      record.replays = replays;
      replayCount += replays;
    }
    const replayNote = record.replays ? ` [replay x${record.replays}]` : '';
    print(`clevertap-sink: ${describe(kind, tenant, body)} (tenant ${tenant})${replayNote}`);
    log?.info({ tenant, kind, seq: record.seq, replays: record.replays }, 'clevertap-sink: callback accepted');
    sendJson(res, 200, { status: 'success' });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent && !res.destroyed) sendJson(res, 500, { message: (e as Error).message });
    });
  });
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolveListen();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  log?.info({ url }, 'clevertap-sink: listening');

  return {
    url,
    port,
    statusUrl: (tenant) => `${url}/callbacks/${encodeURIComponent(tenant)}/status`,
    inboundUrl: (tenant) => `${url}/callbacks/${encodeURIComponent(tenant)}/inbound`,
    received: () => calls.map((c) => ({ ...c })),
    statuses: (tenant) => [...seen.values()].filter((s) => tenant === undefined || s.tenant === tenant).map((s) => ({ ...s })),
    replays: () => replayCount,
    setDown(d) {
      if (typeof d === 'object' && !(Number.isInteger(d.status) && d.status >= 400 && d.status <= 599)) throw new Error('setDown: status must be 400-599');
      down = d === false ? false : d === true ? 503 : d.status;
    },
    clear() {
      calls = [];
      seen = new Map();
      replayCount = 0;
    },
    async close() {
      await new Promise<void>((resolveClose) => {
        server.close(() => resolveClose());
        server.closeAllConnections();
      });
    },
  };
}
