// GPU timing per dispatch with timestamp queries: while a profiler is attached, every dispatch runs in
// its own compute pass whose begin/end timestamps land in a query set; at each submit the set is
// resolved and copied to a readable buffer. `results()` reads them all back as (label, ms) pairs.
// Separate passes cost a little, so profile in benchmarks, not in production runs.

export interface DispatchTime {
  label: string;
  ms: number;
}

const CAPACITY = 2048; // dispatches per query set (2 timestamps each)

export class Profiler {
  private readonly querySet: GPUQuerySet;
  private labels: string[] = [];
  private pending: Promise<DispatchTime[]>[] = [];
  private toMap: { labels: string[]; read: GPUBuffer; resolveBuf: GPUBuffer }[] = [];

  constructor(private readonly device: GPUDevice) {
    this.querySet = device.createQuerySet({ type: 'timestamp', count: CAPACITY * 2, label: 'profiler' });
  }

  get full(): boolean {
    return this.labels.length >= CAPACITY;
  }

  /** Timestamp writes for the next dispatch's pass. */
  next(label: string): GPUComputePassTimestampWrites {
    const i = this.labels.length;
    this.labels.push(label);
    return { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  /** Called before the encoder is finished: resolve this submit's timestamps into a readback. */
  resolve(encoder: GPUCommandEncoder): void {
    const n = this.labels.length;
    if (!n) return;
    const bytes = n * 16;
    const resolveBuf = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC, label: 'profiler resolve' });
    const read = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: 'profiler read' });
    encoder.resolveQuerySet(this.querySet, 0, 2 * n, resolveBuf, 0);
    encoder.copyBufferToBuffer(resolveBuf, 0, read, 0, bytes);
    this.toMap.push({ labels: this.labels, read, resolveBuf });
    this.labels = [];
  }

  /** Called after the submit: start reading the resolved timestamps back (mapping before is invalid). */
  submitted(): void {
    for (const { labels, read, resolveBuf } of this.toMap) {
      this.pending.push(
        (async () => {
          await read.mapAsync(GPUMapMode.READ);
          const t = new BigUint64Array(read.getMappedRange().slice(0));
          read.unmap();
          read.destroy();
          resolveBuf.destroy();
          return labels.map((label, i) => ({ label, ms: Number(t[2 * i + 1] - t[2 * i]) / 1e6 }));
        })(),
      );
    }
    this.toMap = [];
  }

  /** Every dispatch timed since the last call, in order. */
  async results(): Promise<DispatchTime[]> {
    const all = await Promise.all(this.pending);
    this.pending = [];
    return all.flat();
  }

  destroy(): void {
    this.querySet.destroy();
  }
}
