// The load generator of the service bench (bench/service.ts): autocannon in its own process, so its
// CPU is not spent in the event loop of the server it measures. Long-lived: takes {id, cmd: 'run',
// spec} messages on the IPC channel and answers {id, result} with one summary per run; exits when the
// parent goes away. Every answer body is checked (`verifyBody`), so a 2004 or a 429 is an error even
// on HTTP 200.
//   spawned by bench/service.ts as: node --import tsx bench/load.ts
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { loadMapping } from '../engine/mapping/loader.js';
import { sign } from '../engine/mapping/webhook.js';
import { ROOT, SETTINGS } from '../test/support/stack.js';

export type Expect = 'clevertap' | 'meta' | 'webhook';

export interface LoadSpec {
  /** Origin, e.g. http://127.0.0.1:1234 (127.0.0.1 only). */
  url: string;
  path: string;
  connections: number;
  /** Seconds; ignored when amount is given. */
  duration?: number;
  amount?: number;
  headers?: Record<string, string>;
  /** Request body; `[<id>]` is replaced by a fresh id per request. */
  body?: string;
  expect: Expect;
  /**
   * Meta status webhooks instead of a fixed body: for each entry of a JSON file of [{id, msgId,
   * recipient}], one webhook per status, all of the first status, then all of the next (a phase per
   * status, so no 'delivered' can overtake its 'sent': a client's first request waits for its connection).
   */
  webhooks?: { file: string; statuses: Status[] };
  /** Per-request timeout, seconds. */
  timeoutS?: number;
  /**
   * Seconds at the start of a duration run that are not measured: the same connections first warm up
   * (and get through the connect storm of opening them all at once), then the rest of the run counts.
   */
  warmupS?: number;
  /**
   * Each connection's first answer is left out of the figures and reported apart (firstMax,
   * firstLate), without a warm-up. autocannon starts the clock of a connection's first request when
   * it calls connect(): that answer also counts the load generator's own delay in opening thousands of
   * connections on a shared CPU and the connection's wait in the server's accept queue.
   */
  firstApart?: boolean;
}

export interface LoadResult {
  startedAt: number;
  finishedAt: number;
  durationS: number;
  /** Answers received (any status). */
  answers: number;
  /** Answers that were 2xx with the expected body. */
  ok: number;
  /** The same, warm-up included. */
  okTotal: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
  non2xx: number;
  /** Answers whose body was not the expected one (includes every non-2xx answer). */
  mismatches: number;
  /** Socket errors, timeouts included. */
  socketErrors: number;
  timeouts: number;
  /** Answers that took longer than CleverTap's 1 s timeout. */
  late: number;
  /** What CleverTap would not count as a success: late answers, wrong answers and socket errors (each request once). */
  failed: number;
  /**
   * Each connection's first answer is left out of every figure above (it waited for the connection
   * to be accepted, and with a thousand connections opened at once the kernel's accept queue
   * overflows: SYN retransmits after 1 s, 3 s, ...). The slowest of them and how many were wrong:
   */
  firstMax: number;
  firstErrors: number;
  /** Of the late answers, those that were their connection's first (they include the connect). */
  firstLate: number;
  statusCodes: Record<string, number>;
  /** Up to 8 distinct wrong bodies with their counts, and socket error messages likewise. */
  mismatchSamples: Record<string, number>;
  errorSamples: Record<string, number>;
  /** Webhook runs: distinct statuses wabridge acknowledged as accepted. */
  accepted?: number;
  /**
   * CleverTap answers by kind over the whole run (warm-up included): `success`, `2000`-`2004`,
   * `429` (CleverTap's documented body), or `other` (anything CleverTap could not read).
   */
  kinds: Record<string, number>;
  /** The late answers (counted ones over 1 s) by the same kinds: which answers make the tail. */
  lateKinds: Record<string, number>;
  /** CPU time this process spent during the run, ms. */
  cpuMs: number;
  /** How late the load generator's own event loop ran during the measured window (10 ms probe): p99 and worst, ms. */
  clientLagP99Ms: number;
  clientLagMaxMs: number;
}

const VERIFY: Record<Expect, (body: string) => boolean> = {
  clevertap: (b) => b === '{"status":"success"}',
  // The simulator's accepted answer to a template send.
  meta: (b) => b.includes('"message_status":"accepted"'),
  webhook: (b) => b.includes('"accepted":1'),
};

const bump = (m: Record<string, number>, k: string) => {
  if (k in m) m[k]!++;
  else if (Object.keys(m).length < 8) m[k] = 1;
};

/** What CleverTap would make of an answer body. */
function kindOf(body: string): string {
  try {
    const b = JSON.parse(body) as { status?: string; error?: { code?: number }; message?: string };
    if (b.status === 'success') return 'success';
    if (b.status === 'failure' && typeof b.error?.code === 'number') return String(b.error.code);
    if (b.message === 'Too many requests to process') return '429';
  } catch {
    // not JSON: CleverTap cannot read it
  }
  return 'other';
}

