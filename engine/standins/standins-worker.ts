// Entry of the stand-ins' thread (thread.ts): starts the CleverTap sink and the simulated BSP, says
// where they listen, and closes both when asked.
import { parentPort, workerData } from 'node:worker_threads';
import { startBspSimulator } from './bsp-simulator.js';
import { startCleverTapSink, throttledPrint } from './clevertap-sink.js';
import type { StandinsMessage, StandinsThreadOptions } from './thread.js';

const o = workerData as StandinsThreadOptions;
const post = (m: StandinsMessage) => parentPort!.postMessage(m);
try {
  const print = throttledPrint((line) => process.stdout.write(`${line}\n`), o.printPerSecond ?? 20);
  const sink = await startCleverTapSink({ port: o.sink.port, print, ...(o.sink.incomingAudioType ? { incomingAudioType: o.sink.incomingAudioType } : {}) });
  const sim = await startBspSimulator(o.sim);
  parentPort!.on('message', (m) => {
    if (m !== 'close') return;
    void Promise.allSettled([sim.close(), sink.close()]).then(() => {
      print.flush();
      post({ closed: true });
    });
  });
  post({ ready: { sinkUrl: sink.url, simUrl: sim.url } });
} catch (e) {
  post({ failed: (e as Error).message });
}
