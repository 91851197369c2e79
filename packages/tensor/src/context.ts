// GpuContext: one WebGPU device (opened by device.ts) with its limits and features, and what ops use
// it for: tensors from the buffer pool, compiled kernels (kernel-cache.ts), dispatches recorded into
// one encoder (recorder.ts, uniforms in uniform-arena.ts) and submitted by flush() at model/step
// boundaries or by a readback, never once per op. Device loss and GPU errors (device-watch.ts) are
// thrown as typed errors by the next call into the context.
import { DTYPE_BYTES, f16ArrayToF32, formatShape, shapeSize, toDtypeBytes, type DType } from './dtype.js';
import { openDevice, type ContextInfo, type ContextLimits, type ContextOptions } from './device.js';
import { DeviceWatch } from './device-watch.js';
import { DeviceLimitError, DeviceLostError, GpuError, InvalidArgumentError, SsdError } from './errors.js';
import { KernelCache } from './kernel-cache.js';
import { quietPolling } from './gpu-provider.js';
import { BufferPool, STORAGE_USAGE, type MemoryStats } from './pool.js';
import { Profiler, type DispatchTime } from './profiler.js';
import { packUniforms, specKey, type UniformLayout } from './program.js';
import { CommandRecorder } from './recorder.js';
import { Storage, Tensor } from './tensor.js';

export interface DispatchBinding {
  buffer: GPUBuffer;
  offset?: number;
  size?: number;
}

export interface DispatchArgs {
  pipeline: GPUComputePipeline;
  /** Storage bindings 1..n, in the kernel's argument order. */
  bindings: readonly (Tensor | DispatchBinding)[];
  /** Uniform layout and values (binding 0), if the kernel has uniforms. */
  uniforms?: { layout: UniformLayout; values: Record<string, number> };
  workgroups: readonly [number, number?, number?];
  label: string;
}

/** Creates a context on the best (or the chosen) adapter (device.ts). */
export async function createContext(options: ContextOptions = {}): Promise<GpuContext> {
  const { device, limits, info } = await openDevice(options);
  return new GpuContext(device, limits, info, options);
}

export class GpuContext {
  /** f16 storage is available (shader-f16). */
  readonly f16: boolean;
  readonly subgroups: boolean;
  readonly timestampQuery: boolean;
  memoryBudgetBytes: number;
  maxDispatchesPerSubmit: number;

  private readonly pool: BufferPool;
  private readonly watch: DeviceWatch;
  private readonly kernels: KernelCache;
  private readonly recorder: CommandRecorder;

  constructor(
    readonly device: GPUDevice,
    readonly limits: ContextLimits,
    readonly info: ContextInfo,
    options: ContextOptions = {},
  ) {
    this.f16 = device.features.has('shader-f16');
    this.subgroups = device.features.has('subgroups');
    this.timestampQuery = device.features.has('timestamp-query');
    this.recorder = new CommandRecorder(device, limits.minUniformBufferOffsetAlignment);
    this.memoryBudgetBytes = options.memoryBudgetBytes ?? Infinity;
    this.maxDispatchesPerSubmit = options.maxDispatchesPerSubmit ?? 256;
    this.pool = new BufferPool(
      (size, label) => this.createBuffer(size, label),
      (b) => this.destroyBuffer(b),
      options.maxPooledBytes ?? 512 * 2 ** 20,
    );
    this.watch = new DeviceWatch(device);
    this.kernels = new KernelCache(device, this.watch);
  }

  // ---------------------------------------------------------------- health

  /** Throws the typed error for a lost device or a GPU error reported since the last call. */
  check(): void {
    this.watch.checkAlive();
    const e = this.watch.takeError();
    if (e) {
      this.recorder.discard(); // the failed work is lost; what comes next must not inherit it
      throw e;
    }
  }

  get isLost(): boolean {
    return this.watch.isLost;
  }

  /**
   * Resolves `p`, or rejects with DeviceLostError if the device is lost first. In Node the wait polls
   * Dawn once a millisecond instead of spinning (quietPolling): every GPU wait should come through here.
   */
  raceLost<T>(p: Promise<T>): Promise<T> {
    return quietPolling(this.watch.raceLost(p));
  }

