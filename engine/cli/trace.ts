// `wabridge trace <msgId|bspMessageId>`: one message's timeline, read straight from the configured
// store (like `wabridge dlq`), so it works with the service down too.
import { loadConfig } from '../host/config.js';
import { formatTrace } from '../host/trace.js';
import { WabError } from '../mapping/errors.js';
import { openRedisStore } from '../stores/redis.js';
import { openSqliteStore } from '../stores/sqlite.js';
import { configPath } from './serve.js';

export async function trace(id: string | undefined, config: string | undefined, json: boolean, write: (text: string) => void = (t) => process.stdout.write(t)): Promise<number> {
  if (!id) throw new WabError('WAB_INPUT_INVALID', 'trace needs a CleverTap msgId or a BSP message id');
  const cfg = loadConfig(configPath(config));
  const store = cfg.store.redis ? await openRedisStore(cfg.store.redis, { prefix: cfg.store.redisPrefix }) : openSqliteStore(cfg.store.sqlite);
  try {
    const events = await store.readTrace(id, 10_000);
    if (json) write(`${JSON.stringify({ id, events })}\n`);
    else if (events.length > 0) write(`${formatTrace(events)}\n`);
    else write(`no trace for '${id}'${cfg.trace.keepMs === 0 ? ' (tracing is off: trace.keep is 0s)' : ''}\n`);
    return events.length > 0 ? 0 : 1;
  } finally {
    await store.close();
  }
}
