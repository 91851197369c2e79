// Faults never crash or hang: device loss and uncaptured GPU errors (and kernel compile errors, which
// the kernel cache reports here) are remembered and thrown as typed errors (DeviceLostError, GpuError,
// KernelCompileError) by the next call into the context.
import { DeviceLostError, GpuError, type SsdError } from './errors.js';

export class DeviceWatch {
  private lostReason: string | null = null;
  private pending: SsdError | null = null;
  private destroyed = false;
  private readonly lost: Promise<never>;

  constructor(device: GPUDevice) {
    this.lost = device.lost.then((info) => {
      this.lostReason = this.destroyed ? 'the context was destroyed' : info.message || String(info.reason);
      throw new DeviceLostError(this.lostReason);
    });
    this.lost.catch(() => {}); // observed through checkAlive()
    device.addEventListener('uncapturederror', (ev) => {
      const err = (ev as GPUUncapturedErrorEvent).error;
      if (this.pending) return; // keep the first, it is the cause
      // Dawn reports every object made from an invalid one again; those are echoes of an error
      // that was (or is being) reported already
      if (/invalid due to a previous error/i.test(err.message)) return;
      const name = err.constructor?.name;
      const kind = name === 'GPUOutOfMemoryError' ? 'out-of-memory' : name === 'GPUValidationError' ? 'validation' : name === 'GPUInternalError' ? 'internal' : 'unknown';
      this.pending = new GpuError(kind, err.message);
    });
  }

  /** Remembers an error for the next call (only the first: it is the cause). */
  report(e: SsdError): void {
    this.pending ??= e;
  }

  get hasError(): boolean {
    return this.pending !== null;
  }

  /** The error reported since the last call, cleared (the caller drops the failed work and throws it). */
  takeError(): SsdError | null {
    const e = this.pending;
    this.pending = null;
    return e;
  }

  /** Throws DeviceLostError when the device is lost or the context destroyed. */
  checkAlive(): void {
    if (this.lostReason !== null) throw new DeviceLostError(this.lostReason);
    if (this.destroyed) throw new DeviceLostError('the context was destroyed');
  }

  get isLost(): boolean {
    return this.lostReason !== null || this.destroyed;
  }

  /** Why the device is gone (for errors raised while it went). */
  get reason(): string {
    return this.lostReason ?? 'the context was destroyed';
  }

  /** Resolves `p`, or rejects with DeviceLostError if the device is lost first. */
  raceLost<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.lost]);
  }

  markDestroyed(): void {
    this.destroyed = true;
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }
}