  // ---------------------------------------------------------------- memory

  get memory(): MemoryStats {
    return this.pool.memory();
  }

  resetPeak(): void {
    this.pool.resetPeak();
  }

  /** Frees every pooled (unused) buffer. */
  trim(): void {
    this.pool.shrinkTo(0);
  }

  get maxPooledBytes(): number {
    return this.pool.maxPooledBytes;
  }

  set maxPooledBytes(bytes: number) {
    this.pool.maxPooledBytes = bytes;
    this.pool.shrinkTo(bytes);
  }

  private createBuffer(size: number, label: string): GPUBuffer {
    this.check();
    if (size > this.limits.maxBufferSize) {
      throw new DeviceLimitError('maxBufferSize', size, this.limits.maxBufferSize, `buffer "${label}"`);
    }
    const m = this.pool.memory();
    if (m.liveBytes + size > this.memoryBudgetBytes) {
      // pooled buffers are ours to drop before refusing
      this.pool.shrinkTo(0);
      const after = this.pool.memory();
      if (after.liveBytes + size > this.memoryBudgetBytes) {
        throw new DeviceLimitError('GPU memory budget (bytes)', after.liveBytes + size, this.memoryBudgetBytes, `buffer "${label}"`);
      }
    } else if (m.allocatedBytes + size > this.memoryBudgetBytes) {
      this.pool.shrinkTo(Math.max(0, this.memoryBudgetBytes - m.liveBytes - size));
    }
    return this.device.createBuffer({ size, usage: STORAGE_USAGE, label });
  }

  private destroyBuffer(b: GPUBuffer): void {
    // a buffer referenced by unsubmitted commands must outlive the submit
    this.recorder.destroyWhenIdle(b);
  }

  /** Called by Tensor.dispose(). */
  releaseStorage(s: Storage): void {
    if (--s.refs > 0) return;
    if (this.watch.isDestroyed) return;
    this.pool.release(s.buffer, s.pooled);
  }

  // ---------------------------------------------------------------- tensors

  /** An uninitialised activation tensor from the pool. */
  empty(shape: readonly number[], dtype: DType, label = 'tensor'): Tensor {
    return this.allocate(shape, dtype, label, true);
  }

  /** An exact-size, unpooled tensor for long-lived data (weights). */
  weight(shape: readonly number[], dtype: DType, label = 'weight'): Tensor {
    return this.allocate(shape, dtype, label, false);
  }

