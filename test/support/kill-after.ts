// Runs a TypeScript script in a child process and kills it with SIGKILL the moment it prints
// `marker`: for tests that what a process acknowledged survives kill -9.
import { spawn } from 'node:child_process';
import { ROOT } from './stack.js';

export async function killAfter(script: string, marker: string, timeoutMs = 10_000): Promise<{ printed: boolean; signal: NodeJS.Signals | null; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  const printed = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes(marker)) {
        clearTimeout(timer);
        child.kill('SIGKILL');
        resolve(true);
      }
    });
    child.on('exit', () => resolve(false));
  });
  if (!printed) child.kill('SIGKILL');
  return { printed, signal: await exited, stderr };
}
