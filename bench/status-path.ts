// What the status path costs the store, counted rather than timed (the figure does not move with the
// machine's load): messages go through the real webhook flow (Meta Cloud API mapping), the pending
// resolver and the callback delivery, in-process and one step at a time, against a store whose calls
// are counted; SQLite also reports every statement it runs and every commit and WAL sync, Redis every
// command (those its scripts run too, read from MONITOR). Traces are off: they are written apart.
//   node --import tsx bench/status-path.ts [--messages N] [--only sqlite,redis]
import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { mkdtempSync, rmSync, fdatasync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { CallbackDelivery } from '../engine/host/callback-delivery.js';
import type { TenantConfig } from '../engine/host/config.js';
import { createMetrics } from '../engine/host/metrics.js';
import { PendingResolver } from '../engine/host/pending-resolver.js';
import { handleWebhook, type WebhookDeps } from '../engine/host/webhook-flow.js';
import { loadMapping, type Mapping } from '../engine/mapping/loader.js';
import { sign } from '../engine/mapping/webhook.js';
import { openRedisStore } from '../engine/stores/redis.js';
import { openSqliteStore } from '../engine/stores/sqlite.js';
import type { Store } from '../engine/stores/store.js';
import { ROOT, SETTINGS } from '../test/support/stack.js';

export type Scenario = 'one-per-webhook' | 'batched' | 'read-first' | 'held';

/** Per message, averaged over the run. */
export interface PathCost {
  scenario: Scenario;
  messages: number;
  /** Store calls (what crosses to the SQLite thread, or to Redis), by method. */
  calls: Record<string, number>;
  callsTotal: number;
  /** SQLite: statements run (BEGIN/COMMIT included), transactions committed, WAL syncs. */
  statements?: number;
  commits?: number;
  syncs?: number;
  /** Redis: commands the client sent (round trips) and commands run inside scripts. */
  redisCommands?: number;
  redisScriptCommands?: number;
  /** Statuses that reached the sink (3 per message): the run did the whole path. */
  delivered: number;
}

const TS = 1_750_000_000;

function mapping(): Mapping {
  const r = loadMapping(join(ROOT, 'mappings', 'meta-cloud'));
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('; '));
  return r.mapping;
}

const statusItem = (id: string, status: string, ts: number) => ({ id, status, timestamp: String(ts), recipient_id: '919800000001' });
function webhookOf(meta: Mapping, statuses: object[]) {
  const rawBody = JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [{ id: '1', changes: [{ field: 'messages', value: { messaging_product: 'whatsapp', metadata: { display_phone_number: '15550783881', phone_number_id: '1' }, statuses } }] }],
  });
  return { url: 'http://h/v1/tenants/acme/webhook', query: {}, rawBody, headers: { 'content-type': 'application/json', 'X-Hub-Signature-256': sign(meta, rawBody, String(SETTINGS.appSecret)) } };
}

