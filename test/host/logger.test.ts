// The logger: secrets and phone numbers never reach a log line, and the objects logged are not changed.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createLogger, hotLine, logDestination, maskPhone, redactLog, type ByteDestination } from '../../engine/host/logger.js';

function capture() {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed log lines, read field by field
  const lines: Record<string, any>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
      done();
    },
  });
  return { lines, stream };
}

t.test('credentials are censored at the top level and one level down, the Authorization header of a logged request too', async (t) => {
  const { lines, stream } = capture();
  const log = createLogger('info', stream);
  const settings = { phoneNumberId: '1065', accessToken: 'EAAG-secret', appSecret: 'kept-name', apiKey: 'k-123' };
  const req = { method: 'POST', url: '/x', headers: { authorization: 'Bearer abc', 'content-type': 'application/json' } };
  const obj = { tenant: 'acme', settings, req, token: 'top-level', list: [{ password: 'p' }], err: { secret: 's', message: 'm' } };
  log.info(obj, 'hello');
  const line = lines[0]!;
  const text = JSON.stringify(line);
  for (const secret of ['EAAG-secret', 'k-123', 'Bearer abc', 'top-level', '"s"']) t.notMatch(text, secret, `${secret} is not in the line`);
  t.same(line.settings, { phoneNumberId: '1065', accessToken: '[redacted]', appSecret: 'kept-name', apiKey: '[redacted]' });
  t.same(line.req.headers, { authorization: '[redacted]', 'content-type': 'application/json' });
  t.equal(line.token, '[redacted]');
  t.equal(line.err.message, 'm');
  t.equal(line.msg, 'hello');
  t.equal(settings.accessToken, 'EAAG-secret', "the caller's objects are not changed");
  t.equal(req.headers.authorization, 'Bearer abc');
  t.equal(obj.token, 'top-level');
});

t.test('a logged Error with a secret keeps its message and stack', async (t) => {
  const { lines, stream } = capture();
  const err = Object.assign(new Error('boom'), { token: 'jwt-abc', code: 'E1' });
  createLogger('info', stream).error({ err }, 'failed');
  const line = lines[0]!;
  t.equal(line.err.message, 'boom');
  t.match(line.err.stack, /Error: boom/);
  t.equal(line.err.token, '[redacted]');
  t.equal(line.err.code, 'E1');
  t.equal(err.token, 'jwt-abc', 'the Error itself is not changed');
});

t.test('child bindings are censored alike; phone numbers are masked', async (t) => {
  const { lines, stream } = capture();
  createLogger('info', stream).child({ tenant: 'acme', settings: { token: 't0k3n' } }).info({ to: '+91 98765 43210', from: '15550001111' }, 'msg');
  const line = lines[0]!;
  t.equal(line.settings.token, '[redacted]');
  t.equal(line.to, '9198******10');
  t.equal(line.from, '1555*****11');
  t.equal(maskPhone('12345'), '***');
  createLogger('info', stream).child({ a: 1 }).child({ secret: 'grand', nested: { apiKey: 'k' } }).info('deeper');
  t.equal(lines[1]!.secret, '[redacted]', "a child's child too");
  t.equal(lines[1]!.nested.apiKey, '[redacted]');
});

t.test('an object without secrets is passed on as it is', async (t) => {
  const plain = { tenant: 'acme', msgId: '1|2|3', answer: 'success', nested: { a: 1 } };
  t.equal(redactLog(plain), plain);
  const withSecret = { nested: { token: 'x' } };
  t.not(redactLog(withSecret), withSecret);
});

