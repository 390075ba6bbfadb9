// `wabridge new <bsp>`: the starting folder of a BSP. Everything it writes describes one small made-up
// JSON API, complete enough to lint, pass its golden fixtures and pass the generic provider test as
// generated, so every later edit starts from green; the comments say what to replace with the real
// BSP's documentation. Documented in docs/cli.md and docs/writing-a-mapping.md.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { WabError } from '../mapping/errors.js';
import { runMappingFixtures } from '../mapping/golden.js';
import { loadMapping } from '../mapping/loader.js';

const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const SENDER = '15550001111';

function mappingYaml(bsp: string): string {
  return `# yaml-language-server: $schema=../../schemas/mapping.schema.json
#
# ${bsp}: written by \`wabridge new ${bsp}\`. Every expression below describes a small made-up JSON API,
# so that the folder lints, passes its fixtures and runs against the local simulator from the start.
# Replace each part with what ${bsp}'s documentation says, one fixture at a time
# (docs/writing-a-mapping.md; the format: docs/mapping-format.md). Values are JSONata over
# {message, settings}; message is CleverTap's payload in one shape (docs/clevertap-model.md).
name: ${bsp}
title: ${bsp} WhatsApp API                # FILL IN: the BSP's product name
docs: https://example.invalid/${bsp}/docs  # FILL IN: the API reference this mapping follows

# What each tenant configures (wabridge.yaml); fixtures/settings.yaml holds fake test values.
# secret: true keeps a value out of logs and \`wabridge map\` output.
settings:
  # Keep a baseUrl: the simulator and the tests point it at the local stand-in.
  baseUrl: { type: string, default: "https://api.${bsp}.example" }   # FILL IN: the BSP's API host
  apiKey: { type: string, secret: true, description: "API key; FILL IN how the BSP authenticates" }
  sender: { type: string, pattern: "^[0-9]{6,15}$", description: "The business's WhatsApp number" }
  webhookSecret: { type: string, secret: true, description: "Signs the BSP's webhooks (see webhook.signature)" }

send:
  # FILL IN: refuse what the BSP cannot express (2001), and drop each type here as the body learns it.
  reject: |
    $not(message.isTemplate) and message.type != "text"
      ? {"code": 2001, "message": message.type & " messages are not mapped for ${bsp} yet"}
  request:
    method: POST
    url: settings.baseUrl & "/messages"              # FILL IN: the send endpoint
    headers:
      Authorization: '"Bearer " & settings.apiKey'   # FILL IN: the BSP's auth header
      Content-Type: '"application/json"'
    # FILL IN: the template body (header, body parameters, buttons) and each freeform type. Put
    # CleverTap's msgId in the BSP's client reference, if it has one, so statuses come back with it.
    body: |
      {
        "from": settings.sender,
        "to": message.to,
        "reference": message.msgId,
        "template": message.isTemplate ? {
          "name": message.template.name,
          "language": message.template.language,
          "parameters": [message.template.body.parameters.text]
        },
        "text": message.text.body
      }
  # Reads {status, headers, body}: where the BSP's message id is, and which CleverTap code each error
  # is (credentials 2000, template 2001, number 2002, opted out 2003, anything else 2004).
  response:
    success: status >= 200 and status < 300
    providerMessageId: body.id                       # FILL IN: where the BSP puts its message id
    error: |
      {
        "code": status = 401 or status = 403 ? 2000
              : body.error.code = "INVALID_TEMPLATE" ? 2001
              : body.error.code = "INVALID_NUMBER" ? 2002
              : 2004,
        "message": body.error.message ? body.error.code & ": " & body.error.message : "HTTP " & status
      }

webhook:
  # FILL IN: how the BSP signs its webhooks, exactly (the simulator signs with this too); delete the
  # section if it does not sign. Add handshake: if it verifies the webhook URL with a GET.
  signature:
    header: X-${bsp}-Signature
    algorithm: hmac-sha256
    encoding: hex
    prefix: "sha256="
    secret: webhookSecret
  # FILL IN: one BSP body -> a list of events (schemas/events.schema.json): statuses with the BSP's id
  # (and msgId when it echoes the reference) and a 1000-1010 code for failures; incoming messages in
  # CleverTap's shape, with replyTo for the message answered.
  events: |
    body.type = "status" ? [{
      "event": "status",
      "providerMessageId": body.id,
      "msgId": body.reference,
      "status": body.status,
      "timestamp": body.timestamp,
      "error": body.status = "failed" ? {"code": body.error.code = "UNREACHABLE" ? 1007 : 1000, "title": body.error.message},
      "providerError": body.error
    }]
    : body.type = "message" ? [{
      "event": "incoming",
      "providerMessageId": body.id,
      "replyTo": body.context.id,
      "message": $merge([
        {"from": body.from, "wabaNumber": body.to, "timestamp": body.timestamp},
        body.button ? {"type": "button", "button": {"payload": body.button.payload, "text": body.button.text}}
                    : {"type": "text", "text": {"body": body.text}}
      ])
    }]
    : []
`;
}

