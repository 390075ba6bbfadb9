// Tenant settings against a mapping's declarations, and ${ENV} references.
import t from 'tap';
import { WabError } from '../../engine/mapping/errors.js';
import { checkSettings, resolveEnvRefs, secretNames, type SettingDecl } from '../../engine/mapping/settings.js';

const decls: Record<string, SettingDecl> = {
  phoneNumberId: { type: 'string', description: 'Cloud API phone number id' },
  accessToken: { type: 'string', secret: true },
  apiVersion: { type: 'string', default: 'v23.0', pattern: '^v[0-9]+\\.[0-9]+$' },
  region: { type: 'string', enum: ['eu', 'us'], default: 'eu' },
  retries: { type: 'integer', default: 2 },
  ratio: { type: 'number', default: 0.5 },
  sandbox: { type: 'boolean', default: false },
  templates: { type: 'object', default: {} },
};
const required = { phoneNumberId: '1234', accessToken: 'tok' };

function settingsError(given: Record<string, unknown>, where?: string): WabError {
  try {
    checkSettings(decls, given, where);
  } catch (e) {
    if (e instanceof WabError) return e;
    throw e;
  }
  throw new Error(`expected ${JSON.stringify(given)} to be rejected`);
}

t.test('defaults are applied and given values kept', async (t) => {
  t.same(checkSettings(decls, required), { ...required, apiVersion: 'v23.0', region: 'eu', retries: 2, ratio: 0.5, sandbox: false, templates: {} });
  const given = { ...required, apiVersion: 'v19.0', region: 'us', retries: 0, ratio: 1, sandbox: true, templates: { welcome: 'tpl_1' } };
  t.same(checkSettings(decls, given), given, 'falsy values (0, false) are kept, not replaced by defaults');
});

t.test('a missing required setting', async (t) => {
  const e = settingsError({ accessToken: 'tok' }, 'tenants/acme.yaml');
  t.equal(e.code, 'WAB_SETTINGS_INVALID');
  t.equal(e.where, 'tenants/acme.yaml', 'where says which settings');
  t.match(e.message, /phoneNumberId: required/);
  t.match(e.message, /Cloud API phone number id/, 'the description helps the tenant');
  t.notMatch(e.message, /accessToken/, 'only the missing one');
});

t.test('wrong types', async (t) => {
  const cases: [string, unknown][] = [
    ['phoneNumberId', 1234],
    ['retries', 2.5],
    ['retries', '2'],
    ['ratio', Number.NaN],
    ['ratio', Number.POSITIVE_INFINITY],
    ['ratio', '0.5'],
    ['sandbox', 'false'],
    ['templates', ['a']],
    ['templates', 'tpl'],
  ];
  for (const [name, value] of cases) {
    const e = settingsError({ ...required, [name]: value });
    t.equal(e.code, 'WAB_SETTINGS_INVALID', `${name} = ${JSON.stringify(value)}`);
    t.match(e.message, new RegExp(`${name}: must be`), `${name}: names the setting and what it must be`);
  }
  t.same(checkSettings(decls, { ...required, ratio: 3 }).ratio, 3, 'an integer is a number');
});

t.test('pattern and enum', async (t) => {
  const pattern = settingsError({ ...required, apiVersion: '23.0' });
  t.equal(pattern.code, 'WAB_SETTINGS_INVALID');
  t.match(pattern.message, /apiVersion: must match/);
  const en = settingsError({ ...required, region: 'asia' });
  t.equal(en.code, 'WAB_SETTINGS_INVALID');
  t.match(en.message, /region: must be one of "eu", "us"/);
  t.equal(checkSettings({ n: { type: 'integer', enum: [1, 2] } }, { n: 2 }).n, 2, 'enum of numbers');
  t.same(checkSettings({ o: { type: 'object', enum: [{ a: 1 }] } }, { o: { a: 1 } }), { o: { a: 1 } }, 'enum compares by value');
  t.throws(() => checkSettings({ o: { type: 'object', enum: [{ a: 1 }] } }, { o: { a: 2 } }), { code: 'WAB_SETTINGS_INVALID' }, 'a different object is not in the enum');
});

t.test('unknown keys are rejected (typo protection)', async (t) => {
  const e = settingsError({ ...required, apiVerison: 'v20.0' });
  t.equal(e.code, 'WAB_SETTINGS_INVALID');
  t.match(e.message, /apiVerison: not a setting/);
  t.match(e.message, /apiVersion/, 'lists the known settings');
});

t.test('all problems are reported together', async (t) => {
  const e = settingsError({ accessToken: 5, region: 'asia', typo: 1 });
  for (const name of ['phoneNumberId', 'accessToken', 'region', 'typo']) t.match(e.message, new RegExp(`${name}:`), name);
});

t.test('secretNames', async (t) => {
  t.same(secretNames(decls), ['accessToken']);
});

t.test('${ENV} references', async (t) => {
  const env = { TOKEN: 'tok-123', REGION: 'us', EMPTY: '' };
  t.same(
    resolveEnvRefs({ accessToken: '${TOKEN}', url: 'https://${REGION}.api.test/${REGION}', empty: '[${EMPTY}]', n: 3, flag: true, none: null, list: ['${TOKEN}', 1], nested: { deep: { value: 'x-${TOKEN}' } } }, env),
    { accessToken: 'tok-123', url: 'https://us.api.test/us', empty: '[]', n: 3, flag: true, none: null, list: ['tok-123', 1], nested: { deep: { value: 'x-tok-123' } } },
    'resolved deeply, in strings, arrays and objects; other values untouched',
  );
  t.equal(resolveEnvRefs('$TOKEN and {TOKEN}', env), '$TOKEN and {TOKEN}', 'only ${NAME} is a reference');

  const missing = (value: unknown) => {
    try {
      resolveEnvRefs(value, env);
    } catch (e) {
      if (e instanceof WabError) return e;
      throw e;
    }
    throw new Error('expected a missing variable to be an error');
  };
  const e = missing({ nested: { list: ['ok', '${NOPE}'] } });
  t.equal(e.code, 'WAB_SETTINGS_INVALID');
  t.match(e.message, /settings\.nested\.list\[1\]/, 'names the path');
  t.match(e.message, /NOPE/, 'names the variable');
  t.match(missing('${NOPE}').message, /^settings: /, 'top-level path');
  t.equal(resolveEnvRefs('${NOPE:-fallback}', env), 'fallback', 'a ${NAME:-fallback} reference falls back');
});