type Pair = { id: string; msgId: string; recipient: string };

/** Meta's status webhook (the simulator's webhooks.status shape), signed as Meta signs it. */
type Status = 'sent' | 'delivered' | 'read';

function webhookRequests(file: string, status: Status, acked: Set<string>) {
  const loaded = loadMapping(join(ROOT, 'mappings', 'meta-cloud'));
  if (!loaded.ok) throw new Error('meta-cloud mapping does not load');
  const mapping = loaded.mapping;
  const pairs = JSON.parse(readFileSync(file, 'utf8')) as Pair[];
  // Each request takes the next entry: within a phase every webhook is for another message.
  let next = 0;
  const body = (i: number): string => {
    const p = pairs[i % pairs.length]!;
    const st: Record<string, unknown> = { id: p.id, status, timestamp: String(Math.floor(Date.now() / 1000)), recipient_id: p.recipient, biz_opaque_callback_data: p.msgId };
    if (status !== 'read') st.pricing = { billable: true, pricing_model: 'PMP', type: 'regular', category: 'marketing' };
    return JSON.stringify({
      object: 'whatsapp_business_account',
      entry: [{ id: '102290129340398', changes: [{ value: { messaging_product: 'whatsapp', metadata: { display_phone_number: '15550783881', phone_number_id: SETTINGS.phoneNumberId }, statuses: [st] }, field: 'messages' }] }],
    });
  };
  const requests = [
    {
      method: 'POST' as const,
      setupRequest: (req: Record<string, unknown>, context: Record<string, unknown>) => {
        const i = next++;
        const raw = body(i);
        context.key = `${status}:${i % pairs.length}`;
        return { ...req, body: raw, headers: { ...(req.headers as Record<string, string>), 'content-type': 'application/json', 'user-agent': 'facebookexternalua', 'x-hub-signature-256': sign(mapping, raw, String(SETTINGS.appSecret)) } };
      },
      onResponse: (code: number, resBody: string, context: Record<string, unknown>) => {
        if (code === 200 && VERIFY.webhook(resBody)) acked.add(context.key as string);
      },
    },
  ];
  return { requests, count: pairs.length };
}

