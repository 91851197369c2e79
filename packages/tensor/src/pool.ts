// A pool of GPU storage buffers in size classes, with live/pooled/peak byte accounting.
// Size classes: powers of two up to 64 KiB, then 8 classes per octave (at most 12.5% slack), so
// activations of similar size reuse each other's buffers without wasting much memory.

export const STORAGE_USAGE = 0x80 /* STORAGE */ | 0x04 /* COPY_SRC */ | 0x08; /* COPY_DST */

export interface MemoryStats {
  /** Bytes of GPU buffers held by live tensors (weights included). */
  liveBytes: number;
  /** Bytes of free buffers kept in the pool for reuse. */
  pooledBytes: number;
  /** liveBytes + pooledBytes: the GPU memory this context holds in buffers. */
  allocatedBytes: number;
  /** Highest allocatedBytes since the context was made or resetPeak() was called. */
  peakBytes: number;
  /** Highest liveBytes since the context was made or resetPeak() was called. */
  peakLiveBytes: number;
  /** Number of live buffers (a reshaped view shares its tensor's buffer). */
  liveBuffers: number;
  /** Number of buffers in the pool. */
  pooledBuffers: number;
}

export function sizeClass(bytes: number): number {
  const n = Math.max(256, Math.ceil(bytes / 16) * 16);
  if (n <= 65536) return 2 ** Math.ceil(Math.log2(n));
  const step = 2 ** (Math.floor(Math.log2(n)) - 3);
  return Math.ceil(n / step) * step;
}

export class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  private stats = { live: 0, pooled: 0, peak: 0, peakLive: 0, liveCount: 0, pooledCount: 0 };

  constructor(
    private readonly create: (size: number, label: string) => GPUBuffer,
    private readonly destroy: (buffer: GPUBuffer) => void,
    /** The pool never holds more than this many free bytes; the excess is destroyed. */
    public maxPooledBytes: number,
  ) {}

  /** A buffer of at least `bytes` (pooled: rounded to its size class; unpooled: exact, 16-aligned). */
  acquire(bytes: number, pooled: boolean, label: string): GPUBuffer {
    if (pooled) {
      const size = sizeClass(bytes);
      const list = this.free.get(size);
      const buf = list?.pop();
      if (buf) {
        this.stats.pooled -= size;
        this.stats.pooledCount--;
        this.onLive(size);
        return buf;
      }
      const created = this.create(size, label);
      this.onLive(size);
      return created;
    }
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    const created = this.create(size, label);
    this.onLive(size);
    return created;
  }

  /** Returns a buffer: pooled ones go back to their class, others are destroyed. */
  release(buffer: GPUBuffer, pooled: boolean): void {
    const size = buffer.size;
    this.stats.live -= size;
    this.stats.liveCount--;
    if (!pooled || size !== sizeClass(size)) {
      this.destroy(buffer);
      return;
    }
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(buffer);
    this.stats.pooled += size;
    this.stats.pooledCount++;
    if (this.stats.pooled > this.maxPooledBytes) this.shrinkTo(this.maxPooledBytes);
  }

  /** Destroys free buffers, largest classes first, until at most `bytes` are pooled. */
  shrinkTo(bytes: number): void {
    const sizes = [...this.free.keys()].sort((a, b) => b - a);
    for (const size of sizes) {
      const list = this.free.get(size)!;
      while (list.length && this.stats.pooled > bytes) {
        this.destroy(list.pop()!);
        this.stats.pooled -= size;
        this.stats.pooledCount--;
      }
      if (!list.length) this.free.delete(size);
      if (this.stats.pooled <= bytes) break;
    }
  }

  resetPeak(): void {
    this.stats.peak = this.stats.live + this.stats.pooled;
    this.stats.peakLive = this.stats.live;
  }

  memory(): MemoryStats {
    const s = this.stats;
    return {
      liveBytes: s.live,
      pooledBytes: s.pooled,
      allocatedBytes: s.live + s.pooled,
      peakBytes: s.peak,
      peakLiveBytes: s.peakLive,
      liveBuffers: s.liveCount,
      pooledBuffers: s.pooledCount,
    };
  }

  private onLive(size: number): void {
    const s = this.stats;
    s.live += size;
    s.liveCount++;
    if (s.live > s.peakLive) s.peakLive = s.live;
    if (s.live + s.pooled > s.peak) s.peak = s.live + s.pooled;
  }
}