  private allocate(shape: readonly number[], dtype: DType, label: string, pooled: boolean): Tensor {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new InvalidArgumentError(`tensor "${label}": invalid shape ${formatShape(shape)}`);
    }
    const bytes = shapeSize(shape) * DTYPE_BYTES[dtype];
    const buffer = this.pool.acquire(bytes, pooled, label);
    return new Tensor(this, shape, dtype, new Storage(buffer, pooled), label);
  }

  /**
   * A tensor holding `data`. For f16, pass f32 values (rounded to nearest even) or f16 bit patterns
   * as a Uint16Array.
   */
  fromData(
    data: Float32Array | Float64Array | Int32Array | Uint32Array | Uint16Array | readonly number[],
    shape: readonly number[],
    dtype: DType = 'f32',
    label = 'data',
  ): Tensor {
    const n = shapeSize(shape);
    if (data.length !== n) {
      throw new InvalidArgumentError(`fromData "${label}": ${data.length} values for shape ${formatShape(shape)} (${n} elements)`);
    }
    const t = this.empty(shape, dtype, label);
    this.write(t, toDtypeBytes(data, dtype), 0);
    return t;
  }

  /**
   * Writes bytes into a tensor at a byte offset, ordered after everything recorded so far.
   * Large writes (weights) go straight to the queue after a flush; small ones are recorded as copies.
   */
  write(t: Tensor, bytes: ArrayBufferView, byteOffset: number): void {
    this.check();
    const len = bytes.byteLength;
    if (byteOffset % 4 || len % 4) {
      throw new InvalidArgumentError(`write into "${t.label}": offset ${byteOffset} and length ${len} must be multiples of 4`);
    }
    if (byteOffset + len > t.buffer.size) {
      throw new InvalidArgumentError(`write into "${t.label}": ${len} bytes at ${byteOffset} overrun its ${t.buffer.size}-byte buffer`);
    }
    if (len === 0) return;
    const src = new Uint8Array(bytes.buffer, bytes.byteOffset, len);
    if (!this.recorder.hasCommands || len > 1 << 20) {
      if (this.recorder.hasCommands) this.flush();
      this.device.queue.writeBuffer(t.buffer, byteOffset, src as Uint8Array<ArrayBuffer>);
      return;
    }
    const staging = this.device.createBuffer({ size: len, usage: GPUBufferUsage.COPY_SRC, mappedAtCreation: true, label: 'upload' });
    new Uint8Array(staging.getMappedRange()).set(src);
    staging.unmap();
    this.copyBuffer(staging, 0, t.buffer, byteOffset, len);
    this.recorder.destroyAfterSubmit(staging);
  }

  // ---------------------------------------------------------------- kernels

  /** The compiled pipeline for (name, spec), compiling `wgsl(spec)` on first use. */
  kernel<S extends object>(name: string, spec: S, wgsl: (spec: S) => string): GPUComputePipeline {
    const key = specKey(name, spec);
    const cached = this.kernels.get(key);
    if (cached) return cached;
    this.check();
    return this.kernels.compile(key, wgsl(spec));
  }

  get pipelineCount(): number {
    return this.kernels.size;
  }

  /** Records one compute dispatch. Checks every binding against maxStorageBufferBindingSize. */
  dispatch(a: DispatchArgs): void {
    this.check();
    const entries: GPUBindGroupEntry[] = [];
    if (a.uniforms && a.uniforms.layout.length) {
      const bytes = packUniforms(a.uniforms.layout, a.uniforms.values, a.label);
      entries.push({ binding: 0, resource: this.recorder.uniforms.slot(bytes) });
    }
    a.bindings.forEach((b, i) => {
      const res = b instanceof Tensor ? { buffer: b.buffer, offset: 0, size: bindSize(b) } : { buffer: b.buffer, offset: b.offset ?? 0, size: b.size ?? b.buffer.size - (b.offset ?? 0) };
      if (res.size > this.limits.maxStorageBufferBindingSize) {
        const what = b instanceof Tensor ? `tensor "${b.label}" ${formatShape(b.shape)} ${b.dtype}` : `buffer "${b.buffer.label}"`;
        throw new DeviceLimitError('maxStorageBufferBindingSize', res.size, this.limits.maxStorageBufferBindingSize, `${a.label}: binding ${i + 1} (${what})`);
      }
      entries.push({ binding: i + 1, resource: res });
    });
    const [x, y = 1, z = 1] = a.workgroups;
    const maxDim = this.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxDim || y > maxDim || z > maxDim) {
      throw new DeviceLimitError('maxComputeWorkgroupsPerDimension', Math.max(x, y, z), maxDim, a.label);
    }
    if (x === 0 || y === 0 || z === 0) return; // empty tensor: nothing to do
    const bindGroup = this.device.createBindGroup({ layout: a.pipeline.getBindGroupLayout(0), entries, label: a.label });
    if (this.recorder.profiler?.full) this.flush();
    if (this.recorder.dispatch(a.pipeline, bindGroup, [x, y, z], a.label) >= this.maxDispatchesPerSubmit) this.flush();
  }

  /** Records a buffer-to-buffer copy, ordered with the dispatches. */
  copyBuffer(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    this.check();
    this.recorder.copy(src, srcOffset, dst, dstOffset, size);
  }

  /** Copies a tensor's contents into a new tensor. */
  clone(t: Tensor, label = t.label): Tensor {
    const out = this.empty(t.shape, t.dtype, label);
    this.copyBuffer(t.buffer, 0, out.buffer, 0, alignUp(t.byteSize, 4));
    return out;
  }

  /** Submits everything recorded so far. Never waits. */
  flush(): void {
    this.check();
    this.recorder.submit();
  }

  /**
   * Submits and waits until the GPU has finished everything submitted. The wait polls Dawn once a
   * millisecond in Node (raceLost → quietPolling) instead of spinning on the main thread, which on a
   * CPU adapter took a core's share from the work itself (25–35% of its speed on 2 cores).
   * `expectedMs` (e.g. the last identical step's time) still sleeps through 75% of it first
   * (napBeforeWait), which now saves only those polls.
   */
  async sync(opts: { expectedMs?: number } = {}): Promise<void> {
    this.flush();
    await napBeforeWait(opts.expectedMs ?? 0);
    await this.raceLost(this.device.queue.onSubmittedWorkDone());
    // a kernel's compile error arrives through two callbacks that the queue does not wait for
    const checks = this.kernels.pendingChecks;
    if (checks.length) await this.raceLost(Promise.all(checks));
    this.check();
  }

  // ---------------------------------------------------------------- profiling

  /** Starts timing every dispatch with timestamp queries (needs the timestamp-query feature). */
  startProfiling(): void {
    if (!this.timestampQuery) throw new DeviceLimitError('timestamp-query', 'supported', 'unsupported', 'profiling');
    this.flush();
    this.recorder.profiler ??= new Profiler(this.device);
  }

  /** Stops timing and returns every timed dispatch (label, GPU ms) since startProfiling. */
  async stopProfiling(): Promise<DispatchTime[]> {
    const p = this.recorder.profiler;
    if (!p) return [];
    this.flush();
    this.recorder.profiler = null;
    const r = await this.raceLost(p.results());
    p.destroy();
    return r;
  }

  // ---------------------------------------------------------------- readback

  async readBytes(t: Tensor): Promise<Uint8Array> {
    const size = alignUp(t.byteSize, 4);
    const staging = this.device.createBuffer({ size: Math.max(4, size), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: `read ${t.label}` });
    try {
      if (size > 0) this.copyBuffer(t.buffer, 0, staging, 0, size);
      this.flush();
      await this.raceLost(staging.mapAsync(GPUMapMode.READ));
      this.check();
      const out = new Uint8Array(t.byteSize);
      out.set(new Uint8Array(staging.getMappedRange(), 0, t.byteSize));
      staging.unmap();
      return out;
    } catch (e) {
      if (this.isLost) throw new DeviceLostError(this.watch.reason);
      if (e instanceof SsdError) throw e;
      // mapAsync rejects when the device errored or was lost; report the typed cause if we have one
      this.check();
      throw new GpuError('unknown', `reading "${t.label}" back failed: ${(e as Error).message}`);
    } finally {
      if (!this.isLost) staging.destroy();
    }
  }

  async read(t: Tensor): Promise<Float32Array | Int32Array | Uint32Array> {
    const bytes = await this.readBytes(t);
    const buf = bytes.buffer;
    switch (t.dtype) {
      case 'f32':
        return new Float32Array(buf, 0, t.size);
      case 'f16':
        return f16ArrayToF32(new Uint16Array(buf, 0, t.size));
      case 'i32':
        return new Int32Array(buf, 0, t.size);
      case 'u32':
        return new Uint32Array(buf, 0, t.size);
    }
  }

  // ---------------------------------------------------------------- lifecycle

  /** Releases the device and everything on it. Later calls throw DeviceLostError. */
  destroy(): void {
    if (this.watch.isDestroyed) return;
    this.watch.markDestroyed();
    this.kernels.clear();
    this.recorder.forget();
    this.device.destroy();
  }
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** Bind the tensor's bytes rounded up to 16 (vec4 access), never past its buffer. */
function bindSize(t: Tensor): number {
  return Math.min(t.buffer.size, Math.max(16, alignUp(t.byteSize, 16)));
}

/**
 * The sleep before waiting on work expected to take `expectedMs`: 75% of it (none when that is ≤ 4 ms).
 * ctx.sync uses it; so does anything that must wait on a GPU queue the same way (a benchmark peer).
 */
export async function napBeforeWait(expectedMs: number): Promise<void> {
  const nap = expectedMs * 0.75;
  if (nap > 4) await new Promise((r) => setTimeout(r, nap));
}
