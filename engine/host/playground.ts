// The console playground's admin routes: the loaded mappings and their fixture cases to pick from,
// a mapping's YAML to edit in the page, and runs of one stage. GETs only read; a run is a POST and
// changes nothing either (an edited mapping is compiled for the run and dropped, never written).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as yieldToIo } from 'node:timers/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest, RawServerDefault } from 'fastify';
import type { Logger } from 'pino';
import { WabError } from '../mapping/errors.js';
import { readFixture, readInput } from '../mapping/golden.js';
import { MAPPING_FILE, type Mapping } from '../mapping/loader.js';
import type { MappingRegistry } from './registry.js';
import { fixtureDir, listFixtures, LoadFailure, position, readMessage, runPlayground, STAGES, type RunRequest, type Stage } from './playground-run.js';
import { safeHeaders } from './trace.js';

/** Largest input (payload, response or webhook) and largest edited YAML a run takes, in bytes. */
export const MAX_INPUT_BYTES = 256 * 1024;
export const MAX_YAML_BYTES = 256 * 1024;
/** Runs waiting for their turn beyond which a run is refused (429). */
const MAX_QUEUED = 4;

type Guard = (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

const bad = (reply: FastifyReply, message: string) => reply.code(400).send({ message, code: 'WAB_INPUT_INVALID' });

const isStringRecord = (v: unknown): v is Record<string, string> => !!v && typeof v === 'object' && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');

/** The run request checked field by field: a RunRequest, or what is wrong with it. */
function parseRun(body: unknown): RunRequest | string {
  if (typeof body !== 'string' || !/\S/.test(body)) return 'the body must be JSON: {mapping, kind, input | fixture, yaml?, settings?}';
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(body) as Record<string, unknown>;
  } catch (e) {
    return `body is not valid JSON: ${(e as Error).message}`;
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return 'the body must be a JSON object';
  if (typeof v.mapping !== 'string') return 'mapping: the name of a loaded mapping is required';
  if (!(STAGES as readonly unknown[]).includes(v.kind)) return `kind: one of ${STAGES.join(', ')}`;
  for (const k of ['yaml', 'input', 'contentType', 'fixture', 'message'] as const) {
    if (v[k] !== undefined && typeof v[k] !== 'string') return `${k}: must be a string`;
  }
  if (v.input === undefined && v.fixture === undefined) return 'input (the payload to map) or fixture (a case of the mapping) is required';
  if (v.status !== undefined && !(Number.isInteger(v.status) && (v.status as number) >= 100 && (v.status as number) <= 599)) return 'status: an HTTP status from 100 to 599';
  if (v.headers !== undefined && !isStringRecord(v.headers)) return 'headers: an object of strings';
  if (v.settings !== undefined && (!v.settings || typeof v.settings !== 'object' || Array.isArray(v.settings))) return 'settings: an object';
  return { ...(v as object), kind: v.kind as Stage } as RunRequest;
}

/**
 * Runs work one at a time, each after the event loop has served what was waiting (a run compiles and
 * evaluates on the host's loop, where sends have a 1 s budget); undefined when `max` wait already.
 */
export function oneAtATime(max: number) {
  let queue: Promise<unknown> = Promise.resolve();
  let waiting = 0;
  return <T>(work: () => Promise<T>): Promise<T> | undefined => {
    if (waiting >= max) return undefined;
    waiting++;
    const turn = queue.then(async () => {
      await yieldToIo();
      return work();
    });
    queue = turn.then(
      () => undefined,
      () => undefined,
    );
    return turn.finally(() => waiting--);
  };
}

function summary(m: Mapping) {
  return { name: m.name, title: m.title, version: m.version, file: m.file, extends: m.extends, loadedAt: m.loadedAt.toISOString() };
}

export function registerPlayground(app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Logger>, registry: MappingRegistry, admin: Guard): void {
  const pre = { preHandler: admin };
  const takeTurn = oneAtATime(MAX_QUEUED);
  const mappingOr404 = (name: string, reply: FastifyReply): Mapping | undefined => {
    const m = registry.get(name);
    if (!m) void reply.code(404).send({ message: `no loaded mapping '${name}' (loaded: ${registry.names().join(', ') || 'none'})`, code: 'WAB_MAPPING_NOT_FOUND' });
    return m;
  };

  app.get('/v1/admin/playground/mappings', pre, async () => {
    const mappings = [];
    for (const name of registry.names()) {
      const m = registry.get(name);
      if (!m) continue;
      mappings.push({ ...summary(m), fixtures: listFixtures(m) });
      // The first listing reads every fixture.yaml: one mapping at a time, sends in between.
      await yieldToIo();
    }
    return { mappings };
  });

  app.get<{ Params: { name: string } }>('/v1/admin/playground/mappings/:name', pre, async (req, reply) => {
    const m = mappingOr404(req.params.name, reply);
    if (!m) return reply;
    return {
      ...summary(m),
      // What is on disk: the text to edit (the loaded version may be older when an edit failed to reload).
      yaml: existsSync(join(m.dir, MAPPING_FILE)) ? readFileSync(join(m.dir, MAPPING_FILE), 'utf8') : '',
      settings: Object.entries(m.settings).map(([name, d]) => ({ name, type: d.type, secret: d.secret === true, required: d.default === undefined })),
      expressions: m.expressions.map((e) => ({ slot: e.name, where: e.where, path: e.fastPath ? 'fast' : 'jsonata', ...(e.declined ? { declined: e.declined } : {}) })),
    };
  });

  app.get<{ Params: { name: string; case: string } }>('/v1/admin/playground/mappings/:name/fixtures/:case', pre, async (req, reply) => {
    const m = mappingOr404(req.params.name, reply);
    if (!m) return reply;
    const dir = fixtureDir(m, req.params.case);
    if (!dir) return reply.code(404).send({ message: `no fixture case '${req.params.case}' in ${m.name}`, code: 'WAB_NOT_FOUND' });
    try {
      const f = readFixture(dir);
      const input = readInput(dir, f.kind);
      return {
        name: req.params.case,
        kind: f.kind,
        description: f.description,
        ...(input ? { input: input.text, contentType: input.contentType } : {}),
        ...(f.status === undefined ? {} : { status: f.status }),
        ...(f.headers === undefined ? {} : { headers: safeHeaders(f.headers) }),
        ...(f.query === undefined ? {} : { query: f.query }),
        // Names only: a run with this fixture uses the values on the server.
        ...(f.settings === undefined ? {} : { settings: Object.keys(f.settings) }),
        ...(f.message === undefined ? {} : { message: readMessage(dir, f.message) }),
      };
    } catch (e) {
      if (e instanceof WabError) return reply.code(e.status).send({ message: e.message, code: e.code });
      throw e;
    }
  });

  app.post<{ Body: string }>('/v1/admin/playground/run', pre, async (req, reply) => {
    const run = parseRun(req.body);
    if (typeof run === 'string') return bad(reply, run);
    for (const [field, text, max] of [['input', run.input, MAX_INPUT_BYTES], ['message', run.message, MAX_INPUT_BYTES], ['yaml', run.yaml, MAX_YAML_BYTES]] as const) {
      if (text !== undefined && Buffer.byteLength(text, 'utf8') > max) return reply.code(413).send({ message: `${field} larger than ${max} bytes`, code: 'WAB_PLAYGROUND_TOO_LARGE' });
    }
    const live = mappingOr404(run.mapping, reply);
    if (!live) return reply;
    const turn = takeTurn(() => runPlayground(live, run));
    if (!turn) return reply.code(429).header('retry-after', '1').send({ message: `${MAX_QUEUED} playground runs are waiting already; try again`, code: 'WAB_PLAYGROUND_BUSY' });
    try {
      return await turn;
    } catch (e) {
      if (e instanceof LoadFailure) {
        const errors = e.errors.map((w) => ({ code: w.code, message: w.message, ...position(w.where) }));
        // Every problem in the message, the first one's place first: a page that shows only the message still shows them all.
        return reply.code(422).send({ ...errors[0], message: errors.map((x) => x.message).join('\n'), errors });
      }
      if (e instanceof WabError) return reply.code(e.status >= 500 ? 422 : e.status).send({ code: e.code, message: e.message, ...position(e.where) });
      throw e;
    }
  });
}
