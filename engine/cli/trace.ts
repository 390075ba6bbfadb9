// `wabridge trace <msgId|bspMessageId>` (one message's timeline) and `wabridge campaign` (a campaign's
// counts), read straight from the configured store (like `wabridge dlq`): they work with the service down.
import { campaignReport, formatCampaign } from '../host/campaigns.js';
import { formatTrace } from '../host/trace.js';
import { WabError } from '../mapping/errors.js';
import { openConfiguredStore } from './serve.js';

export async function trace(id: string | undefined, config: string | undefined, json: boolean, write: (text: string) => void = (t) => process.stdout.write(t)): Promise<number> {
  if (!id) throw new WabError('WAB_INPUT_INVALID', 'trace needs a CleverTap msgId or a BSP message id');
  const { cfg, store } = await openConfiguredStore(config);
  try {
    const events = await store.readTrace(id, 10_000);
    if (json) write(`${JSON.stringify({ id, events })}\n`);
    else if (events.length > 0) write(`${formatTrace(events)}\n`);
    else write(`no trace for '${id}'${cfg.trace.keepMs === 0 ? ' (tracing is off: trace.keep is 0s)' : ''}\n`);
    return events.length > 0 ? 0 : 1;
  } finally {
    await store.close();
  }
}

/** `wabridge campaign [campaignId] [--batch id] [--json]`: one campaign's reconciliation, or the recent campaigns. */
export async function campaign(id: string | undefined, batch: string | undefined, config: string | undefined, json: boolean, write: (text: string) => void = (t) => process.stdout.write(t)): Promise<number> {
  const { store } = await openConfiguredStore(config);
  try {
    if (id === undefined) {
      const list = (await store.listCampaigns(100)).map((c) => ({ ...c, lastActivity: new Date(c.lastActivity).toISOString() }));
      if (json) write(`${JSON.stringify({ campaigns: list })}\n`);
      else write(`${list.map((c) => `${c.lastActivity}  ${c.tenant}  ${c.campaignId}`).join('\n')}${list.length > 0 ? '\n' : ''}${list.length} campaign(s)\n`);
      return 0;
    }
    const report = await campaignReport(store, id, batch);
    write(json ? `${JSON.stringify(report)}\n` : `${formatCampaign(report)}\n`);
    return Object.keys(report.tenants).length > 0 ? 0 : 1;
  } finally {
    await store.close();
  }
}
