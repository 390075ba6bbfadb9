// Prometheus metrics, one registry per host so tests can run several hosts in one process.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const m = {
    registry,
    requests: new Counter({ name: 'wabridge_messages_total', help: 'CleverTap messaging requests, by tenant and answer', labelNames: ['tenant', 'answer'] as const, registers: [registry] }),
    bspLatency: new Histogram({
      name: 'wabridge_bsp_request_seconds',
      help: 'Time the BSP took to answer a send request',
      labelNames: ['tenant', 'provider'] as const,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 0.9, 1, 2, 5],
      registers: [registry],
    }),
    answerTime: new Histogram({
      name: 'wabridge_answer_seconds',
      help: 'Time from a messaging request reaching wabridge to its answer written, by tenant and answer (CleverTap waits 1 s)',
      labelNames: ['tenant', 'answer'] as const,
      buckets: [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1, 2.5],
      registers: [registry],
    }),
    lateSuccess: new Counter({ name: 'wabridge_bsp_late_success_total', help: 'BSP accepted a message after CleverTap was answered 2004 (correlated anyway)', labelNames: ['tenant'] as const, registers: [registry] }),
    rateLimited: new Counter({ name: 'wabridge_bsp_rate_limited_total', help: 'Sends answered 2004 because the tenant\'s bspRate left no room before the deadline', labelNames: ['tenant'] as const, registers: [registry] }),
    webhooks: new Counter({ name: 'wabridge_webhooks_total', help: 'BSP webhooks, by tenant and outcome', labelNames: ['tenant', 'outcome'] as const, registers: [registry] }),
    events: new Counter({ name: 'wabridge_webhook_events_total', help: 'Events mapped from BSP webhooks', labelNames: ['tenant', 'event'] as const, registers: [registry] }),
    quarantined: new Counter({ name: 'wabridge_quarantined_total', help: 'Webhooks (or items of a batch) the mapping could not map, kept in the quarantine and acknowledged', labelNames: ['tenant'] as const, registers: [registry] }),
    quarantineSize: new Gauge({ name: 'wabridge_quarantine_size', help: 'Webhooks in the quarantine, waiting for a fixed mapping and a replay', registers: [registry] }),
    implied: new Counter({ name: 'wabridge_statuses_implied_total', help: 'Lower statuses released because a higher one arrived first (read implies delivered and sent)', labelNames: ['tenant'] as const, registers: [registry] }),
    callbacks: new Counter({ name: 'wabridge_callbacks_total', help: 'Callbacks to CleverTap, by outcome (delivered, retry, dead)', labelNames: ['outcome'] as const, registers: [registry] }),
    outboxPending: new Gauge({ name: 'wabridge_callbacks_pending', help: 'Callbacks waiting for delivery', registers: [registry] }),
    outboxDead: new Gauge({ name: 'wabridge_callbacks_dead', help: 'Callbacks in the dead-letter list', registers: [registry] }),
    unmatched: new Gauge({ name: 'wabridge_statuses_unmatched', help: 'Statuses whose BSP id never matched a msgId', registers: [registry] }),
    pendingLookups: new Gauge({ name: 'wabridge_statuses_pending_lookup', help: 'Statuses waiting for their send to be correlated', registers: [registry] }),
    shed: new Counter({ name: 'wabridge_shed_total', help: 'Messaging requests answered 429 because the process was past capacity, by reason', labelNames: ['reason'] as const, registers: [registry] }),
    admissionLimit: new Gauge({ name: 'wabridge_admission_limit', help: 'Messaging requests this process lets in flight now (follows the event loop)', registers: [registry] }),
    admissionInFlight: new Gauge({ name: 'wabridge_admission_in_flight', help: 'Messaging requests in flight', registers: [registry] }),
    admissionQueued: new Gauge({ name: 'wabridge_admission_queued', help: 'Messaging requests waiting for a slot', registers: [registry] }),
    connectionsHeld: new Counter({ name: 'wabridge_connections_held_total', help: 'Connections accepted during a burst and read only once the kernel had handed over the rest (see engine/host/connection-bursts.ts)', registers: [registry] }),
    eventLoopLag: new Gauge({ name: 'wabridge_event_loop_lag_seconds', help: 'How late a 10 ms timer fired, worst of the last 100 ms', registers: [registry] }),
    traceDropped: new Counter({ name: 'wabridge_trace_dropped_total', help: 'Message trace events not written: the buffer was full (writes put off while answers waited, or the store slow) or the write failed', labelNames: ['reason'] as const, registers: [registry] }),
    backgroundHeld: new Counter({ name: 'wabridge_background_held_seconds_total', help: 'Time background rounds were put off so sends could be answered in time, by worker', labelNames: ['worker'] as const, registers: [registry] }),
    callbackDelay: new Histogram({
      name: 'wabridge_callback_delay_seconds',
      help: 'From a callback entering the outbox to CleverTap acknowledging it',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600],
      registers: [registry],
    }),
    clicks: new Counter({ name: 'wabridge_clicks_total', help: 'Requests to tracked links (/c/), by outcome: first (a Clicked callback), repeat, unknown (or expired), limited, unrecorded (redirected, store failed)', labelNames: ['outcome'] as const, registers: [registry] }),
    reloads: new Counter({ name: 'wabridge_mapping_reloads_total', help: 'Mapping reloads, by mapping and result', labelNames: ['mapping', 'result'] as const, registers: [registry] }),
    mappingBroken: new Gauge({ name: 'wabridge_mapping_reload_failing', help: '1 while the last reload of a mapping failed (the previous version keeps serving)', labelNames: ['mapping'] as const, registers: [registry] }),
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;
