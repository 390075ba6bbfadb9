// The logger: secrets and phone numbers never reach a log line, and the objects logged are not changed.
import t from 'tap';
import { Writable } from 'node:stream';
import { createLogger, maskPhone, redactLog } from '../engine/logger.js';

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
