// A burst of new connections that is entirely in the server's accept queue before the server takes
// any of it, whatever the machine's speed: the connects go out on the next tick, and the kernel
// completes them while this process's loop is blocked (engine/host/connection-bursts.ts).
import { connect } from 'node:net';

export function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

/** One HTTP/1.1 request per connection (`connection: close`); resolves with each raw answer's body. */
export async function connectionBurst(port: number, requests: { path: string; headers?: Record<string, string>; body: string }[]): Promise<string[]> {
  const answers = requests.map((r) => {
    const socket = connect({ host: '127.0.0.1', port });
    const headers = Object.entries({ host: '127.0.0.1', connection: 'close', 'content-type': 'application/json', ...r.headers, 'content-length': String(Buffer.byteLength(r.body)) })
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    socket.write(`POST ${r.path} HTTP/1.1\r\n${headers}\r\n${r.body}`);
    return new Promise<string>((resolve, reject) => {
      let text = '';
      socket.on('data', (b: Buffer) => (text += b.toString()));
      socket.on('end', () => resolve(text.slice(text.indexOf('\r\n\r\n') + 4)));
      socket.on('error', reject);
    });
  });
  await new Promise((r) => setImmediate(r));
  busy(200);
  return Promise.all(answers);
}
