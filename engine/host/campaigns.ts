// Campaign reconciliation: what wabridge answered CleverTap and what it delivered back, per tenant,
// counted from the campaign's message traces (engine/host/trace.ts). The counts are of what CleverTap
// was told, so they are the numbers to hold against CleverTap's campaign report.
import type { TraceEvent } from '../stores/store.js';

/** Events one campaign report reads at most (a few hundred bytes each in memory). */
export const CAMPAIGN_EVENTS = 2_000_000;

const STATUSES = ['sent', 'delivered', 'read', 'failed', 'clicked'] as const;

export interface TenantCampaign {
  /** Distinct msgIds CleverTap sent (a msgId CleverTap retried counts once). */
  messages: number;
  /** Every answer given, by code: success, 2000-2004, 429 (a retried msgId's answers each count). */
  answers: Record<string, number>;
  /** Status callbacks CleverTap accepted, one per msgId and status, implied ones included. */
  statuses: Record<(typeof STATUSES)[number], number>;
  /** The accepted `failed` statuses by CleverTap error code (1000-1010). */
  failures: Record<string, number>;
  /** Incoming callbacks CleverTap accepted that answer one of the campaign's messages. */
  replies: number;
  /** Callbacks whose last POST failed and that will be tried again. */
  callbacksPending: number;
  /** Callbacks in the dead-letter list (not replayed and delivered since). */
  callbacksDead: number;
  /** The latest trace event, ISO 8601. */
  lastActivity: string;
}

export interface CampaignReport {
  campaignId: string;
  batchId?: string;
  tenants: Record<string, TenantCampaign>;
  /** The store gave `limit` events: the counts may miss the newest. */
  truncated?: boolean;
}

function empty(): TenantCampaign & { at: number; msgIds: Set<string>; delivered: Set<string>; last: Map<string, string>; replyIds: Set<string> } {
  return {
    messages: 0,
    answers: {},
    statuses: { sent: 0, delivered: 0, read: 0, failed: 0, clicked: 0 },
    failures: {},
    replies: 0,
    callbacksPending: 0,
    callbacksDead: 0,
    lastActivity: '',
    at: 0,
    msgIds: new Set(),
    delivered: new Set(),
    last: new Map(),
    replyIds: new Set(),
  };
}

/** Counts `events` (one campaign's, oldest first) per tenant; only `batchId`'s messages when given. */
export function campaignReport(campaignId: string, events: readonly TraceEvent[], batchId?: string, truncated = false): CampaignReport {
  const byTenant = new Map<string, ReturnType<typeof empty>>();
  for (const e of events) {
    if (e.msgId === undefined) continue;
    if (batchId !== undefined && e.msgId.split('|')[2] !== batchId) continue;
    let c = byTenant.get(e.tenant);
    if (!c) byTenant.set(e.tenant, (c = empty()));
    c.at = Math.max(c.at, e.at);
    const d = e.data as { answer?: { status: string; error?: { code: number } }; kind?: string; status?: string; outcome?: string; callbackId?: string; errorCode?: number };
    if (e.type === 'send') {
      c.msgIds.add(e.msgId);
      const code = d.answer?.status === 'success' ? 'success' : String(d.answer?.error?.code ?? d.answer?.status);
      c.answers[code] = (c.answers[code] ?? 0) + 1;
    } else if (e.type === 'callback' || e.type === 'dead') {
      if (d.callbackId !== undefined) c.last.set(d.callbackId, e.type === 'dead' ? 'dead' : (d.outcome ?? ''));
      if (e.type !== 'callback' || d.outcome !== 'delivered') continue;
      if (d.kind === 'incoming') {
        if (d.callbackId !== undefined) c.replyIds.add(d.callbackId);
        continue;
      }
      const status = (d.status ?? '').toLowerCase();
      const key = `${e.msgId}|${status}`;
      if (!(STATUSES as readonly string[]).includes(status) || c.delivered.has(key)) continue;
      c.delivered.add(key);
      c.statuses[status as (typeof STATUSES)[number]]++;
      if (status === 'failed' && d.errorCode !== undefined) c.failures[String(d.errorCode)] = (c.failures[String(d.errorCode)] ?? 0) + 1;
    }
  }
  const tenants: Record<string, TenantCampaign> = {};
  for (const [tenant, c] of [...byTenant].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const { at, msgIds, delivered: _d, last, replyIds, ...counts } = c;
    counts.messages = msgIds.size;
    counts.replies = replyIds.size;
    for (const state of last.values()) {
      if (state === 'retry') counts.callbacksPending++;
      else if (state === 'dead') counts.callbacksDead++;
    }
    counts.lastActivity = new Date(at).toISOString();
    tenants[tenant] = counts;
  }
  const report: CampaignReport = { campaignId, tenants };
  if (batchId !== undefined) report.batchId = batchId;
  if (truncated) report.truncated = true;
  return report;
}

/** The report as `wabridge campaign` prints it. */
export function formatCampaign(r: CampaignReport): string {
  const lines = [`campaign ${r.campaignId}${r.batchId !== undefined ? ` batch ${r.batchId}` : ''}${r.truncated ? ' (truncated: the newest events are not counted)' : ''}`];
  const counts = (o: Record<string, number>) => Object.entries(o).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  for (const [tenant, c] of Object.entries(r.tenants)) {
    lines.push(`  tenant ${tenant}: ${c.messages} message(s), last activity ${c.lastActivity}`);
    lines.push(`    answers   ${counts(c.answers)}`);
    lines.push(`    statuses  ${counts(c.statuses)}`);
    lines.push(`    failures  ${counts(c.failures)}`);
    lines.push(`    replies   ${c.replies}`);
    lines.push(`    callbacks pending ${c.callbacksPending}, dead ${c.callbacksDead}`);
  }
  if (Object.keys(r.tenants).length === 0) lines.push('  nothing known of it');
  return lines.join('\n');
}