t.test('the default destination writes whole UTF-8 lines, in order, and what is pending when the process exits', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wab-log-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'a.log');
  const log = createLogger('info', logDestination(file));
  // multi-byte text: the destination counts bytes, not characters
  const texts = Array.from({ length: 3000 }, (_, i) => `${i} héllo ✓ 😀 ${'x'.repeat(i % 300)}`);
  for (const [i, text] of texts.entries()) log.info({ i, text }, 'line');
  // (sonic-boom's flush() does not wait when it writes as soon as it can: read until the last line is in)
  const deadline = Date.now() + 10_000;
  while (!readFileSync(file, { encoding: 'utf8', flag: 'a+' }).includes(`"i":${texts.length - 1},`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { i: number; text: string });
  t.equal(lines.length, texts.length, 'every line');
  t.same(lines.map((l) => l.text), texts, 'each line whole, in order, its text intact');

  // A process that logs and exits at once: the asynchronous destination is flushed on the way out.
  // (on a descriptor, as stdout is: a file named by path is opened asynchronously, after such an exit)
  const exiting = join(dir, 'exit.log');
  const logger = fileURLToPath(new URL('../../engine/host/logger.ts', import.meta.url));
  const script = `const { createLogger, logDestination } = await import(${JSON.stringify(logger)});
    const { openSync } = await import('node:fs');
    const log = createLogger('info', logDestination(openSync(${JSON.stringify(exiting)}, 'a')));
    for (let i = 0; i < 5000; i++) log.info({ i }, 'before exit');
    process.exit(0);`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
  t.equal(r.status, 0, r.stderr);
  const written = readFileSync(exiting, 'utf8').trimEnd().split('\n');
  t.equal(written.length, 5000, 'all 5000 lines reached the file');
  t.equal((JSON.parse(written.at(-1)!) as { i: number }).i, 4999);
});

t.test('a hot line is the line pino writes for the same fields: escaping, unicode, numbers, masking, censoring, child bindings', async (t) => {
  const strings: string[] = [];
  const bytes: string[] = [];
  const dest: ByteDestination = { write: (l: string) => void strings.push(l), writeBytes: (b: Buffer) => void bytes.push(b.toString('utf8')) };
  const log = createLogger('info', dest).child({ tenant: 'acme "q"', mapping: 'acme' });
  const keys = ['msgId', 'to', 'token', 'n', 'text'];
  const line = hotLine(keys, 'message');
  const cases: (string | number | undefined)[][] = [
    ['bench|1|2|3', '919999999999', 'secret', 201, 'plain'],
    ['q"uote\\back', '+91 98765 43210', undefined, -0.5, 'tab\tnew\nline\u0001 end'],
    ['héllo ✓ 😀', undefined, 's', Number.NaN, 'lone \ud800 high, lone \udc00 low'],
    [undefined, '12', undefined, Number.POSITIVE_INFINITY, undefined],
    ['€'.repeat(10_000), '1'.repeat(20), 'x', 1e21, 'x'.repeat(5000)],
    ['', '', '', 0, ''],
    // numbers written digit by digit up to 1e15, through String() beyond; DEL is not escaped by pino
    ['del \u007f', undefined, undefined, 999_999_999_999_999, '~ all printable !#$%&()*+,-./:;<=>?@[]^_`{|}'],
    ['x', undefined, undefined, 1e15, 'y'],
    ['x', undefined, undefined, -0, 'y'],
    ['x', undefined, undefined, 10, 'y'],
    ['x', undefined, undefined, 9, 'y'],
    ['x', undefined, undefined, -7, 'y'],
    ['x', undefined, undefined, 2 ** 53 + 2, 'y'],
    ['x', undefined, undefined, 0.1, 'y'],
    ['x'.repeat(100), undefined, undefined, 1, 'y'.repeat(101)],
  ];
  for (const values of cases) {
    const fields: Record<string, unknown> = {};
    keys.forEach((k, i) => (fields[k] = values[i]));
    log.info(fields, 'message');
    line(log, values);
  }
  // bindings that are not ASCII
  const other = createLogger('info', dest).child({ tenant: 'ümlaut ✓' });
  other.info({ msgId: 'a' }, 'message');
  hotLine(['msgId'], 'message')(other, ['a']);
  t.equal(bytes.length, cases.length + 1, 'each hot line written as bytes');
  // (compared as they reach the file: pino's line encoded, a lone surrogate turned into U+FFFD)
  const untimed = (l: string) => Buffer.from(l, 'utf8').toString('utf8').replace(/"time":\d+/, '"time":0');
  for (const [i, expected] of strings.entries()) t.equal(untimed(bytes[i]!), untimed(expected), `case ${i}: the same bytes as pino`);
  t.equal(JSON.parse(bytes[0]!).token, '[redacted]');
  t.equal(JSON.parse(bytes[0]!).to, '9199******99');

  // below its level nothing is written; a destination without writeBytes gets pino's own line
  hotLine(keys, 'message')(createLogger('warn', dest), cases[0]!);
  t.equal(bytes.length, cases.length + 1, 'nothing at warn');
  const { lines, stream } = capture();
  line(createLogger('info', stream), cases[1]!);
  t.equal(lines[0]!.msgId, 'q"uote\\back');
  t.equal(lines[0]!.to, '9198******10');
});
