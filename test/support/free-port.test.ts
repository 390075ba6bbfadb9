import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import t from 'tap';
import { freePort } from './stack.js';

t.test('freePort hands out distinct bindable ports below the kernel ephemeral range', async (t) => {
  const ports: number[] = [];
  for (let i = 0; i < 20; i++) ports.push(await freePort());
  t.equal(new Set(ports).size, ports.length, 'no port handed out twice');
  let low = 0;
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  } catch {
    t.comment('no /proc/sys/net/ipv4/ip_local_port_range here: ports come from listen(0)');
  }
  if (low > 10_000) t.ok(ports.every((p) => p < low && p >= 10_000), `all in [10000, ${low}): ${ports.slice(0, 5).join(', ')}…`);
  for (const port of ports.slice(0, 3)) {
    const s = createServer();
    await new Promise<void>((res, rej) => s.once('error', rej).listen(port, '127.0.0.1', () => res()));
    t.pass(`${port} binds`);
    await new Promise((r) => s.close(r));
  }
});
