// Campaign reconciliation: what wabridge answered CleverTap and what it delivered back, per tenant,
// counted from the campaign's message traces (engine/host/trace.ts). The counts are of what CleverTap
// was told, so they are the numbers to hold against CleverTap's campaign report.
import type { Store, TraceEvent } from '../stores/store.js';

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
}

interface Tally {
  answers: Record<string, number>;
  statuses: TenantCampaign['statuses'];
  failures: Record<string, number>;
  at: number;
  msgIds: Set<string>;
  delivered: Set<string>;
  /** callbackId → its latest attempt's outcome (or dead) and when. */
  last: Map<string, [number, string]>;
  replyIds: Set<string>;
}

/**
 * Counts one campaign's trace events per tenant, page by page, in any order (only `batchId`'s
 * messages when given). What it keeps is a few sets of ids, not the events.
 */
export class CampaignCounter {
  private readonly byTenant = new Map<string, Tally>();

  constructor(
    readonly campaignId: string,
    readonly batchId?: string,
  ) {}

  add(events: readonly TraceEvent[]): void {
    for (const e of events) {
      if (e.msgId === undefined) continue;
      if (this.batchId !== undefined && e.msgId.split('|')[2] !== this.batchId) continue;
      let c = this.byTenant.get(e.tenant);
      if (!c) {
        c = { answers: {}, statuses: { sent: 0, delivered: 0, read: 0, failed: 0, clicked: 0 }, failures: {}, at: 0, msgIds: new Set(), delivered: new Set(), last: new Map(), replyIds: new Set() };
        this.byTenant.set(e.tenant, c);
      }
      c.at = Math.max(c.at, e.at);
      const d = e.data as { answer?: { status: string; error?: { code: number } }; kind?: string; status?: string; outcome?: string; callbackId?: string; errorCode?: number };
      if (e.type === 'send') {
        c.msgIds.add(e.msgId);
        const code = d.answer?.status === 'success' ? 'success' : String(d.answer?.error?.code ?? d.answer?.status);
        c.answers[code] = (c.answers[code] ?? 0) + 1;
        continue;
      }
      if (e.type !== 'callback' && e.type !== 'dead') continue;
      if (d.callbackId !== undefined) {
        const seen = c.last.get(d.callbackId);
        // A dead-letter move and the refused attempt before it share a millisecond at most: dead wins.
        if (!seen || seen[0] < e.at || (seen[0] === e.at && e.type === 'dead')) c.last.set(d.callbackId, [e.at, e.type === 'dead' ? 'dead' : (d.outcome ?? '')]);
      }
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

  report(): CampaignReport {
    const tenants: Record<string, TenantCampaign> = {};
    for (const [tenant, c] of [...this.byTenant].sort(([a], [b]) => (a < b ? -1 : 1))) {
      let pending = 0;
      let dead = 0;
      for (const [, state] of c.last.values()) {
        if (state === 'retry') pending++;
        else if (state === 'dead') dead++;
      }
      tenants[tenant] = {
        messages: c.msgIds.size,
        answers: { ...c.answers },
        statuses: { ...c.statuses },
        failures: { ...c.failures },
        replies: c.replyIds.size,
        callbacksPending: pending,
        callbacksDead: dead,
        lastActivity: new Date(c.at).toISOString(),
      };
    }
    const report: CampaignReport = { campaignId: this.campaignId, tenants };
    if (this.batchId !== undefined) report.batchId = this.batchId;
    return report;
  }
}

/** Events per store call: short enough that a big campaign's report never holds up sends on the store. */
const PAGE = 5000;

/** Reads one campaign's traces from the store page by page and counts them. */
export async function campaignReport(store: Pick<Store, 'campaignTrace'>, campaignId: string, batchId?: string): Promise<CampaignReport> {
  const counter = new CampaignCounter(campaignId, batchId);
  let cursor: string | undefined;
  do {
    const page = await store.campaignTrace(campaignId, PAGE, cursor);
    counter.add(page.events);
    cursor = page.next;
  } while (cursor !== undefined);
  return counter.report();
}

/** The report as `wabridge campaign` prints it. */
export function formatCampaign(r: CampaignReport): string {
  const lines = [`campaign ${r.campaignId}${r.batchId !== undefined ? ` batch ${r.batchId}` : ''}`];
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

/** A count of the report, as the drill-down names it: `messages`, `answers.2001`, `statuses.read`, `failures.1007`, `replies`, `callbacksPending`, `callbacksDead`. */
export const COUNT_PATH = /^(messages|replies|callbacksPending|callbacksDead|answers\.(success|\d{3,4})|statuses\.(sent|delivered|read|failed|clicked)|failures\.\d{1,5})$/;

/** One message of a campaign and what it adds to each count of the report (so the rows behind a count sum to it). */
export interface CampaignMessage {
  tenant: string;
  msgId: string;
  /** The last answer CleverTap got for it: success, 2000-2004 or 429. */
  answer?: string;
  counts: Omit<TenantCampaign, 'lastActivity'>;
  lastActivity: string;
}

function countAt(c: Omit<TenantCampaign, 'lastActivity'>, path: string): number {
  const [head, key] = path.split('.') as [keyof typeof c, string | undefined];
  const v = c[head];
  return typeof v === 'number' ? v : ((v as Record<string, number>)[key ?? ''] ?? 0);
}

/** Store calls per drill-down request, so one request never reads a whole large campaign. */
const SCAN_PAGE = 500;

/**
 * The messages behind one count of a campaign's report (all its messages without `count`), from the
 * store's per-message timelines: each message is counted alone by the same CampaignCounter as the
 * report, so the rows behind `statuses.delivered` are exactly the ones the report counts there. Reads
 * at most `scan` messages per call; `next` continues where it stopped.
 */
export async function campaignMessages(
  store: Pick<Store, 'campaignMessages'>,
  campaignId: string,
  o: { tenant?: string; batchId?: string; count?: string; limit: number; scan?: number; cursor?: string },
): Promise<{ campaignId: string; messages: CampaignMessage[]; scanned: number; next?: string }> {
  const out: CampaignMessage[] = [];
  let cursor = o.cursor;
  let scanned = 0;
  const scan = o.scan ?? 5000;
  do {
    const page = await store.campaignMessages(campaignId, Math.min(SCAN_PAGE, scan - scanned), cursor);
    for (const m of page.messages) {
      scanned++;
      cursor = m.msgId;
      const counter = new CampaignCounter(campaignId, o.batchId);
      counter.add(m.events);
      for (const [tenant, report] of Object.entries(counter.report().tenants)) {
        if (o.tenant !== undefined && tenant !== o.tenant) continue;
        const { lastActivity, ...counts } = report;
        if (counts.messages === 0 && counts.replies === 0 && counts.callbacksPending === 0 && counts.callbacksDead === 0 && Object.values(counts.statuses).every((n) => n === 0)) continue;
        if (o.count !== undefined && countAt(counts, o.count) === 0) continue;
        const sends = m.events.filter((e) => e.type === 'send' && e.tenant === tenant);
        const last = sends[sends.length - 1]?.data as { answer?: { status: string; error?: { code: number } } } | undefined;
        const row: CampaignMessage = { tenant, msgId: m.msgId, counts, lastActivity };
        if (last?.answer) row.answer = last.answer.status === 'success' ? 'success' : String(last.answer.error?.code ?? last.answer.status);
        out.push(row);
      }
      if (out.length >= o.limit) return { campaignId, messages: out, scanned, next: m.msgId };
    }
    if (page.next === undefined) return { campaignId, messages: out, scanned };
    cursor = page.next;
  } while (scanned < scan);
  return { campaignId, messages: out, scanned, ...(cursor !== undefined ? { next: cursor } : {}) };
}
