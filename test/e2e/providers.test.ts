// Every BSP with a simulator.yaml, through the real host: a CleverTap template send, its delivered
// status and an inbound text reach the CleverTap sink with the right msgId. Adding a BSP folder
// adds it here; nothing in this file names a BSP.
import t from 'tap';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ROOT, eventually, startStack } from '../support/stack.js';

const mappingsDir = join(ROOT, 'mappings');
const providers = readdirSync(mappingsDir).filter((d) => existsSync(join(mappingsDir, d, 'simulator.yaml')) && existsSync(join(mappingsDir, d, 'fixtures', 'settings.yaml')));
const template = JSON.parse(readFileSync(join(ROOT, 'examples', 'clevertap', 'template-body-footer.json'), 'utf8')) as Record<string, unknown>;

t.ok(providers.length > 0, `providers with a simulator: ${providers.join(', ')}`);

for (const provider of providers) {
  t.test(provider, async (t) => {
    const settings = parseYaml(readFileSync(join(mappingsDir, provider, 'fixtures', 'settings.yaml'), 'utf8')) as Record<string, unknown>;
    const s = await startStack({ provider, settings });
    t.teardown(() => s.close());
    const msgId = `e2e|${provider}|1|1`;
    const r = await s.send({ ...template, msgId });
    t.same(r, { status: 200, body: { status: 'success' } }, 'template accepted');
    await eventually(() => s.sink.statuses('demo').some((x) => x.msgId === msgId && x.status === 'delivered'), `${provider}: delivered status at the sink`, 8000);
    const statuses = s.sink.statuses('demo').filter((x) => x.msgId === msgId).map((x) => x.status);
    t.ok(statuses.includes('delivered'), `statuses for the msgId: ${statuses.join(', ')}`);
    await s.sim.sendInbound({ from: '919812345678', text: `hello ${provider}` });
    await eventually(() => s.sink.received().some((c) => c.kind === 'incoming' && JSON.stringify(c.body).includes(`hello ${provider}`)), `${provider}: inbound text at the sink`, 8000);
    const inbound = s.sink.received().find((c) => c.kind === 'incoming' && JSON.stringify(c.body).includes(`hello ${provider}`))!.body;
    t.match(inbound, { payloadVersion: '0.1', from: '919812345678', type: 'text', text: { body: `hello ${provider}` } }, 'CleverTap incoming callback');
  });
}
