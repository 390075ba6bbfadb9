// Function signature checks for the compiled fast path, memoized. jsonata validates every built-in
// call by building a type string of the arguments, matching it against the signature's regex and
// rearranging the arguments (context substitution, wrapping a value into an array); that costs about
// 250 ns a call, and a BSP request body makes dozens of such calls. The outcome depends only on the
// arguments' type string (and the context's type), except for typed arrays (`a<n>`), whose items are
// checked on each call. So each distinct type string is matched once and turned into a plan of slot
// moves; anything the plan cannot decide, and every failure, goes to jsonata's own validator, which
// then throws its own error (T0410/T0411/T0412) exactly as jsonata would.
/* eslint-disable @typescript-eslint/no-explicit-any */

export interface Signature {
  definition: string;
  validate(args: unknown[], context: unknown): unknown[];
}

interface Param {
  regex: string;
  type: string;
  context?: boolean;
  contextRegex?: RegExp;
  subtype?: string;
}

/** symbolOf as a small number (f s n b l a o m → 0..7): plan keys are then numbers, not strings. */
function symbolCode(value: any): number {
  // jsonata's isFunction first for objects and functions; a primitive never carries its brands
  switch (typeof value) {
    case 'string':
      return 1;
    case 'number':
      return 2;
    case 'boolean':
      return 3;
    case 'function':
      return 0;
    case 'object':
      if (value === null) return 4;
      if (value._jsonata_function === true || value._jsonata_lambda === true) return 0;
      return Array.isArray(value) ? 5 : 6;
    default:
      return 7;
  }
}

/** jsonata's one-letter type of a value (its signature module's getSymbol). */
export function symbolOf(value: any): string {
  return 'fsnblaom'.charAt(symbolCode(value));
}

/** The parameter list of a signature definition, read the way jsonata's parser reads it. */
function parseParams(definition: string): Param[] | undefined {
  const params: Param[] = [];
  let prev: Param | undefined;
  const push = (p: Param) => {
    params.push(p);
    prev = p;
  };
  const closing = (start: number, open: string, close: string): number => {
    let depth = 1;
    let pos = start;
    while (pos < definition.length) {
      pos++;
      const c = definition.charAt(pos);
      if (c === close && --depth === 0) break;
      if (c === open) depth++;
    }
    return pos;
  };
  for (let pos = 1; pos < definition.length; pos++) {
    const c = definition.charAt(pos);
    if (c === ':') break;
    switch (c) {
      case 's':
      case 'n':
      case 'b':
      case 'l':
      case 'o':
        push({ regex: `[${c}m]`, type: c });
        break;
      case 'a':
      case 'x':
        push({ regex: '[asnblfom]', type: c });
        break;
      case 'f':
        push({ regex: 'f', type: c });
        break;
      case 'j':
        push({ regex: '[asnblom]', type: c });
        break;
      case '-':
        if (!prev) return undefined;
        prev.context = true;
        prev.contextRegex = new RegExp(prev.regex);
        prev.regex += '?';
        break;
      case '?':
      case '+':
        if (!prev) return undefined;
        prev.regex += c;
        break;
      case '(': {
        const end = closing(pos, '(', ')');
        const choice = definition.substring(pos + 1, end);
        if (choice.includes('<')) return undefined;
        push({ regex: `[${choice}m]`, type: `(${choice})` });
        pos = end;
        break;
      }
      case '<': {
        if (!prev || (prev.type !== 'a' && prev.type !== 'f')) return undefined;
        const end = closing(pos, '<', '>');
        prev.subtype = definition.substring(pos + 1, end);
        pos = end;
        break;
      }
      default:
        break;
    }
  }
  return params;
}

// Plan steps: take argument i as is, wrap it into an array, pass undefined, pass the context, or take
// an array argument whose items must all have the subtype's type.
type Step = { op: 'arg' | 'wrap' | 'undef' | 'ctx'; i: number } | { op: 'typed'; i: number; item: string };

