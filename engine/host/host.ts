// Starts and stops the whole service: configuration, mappings (watched), store, HTTP server, the
// callback worker and the pending-status resolver. SIGTERM drains: stop taking requests, finish the
// ones in flight, flush due callbacks, close the store.
import { randomBytes } from 'node:crypto';
import type { DestinationStream, Logger } from 'pino';
import { Admission } from './admission.js';
import { BackgroundGate } from './background-gate.js';
import { BspClient } from './bsp-client.js';
import { LocalConcurrencyLimiter, LocalRateLimiter, RedisConcurrencyLimiter, type ConcurrencyLimiter, type RateLimiter } from './concurrency.js';
import { CallbackDelivery } from './callback-delivery.js';
import { loadConfig, type Config } from './config.js';
import { WabError } from '../mapping/errors.js';
import { createLogger } from './logger.js';
import { MediaLinks } from './media-links.js';
import { createMetrics, type Metrics } from './metrics.js';
import { PendingResolver } from './pending-resolver.js';
import { MappingRegistry } from './registry.js';
import { buildServer } from './server.js';
import { holdConnectionBursts } from './connection-bursts.js';
import { checkSettings } from '../mapping/settings.js';
import { openRedisStore, redactRedisUrl } from '../stores/redis.js';
import { openSqliteStoreThread } from '../stores/sqlite-thread.js';
import type { Store } from '../stores/store.js';
import { impliedBy } from './callbacks.js';
import { callbackEvents, Tracer } from './trace.js';

export interface Host {
  url: string;
  config: Config;
  registry: MappingRegistry;
  store: Store;
  metrics: Metrics;
  logger: Logger;
  delivery: CallbackDelivery;
  /** This process's part of the admin status (a worker's, under --workers). */
  localStatus(): Record<string, unknown>;
  /** Graceful stop: drain in-flight requests and flush callbacks that are due. */
  close(): Promise<void>;
}

/** What a worker of `wabridge serve --workers` asks its primary for, on behalf of every worker. */
export interface ClusterView {
  metrics(): Promise<{ contentType: string; text: string }>;
  workers(): Promise<unknown[]>;
}

export interface HostOptions {
  configFile: string;
  env?: NodeJS.ProcessEnv;
  /** Where logs go (tests capture them); default stdout. */
  logDestination?: NodeJS.WritableStream | DestinationStream;
  /** Override the configured port (tests use 0). */
  port?: number;
  /** Under --workers on SQLite: the primary's store and limits, reached over IPC. */
  store?: Store;
  limiter?: ConcurrencyLimiter;
  rate?: RateLimiter;
  cluster?: ClusterView;
}

