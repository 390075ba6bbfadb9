// One catalogue of error codes, shared by logs, HTTP answers, the CLI and docs/errors.md.
// Code is the stable identifier tests and scripts match on; messages may improve over time.

export const ErrorCodes = {
  WAB_MAPPING_NOT_FOUND: { status: 404, summary: 'no such mapping' },
  WAB_MAPPING_YAML: { status: 422, summary: 'mapping file is not valid YAML' },
  WAB_MAPPING_SCHEMA: { status: 422, summary: 'mapping file does not match schemas/mapping.schema.json' },
  WAB_MAPPING_COMPILE: { status: 422, summary: 'a JSONata expression does not compile' },
  WAB_MAPPING_EVAL: { status: 422, summary: 'a JSONata expression failed while mapping a message' },
  WAB_MAPPING_TIMEOUT: { status: 422, summary: 'a JSONata expression ran past its time limit' },
  WAB_MAPPING_DEPTH: { status: 422, summary: 'a JSONata expression recursed past its depth limit' },
  WAB_MAPPING_OUTPUT: { status: 422, summary: 'a mapping produced a value of the wrong shape' },
  WAB_TOKEN: { status: 502, summary: 'the access token a mapping declares could not be obtained' },
  WAB_SETTINGS_INVALID: { status: 422, summary: 'tenant settings do not match what the mapping declares' },
  WAB_FIXTURE_INVALID: { status: 422, summary: 'a golden fixture is incomplete or malformed' },
  WAB_INPUT_INVALID: { status: 400, summary: 'an input file or request body cannot be read' },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

/** An error whose `where` names the file:line:col (and mapping key) it comes from, when known. */
export class WabError extends Error {
  readonly code: ErrorCode;
  readonly where: string | undefined;

  constructor(code: ErrorCode, message: string, where?: string) {
    super(where ? `${where}: ${message}` : message);
    this.name = 'WabError';
    this.code = code;
    this.where = where;
  }

  get status(): number {
    return ErrorCodes[this.code].status;
  }

  toJSON(): { code: ErrorCode; message: string; where?: string } {
    return this.where ? { code: this.code, message: this.message, where: this.where } : { code: this.code, message: this.message };
  }
}
