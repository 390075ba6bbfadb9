// The BSP HTTP client: answers of any status come back as text with their headers, bodies past the
// cap keep their start, and every way a call can fail ends in a classified TransportError, never a
// hang. Against a local server on 127.0.0.1.
import t from 'tap';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BspClient, TransportError } from '../../engine/host/bsp-client.js';
import { rejectedWith } from '../support/rejected.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

async function serve(handler: Handler): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const failure = (p: Promise<unknown>) => rejectedWith(p, TransportError);

t.test('an answer: status, headers as single strings, body text, the request as sent', async (t) => {
  let seen: { method?: string; auth?: string; body: string } = { body: '' };
  const s = await serve((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      seen = { method: req.method, auth: req.headers.authorization, body };
      res.setHeader('Set-Cookie', ['a=1', 'b=2']);
      res.writeHead(400, { 'Content-Type': 'application/json', 'X-Trace': 'abc' });
      res.end('{"error":{"code":100,"message":"héllo"}}');
    });
  });
  t.teardown(s.close);
  const client = new BspClient();
  t.teardown(() => client.close());
  const r = await client.send({ method: 'POST', url: `${s.url}/v1/messages`, headers: { Authorization: 'Bearer x', 'Content-Type': 'application/json' }, body: '{"to":"1"}' }, 5_000);
  t.equal(r.status, 400, 'a 4xx is an answer, not a transport error');
  t.equal(r.text, '{"error":{"code":100,"message":"héllo"}}', 'UTF-8 text');
  t.equal(r.headers['x-trace'], 'abc');
  t.equal(r.headers['set-cookie'], 'a=1, b=2', 'repeated headers joined');
  t.same(seen, { method: 'POST', auth: 'Bearer x', body: '{"to":"1"}' });
});

t.test('a body past the cap keeps its start and the call still ends', async (t) => {
  const s = await serve((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.write('12345678');
    setTimeout(() => res.write('abcdefgh'), 5);
    setTimeout(() => res.end('ABCDEFGH'), 10);
  });
  t.teardown(s.close);
  const client = new BspClient();
  t.teardown(() => client.close());
  const r = await client.send({ method: 'GET', url: s.url, headers: {} }, 5_000, 10);
  t.equal(r.text, '12345678', 'chunks up to the cap');
  const whole = await client.send({ method: 'GET', url: s.url, headers: {} }, 5_000);
  t.equal(whole.text, '12345678abcdefghABCDEFGH', 'several chunks joined');
});

t.test('failures are classified TransportErrors', async (t) => {
  const client = new BspClient();
  t.teardown(() => client.close());

  const cut = await serve((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.write('{"messages":[');
    setTimeout(() => res.socket?.destroy(), 10);
  });
  t.teardown(cut.close);
  const e1 = await failure(client.send({ method: 'GET', url: cut.url, headers: {} }, 5_000));
  t.equal(e1.failure.kind, 'network', `connection cut mid-body: ${e1.message}`);

  const silent = await serve(() => undefined);
  t.teardown(silent.close);
  const started = Date.now();
  const e2 = await failure(client.send({ method: 'GET', url: silent.url, headers: {} }, 200));
  t.equal(e2.failure.kind, 'timeout', `no answer: ${e2.message}`);
  t.equal(e2.message, 'timeout: BSP did not answer within 200 ms', 'a readable message');
  t.ok(Date.now() - started < 3_000, 'given up at about the timeout');

  const slowBody = await serve((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.write('partial');
  });
  t.teardown(slowBody.close);
  const e3 = await failure(client.send({ method: 'GET', url: slowBody.url, headers: {} }, 200));
  t.equal(e3.failure.kind, 'timeout', `headers but the body never ends: ${e3.message}`);

  const closed = await serve(() => undefined);
  const url = closed.url;
  await closed.close();
  const e4 = await failure(client.send({ method: 'GET', url, headers: {} }, 2_000));
  t.equal(e4.failure.kind, 'connect', `nothing listening: ${e4.message}`);
});

t.test('close(grace) lets calls finish within the grace time, then aborts the rest', async (t) => {
  const quick = await serve((_req, res) => setTimeout(() => res.end('done'), 30));
  const silent = await serve(() => undefined);
  const halfBody = await serve((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.write('partial');
  });
  t.teardown(quick.close);
  t.teardown(silent.close);
  t.teardown(halfBody.close);
  const client = new BspClient();
  const finishing = client.send({ method: 'GET', url: quick.url, headers: {} }, 10_000);
  const hanging = failure(client.send({ method: 'POST', url: silent.url, headers: {}, body: '{}' }, 10_000));
  const inBody = failure(client.send({ method: 'GET', url: halfBody.url, headers: {} }, 10_000));
  // both hanging calls are on the wire before close() starts counting
  await new Promise((r) => setTimeout(r, 20));
  const started = Date.now();
  await client.close(100);
  t.ok(Date.now() - started < 2_000, 'close() does not wait for the hanging calls');
  t.equal((await finishing).text, 'done', 'a call that answers within the grace time gets its answer');
  for (const e of [await hanging, await inBody]) {
    t.equal(e.failure.kind, 'network', `aborted by close(): ${e.message}`);
    t.match(e.message, /wabridge is stopping/);
  }
  const after = await failure(client.send({ method: 'GET', url: quick.url, headers: {} }, 10_000));
  t.match(after.message, /wabridge is stopping|closed|destroyed/i, `a call after close() fails at once: ${after.message}`);
});

t.test('a call waiting for a free connection times out on time, and the queue moves on', async (t) => {
  let first = true;
  const s = await serve((_req, res) => {
    // the first request holds the only connection for 400 ms
    if (first) {
      first = false;
      setTimeout(() => res.end('first'), 400);
    } else res.end('later');
  });
  t.teardown(s.close);
  const client = new BspClient({ connectionsPerOrigin: 1 });
  t.teardown(() => client.close());
  const holding = client.send({ method: 'POST', url: s.url, headers: {}, body: '{}' }, 5_000);
  const started = Date.now();
  const e = await failure(client.send({ method: 'POST', url: s.url, headers: {}, body: '{}' }, 100));
  const waited = Date.now() - started;
  t.equal(e.failure.kind, 'timeout', `queued behind a slow call: ${e.message}`);
  t.ok(waited < 350, `rejected at its own timeout (${waited} ms), not when the connection frees up`);
  t.equal((await holding).text, 'first');
  t.equal((await client.send({ method: 'GET', url: s.url, headers: {} }, 5_000)).text, 'later', 'the connection serves the next call');
});

t.test('a URL that is not http(s) is a network failure naming the problem', async (t) => {
  const client = new BspClient();
  t.teardown(() => client.close());
  const bad = await failure(client.send({ method: 'POST', url: 'ftp://example.invalid/x', headers: {} }, 1_000));
  t.equal(bad.failure.kind, 'network');
  t.match(bad.message, /http: or https:/);
  const unparsable = await failure(client.send({ method: 'POST', url: 'not a url', headers: {} }, 1_000));
  t.match(unparsable.message, /Invalid URL/i);
});