/** A store whose calls are counted by method. */
function counted(store: Store, calls: Record<string, number>): Store {
  return new Proxy(store, {
    get(target, key, receiver) {
      const v = Reflect.get(target, key, receiver) as unknown;
      if (typeof v !== 'function' || typeof key !== 'string') return v;
      return (...args: unknown[]) => {
        calls[key] = (calls[key] ?? 0) + 1;
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

async function sink(): Promise<{ server: Server; url: string; statuses: () => number }> {
  let n = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      n += (JSON.parse(body) as { statuses?: unknown[] }).statuses?.length ?? 0;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, statuses: () => n };
}

/** Runs one scenario on `store` (fresh, empty); the counters are read by the caller. */
async function drive(store: Store, scenario: Scenario, messages: number, sinkUrl: string, counting: { on: boolean; settle?: () => Promise<void> }): Promise<void> {
  const meta = mapping();
  const deps: WebhookDeps = { store, metrics: createMetrics(), logger: pino({ level: 'silent' }), media: { url: () => 'http://m' } as never };
  const tenant = { id: 'acme', provider: 'meta-cloud', settings: { ...SETTINGS, apiVersion: 'v21.0', baseUrl: 'http://127.0.0.1:1' } } as unknown as TenantConfig;
  const wamid = (i: number) => `wamid.cost.${i}`;
  // The send path's writes: not counted.
  const correlate = async () => {
    counting.on = false;
    for (let i = 0; i < messages; i++) await store.saveCorrelation('acme', wamid(i), `cost|c1|${i}|1`, 3_600_000);
    // Redis's MONITOR shows a command after it ran: its lines for these writes must be in before counting.
    await counting.settle?.();
    counting.on = true;
  };
  const post = async (statuses: object[]) => {
    const out = await handleWebhook(deps, tenant, meta, webhookOf(meta, statuses));
    if (out.httpStatus !== 200) throw new Error(`webhook answered ${out.httpStatus}: ${JSON.stringify(out.body)}`);
  };
  const chain = ['sent', 'delivered', 'read'] as const;
  if (scenario !== 'held') await correlate();
  switch (scenario) {
    case 'one-per-webhook':
      // As Meta usually does: one status per webhook, in order.
      for (const [k, s] of chain.entries()) for (let i = 0; i < messages; i++) await post([statusItem(wamid(i), s, TS + k)]);
      break;
    case 'batched':
      // One webhook carrying every status of every message (BSPs that batch).
      await post(chain.flatMap((s, k) => Array.from({ length: messages }, (_, i) => statusItem(wamid(i), s, TS + k))));
      break;
    case 'read-first':
      // `read` overtakes the others: it releases sent and delivered as implied, and the real ones are duplicates.
      for (let i = 0; i < messages; i++) await post([statusItem(wamid(i), 'read', TS + 2)]);
      for (const [k, s] of chain.slice(0, 2).entries()) for (let i = 0; i < messages; i++) await post([statusItem(wamid(i), s, TS + k)]);
      break;
    case 'held': {
      // Every status before its send's correlation: all held, then found by the resolver.
      for (const [k, s] of chain.entries()) for (let i = 0; i < messages; i++) await post([statusItem(wamid(i), s, TS + k)]);
      await correlate();
      const resolver = new PendingResolver({ store, batchSize: 3 * messages });
      while ((await resolver.runOnce()) > 0) {
        /* until nothing is due */
      }
      break;
    }
  }
  const delivery = new CallbackDelivery({ store, target: () => ({ statusUrl: `${sinkUrl}/status`, inboundUrl: `${sinkUrl}/in` }), batchSize: 100 });
  while ((await delivery.runOnce()) > 0) {
    /* until nothing is due */
  }
  await delivery.stop();
}

export async function measureSqlite(scenario: Scenario, messages: number): Promise<PathCost> {
  const dir = mkdtempSync(join(tmpdir(), 'wabridge-cost-'));
  const s = await sink();
  let statements = 0;
  let commits = 0;
  let syncs = 0;
  const counting = { on: false };
  const stmts: Record<string, number> = {};
  const raw = openSqliteStore(join(dir, 'cost.db'), {
    onStatement: (sql) => {
      if (!counting.on) return;
      statements++;
      if (process.env.COST_DETAIL) stmts[sql.slice(0, 60)] = (stmts[sql.slice(0, 60)] ?? 0) + 1;
      if (/^\s*COMMIT/i.test(sql)) commits++;
    },
    syncWal: (fd) =>
      new Promise<void>((resolve, reject) => {
        if (counting.on) syncs++;
        fdatasync(fd, (e) => (e ? reject(e) : resolve()));
      }),
  });
  const calls: Record<string, number> = {};
  try {
    counting.on = true;
    await drive(counted(raw, calls), scenario, messages, s.url, counting);
    counting.on = false;
    if (process.env.COST_DETAIL) console.error(scenario, stmts);
    return summary(scenario, messages, calls, s.statuses(), { statements, commits, syncs });
  } finally {
    await raw.close();
    s.server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Redis's MONITOR on a socket of its own, read line by line: ioredis's monitor() mistakes lines that
 * arrive before it has switched modes for replies when the Redis is busy (other tests share it).
 * Calls `onLine(source, command, line)` for each line that mentions `prefix`.
 */
async function monitorRedis(url: string, prefix: string, onLine: (lua: boolean, command: string, line: string) => void): Promise<Socket> {
  const u = new URL(url);
  const socket = connect(Number(u.port || 6379), u.hostname);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  if (u.password) socket.write(`AUTH ${u.username ? `${decodeURIComponent(u.username)} ` : ''}${decodeURIComponent(u.password)}\r\n`);
  socket.write('MONITOR\r\n');
  let rest = '';
  let ready!: () => void;
  const started = new Promise<void>((r) => (ready = r));
  socket.on('data', (chunk: Buffer) => {
    const lines = (rest + chunk.toString('latin1')).split('\r\n');
    rest = lines.pop() ?? '';
    for (const line of lines) {
      if (line === '+OK') ready();
      if (!line.includes(prefix)) continue;
      const m = /^\+[\d.]+ \[\d+ ([^\]]+)\] "([^"]*)"/.exec(line);
      if (m) onLine(m[1] === 'lua', m[2]!.toLowerCase(), line);
    }
  });
  socket.on('error', () => undefined);
  await started;
  return socket;
}

export async function measureRedis(scenario: Scenario, messages: number, url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'): Promise<PathCost> {
  const { Redis } = await import('ioredis');
  const prefix = `wabcost:${process.pid}:${Date.now()}:${Math.random().toString(36).slice(2)}:`;
  const s = await sink();
  let top = 0;
  let inScripts = 0;
  let seenEnd = false;
  const endKey = `${prefix}end`;
  const byName: Record<string, number> = {};
  let marks = 0;
  let seenMarks = 0;
  const markKey = `${prefix}mark`;
  const monitor = await monitorRedis(url, prefix, (lua, command, line) => {
    if (line.includes(endKey)) return void (seenEnd = true);
    if (line.includes(markKey)) return void seenMarks++;
    if (!counting.on) return;
    if (lua) inScripts++;
    else top++;
    if (process.env.COST_DETAIL) byName[`${lua ? 'lua ' : ''}${command}`] = (byName[`${lua ? 'lua ' : ''}${command}`] ?? 0) + 1;
  });
  const admin = new Redis(url, { maxRetriesPerRequest: 1 });
  const counting = {
    on: true,
    async settle() {
      const want = ++marks;
      await admin.get(markKey);
      for (let i = 0; i < 500 && seenMarks < want; i++) await new Promise((r) => setTimeout(r, 10));
    },
  };
  const raw = await openRedisStore(url, { prefix });
  const calls: Record<string, number> = {};
  try {
    await drive(counted(raw, calls), scenario, messages, s.url, counting);
    // MONITOR lines come after the commands: wait for the one of a command sent after all of them.
    await admin.get(endKey);
    for (let i = 0; i < 500 && !seenEnd; i++) await new Promise((r) => setTimeout(r, 10));
    if (!seenEnd) throw new Error('MONITOR did not show the end marker within 5 s');
    if (process.env.COST_DETAIL) console.error(scenario, byName);
    return summary(scenario, messages, calls, s.statuses(), { redisCommands: top, redisScriptCommands: inScripts });
  } finally {
    await raw.close();
    monitor.destroy();
    let cursor = '0';
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await admin.del(...keys);
    } while (cursor !== '0');
    admin.disconnect();
    s.server.close();
  }
}

function summary(scenario: Scenario, messages: number, calls: Record<string, number>, delivered: number, extra: Partial<PathCost>): PathCost {
  const per = (n: number) => Math.round((n / messages) * 100) / 100;
  // Correlations are the send path's, not the status path's.
  const { saveCorrelation: _s, close: _c, ...own } = calls;
  const byMethod = Object.fromEntries(Object.entries(own).map(([k, v]) => [k, per(v)]));
  const out: PathCost = { scenario, messages, calls: byMethod, callsTotal: per(Object.values(own).reduce((a, b) => a + b, 0)), delivered };
  for (const [k, v] of Object.entries(extra)) (out as unknown as Record<string, number>)[k] = per(v as number);
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const argv = process.argv.slice(2);
  const at = (f: string) => (argv.includes(f) ? argv[argv.indexOf(f) + 1] : undefined);
  const messages = Number(at('--messages') ?? 50);
  const only = (at('--only') ?? 'sqlite,redis').split(',');
  const scenarios: Scenario[] = ['one-per-webhook', 'batched', 'read-first', 'held'];
  for (const sc of scenarios) {
    if (only.includes('sqlite')) console.log(JSON.stringify({ store: 'sqlite', ...(await measureSqlite(sc, messages)) }));
    if (only.includes('redis')) console.log(JSON.stringify({ store: 'redis', ...(await measureRedis(sc, messages)) }));
  }
}