function simulatorYaml(bsp: string): string {
  return `# yaml-language-server: $schema=../../schemas/simulator.schema.json
#
# How the local stand-in (engine/standins/bsp-simulator.ts) plays ${bsp} for \`npm start\`-style demos
# and the tests. Written by \`wabridge new ${bsp}\` for the same made-up API as mapping.yaml: replace
# every shape with the BSP's documented one, ideally copied from this folder's fixtures (named in each
# comment). Only ids and timestamps should be generated. The format: docs/standins.md.
name: ${bsp}
title: ${bsp} (simulated)
docs: https://example.invalid/${bsp}/docs   # FILL IN

functions:
  digits: |
    function($s) { $replace($string($s), /[^0-9]/, "") }
  # The error body of every failed call (fixtures response-error-*/).
  apiError: |
    function($code, $message) { {"error": {"code": $code, "message": $message}} }

messageId: uuid

# Truthy when the request carries the right credentials (else errors.auth, whatever the scenario).
authorized: headers.authorization = "Bearer " & settings.apiKey

send:
  method: POST
  path: /messages
  recipient: $digits(body.to)
  msgId: body.reference
  # fixture response-success/
  accepted:
    status: 200
    headers:
      Content-Type: '"application/json"'
    body: '{"id": id}'
  errors:
    # fixture response-error-auth/
    auth:
      status: 401
      headers:
        Content-Type: '"application/json"'
      body: '$apiError("UNAUTHORIZED", "Invalid API key")'
    # fixture response-error-template/
    template:
      status: 400
      headers:
        Content-Type: '"application/json"'
      body: '$apiError("INVALID_TEMPLATE", "Template parameters do not match the template")'
    # fixture response-error-number/
    number:
      status: 400
      headers:
        Content-Type: '"application/json"'
      body: '$apiError("INVALID_NUMBER", "The recipient is not a valid WhatsApp number")'
    # fixture response-error-rate/
    rate:
      status: 429
      headers:
        Content-Type: '"application/json"'
      body: '$apiError("RATE_LIMITED", "Too many requests")'
    # fixture response-error-server/
    server:
      status: 500
      headers:
        Content-Type: '"application/json"'
      body: '$apiError("INTERNAL_ERROR", "Internal error")'

webhooks:
  encoding: json
  # fixtures webhook-status-delivered/ and webhook-status-failed/
  status: '{"type": "status", "id": id, "status": status, "timestamp": timestamp, "reference": msgId, "error": error}'
  # fixture webhook-status-failed/
  failedError: '{"code": "UNREACHABLE", "message": "Recipient is not reachable on WhatsApp"}'
  # fixture webhook-inbound-text/
  text: |
    {"type": "message", "id": id, "from": $digits(from), "to": settings.sender, "timestamp": timestamp,
     "context": replyTo ? {"id": replyTo}, "text": text}
  # fixture webhook-inbound-button/
  button: |
    {"type": "message", "id": id, "from": $digits(from), "to": settings.sender, "timestamp": timestamp,
     "context": replyTo ? {"id": replyTo}, "button": {"payload": button.payload, "text": button.text}}
  # FILL IN: image (and a media section) when the BSP delivers inbound media.

# What the mapping must make of these webhooks where that is ${bsp}'s own (read by
# test/providers/provider-suite.ts; docs/standins.md).
expect:
  failed: {error: {code: 1007}, providerError: {code: "UNREACHABLE"}}
  incoming: {wabaNumber: "${SENDER}"}
`;
}

const SETTINGS_YAML = `# Fake values for the fixtures and the simulator; never a real credential.
apiKey: test-api-key
sender: "${SENDER}"
webhookSecret: test-webhook-secret
`;

const TEMPLATE_MESSAGE = {
  payloadVersion: 0.1,
  to: '919999999999',
  wabaNumber: '91999999XXXX',
  isTemplate: true,
  msgId: '25596363|1639561857|20220227|25596363',
  template: { namespace: 'Namespace:sample', languageCode: 'en(uk)' },
  components: [{ type: 'body', body: { text: 'This is sample body', parameters: [{ type: 'text', text: 'Sample' }] } }],
};

const TEXT_MESSAGE = {
  payloadVersion: 0.1,
  to: '919999999999',
  wabaNumber: '91999999XXXX',
  msgId: '25596363|1639561857|20220227|25596363',
  type: 'text',
  isTemplate: false,
  text: { body: 'This is message body' },
};

interface Case {
  description: string;
  kind: string;
  extra?: string;
  input?: unknown;
}

const apiError = (code: string, message: string) => ({ error: { code, message } });

