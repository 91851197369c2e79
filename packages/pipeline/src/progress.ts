// A terminal progress bar (steps with it/s and ETA, or bytes while loading) that redraws one line on
// a TTY and prints plain lines otherwise (CI logs, pipes).
export class Progress {
  private readonly tty: boolean;
  private readonly start = performance.now();
  private lastLine = 0;

  constructor(
    private readonly label: string,
    private readonly quiet = false,
  ) {
    this.tty = !!(process.stderr as { isTTY?: boolean }).isTTY;
  }

  step(done: number, total: number): void {
    const secs = (performance.now() - this.start) / 1000;
    const rate = done / Math.max(secs, 1e-9);
    const eta = (total - done) / Math.max(rate, 1e-9);
    this.write(`${this.label} ${bar(done / total)} ${done}/${total}  ${formatRate(rate)}  ETA ${clock(eta)}`, done === total);
  }

  bytes(what: string, done: number, total: number): void {
    this.write(`${this.label} ${what} ${bar(done / Math.max(total, 1))} ${(done / 2 ** 20).toFixed(1)}/${(total / 2 ** 20).toFixed(1)} MiB`, done >= total);
  }

  done(message: string): void {
    if (this.quiet) return;
    if (this.tty) process.stderr.write('\r\x1b[2K');
    process.stderr.write(`${message}\n`);
  }

  private write(line: string, force: boolean): void {
    if (this.quiet) return;
    if (this.tty) {
      process.stderr.write(`\r\x1b[2K${line}`);
      return;
    }
    const now = performance.now();
    if (force || now - this.lastLine > 2000) {
      this.lastLine = now;
      process.stderr.write(`${line}\n`);
    }
  }
}

function bar(f: number, width = 24): string {
  const n = Math.round(Math.min(1, Math.max(0, f)) * width);
  return `[${'#'.repeat(n)}${'.'.repeat(width - n)}]`;
}

function clock(s: number): string {
  if (!Number.isFinite(s)) return '--:--';
  const m = Math.floor(s / 60);
  return `${m}:${String(Math.round(s % 60)).padStart(2, '0')}`;
}

/** Steps per second as "2.50 it/s", or "12.34 s/it" when a step takes longer than a second (diffusers' tqdm alike). */
export function formatRate(itPerSec: number): string {
  return itPerSec >= 1 ? `${itPerSec.toFixed(2)} it/s` : `${(1 / itPerSec).toFixed(2)} s/it`;
}
