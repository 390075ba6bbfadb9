// The part of autocannon's programmatic API (v9, https://github.com/mcollina/autocannon#api) that
// bench/load.ts uses; the package ships no types.
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events';

  namespace autocannon {
    interface Request {
      method?: string;
      path?: string;
      headers?: Record<string, string>;
      body?: string | Buffer;
      setupRequest?: (req: Record<string, unknown>, context: Record<string, unknown>) => Record<string, unknown> | null | undefined;
      onResponse?: (status: number, body: string, context: Record<string, unknown>, headers: Record<string, string>) => void;
    }
    interface Options {
      url: string;
      method?: string;
      connections?: number;
      pipelining?: number;
      duration?: number | string;
      amount?: number;
      /** Seconds. */
      timeout?: number;
      headers?: Record<string, string>;
      body?: string | Buffer;
      idReplacement?: boolean;
      verifyBody?: (body: string) => boolean;
      expectBody?: string;
      requests?: Request[];
      bailout?: number;
      /** Called with each connection's client as it is created. */
      setupClient?: (client: Client) => void;
    }
    interface Histogram {
      average: number;
      mean: number;
      stddev: number;
      min: number;
      max: number;
      total: number;
      p50: number;
      p90: number;
      p99: number;
      p99_9: number;
    }
    interface Result {
      duration: number;
      errors: number;
      timeouts: number;
      mismatches: number;
      non2xx: number;
      latency: Histogram;
      requests: Histogram & { sent: number };
      statusCodeStats?: Record<string, { count: number }>;
      start: Date;
      finish: Date;
    }
    /** One connection; emits 'response', 'timeout', 'connError', ... */
    type Client = EventEmitter;
    interface Instance extends EventEmitter {
      stop(): void;
    }
  }
  function autocannon(opts: autocannon.Options): autocannon.Instance;
  export = autocannon;
}
