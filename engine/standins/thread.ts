// The demo's two stand-ins (the CleverTap sink and the simulated BSP) on a thread of their own. In one
// event loop with wabridge they took about half of its time: each message the demo sends brings a BSP
// call, three status webhooks and three callbacks, and playing the other side of each costs about as
// much as wabridge's side. Sharing the loop, every stand-in turn delayed CleverTap's answers; on their
// own thread the demo stays one process (`npm start`) and wabridge's loop does only wabridge's work.
import { Worker } from 'node:worker_threads';
import type { BspSimulatorOptions } from './bsp-simulator.js';

export interface StandinsThreadOptions {
  sink: { port: number; incomingAudioType?: 'audio' | 'voice' };
  /** The simulator's options that can cross to a thread (no logger, no random source). */
  sim: Omit<BspSimulatorOptions, 'logger' | 'random'>;
  /** Sink lines printed per second at most; the rest are counted in one summary line per second. */
  printPerSecond?: number;
}

export interface StandinsThread {
  sinkUrl: string;
  simUrl: string;
  close(): Promise<void>;
}

export type StandinsMessage = { ready: { sinkUrl: string; simUrl: string } } | { failed: string } | { closed: true };

function startWorker(workerData: StandinsThreadOptions): Worker {
  const entry = new URL(`./standins-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, { workerData });
  // From the TypeScript sources (tsx): a worker does not inherit the loader, so it registers it first.
  const boot = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(boot, { eval: true, workerData });
}

export async function startStandinsThread(options: StandinsThreadOptions): Promise<StandinsThread> {
  const worker = startWorker(options);
  const urls = await new Promise<{ sinkUrl: string; simUrl: string }>((resolve, reject) => {
    const fail = (e: Error) => reject(new Error(`the demo's stand-ins did not start: ${e.message}`));
    worker.once('error', fail);
    worker.once('exit', (code) => fail(new Error(`their thread exited (${code})`)));
    worker.once('message', (m: StandinsMessage) => {
      if ('ready' in m) resolve(m.ready);
      else if ('failed' in m) fail(new Error(m.failed));
    });
  });
  worker.removeAllListeners('exit');
  worker.removeAllListeners('error');
  // A stand-in that dies mid-demo is worth a line, not the host: wabridge keeps answering and queues callbacks.
  worker.on('error', (e) => process.stderr.write(`wabridge demo: the stand-ins' thread failed: ${e.message}\n`));
  return {
    ...urls,
    async close() {
      const closed = new Promise<void>((resolve) => {
        worker.on('message', (m: StandinsMessage) => 'closed' in m && resolve());
        worker.once('exit', () => resolve());
      });
      worker.postMessage('close');
      await Promise.race([closed, new Promise((r) => setTimeout(r, 5000).unref())]);
      await worker.terminate();
    },
  };
}