export async function startHost(opts: HostOptions): Promise<Host> {
  const config = loadConfig(opts.configFile, opts.env ?? process.env);
  if (opts.port !== undefined) config.server.port = opts.port;
  const logger = createLogger(config.server.logLevel, opts.logDestination);
  const metrics = createMetrics();

  // The store starts (a worker thread, or a Redis connection) while this thread loads the mappings.
  const opening = opts.store ? Promise.resolve(opts.store) : config.store.redis ? openRedisStore(config.store.redis, { prefix: config.store.redisPrefix }) : openSqliteStoreThread(config.store.sqlite);
  opening.catch(() => undefined);
  const registry = new MappingRegistry(config.server.mappingsDir, {
    onReload(o) {
      metrics.reloads.inc({ mapping: o.name, result: o.ok ? 'ok' : 'rejected' });
      metrics.mappingBroken.set({ mapping: o.name }, o.ok ? 0 : 1);
      if (o.ok) logger.info({ mapping: o.name, mappingVersion: o.version }, 'mapping reloaded');
      else logger.error({ mapping: o.name, servingVersion: o.version, errors: o.errors }, `mapping edit rejected, previous version keeps serving: ${o.errors[0]?.split('\n')[0]}`);
    },
  });
  for (const o of registry.loadAll()) if (!o.ok) logger.error({ mapping: o.name, errors: o.errors }, 'mapping failed to load');
  // A tenant whose mapping or settings are wrong cannot serve anything: refuse to start, naming it.
  const problems: string[] = [];
  for (const t of config.tenants.values()) {
    const m = registry.get(t.provider);
    if (!m) {
      problems.push(`tenant ${t.id}: provider '${t.provider}' is not a loadable mapping in ${registry.describeDir()} (known: ${registry.names().join(', ') || 'none'})`);
      continue;
    }
    try {
      t.settings = checkSettings(m.settings, t.settings, `tenants.${t.id}.settings`);
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  if (problems.length > 0) {
    await opening.then((s) => s.close(), () => undefined);
    throw new WabError('WAB_SETTINGS_INVALID', `${config.file}:\n${problems.join('\n')}`);
  }

  const store = await opening;
  let lastFallbackLog = 0;
  let lastRateFallbackLog = 0;
  // The per-tenant concurrency limit and BSP rate are fleet-wide when instances share a Redis, per process otherwise.
  const redisLimiter = config.store.redis && !opts.limiter
    ? await RedisConcurrencyLimiter.open(config.store.redis, {
        prefix: config.store.redisPrefix,
        onFallback: (tenant, err) => {
          // One line per 10 s at most: during an outage every message would log it.
          if (Date.now() - lastFallbackLog < 10_000) return;
          lastFallbackLog = Date.now();
          logger.warn({ tenant, err: err.message }, 'concurrency limit: Redis unavailable, counting this instance only');
        },
        onRateFallback: (tenant, err) => {
          if (Date.now() - lastRateFallbackLog < 10_000) return;
          lastRateFallbackLog = Date.now();
          logger.warn({ tenant, err: err.message }, 'BSP rate limit: Redis unavailable, counting this instance only');
        },
      })
    : undefined;
  const limiter: ConcurrencyLimiter = opts.limiter ?? redisLimiter ?? new LocalConcurrencyLimiter();
  const rate: RateLimiter = opts.rate ?? redisLimiter?.rate ?? new LocalRateLimiter();
  const client = new BspClient();
  const media = new MediaLinks(config.server.mediaSecret ?? randomBytes(32).toString('hex'), config.server.publicUrl, config.server.mediaLinkTtlMs);

  const admission = new Admission(
    config.server.overload,
    (reason) => metrics.shed.inc({ reason }),
    (a) => {
      metrics.admissionLimit.set(a.limit);
      metrics.admissionInFlight.set(a.inFlight);
      metrics.admissionQueued.set(a.queued);
      metrics.eventLoopLag.set(a.lagMs / 1000);
    },
  );
  const gate = (worker: string) => new BackgroundGate(() => admission.pressed, 1000, (ms) => metrics.backgroundHeld.inc({ worker }, ms / 1000));

  let lastTraceErrorLog = 0;
  const tracer = new Tracer(store, {
    keepMs: config.trace.keepMs,
    // Trace writes are background work: while answers wait, they are put off and new events past
    // the buffer are dropped (counted) rather than delay an answer.
    gate: gate('trace'),
    onDrop: (reason, n) => metrics.traceDropped.inc({ reason }, n),
    onError: (err, dropped) => {
      // Diagnostics only: one line per 10 s at most, the messages themselves are unaffected.
      if (Date.now() - lastTraceErrorLog < 10_000) return;
      lastTraceErrorLog = Date.now();
      logger.warn({ err: err.message, dropped }, 'message trace not written');
    },
  });
  const delivery = new CallbackDelivery({
    store,
    target: (id) => {
      const t = config.tenants.get(id);
      return t && { statusUrl: t.callbacks.status, inboundUrl: t.callbacks.inbound };
    },
    retryForMs: config.callbacks.retryForMs,
    baseDelayMs: config.callbacks.baseDelayMs,
    maxDelayMs: config.callbacks.maxDelayMs,
    batchSize: config.callbacks.batchSize,
    drainMs: config.server.drainMs,
    logger,
    gate: gate('callbacks'),
    onDelivered: (r) => {
      metrics.callbacks.inc({ outcome: 'delivered' }, r.length);
      const now = Date.now();
      for (const c of r) metrics.callbackDelay.observe((now - c.createdAt) / 1000);
    },
    onFailed: (r) => metrics.callbacks.inc({ outcome: 'retry' }, r.length),
    onDead: (r, reason) => {
      metrics.callbacks.inc({ outcome: 'dead' }, r.length);
      if (tracer.enabled) for (const e of callbackEvents(r, 'dead', Date.now(), { reason })) tracer.record(e);
    },
    onAttempt: (r, a) => {
      if (!tracer.enabled) return;
      const { at, ...data } = a;
      for (const e of callbackEvents(r, 'callback', at, data)) tracer.record(e);
    },
  });
  const resolver = new PendingResolver({
    store,
    windowMs: config.callbacks.lookupWindowMs,
    logger,
    gate: gate('lookups'),
    // Stamped with the resolution's time, not the (later) moment this runs: the callback's first
    // attempt can come in between, and the timeline must still read held → resolved → callback.
    onResolved: (p, msgId, at) => {
      const implies = impliedBy(p.event.status);
      tracer.record({ at, tenant: p.tenant, msgId, providerMessageId: p.providerMessageId, type: 'resolved', data: { status: p.event.status, ...(implies.length > 0 ? { implies } : {}) }, correlated: true });
    },
  });

  const localStatus = () => ({
    pid: process.pid,
    tenants: [...config.tenants.values()].map((t) => ({ id: t.id, inFlight: limiter.local(t.id), concurrency: t.concurrency })),
    admission: admission.snapshot(),
  });
  const app = buildServer({ config, registry, store, client, metrics, logger, media, limiter, rate, admission, tracer, ...(opts.cluster ? { cluster: opts.cluster } : {}) });
  const stopHolding = holdConnectionBursts(app.server, (n) => metrics.connectionsHeld.inc(n));
  const gauges = setInterval(() => {
    store
      .stats()
      .then((s) => {
        metrics.outboxPending.set(s.outboxPending);
        metrics.outboxDead.set(s.outboxDead);
        metrics.unmatched.set(s.unmatched);
        metrics.pendingLookups.set(s.pendingLookups);
      })
      .catch(() => undefined);
    store
      .quarantineSize()
      .then((n) => metrics.quarantineSize.set(n))
      .catch(() => undefined);
  }, 5_000);
  gauges.unref();
  const sweeper = setInterval(() => void store.sweep(Date.now(), 7 * 24 * 60 * 60 * 1000).catch(() => undefined), 60 * 60 * 1000);
  sweeper.unref();
  // More often than the rest: the size cap should not be overrun by an hour of traffic.
  const traceSweeper = setInterval(() => void store.sweepTrace(Date.now(), config.trace.keepMs, config.trace.maxEvents).catch(() => undefined), 5 * 60 * 1000);
  traceSweeper.unref();

  // CleverTap opens up to 1500 connections at once (a load test past the contract, 3000); Node's default
  // backlog (511) overflows and the kernel drops the excess SYNs (seconds of retransmission). The kernel
  // still caps it at somaxconn.
  await app.listen({ host: config.server.host, port: config.server.port, backlog: 4096 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.server.port;
  const url = `http://${config.server.host === '0.0.0.0' ? '127.0.0.1' : config.server.host}:${port}`;
  if (opts.port === 0 && config.server.publicUrl.endsWith(':0')) config.server.publicUrl = url;
  admission.start();
  delivery.start();
  resolver.start();
  if (config.server.watch) registry.watch();
  logger.info({ url, tenants: [...config.tenants.keys()], mappings: registry.names(), store: config.store.redis ? redactRedisUrl(config.store.redis) : config.store.sqlite }, 'wabridge listening');

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      const started = Date.now();
      registry.close();
      clearInterval(gauges);
      clearInterval(sweeper);
      clearInterval(traceSweeper);
      stopHolding();
      await app.close();
      admission.close();
      await resolver.stop();
      await delivery.stop();
      // Late BSP calls get what is left of the drain time; their statuses then wait for a look-up.
      await client.close(Math.max(0, config.server.drainMs - (Date.now() - started)));
      await tracer.flush();
      await limiter.close();
      await store.close();
      logger.info('wabridge stopped');
    })());
  return { url, config, registry, store, metrics, logger, delivery, localStatus, close };
}
