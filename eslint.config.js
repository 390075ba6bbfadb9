import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// engine/'s folders import only downwards: each folder's README.md says what it may import, and
// these rules hold it (test/engine-layers.test.ts proves they fire). Imports inside engine/ are
// relative, so "another folder" is always `../<folder>/`.
const folder = (name) => ({ regex: `^\\.\\./${name}(/|$)`, message: `engine/${name}/ is not below this folder (see this folder's README.md)` });
const typesOnly = (name) => ({ ...folder(name), allowTypeImports: true, message: `only types may come from engine/${name}/ here (see this folder's README.md)` });
const outsideEngine = { regex: '^(\\.\\./){2,}(test|bench|bin)(/|$)', message: 'engine/ never imports tests, benches or bin/' };
const layer = (files, ...patterns) => ({
  files,
  rules: { '@typescript-eslint/no-restricted-imports': ['error', { patterns: [...patterns, outsideEngine] }] },
});

export default tseslint.config(
  { ignores: ['node_modules/**', 'data/**', '.tap/**', 'dist/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  // The console's browser modules (engine/host/console/, served as they are, no build step).
  {
    files: ['engine/host/console/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: Object.fromEntries(['window', 'document', 'location', 'sessionStorage', 'fetch', 'URLSearchParams', 'Node', 'Blob', 'setTimeout', 'clearTimeout', 'console', 'URL'].map((g) => [g, 'readonly'])),
    },
  },
  layer(['engine/clevertap/**'], folder('mapping'), folder('host'), folder('stores'), folder('cli'), folder('standins')),
  layer(['engine/mapping/**'], folder('host'), folder('stores'), folder('cli'), folder('standins')),
  layer(['engine/stores/**'], typesOnly('mapping'), folder('clevertap'), folder('host'), folder('cli'), folder('standins')),
  layer(['engine/host/**'], folder('cli'), folder('standins')),
  layer(['engine/standins/**'], folder('host'), folder('stores'), folder('cli')),
  layer(['engine/cli/**']),
);