async function run(spec: LoadSpec): Promise<LoadResult> {
  if (!spec.url.startsWith('http://127.0.0.1:')) throw new Error(`bench/load: 127.0.0.1 only, got ${spec.url}`);
  const acked = new Set<string>();
  const mismatchSamples: Record<string, number> = {};
  const errorSamples: Record<string, number> = {};
  const verify = VERIFY[spec.expect];
  const kinds: Record<string, number> = {};
  const lateKinds: Record<string, number> = {};
  const base: autocannon.Options = {
    url: `${spec.url}${spec.path}`,
    method: 'POST',
    connections: spec.connections,
    pipelining: 1,
    timeout: spec.timeoutS ?? 10,
    headers: spec.headers ?? {},
    // autocannon calls this right after its 'response' event for the same answer (below).
    verifyBody: (b: string) => {
      const kind = kindOf(b);
      bump(kinds, kind);
      if (lastCounted && lastLate) bump(lateKinds, kind);
      return verify(b);
    },
    ...(spec.body !== undefined ? { body: spec.body, idReplacement: spec.body.includes('[<id>]') } : {}),
  };
  // Every answer is recorded here (autocannon's 'response' and then, in the same tick, 'reqMismatch'
  // for that answer), so the figures can leave out the warm-up part of the run.
  const warmupMs = spec.amount === undefined ? (spec.warmupS ?? 0) * 1000 : 0;
  let cpu0 = process.cpuUsage();
  const started = Date.now();
  let from = started + warmupMs;
  const warm =
    warmupMs > 0
      ? setTimeout(() => {
          from = Date.now();
          cpu0 = process.cpuUsage();
        }, warmupMs)
      : undefined;
  // How late this process's own event loop ran: autocannon stamps an answer when its loop reads it, so
  // on shared cores the client's lateness is part of every latency it reports. A timer of its own, not
  // perf_hooks.monitorEventLoopDelay (bench/serve.ts's): in a run of bench/overload.ts that histogram's
  // worst at -c 1500 read 39 ms, where this probe sees 364-532 ms as autocannon opens 1,500 connections.
  const clientLag: number[] = [];
  let due = performance.now() + 10;
  let probe: NodeJS.Timeout = setTimeout(function tick() {
    const now = performance.now();
    if (Date.now() >= from) clientLag.push(now - due);
    due = now + 10;
    probe = setTimeout(tick, 10);
  }, 10);
  const latencies: number[] = [];
  const codes: Record<string, number> = {};
  let answers = 0;
  let non2xx = 0;
  let mismatches = 0;
  let socketErrors = 0;
  let timeouts = 0;
  let late = 0;
  let lastCounted = false;
  let lastFirst = false;
  let lastLate = false;
  let wrongInTime = 0;
  let allAnswers = 0;
  let allMismatches = 0;
  let lastAnswerAt = 0;
  let firstMax = 0;
  let firstErrors = 0;
  let firstLate = 0;
  const answered = new WeakSet<object>();

  /** One autocannon instance; with `amount`, done as soon as that many answers or errors came back. */
  const once = (opts: autocannon.Options): Promise<void> =>
    new Promise((resolve, reject) => {
      let seen = 0;
      // Socket errors and timeouts per connection: one that never got an answer failed while
      // connecting (the connect storm), like its first answer it is reported apart.
      const setupClient = (client: autocannon.Client) => {
        const onError = (e: Error & { code?: string }) => {
          if (warmupMs > 0 && !answered.has(client)) firstErrors++;
          else if (Date.now() >= from) {
            socketErrors++;
            if (e.message === 'request timed out') timeouts++;
            bump(errorSamples, e.code ?? e.message);
          }
          count();
        };
        client.on('timeout', () => onError(new Error('request timed out')));
        client.on('connError', onError);
      };
      const instance = autocannon({ ...opts, setupClient });
      const count = () => {
        if (opts.amount !== undefined && ++seen >= opts.amount) {
          // autocannon would report on its next 1-second tick; the next phase need not wait for it.
          instance.stop();
          resolve();
        }
      };
      instance.on('response', (client: object, status: number, _bytes: number, ms: number) => {
        allAnswers++;
        lastAnswerAt = Date.now();
        const first = !answered.has(client);
        lastFirst = first;
        if (first) {
          answered.add(client);
          if (ms > firstMax) firstMax = ms;
          if (ms > 1000) firstLate++;
        }
        lastCounted = lastAnswerAt >= from && (!first || (warmupMs === 0 && !spec.firstApart));
        lastLate = false;
        if (lastCounted) {
          answers++;
          latencies.push(ms);
          codes[status] = (codes[status] ?? 0) + 1;
          if (status < 200 || status > 299) non2xx++;
          lastLate = ms > 1000;
          if (lastLate) late++;
        }
        count();
      });
      instance.on('reqMismatch', (b: string) => {
        allMismatches++;
        if (lastFirst && warmupMs > 0) firstErrors++;
        if (!lastCounted) return;
        mismatches++;
        if (!lastLate) wrongInTime++;
        bump(mismatchSamples, String(b).slice(0, 160));
      });
      instance.once('done', () => resolve());
      instance.once('error', reject);
    });

  if (spec.webhooks) {
    // One phase per status, each starting when the previous one has all its answers.
    for (const status of spec.webhooks.statuses) {
      const wh = webhookRequests(spec.webhooks.file, status, acked);
      await once({ ...base, requests: wh.requests, amount: wh.count });
    }
  } else {
    await once({ ...base, ...(spec.amount !== undefined ? { amount: spec.amount } : { duration: (spec.duration ?? 10) + warmupMs / 1000 }) });
  }
  clearTimeout(warm);
  clearTimeout(probe);
  // autocannon reports on its next 1-second tick after the last answer: end the window at that answer.
  const finished = lastAnswerAt || Date.now();
  const cpu = process.cpuUsage(cpu0);
  latencies.sort((x, y) => x - y);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.max(0, Math.ceil((p / 100) * latencies.length) - 1))] ?? 0;
  const round = (x: number) => Math.round(x * 100) / 100;
  return {
    startedAt: from,
    finishedAt: finished,
    durationS: round((finished - from) / 1000),
    answers,
    ok: answers - mismatches,
    okTotal: allAnswers - allMismatches,
    p50: round(pct(50)),
    p99: round(pct(99)),
    max: round(latencies[latencies.length - 1] ?? 0),
    mean: round(latencies.reduce((x, y) => x + y, 0) / Math.max(1, latencies.length)),
    non2xx,
    mismatches,
    socketErrors,
    timeouts,
    late,
    failed: late + wrongInTime + socketErrors,
    firstMax: round(firstMax),
    firstErrors,
    firstLate,
    statusCodes: codes,
    mismatchSamples,
    errorSamples,
    ...(spec.webhooks ? { accepted: acked.size } : {}),
    kinds,
    lateKinds,
    cpuMs: Math.round((cpu.user + cpu.system) / 1000),
    clientLagP99Ms: round(clientLag.sort((x, y) => x - y)[Math.max(0, Math.ceil(0.99 * clientLag.length) - 1)] ?? 0),
    clientLagMaxMs: round(clientLag[clientLag.length - 1] ?? 0),
  };
}

process.on('message', (raw) => {
  const msg = raw as { id: number; cmd: string; spec: LoadSpec };
  if (msg.cmd !== 'run') {
    process.send?.({ id: msg.id, error: `unknown command ${msg.cmd}` });
    return;
  }
  run(msg.spec).then(
    (result) => process.send?.({ id: msg.id, result }),
    (e: unknown) => process.send?.({ id: msg.id, error: (e as Error).stack ?? String(e) }),
  );
});
process.once('disconnect', () => process.exit(0));
process.once('SIGTERM', () => process.exit(0));
process.stdout.write(`${JSON.stringify({ role: 'load', pid: process.pid })}\n`);