/** One plan per argument type string; null when jsonata's validator must decide (it then throws). */
function plan(params: Param[], regex: RegExp, supplied: string, contextSymbol: string): Step[] | null {
  const valid = regex.exec(supplied);
  if (!valid) return null;
  const steps: Step[] = [];
  let i = 0;
  for (let p = 0; p < params.length; p++) {
    const param = params[p]!;
    const match = valid[p + 1] ?? '';
    if (match === '') {
      if (param.context && param.contextRegex) {
        if (!param.contextRegex.test(contextSymbol)) return null;
        steps.push({ op: 'ctx', i });
      } else {
        steps.push({ op: 'arg', i: i++ });
      }
      continue;
    }
    for (const single of match) {
      if (param.type !== 'a') {
        steps.push({ op: 'arg', i: i++ });
      } else if (single === 'm') {
        steps.push({ op: 'undef', i: i++ });
      } else if (param.subtype !== undefined && single !== 'a') {
        if (match !== param.subtype) return null;
        steps.push({ op: 'wrap', i: i++ });
      } else if (param.subtype !== undefined) {
        steps.push({ op: 'typed', i: i++, item: param.subtype.charAt(0) });
      } else {
        steps.push({ op: single === 'a' ? 'arg' : 'wrap', i: i++ });
      }
    }
  }
  return steps;
}

const MAX_PLANS = 64;
const validators = new WeakMap<Signature, (args: unknown[], context: unknown) => unknown[]>();

/** A validator with the same results and errors as `sig.validate`, fast for repeated type strings. */
export function fastValidator(sig: Signature): (args: unknown[], context: unknown) => unknown[] {
  const known = validators.get(sig);
  if (known) return known;
  const slow = (args: unknown[], context: unknown) => sig.validate(args, context);
  const params = typeof sig.definition === 'string' ? parseParams(sig.definition) : undefined;
  if (!params) {
    validators.set(sig, slow);
    return slow;
  }
  const regex = new RegExp(`^${params.map((p) => `(${p.regex})`).join('')}$`);
  const usesContext = params.some((p) => p.context);
  // key: the argument count, then each argument's and the context's type code, in base 8
  const plans = new Map<number, Step[] | null | 'identity'>();
  const validate = (args: unknown[], context: unknown): unknown[] => {
    if (args.length > 8) return sig.validate(args, context);
    let key = args.length;
    for (let k = 0; k < args.length; k++) key = key * 8 + symbolCode(args[k]);
    if (usesContext) key = key * 8 + symbolCode(context);
    let steps = plans.get(key);
    if (steps === undefined) {
      let supplied = '';
      for (let k = 0; k < args.length; k++) supplied += symbolOf(args[k]);
      const made = plan(params, regex, supplied, usesContext ? symbolOf(context) : '');
      // arguments passed on as they are (the common case) need no new array
      // Identity also when the plan only adds trailing undefined arguments (an optional parameter not
      // given): jsonata's built-ins read a missing argument and an undefined one alike (default
      // parameters, typeof checks; none looks at arguments.length).
      steps = made !== null && made.length >= args.length && made.every((st, i) => st.op === 'arg' && st.i === i) ? 'identity' : made;
      if (plans.size < MAX_PLANS) plans.set(key, steps);
    }
    if (steps === 'identity') return args;
    if (steps === null) return sig.validate(args, context);
    const out: unknown[] = [];
    for (let s = 0; s < steps.length; s++) {
      const step = steps[s]!;
      switch (step.op) {
        case 'arg':
          out.push(args[step.i]);
          break;
        case 'wrap':
          out.push([args[step.i]]);
          break;
        case 'undef':
          out.push(undefined);
          break;
        case 'ctx':
          out.push(context);
          break;
        case 'typed': {
          const arr = args[step.i] as unknown[];
          if (arr.length > 0) {
            const first = symbolOf(arr[0]);
            if (first !== step.item) return sig.validate(args, context);
            for (let k = 1; k < arr.length; k++) if (symbolOf(arr[k]) !== first) return sig.validate(args, context);
          }
          out.push(arr);
          break;
        }
      }
    }
    return out;
  };
  validators.set(sig, validate);
  return validate;
}
