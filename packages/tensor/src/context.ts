// GpuContext: one WebGPU device with its limits and features, the compiled-pipeline cache, the buffer
// pool and the command encoder being recorded. Ops record compute passes here; work is submitted by
// flush() (at model/step boundaries) or by a readback, never once per op.
//
// Faults never crash or hang: device loss and uncaptured GPU errors are remembered and thrown as typed
// errors (DeviceLostError, GpuError, KernelCompileError) by the next call into the context.

import { DTYPE_BYTES, f32ArrayToF16, f16ArrayToF32, formatShape, shapeSize, type DType } from './dtype.js';
import { DeviceLimitError, DeviceLostError, GpuError, InvalidArgumentError, KernelCompileError, SsdError } from './errors.js';
import { envVar, getGpu, runtimeName } from './gpu-provider.js';
import { BufferPool, STORAGE_USAGE, type MemoryStats } from './pool.js';
import { Profiler, type DispatchTime } from './profiler.js';
import { packUniforms, specKey, type UniformLayout } from './program.js';
import { collectTensors, Storage, Tensor } from './tensor.js';

/** Limits the context asks the adapter for (its best values) and reports. */
export const REQUESTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'maxUniformBufferBindingSize',
  'maxBindGroups',
  'minStorageBufferOffsetAlignment',
  'minUniformBufferOffsetAlignment',
] as const;
export type LimitName = (typeof REQUESTED_LIMITS)[number];
export type ContextLimits = Record<LimitName, number>;

export type OptionalFeature = 'shader-f16' | 'subgroups' | 'timestamp-query';
const OPTIONAL_FEATURES: OptionalFeature[] = ['shader-f16', 'subgroups', 'timestamp-query'];

export interface ContextOptions {
  /** A WebGPU implementation to use instead of navigator.gpu / the `webgpu` package. */
  gpu?: GPU;
  /** Pick the adapter whose description/vendor/device contains this (default: env SSD_ADAPTER). */
  adapter?: string;
  powerPreference?: GPUPowerPreference;
  /** Features not to use even when offered (e.g. ['shader-f16'] to run everything in f32). */
  disableFeatures?: OptionalFeature[];
  /** Lower the limits the context works with (tests of the limit guards; small-device simulation). */
  limits?: Partial<ContextLimits>;
  /** Allocation beyond this many GPU bytes fails up front with DeviceLimitError. */
  memoryBudgetBytes?: number;
  /** The pool keeps at most this many free bytes (default 512 MiB). */
  maxPooledBytes?: number;
  /** Submit automatically after this many recorded dispatches (default 256). */
  maxDispatchesPerSubmit?: number;
  label?: string;
}

export interface ContextInfo {
  runtime: string;
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
  /**
   * A CPU implementation of WebGPU (lavapipe/llvmpipe, SwiftShader, WARP, or any fallback adapter):
   * kernels pick register tiles and uniform loop bounds there, benchmarks run reduced sizes.
   */
  isCpu: boolean;
  /** Features the device was created with. */
  features: string[];
  /** Optional features the adapter offered but the caller disabled. */
  disabledFeatures: string[];
  limits: ContextLimits;
  subgroupMinSize?: number;
  subgroupMaxSize?: number;
}

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

const UNIFORM_ARENA_BYTES = 1 << 20;

/** Creates a context on the best (or the chosen) adapter. */
export async function createContext(options: ContextOptions = {}): Promise<GpuContext> {
  const filter = options.adapter ?? envVar('SSD_ADAPTER');
  const gpu = options.gpu ?? (await getGpu(filter));
  const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference });
  if (!adapter) {
    throw new DeviceLimitError('a WebGPU adapter', 1, 0, `no WebGPU adapter${filter ? ` matching "${filter}"` : ''} was found (on Linux without a GPU, install Mesa's lavapipe: see the README)`);
  }
  const ai = adapter.info;
  const text = `${ai.vendor} ${ai.architecture} ${ai.device} ${ai.description}`.toLowerCase();
  if (filter && !options.gpu && !text.includes(filter.toLowerCase()) && runtimeName() !== 'node') {
    throw new DeviceLimitError('an adapter matching', filter, `${ai.vendor} ${ai.description}`);
  }
  const disabled = new Set(options.disableFeatures ?? []);
  const features = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f) && !disabled.has(f));
  const requiredLimits: Record<string, number> = {};
  for (const name of REQUESTED_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number>)[name];
    if (typeof v === 'number') requiredLimits[name] = v;
  }
  const device = await adapter.requestDevice({
    label: options.label ?? 'ssd',
    requiredFeatures: features as GPUFeatureName[],
    requiredLimits,
  });
  return new GpuContext(device, adapter, options, [...disabled].filter((f) => adapter.features.has(f)));
}

