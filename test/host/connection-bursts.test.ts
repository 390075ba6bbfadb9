// A burst of connections against a busy server (engine/host/connection-bursts.ts): Node takes one
// connection from the kernel per event-loop turn, so without the hold the first connections' requests
// are read (and keep each turn long) while the others still wait in the kernel; with it, every
// connection of the burst is accepted before any but the first two is read. The whole burst is in the
// kernel's accept queue at once (test/support/burst.ts).
import t from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { heldSince, holdConnectionBursts } from '../../engine/host/connection-bursts.js';
import { busy, connectionBurst } from '../support/burst.js';

const N = 40;

/** Order of events on the server: 'a' a connection accepted, 'r' a request read. */
async function burst(hold: boolean, maxHoldMs = 10_000): Promise<{ order: string; held: number[]; waited: number }> {
  const order: string[] = [];
  const held: number[] = [];
  /** Requests read with the time their held connection was accepted. */
  let waited = 0;
  const server: Server = createServer((req, res) => {
    order.push('r');
    const since = heldSince(req.socket);
    if (since !== undefined && since <= performance.now()) waited++;
    req.resume();
    // A request costs the loop 2 ms: what makes the turns long while the burst waits.
    busy(2);
    req.on('end', () => res.end('{"status":"success"}'));
  });
  server.on('connection', () => order.push('a'));
  const stop = hold ? holdConnectionBursts(server, (n) => held.push(n), { maxHoldMs }) : () => undefined;
  await new Promise<void>((r) => server.listen({ port: 0, host: '127.0.0.1', backlog: 511 }, r));
  const { port } = server.address() as AddressInfo;
  const bodies = await connectionBurst(port, Array.from({ length: N }, () => ({ path: '/', body: '{}' })));
  if (bodies.some((b) => b !== '{"status":"success"}')) throw new Error(`not every request answered: ${JSON.stringify(bodies)}`);
  stop();
  await new Promise((r) => server.close(r));
  return { order: order.join(''), held, waited };
}

t.test('without the hold, requests are read while the burst still waits in the kernel', async (t) => {
  const { order } = await burst(false);
  const lastAccept = order.lastIndexOf('a');
  const readBefore = [...order.slice(0, lastAccept)].filter((c) => c === 'r').length;
  t.ok(readBefore >= N / 2, `${readBefore} of ${N} requests read before the last connection was accepted (${order})`);
});

t.test('with the hold, the burst is accepted first and then read', async (t) => {
  const { order, held, waited } = await burst(true);
  const lastAccept = order.lastIndexOf('a');
  const readBefore = [...order.slice(0, lastAccept)].filter((c) => c === 'r').length;
  t.ok(readBefore <= 2, `${readBefore} requests read before the last connection was accepted (${order})`);
  t.equal(order.split('').filter((c) => c === 'r').length, N, 'every request read and answered');
  t.same(held, [N - 2], 'the connections after the first two were held once, then released together');
  t.equal(waited, N - 2, "each held connection's request counts its wait from the connection's accept");
});

t.test('a hold ends after maxHoldMs even while the burst goes on', async (t) => {
  const { order, held } = await burst(true, 0);
  t.equal(order.split('').filter((c) => c === 'r').length, N, 'every request read and answered');
  t.ok(held.length > 1, `released in ${held.length} holds (${held.join(', ')})`);
});

t.test('a connection that comes alone is read at once', async (t) => {
  const server = createServer((_req, res) => res.end('ok'));
  const held: number[] = [];
  const stop = holdConnectionBursts(server, (n) => held.push(n), { maxHoldMs: 10_000 });
  await new Promise<void>((r) => server.listen({ port: 0, host: '127.0.0.1' }, r));
  const { port } = server.address() as AddressInfo;
  for (let i = 0; i < 3; i++) {
    const res = await fetch(`http://127.0.0.1:${port}/`, { headers: { connection: 'close' } });
    t.equal(await res.text(), 'ok');
  }
  t.same(held, [], 'nothing held');
  stop();
  await new Promise((r) => server.close(r));
});
