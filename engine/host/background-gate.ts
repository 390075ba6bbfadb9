// Background work (callback delivery, pending-status look-ups) has hours of budget; CleverTap's answers
// have one second. While sends wait for the event loop, a background round is put off, but never for
// more than `maxHoldMs` in a row, so callbacks slow down under load instead of stopping: their delay
// is bounded and shows in wabridge_callback_delay_seconds.
export class BackgroundGate {
  private heldSince: number | undefined;

  constructor(
    private readonly pressed: () => boolean,
    private readonly maxHoldMs: number,
    /** Called with the time a hold lasted, when it ends. */
    private readonly onHeld: (ms: number) => void = () => undefined,
  ) {}

  /** True: put this round off. False: run it (no pressure, or held long enough already). */
  hold(now = performance.now()): boolean {
    if (this.pressed()) {
      if (this.heldSince === undefined) this.heldSince = now;
      if (now - this.heldSince < this.maxHoldMs) return true;
    }
    if (this.heldSince !== undefined) this.onHeld(now - this.heldSince);
    this.heldSince = undefined;
    return false;
  }
}
