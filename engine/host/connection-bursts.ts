// Since libuv 1.45 (Node 20), a Node server takes one connection from the kernel's accept queue per
// event-loop turn (libuv/libuv#3696). Under load a turn lasts 50-100 ms, so when thousands of clients
// connect at once (a campaign starting; a load test) the first ones accepted send requests that keep
// every turn long, and the rest wait in the kernel, unseen by admission and past CleverTap's second:
// on this box `npm start` at -c 3000 left 1,500-4,000 connections there for up to 20 s (strace: one
// accept4 per epoll turn, ~15 a second). So while connections keep coming in consecutive turns (the
// kernel has more waiting), the ones accepted are not read yet: the turns stay short, the queue drains
// at turns' speed, and then every held connection is read, for admission to serve or shed. A
// connection that comes alone is read at once; a hold ends after `maxHoldMs` even if the burst goes on.
import type { Server, Socket } from 'node:net';

export interface BurstOptions {
  /** The longest a burst's connections wait to be read. */
  maxHoldMs: number;
}

export const BURST_DEFAULTS: BurstOptions = { maxHoldMs: 500 };

const acceptedAt = new WeakMap<Socket, number>();

/**
 * When a held connection was accepted (performance.now()), while its first request is read: that
 * request was already waiting, and its deadline counts from then, not from when it was read.
 */
export function heldSince(socket: Socket): number | undefined {
  return acceptedAt.get(socket);
}

/** Watches `server`'s connections; returns a function that stops watching (and reads what is held). */
export function holdConnectionBursts(server: Server, onHeld?: (n: number) => void, opts: BurstOptions = BURST_DEFAULTS): () => void {
  let ticking = false;
  let stopped = false;
  /** A connection came in this turn. */
  let came = false;
  /** Turns in a row with a new connection. */
  let streak = 0;
  let holdingSince = -1;
  let held = new Map<Socket, number>();

  const release = () => {
    holdingSince = -1;
    const sockets = held;
    if (sockets.size === 0) return;
    held = new Map();
    onHeld?.(sockets.size);
    for (const [s, at] of sockets) {
      if (s.destroyed) continue;
      acceptedAt.set(s, at);
      s.resume();
    }
    // The held requests are read in the next turn's poll phase; the turn after that reads new ones.
    setImmediate(() => {
      for (const s of sockets.keys()) acceptedAt.delete(s);
    });
  };
  // Node's HTTP server stops its handle polling on 'pause' and starts it on 'resume'. Its own 'data'
  // listener has a 'resume' queued for the next tick, which would undo a pause made now.
  const pause = (socket: Socket) => {
    if (held.has(socket)) socket.pause();
  };

  // Runs in the check phase of each turn while connections come: the turn's poll phase accepted at most one.
  const tick = () => {
    if (!came || stopped) {
      release();
      ticking = false;
      streak = 0;
      return;
    }
    came = false;
    streak++;
    const now = performance.now();
    if (holdingSince < 0) {
      if (streak >= 2) holdingSince = now;
    } else if (now - holdingSince > opts.maxHoldMs) {
      release();
      streak = 0;
    }
    setImmediate(tick);
  };

  const onConnection = (socket: Socket) => {
    came = true;
    if (holdingSince >= 0) {
      held.set(socket, performance.now());
      process.nextTick(pause, socket);
    }
    if (!ticking) {
      ticking = true;
      streak = 0;
      setImmediate(tick);
    }
  };
  server.on('connection', onConnection);
  return () => {
    stopped = true;
    server.off('connection', onConnection);
    release();
  };
}
