// `npm start` as a new user runs it: wabridge with the CleverTap sink and the simulated BSP on a thread
// of their own (engine/standins/thread.ts), in one process. A message sent with the README's curl comes
// back at the sink as sent, delivered and read; SIGTERM stops all of it.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { demoMapping } from '../support/demo.js';
import { ROOT, eventually, freePort } from '../support/stack.js';

const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('_TAPJS_')));

t.test('the demo answers the README curl and prints the three statuses from the sink', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wabridge-demo-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const [port, sink, bsp] = [await freePort(), await freePort(), await freePort()];
  const file = join(dir, 'wabridge.yaml');
  writeFileSync(
    file,
    readFileSync(join(ROOT, 'examples', 'wabridge.yaml'), 'utf8')
      .replaceAll('127.0.0.1:3000', `127.0.0.1:${port}`)
      .replace(/^ {2}port: 3000/m, `  port: ${port}`)
      .replaceAll('127.0.0.1:3100', `127.0.0.1:${sink}`)
      .replaceAll('127.0.0.1:3200', `127.0.0.1:${bsp}`)
      .replace('mappings: ../mappings', `mappings: ${join(ROOT, 'mappings')}`)
      .replace('sqlite: ../data/wabridge.db', `sqlite: ${join(dir, 'wabridge.db')}`),
  );
  const demo = spawn(process.execPath, [join(ROOT, 'bin', 'wabridge.js'), 'demo', '--config', file], { cwd: ROOT, env: { ...env, LOG_LEVEL: 'warn' } });
  let out = '';
  let err = '';
  demo.stdout.on('data', (b: Buffer) => (out += b.toString()));
  demo.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((r) => demo.once('exit', (code) => r(code)));
  t.teardown(() => demo.kill('SIGKILL'));

  await eventually(() => out.includes('Ctrl-C stops everything'), `the demo's banner (stderr: ${err})`, 30_000);
  t.match(out, `simulated ${demoMapping().provider} BSP http://127.0.0.1:${bsp}, CleverTap sink http://127.0.0.1:${sink}`, 'the banner names where the stand-ins listen');
  const res = await request(`http://127.0.0.1:${port}/v1/tenants/demo/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from('demo:demo').toString('base64')}` },
    body: readFileSync(join(ROOT, 'examples', 'clevertap', 'template-body-footer.json')),
  });
  t.strictSame(await res.body.json(), { status: 'success' });
  const msgId = (JSON.parse(readFileSync(join(ROOT, 'examples', 'clevertap', 'template-body-footer.json'), 'utf8')) as { msgId: string }).msgId;
  for (const status of ['sent', 'delivered', 'read']) {
    await eventually(() => out.includes(`clevertap-sink: status ${status} msgId=${msgId}`), `the sink prints ${status}`, 20_000);
  }
  demo.kill('SIGTERM');
  t.equal(await exited, 0, `SIGTERM stops wabridge and the stand-ins' thread (stderr: ${err})`);
});
