// pino, with what must never reach a log file redacted at the source: credentials, tokens and
// phone numbers. Phone numbers keep their first 4 and last 2 digits so support can still match them.
import pino, { type Logger } from 'pino';

const REDACT = [
  'req.headers.authorization',
  '*.password',
  '*.accessToken',
  '*.token',
  '*.apiKey',
  '*.secret',
];

export function maskPhone(phone: string | undefined): string | undefined {
  if (!phone) return phone;
  const digits = phone.replace(/[^0-9]/g, '');
  if (digits.length <= 6) return '***';
  return `${digits.slice(0, 4)}${'*'.repeat(digits.length - 6)}${digits.slice(-2)}`;
}

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { service: 'wabridge' },
      redact: { paths: REDACT, censor: '[redacted]' },
      serializers: {
        to: (v: string) => maskPhone(v),
        from: (v: string) => maskPhone(v),
      },
    },
    destination as pino.DestinationStream | undefined,
  );
}

export type { Logger };
