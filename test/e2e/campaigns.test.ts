// Campaign reconciliation end to end: messages of two campaigns through the whole stack, their statuses,
// a failure and a reply flowing back, then the report held against what the CleverTap sink received.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import type { CampaignReport, TenantCampaign } from '../../engine/host/campaigns.js';
import { campaign } from '../../engine/cli/trace.js';
import { ROOT, eventually, postBuiltWebhook, startStack, type Stack } from '../support/stack.js';

const example = JSON.parse(readFileSync(join(ROOT, 'examples', 'clevertap', 'template-body-footer.json'), 'utf8')) as Record<string, unknown>;

async function admin(s: Stack, path: string) {
  const res = await request(`${s.host.url}${path}`, { headers: { authorization: 'Bearer e2e-admin-token-0123456789' } });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

/** A failed status for one of the BSP's message ids, as the demo's BSP would post it (its simulator builds it). */
async function postFailed(s: Stack, id: string) {
  return (await postBuiltWebhook(s, await s.sim.statusWebhook({ providerMessageId: id, status: 'failed' }))).status;
}

const campaignOf = (msgId: string) => msgId.split('|')[1];

/** What the sink (CleverTap) received for one campaign, in the report's terms. */
function sinkView(s: Stack, campaignId: string, answers: Record<string, number>, msgIds: Set<string>): Omit<TenantCampaign, 'lastActivity'> {
  const statuses = { sent: 0, delivered: 0, read: 0, failed: 0, clicked: 0 };
  const failures: Record<string, number> = {};
  for (const st of s.sink.statuses('demo').filter((x) => campaignOf(x.msgId) === campaignId)) {
    statuses[st.status.toLowerCase() as keyof typeof statuses]++;
    const code = (st.entry.error as { code?: number } | undefined)?.code;
    if (st.status === 'failed' && code !== undefined) failures[String(code)] = (failures[String(code)] ?? 0) + 1;
  }
  const replies = s.sink.received().filter((c) => c.kind === 'incoming' && c.accepted && campaignOf((c.body as { context?: { id?: string } }).context?.id ?? '') === campaignId).length;
  return { messages: msgIds.size, answers, statuses, failures, replies, callbacksPending: 0, callbacksDead: 0 };
}

t.test('campaign reports equal what CleverTap received', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());
  const answers: Record<string, Record<string, number>> = { campA: {}, campB: {} };
  const msgIds: Record<string, Set<string>> = { campA: new Set(), campB: new Set() };
  const send = async (msgId: string) => {
    const r = (await s.send({ ...example, msgId })).body as { status: string; error?: { code: number } };
    const code = r.status === 'success' ? 'success' : String(r.error?.code);
    const c = campaignOf(msgId)!;
    answers[c]![code] = (answers[c]![code] ?? 0) + 1;
    msgIds[c]!.add(msgId);
    return r;
  };
  for (let i = 1; i <= 3; i++) await send(`${i}|campA|b1|1|0`);
  await send('4|campA|b2|1|0');
  s.sim.setScenario({ scenario: 'template', times: 1 });
  t.equal((await send('5|campA|b2|1|0')).status, 'failure', 'one message the BSP refuses');
  await send('5|campA|b2|1|0'); // CleverTap's retry of it: a second answer, the same message
  for (let i = 1; i <= 2; i++) await send(`${i}|campB|b1|1|0`);

  const bspIdOf = (msgId: string) => s.sim.sent().find((x) => x.msgId === msgId && x.providerMessageId)?.providerMessageId;
  await eventually(() => bspIdOf('1|campA|b1|1|0') !== undefined && bspIdOf('2|campB|b1|1|0') !== undefined, 'the sends at the BSP');
  await s.sim.sendInbound({ from: '919999999999', text: 'interested', replyTo: bspIdOf('1|campA|b1|1|0')! });
  await s.sim.sendInbound({ from: '919999999998', text: 'not a reply to anything' });
  t.equal(await postFailed(s, bspIdOf('2|campB|b1|1|0')!), 200);

  // Every accepted message's statuses, the failure and the reply at the sink, then the report caught up.
  await eventually(() => s.sink.statuses('demo').filter((x) => ['campA', 'campB'].includes(campaignOf(x.msgId)!)).length === 3 * 7 + 1, 'every status at the sink', 20_000);
  await eventually(() => s.sink.received().some((c) => c.kind === 'incoming' && JSON.stringify(c.body).includes('interested')), 'the reply at the sink');
  for (const c of ['campA', 'campB']) {
    const expected = sinkView(s, c, answers[c]!, msgIds[c]!);
    let got: CampaignReport | undefined;
    await eventually(async () => {
      const r = await admin(s, `/v1/admin/campaigns/${c}`);
      got = r.body as unknown as CampaignReport;
      const { lastActivity: _, ...counts } = got.tenants?.demo ?? ({} as TenantCampaign);
      return JSON.stringify(counts) === JSON.stringify(expected);
    }, `the ${c} report to match the sink`).catch(() => undefined);
    const { lastActivity, ...counts } = got!.tenants.demo!;
    t.same(counts, expected, `${c}: the report counts what the sink received`);
    t.ok(Date.parse(lastActivity) > Date.now() - 60_000, 'lastActivity is recent');
  }
  t.match((await admin(s, '/v1/admin/campaigns/campA')).body, { tenants: { demo: { messages: 5, answers: { success: 5, 2001: 1 }, replies: 1 } } }, 'the numbers themselves');
  // the failure code is whatever the demo's mapping makes of its BSP's failed status: one of them, once
  const campB = (await admin(s, '/v1/admin/campaigns/campB')).body as unknown as CampaignReport;
  t.match(campB, { tenants: { demo: { statuses: { failed: 1 } } } });
  t.same(Object.values(campB.tenants.demo!.failures), [1], 'one failure, under its code');

  const b2 = (await admin(s, '/v1/admin/campaigns/campA?batch=b2')).body as unknown as CampaignReport;
  t.equal(b2.batchId, 'b2');
  t.same([b2.tenants.demo!.messages, b2.tenants.demo!.answers], [2, { success: 2, 2001: 1 }], 'one batch only');
  t.equal((await admin(s, '/v1/admin/campaigns/nothing')).status, 404);

  const list = (await admin(s, '/v1/admin/campaigns')).body as { campaigns: { campaignId: string; tenant: string }[] };
  t.same(list.campaigns.map((c) => `${c.tenant}/${c.campaignId}`).sort(), ['demo/campA', 'demo/campB']);
  t.equal((await admin(s, '/v1/admin/campaigns?limit=0')).status, 400);

  let text = '';
  t.equal(await campaign('campA', undefined, s.configFile, false, (x) => (text += x)), 0);
  t.match(text, /tenant demo: 5 message\(s\)/);
  t.match(text, /answers +2001 1, success 5/);
  let json = '';
  t.equal(await campaign('campB', undefined, s.configFile, true, (x) => (json += x)), 0);
  t.same(JSON.parse(json), (await admin(s, '/v1/admin/campaigns/campB')).body);
  let listed = '';
  t.equal(await campaign(undefined, undefined, s.configFile, false, (x) => (listed += x)), 0);
  t.match(listed, /2 campaign\(s\)/);
  t.equal(await campaign('nothing', undefined, s.configFile, false, () => undefined), 1);
});
