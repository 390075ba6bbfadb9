// The CleverTap side of a send, in the order the host runs it: bytes → lenient JSON → canonical
// message → mapping plan. Kept apart from the HTTP host so the CLI and golden tests run the same path.
import type { CanonicalMessage, NormalizeIssue } from '../clevertap/model.js';
import { parseCleverTapJson } from '../clevertap/lenient-json.js';
import { normalize } from '../clevertap/normalize.js';
import type { Mapping } from './loader.js';
import { failure, planSend, type Answer, type SendPlan } from './send.js';

export type CanonicalResult =
  | { ok: true; message: CanonicalMessage }
  | { ok: false; reason: 'json'; answer: Answer; detail: string }
  | { ok: false; reason: 'invalid'; answer: Answer; issues: NormalizeIssue[] };

/** One answer for every problem found: the first problem's code, all problems in the message. */
export function answerForIssues(issues: readonly NormalizeIssue[]): Answer {
  const first = issues[0];
  if (!first) return failure(2004, 'invalid payload');
  // The normalizer's messages usually name their path already; say it once.
  return failure(first.code, issues.map((i) => (!i.path || i.message.includes(i.path) ? i.message : `${i.path}: ${i.message}`)).join('; '));
}

export function toCanonical(text: string): CanonicalResult {
  const parsed = parseCleverTapJson(text);
  if (!parsed.ok) return { ok: false, reason: 'json', answer: failure(2004, `payload is not JSON: ${parsed.error}`), detail: parsed.error };
  const n = normalize(parsed.value);
  if (!n.ok) return { ok: false, reason: 'invalid', answer: answerForIssues(n.issues), issues: n.issues };
  return { ok: true, message: n.message };
}

export async function prepareSend(mapping: Mapping, text: string, settings: Record<string, unknown>, token?: string): Promise<SendPlan> {
  const c = toCanonical(text);
  if (!c.ok) return { kind: 'answer', answer: c.answer };
  return planSend(mapping, c.message, settings, token);
}
