// `wabridge serve`, `wabridge demo` and `wabridge dlq`: the commands that run or inspect the service.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, type Config } from '../host/config.js';
import type { Store } from '../stores/store.js';
import { WabError } from '../mapping/errors.js';
import { startHost, type Host } from '../host/host.js';
import { openRedisStore } from '../stores/redis.js';
import { openSqliteStore } from '../stores/sqlite.js';
import { startStandinsThread } from '../standins/thread.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function configPath(given: string | undefined): string {
  const file = given ?? process.env.WABRIDGE_CONFIG ?? 'wabridge.yaml';
  if (!existsSync(file)) throw new WabError('WAB_INPUT_INVALID', `no configuration at ${file} (use --config, WABRIDGE_CONFIG, or start from examples/wabridge.yaml)`);
  return file;
}

/** Runs until SIGTERM/SIGINT, then drains. Resolves with the exit code. */
function untilSignal(stop: () => Promise<void>): Promise<number> {
  return new Promise((res) => {
    const onSignal = (sig: string) => {
      process.stderr.write(`wabridge: ${sig}, draining\n`);
      stop().then(
        () => res(0),
        (e: unknown) => {
          process.stderr.write(`wabridge: error while stopping: ${(e as Error).message}\n`);
          res(1);
        },
      );
    };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
  });
}

/** `workers`: `--workers n|auto` (every worker runs this same command line, see engine/host/workers.ts). */
export async function serve(config: string | undefined, workers?: string): Promise<number> {
  const file = configPath(config);
  if (workers === undefined) {
    const host = await startHost({ configFile: file });
    return untilSignal(host.close);
  }
  const { isWorker, startPrimary, startWorker, workerCount } = await import('../host/workers.js');
  if (isWorker()) {
    const host = await startWorker(file);
    // The IPC channel to the primary would keep a drained worker alive.
    process.exit(await untilSignal(host.close));
  }
  const primary = await startPrimary(file, workerCount(workers), (line) => process.stderr.write(`${line}\n`));
  return untilSignal(primary.stop);
}

/**
 * The quickstart: the CleverTap sink, a simulated BSP for the demo tenant's mapping, and wabridge on
 * examples/wabridge.yaml, all on 127.0.0.1. Nothing leaves the machine.
 */
export async function demo(config: string | undefined): Promise<number> {
  const file = config ?? join(ROOT, 'examples', 'wabridge.yaml');
  const cfg = loadConfig(file);
  const tenant = cfg.tenants.get('demo') ?? [...cfg.tenants.values()][0]!;
  const statusUrl = new URL(tenant.callbacks.status);
  const bspUrl = new URL(String(tenant.settings.baseUrl ?? 'http://127.0.0.1:3200'));
  const standins = await startStandinsThread({
    sink: { port: Number(statusUrl.port) || 3100 },
    sim: {
      mappingDir: join(cfg.server.mappingsDir, tenant.provider),
      settings: tenant.settings,
      webhookUrl: `${cfg.server.publicUrl}/v1/tenants/${tenant.id}/webhook`,
      port: Number(bspUrl.port) || 3200,
      // wabridge may open up to a tenant's concurrency of connections to its BSP at once (1500 by default).
      backlog: 4096,
    },
  });
  let host: Host | undefined;
  try {
    host = await startHost({ configFile: file });
  } catch (e) {
    await standins.close();
    throw e;
  }
  const auth = 'basic' in tenant.auth ? `-u ${tenant.auth.basic.username}:${tenant.auth.basic.password}` : `-H '${tenant.auth.header.name}: …'`;
  process.stdout.write(
    [
      '',
      `wabridge demo: wabridge ${host.url}, simulated ${tenant.provider} BSP ${standins.simUrl}, CleverTap sink ${standins.sinkUrl}`,
      'Send a CleverTap template message and watch sent → delivered → read arrive at the sink:',
      `  curl -s ${auth} -H 'content-type: application/json' --data @examples/clevertap/template-body-footer.json ${host.url}/v1/tenants/${tenant.id}/messages`,
      `Simulate a user reply: curl -s -X POST ${standins.simUrl}/_sim/inbound -H 'content-type: application/json' -d '{"from":"919999999999","text":"hi"}'`,
      'Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );
  return untilSignal(async () => {
    await host!.close();
    await standins.close();
  });
}

/**
 * The store a configuration names, opened straight from this process for the commands that inspect it
 * with the service up or down (dlq, trace, campaign): Redis with the configured key prefix, SQLite on
 * the same file (which a running service shares).
 */
export async function openConfiguredStore(config: string | undefined): Promise<{ cfg: Config; store: Store }> {
  const cfg = loadConfig(configPath(config));
  return { cfg, store: cfg.store.redis ? await openRedisStore(cfg.store.redis, { prefix: cfg.store.redisPrefix }) : openSqliteStore(cfg.store.sqlite) };
}

export async function dlq(action: string | undefined, config: string | undefined, ids: string[], json: boolean): Promise<number> {
  const { store } = await openConfiguredStore(config);
  try {
    if (action === 'list') {
      const dead = await store.listDead(1000);
      if (json) process.stdout.write(`${JSON.stringify(dead)}\n`);
      else {
        for (const d of dead) process.stdout.write(`${d.id}  ${d.tenant}  ${d.kind}  msgId=${d.msgId ?? '-'}  attempts=${d.attempts}  ${d.lastError ?? ''}\n`);
        process.stdout.write(`${dead.length} dead callback(s)\n`);
      }
      return 0;
    }
    if (action === 'replay') {
      const n = await store.replayDead(Date.now(), ids.length > 0 ? ids : undefined);
      process.stdout.write(json ? `${JSON.stringify({ replayed: n })}\n` : `${n} callback(s) back in the outbox; a running wabridge delivers them\n`);
      return 0;
    }
    throw new WabError('WAB_INPUT_INVALID', `dlq needs list or replay, got '${action ?? ''}'`);
  } finally {
    await store.close();
  }
}