function cases(bsp: string): Record<string, Case> {
  const src = `FILL IN: the page of ${bsp}'s documentation this sample comes from`;
  return {
    'send-template': { description: `CleverTap template with one body parameter -> ${bsp}'s template request. ${src}`, kind: 'send', input: TEMPLATE_MESSAGE },
    'send-text': { description: `CleverTap freeform text -> ${bsp}'s text request. ${src}`, kind: 'send', input: TEXT_MESSAGE },
    'response-success': { description: `Accepted -> success with the message id. ${src}`, kind: 'response', extra: 'status: 200', input: { id: 'a3f1c2d4-5b6e-4f70-8a9b-0c1d2e3f4a5b' } },
    'response-error-auth': { description: `401, wrong API key -> 2000. ${src}`, kind: 'response', extra: 'status: 401', input: apiError('UNAUTHORIZED', 'Invalid API key') },
    'response-error-template': { description: `400, template parameters refused -> 2001. ${src}`, kind: 'response', extra: 'status: 400', input: apiError('INVALID_TEMPLATE', 'Template parameters do not match the template') },
    'response-error-number': { description: `400, recipient not on WhatsApp -> 2002. ${src}`, kind: 'response', extra: 'status: 400', input: apiError('INVALID_NUMBER', 'The recipient is not a valid WhatsApp number') },
    'response-error-rate': { description: `429, rate limited -> 2004. ${src}`, kind: 'response', extra: 'status: 429', input: apiError('RATE_LIMITED', 'Too many requests') },
    'response-error-server': { description: `500 -> 2004. ${src}`, kind: 'response', extra: 'status: 500', input: apiError('INTERNAL_ERROR', 'Internal error') },
    'transport-timeout': { description: `No answer in time -> 2004.`, kind: 'transport', extra: 'error: { kind: timeout, message: "no answer in 900 ms" }' },
    'webhook-status-delivered': {
      description: `Delivered status echoing the reference -> status delivered with the msgId. ${src}`,
      kind: 'webhook',
      input: { type: 'status', id: 'a3f1c2d4-5b6e-4f70-8a9b-0c1d2e3f4a5b', status: 'delivered', timestamp: '1700000000', reference: TEXT_MESSAGE.msgId },
    },
    'webhook-status-failed': {
      description: `Failed status, recipient unreachable -> failed 1007. ${src}`,
      kind: 'webhook',
      input: { type: 'status', id: 'a3f1c2d4-5b6e-4f70-8a9b-0c1d2e3f4a5b', status: 'failed', timestamp: '1700000000', reference: TEXT_MESSAGE.msgId, error: { code: 'UNREACHABLE', message: 'Recipient is not reachable on WhatsApp' } },
    },
    'webhook-inbound-text': {
      description: `Inbound text answering a message -> incoming text with replyTo. ${src}`,
      kind: 'webhook',
      input: { type: 'message', id: 'b7e2d3c4-1a2b-4c3d-9e8f-7a6b5c4d3e2f', from: '919999999999', to: SENDER, timestamp: '1700000100', context: { id: 'a3f1c2d4-5b6e-4f70-8a9b-0c1d2e3f4a5b' }, text: 'Hi there' },
    },
    'webhook-inbound-button': {
      description: `Quick-reply tap -> incoming button. ${src}`,
      kind: 'webhook',
      input: { type: 'message', id: 'c8f3e4d5-2b3c-4d4e-8f9a-8b7c6d5e4f3a', from: '919999999999', to: SENDER, timestamp: '1700000200', button: { payload: 'STOP_PROMOS', text: 'Stop' } },
    },
  };
}

/**
 * Writes mappings/<bsp>/ under `root` and its fixtures' expected.json (produced by the golden runner:
 * review them like any other). Returns the files written, relative to the working directory.
 */
export async function scaffold(bsp: string, root: string): Promise<string[]> {
  if (!NAME.test(bsp)) {
    throw new WabError('WAB_INPUT_INVALID', `'${bsp}' is not a BSP name: lower-case letters, digits and '-', starting with a letter or digit (it names the folder and the webhook route)`);
  }
  const dir = join(root, bsp);
  if (existsSync(dir)) throw new WabError('WAB_INPUT_INVALID', `${dir} already exists: wabridge new never overwrites a folder`);
  const written: string[] = [];
  const write = (path: string, text: string) => {
    const file = join(dir, path);
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, text, { flag: 'wx' });
    written.push(relative(process.cwd(), file) || file);
  };
  write('mapping.yaml', mappingYaml(bsp));
  write('simulator.yaml', simulatorYaml(bsp));
  write('fixtures/settings.yaml', SETTINGS_YAML);
  for (const [name, c] of Object.entries(cases(bsp))) {
    const header = '# yaml-language-server: $schema=../../../../schemas/fixture.schema.json\n';
    write(`fixtures/${name}/fixture.yaml`, `${header}description: ${JSON.stringify(c.description)}\nkind: ${c.kind}\n${c.extra ? `${c.extra}\n` : ''}`);
    if (c.input !== undefined) write(`fixtures/${name}/input.json`, `${JSON.stringify(c.input, null, 2)}\n`);
  }
  const loaded = loadMapping(dir);
  if (!loaded.ok) throw new Error(`the scaffold does not load: ${loaded.errors.map((e) => e.message).join('; ')}`);
  for (const r of await runMappingFixtures(loaded.mapping, { update: true })) {
    if (r.outcome !== 'updated') throw new Error(`the scaffold's fixture ${r.name} did not run: ${r.detail ?? r.outcome}`);
    written.push(join(r.dir, 'expected.json'));
  }
  return written;
}