export class GpuContext {
  readonly info: ContextInfo;
  readonly limits: ContextLimits;
  /** f16 storage is available (shader-f16). */
  readonly f16: boolean;
  readonly subgroups: boolean;
  readonly timestampQuery: boolean;
  memoryBudgetBytes: number;
  maxDispatchesPerSubmit: number;

  private readonly pool: BufferPool;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private dispatchesInEncoder = 0;
  private commandsInEncoder = 0;
  private uniformArenas: GPUBuffer[] = [];
  private uniformMirrors: Uint8Array[] = [];
  private uniformArenaIndex = 0;
  private uniformOffset = 0;
  private pendingUniformWrites: { arena: number; from: number; to: number }[] = [];
  private deferredDestroy: GPUBuffer[] = [];
  private scopes: Set<Tensor>[] = [];
  private lostInfo: { reason: string } | null = null;
  private pendingError: SsdError | null = null;
  /** Compile checks of new kernels still waiting on the driver; sync() waits for them. */
  private readonly compileChecks = new Set<Promise<void>>();
  private readonly lostPromise: Promise<never>;
  private destroyed = false;

  constructor(
    readonly device: GPUDevice,
    adapter: GPUAdapter,
    options: ContextOptions,
    disabledFeatures: string[],
  ) {
    const limits = {} as ContextLimits;
    for (const name of REQUESTED_LIMITS) {
      const dev = (device.limits as unknown as Record<string, number>)[name];
      const asked = options.limits?.[name];
      limits[name] = asked !== undefined ? Math.min(asked, dev) : dev;
    }
    this.limits = Object.freeze(limits);
    this.f16 = device.features.has('shader-f16');
    this.subgroups = device.features.has('subgroups');
    this.timestampQuery = device.features.has('timestamp-query');
    const ai = adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
    const isFallbackAdapter = !!(ai as { isFallbackAdapter?: boolean }).isFallbackAdapter || !!(adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter;
    this.info = Object.freeze({
      runtime: runtimeName(),
      vendor: ai.vendor,
      architecture: ai.architecture,
      device: ai.device,
      description: ai.description || `${ai.vendor} ${ai.architecture}`.trim(),
      isFallbackAdapter,
      isCpu: isFallbackAdapter || /cpu|software|llvmpipe|lavapipe|swiftshader|warp/i.test(`${ai.architecture} ${ai.device} ${ai.description}`),
      features: [...device.features].sort(),
      disabledFeatures,
      limits: this.limits,
      subgroupMinSize: ai.subgroupMinSize,
      subgroupMaxSize: ai.subgroupMaxSize,
    });
    this.memoryBudgetBytes = options.memoryBudgetBytes ?? Infinity;
    this.maxDispatchesPerSubmit = options.maxDispatchesPerSubmit ?? 256;
    this.pool = new BufferPool(
      (size, label) => this.createBuffer(size, label),
      (b) => this.destroyBuffer(b),
      options.maxPooledBytes ?? 512 * 2 ** 20,
    );
    this.lostPromise = device.lost.then((info) => {
      this.lostInfo = { reason: this.destroyed ? 'the context was destroyed' : info.message || String(info.reason) };
      throw new DeviceLostError(this.lostInfo.reason);
    });
    this.lostPromise.catch(() => {}); // observed through check()
    device.addEventListener('uncapturederror', (ev) => {
      const err = (ev as GPUUncapturedErrorEvent).error;
      if (this.pendingError) return; // keep the first, it is the cause
      // Dawn reports every object made from an invalid one again; those are echoes of an error
      // that was (or is being) reported already
      if (/invalid due to a previous error/i.test(err.message)) return;
      const kind = err.constructor?.name === 'GPUOutOfMemoryError' ? 'out-of-memory' : err.constructor?.name === 'GPUValidationError' ? 'validation' : err.constructor?.name === 'GPUInternalError' ? 'internal' : 'unknown';
      this.pendingError = new GpuError(kind, err.message);
    });
  }

  // ---------------------------------------------------------------- health

  /** Throws the typed error for a lost device or a GPU error reported since the last call. */
  check(): void {
    if (this.lostInfo) throw new DeviceLostError(this.lostInfo.reason);
    if (this.destroyed) throw new DeviceLostError('the context was destroyed');
    if (this.pendingError) {
      const e = this.pendingError;
      this.pendingError = null;
      this.discardRecording(); // the failed work is lost; what comes next must not inherit it
      throw e;
    }
  }

  private discardRecording(): void {
    if (this.pass) {
      try {
        this.pass.end();
      } catch {
        /* an invalid pass may refuse to end; it is dropped either way */
      }
    }
    this.pass = null;
    this.encoder = null;
    this.dispatchesInEncoder = 0;
    this.commandsInEncoder = 0;
    this.pendingUniformWrites = [];
    this.uniformArenaIndex = 0;
    this.uniformOffset = 0;
    for (const b of this.deferredDestroy) b.destroy();
    this.deferredDestroy = [];
  }

  get isLost(): boolean {
    return !!this.lostInfo || this.destroyed;
  }

  /** Resolves `p`, or rejects with DeviceLostError if the device is lost first. */
  raceLost<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.lostPromise]);
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
    if (this.commandsInEncoder > 0) this.deferredDestroy.push(b);
    else b.destroy();
  }

  /** Called by Tensor.dispose(). */
  releaseStorage(s: Storage): void {
    if (--s.refs > 0) return;
    if (this.destroyed) return;
    this.pool.release(s.buffer, s.pooled);
  }

  // ---------------------------------------------------------------- tensors

  /** Registers a tensor with the innermost scope. */
  adopt(t: Tensor): Tensor {
    const scope = this.scopes[this.scopes.length - 1];
    if (scope) scope.add(t);
    return t;
  }

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
    return this.adopt(new Tensor(this, shape, dtype, new Storage(buffer, pooled), label));
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
    if (this.commandsInEncoder === 0 || len > 1 << 20) {
      if (this.commandsInEncoder > 0) this.flush();
      this.device.queue.writeBuffer(t.buffer, byteOffset, src as Uint8Array<ArrayBuffer>);
      return;
    }
    const staging = this.device.createBuffer({ size: len, usage: GPUBufferUsage.COPY_SRC, mappedAtCreation: true, label: 'upload' });
    new Uint8Array(staging.getMappedRange()).set(src);
    staging.unmap();
    this.copyBuffer(staging, 0, t.buffer, byteOffset, len);
    this.deferredDestroy.push(staging);
  }

  /** Runs `fn`, then disposes every tensor created inside it except those it returns. Synchronous. */
  tidy<T>(fn: () => T): T {
    const scope = new Set<Tensor>();
    this.scopes.push(scope);
    let result: T;
    try {
      result = fn();
    } catch (e) {
      this.scopes.pop();
      for (const t of scope) t.dispose();
      throw e;
    }
    this.scopes.pop();
    const keep = new Set<Tensor>();
    collectTensors(result, keep);
    const parent = this.scopes[this.scopes.length - 1];
    for (const t of scope) {
      if (keep.has(t)) parent?.add(t);
      else t.dispose();
    }
    return result;
  }

  /** Removes a tensor from the enclosing scopes so that tidy() does not dispose it. */
  keep<T extends Tensor>(t: T): T {
    for (const s of this.scopes) s.delete(t);
    return t;
  }

  // ---------------------------------------------------------------- kernels

  /** The compiled pipeline for (name, spec), compiling `wgsl(spec)` on first use. */
  kernel<S extends object>(name: string, spec: S, wgsl: (spec: S) => string): GPUComputePipeline {
    const key = specKey(name, spec);
    const cached = this.pipelines.get(key);
    if (cached) return cached;
    this.check();
    const code = wgsl(spec);
    const label = key.length > 160 ? key.slice(0, 157) + '...' : key;
    this.device.pushErrorScope('validation');
    const module = this.device.createShaderModule({ code, label });
    const pipeline = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label });
    const compiled = this.device.popErrorScope().then(async (err) => {
      if (!err || this.pendingError) return;
      let messages = [err.message];
      try {
        const info = await module.getCompilationInfo();
        const errs = info.messages.filter((m) => m.type === 'error');
        if (errs.length) messages = errs.map((m) => `line ${m.lineNum}:${m.linePos}: ${m.message}\n  ${code.split('\n')[m.lineNum - 1] ?? ''}`);
      } catch {
        /* keep the scope's message */
      }
      this.pendingError = new KernelCompileError(label, messages);
    }).catch(() => {
      /* the device was lost (its own error reports that); never an unhandled rejection */
    });
    this.compileChecks.add(compiled);
    void compiled.then(() => this.compileChecks.delete(compiled));
    this.pipelines.set(key, pipeline);
    return pipeline;
  }

  get pipelineCount(): number {
    return this.pipelines.size;
  }

  /** Records one compute dispatch. Checks every binding against maxStorageBufferBindingSize. */
  dispatch(a: DispatchArgs): void {
    this.check();
    const entries: GPUBindGroupEntry[] = [];
    if (a.uniforms && a.uniforms.layout.length) {
      const bytes = packUniforms(a.uniforms.layout, a.uniforms.values, a.label);
      entries.push({ binding: 0, resource: this.uniformSlot(bytes) });
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
    if (this.profiler?.full) this.flush();
    // profiling: one pass per dispatch, bracketed by timestamps
    const pass = this.profiler ? (this.endPass(), (this.pass = this.getEncoder().beginComputePass({ timestampWrites: this.profiler.next(a.label) }))) : this.computePass();
    pass.setPipeline(a.pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    if (this.profiler) this.endPass();
    this.commandsInEncoder++;
    if (++this.dispatchesInEncoder >= this.maxDispatchesPerSubmit) this.flush();
  }

  /** Records a buffer-to-buffer copy, ordered with the dispatches. */
  copyBuffer(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    this.check();
    this.endPass();
    this.getEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, size);
    this.commandsInEncoder++;
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
    if (!this.encoder) return;
    this.endPass();
    for (const w of this.pendingUniformWrites) {
      this.device.queue.writeBuffer(this.uniformArenas[w.arena], w.from, this.uniformMirrors[w.arena] as Uint8Array<ArrayBuffer>, w.from, w.to - w.from);
    }
    this.profiler?.resolve(this.encoder);
    this.device.queue.submit([this.encoder.finish()]);
    this.profiler?.submitted();
    this.encoder = null;
    this.dispatchesInEncoder = 0;
    this.commandsInEncoder = 0;
    this.pendingUniformWrites = [];
    this.uniformArenaIndex = 0;
    this.uniformOffset = 0;
    for (const b of this.deferredDestroy) b.destroy();
    this.deferredDestroy = [];
  }

  /**
   * Submits and waits until the GPU has finished everything submitted. `expectedMs` (e.g. the last
   * identical step's time) lets the wait sleep through most of it first: while a completion promise
   * is pending, Dawn in Node polls on the main thread, which on a CPU adapter (lavapipe) takes a core
   * away from the work itself — 25–35% of its speed on 2 cores.
   */
  async sync(opts: { expectedMs?: number } = {}): Promise<void> {
    this.flush();
    await napBeforeWait(opts.expectedMs ?? 0);
    await this.raceLost(this.device.queue.onSubmittedWorkDone());
    // a kernel's compile error arrives through two callbacks that the queue does not wait for
    if (this.compileChecks.size) await this.raceLost(Promise.all(this.compileChecks));
    this.check();
  }

  // ---------------------------------------------------------------- profiling

  private profiler: Profiler | null = null;

  /** Starts timing every dispatch with timestamp queries (needs the timestamp-query feature). */
  startProfiling(): void {
    if (!this.timestampQuery) throw new DeviceLimitError('timestamp-query', 'supported', 'unsupported', 'profiling');
    this.flush();
    this.profiler ??= new Profiler(this.device);
  }

  /** Stops timing and returns every timed dispatch (label, GPU ms) since startProfiling. */
  async stopProfiling(): Promise<DispatchTime[]> {
    const p = this.profiler;
    if (!p) return [];
    this.flush();
    this.profiler = null;
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
      if (this.isLost) throw new DeviceLostError(this.lostInfo?.reason ?? 'the context was destroyed');
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
    if (this.destroyed) return;
    this.destroyed = true;
    this.pipelines.clear();
    this.encoder = null;
    this.pass = null;
    this.device.destroy();
  }

  // ---------------------------------------------------------------- internals

  private getEncoder(): GPUCommandEncoder {
    return (this.encoder ??= this.device.createCommandEncoder({ label: 'ssd' }));
  }

  private computePass(): GPUComputePassEncoder {
    return (this.pass ??= this.getEncoder().beginComputePass());
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  /** A slot in this submit's uniform arena; the bytes are written to the GPU at flush. */
  private uniformSlot(bytes: ArrayBuffer): GPUBufferBinding {
    const align = this.limits.minUniformBufferOffsetAlignment;
    const size = bytes.byteLength;
    if (this.uniformOffset + size > UNIFORM_ARENA_BYTES) {
      this.uniformArenaIndex++;
      this.uniformOffset = 0;
    }
    while (this.uniformArenas.length <= this.uniformArenaIndex) {
      this.uniformArenas.push(this.device.createBuffer({ size: UNIFORM_ARENA_BYTES, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, label: 'uniform arena' }));
      if (this.uniformMirrors.length < this.uniformArenas.length) this.uniformMirrors.push(new Uint8Array(UNIFORM_ARENA_BYTES));
    }
    const arena = this.uniformArenaIndex;
    const offset = this.uniformOffset;
    this.uniformMirrors[arena].set(new Uint8Array(bytes), offset);
    const last = this.pendingUniformWrites[this.pendingUniformWrites.length - 1];
    if (last && last.arena === arena) last.to = offset + size;
    else this.pendingUniformWrites.push({ arena, from: offset, to: offset + size });
    this.uniformOffset = alignUp(offset + size, align);
    return { buffer: this.uniformArenas[arena], offset, size };
  }
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** Bind the tensor's bytes rounded up to 16 (vec4 access), never past its buffer. */
function bindSize(t: Tensor): number {
  return Math.min(t.buffer.size, Math.max(16, alignUp(t.byteSize, 16)));
}

function toDtypeBytes(
  data: Float32Array | Float64Array | Int32Array | Uint32Array | Uint16Array | readonly number[],
  dtype: DType,
): ArrayBufferView {
  if (dtype === 'f16') {
    if (data instanceof Uint16Array) return padTo4(data);
    const f32 = data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
    return padTo4(f32ArrayToF16(f32));
  }
  if (data instanceof Uint16Array) throw new InvalidArgumentError(`Uint16Array data is only accepted for f16 tensors (got ${dtype})`);
  if (dtype === 'f32') return data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
  if (dtype === 'i32') return data instanceof Int32Array ? data : Int32Array.from(data as ArrayLike<number>);
  return data instanceof Uint32Array ? data : Uint32Array.from(data as ArrayLike<number>);
}

function padTo4(a: Uint16Array): Uint16Array {
  if (a.length % 2 === 0) return a;
  const p = new Uint16Array(a.length + 1);
  p.set(a);
  return p;
}

/**
 * The sleep before waiting on work expected to take `expectedMs`: 75% of it (none when that is ≤ 4 ms).
 * ctx.sync uses it; so does anything that must wait on a GPU queue the same way (a benchmark peer).
 */
export async function napBeforeWait(expectedMs: number): Promise<void> {
  const nap = expectedMs * 0.75;
  if (nap > 4) await new Promise((r) => setTimeout(r, nap));
}
