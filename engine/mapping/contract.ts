// contracts.enforce: each send request body is held to the mapping's contracts.requestBody before the
// BSP call. I/O free once compiled, so the host, `wabridge map` and the goldens refuse the same bodies.
import type { ErrorObject, ValidateFunction } from 'ajv/dist/2020.js';
import { usefulErrors } from './schema-validator.js';

export interface RequestGuard {
  /** The schema file, relative to the mapping folder, as the answer names it. */
  schema: string;
  validate: ValidateFunction;
}

const MAX_SHOWN = 3;

function line(e: ErrorObject): string {
  return `${e.instancePath || '/'} ${e.message ?? e.keyword} (schema ${e.schemaPath}, keyword ${e.keyword})`;
}

/**
 * Why `value` (the body the mapping built) breaks the contract, or undefined when it keeps it. The
 * value is checked first, without parsing `wire` back: they differ only where JSON drops or rewrites
 * something (a key whose value is undefined, an undefined array item; a mapping gives no NaN or
 * Infinity, JSONata refuses them), and such a difference can only make the value fail where the wire
 * would pass, so a failure is confirmed on the parsed wire body.
 */
export function contractViolation(guard: RequestGuard, value: unknown, wire: string | undefined): string | undefined {
  if (value === undefined || value === null || wire === undefined) return `send.request.body is empty; contracts.requestBody (${guard.schema}) expects one`;
  if (guard.validate(value)) return undefined;
  if (guard.validate(JSON.parse(wire))) return undefined;
  const lines = [...new Set(usefulErrors(guard.validate.errors ?? []).map(line))];
  const shown = lines.slice(0, MAX_SHOWN).join('; ') + (lines.length > MAX_SHOWN ? `; and ${lines.length - MAX_SHOWN} more` : '');
  return `send.request.body breaks contracts.requestBody (${guard.schema}): ${shown}`;
}
