// A local webhook receiver standing in for wabridge's webhook endpoint, for tests that drive the BSP
// simulator directly: it records each request as the mapping would see it (the full URL, which some
// BSPs sign, the headers, the query and the raw body) and answers `answer()`.
import type { Test } from 'tap';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { WebhookRequest } from '../../engine/mapping/webhook.js';

export async function webhookReceiver(t: Test, bsp: string, answer: () => number = () => 200): Promise<{ url: string; got: WebhookRequest[] }> {
  const got: WebhookRequest[] = [];
  let port = 0;
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
      const url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);
      got.push({ url: url.toString(), headers, query: Object.fromEntries(url.searchParams), rawBody: Buffer.concat(chunks).toString('utf8') });
      res.statusCode = answer();
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  t.teardown(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  );
  return { url: `http://127.0.0.1:${port}/webhooks/${bsp}/demo`, got };
}
