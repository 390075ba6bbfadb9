// The largest value noted over the last one to two windows, forgotten a window after it stops
// recurring: what was true a moment ago is likely true now (a commit slow now is slow for the next
// messages too; a loop that carried 300 requests on time can carry them again), and stale soon after.
// A note costs a comparison.
export class RecentMax {
  private current = 0;
  private previous = 0;
  private since = 0;

  constructor(private readonly windowMs = 500) {}

  note(value: number, now = performance.now()): void {
    this.roll(now);
    if (value > this.current) this.current = value;
  }

  value(now = performance.now()): number {
    this.roll(now);
    return Math.max(this.current, this.previous);
  }

  private roll(now: number): void {
    const age = now - this.since;
    if (age < this.windowMs) return;
    this.previous = age < 2 * this.windowMs ? this.current : 0;
    this.current = 0;
    this.since = now;
  }
}
