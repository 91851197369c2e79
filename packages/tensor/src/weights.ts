// WeightStore: modules take their parameters by checkpoint key and expected shape (`take`) while a model
// is built; the store checks each against the file's header, allocates the GPU tensor only when it fits,
// collects every problem for `finish()` (CheckpointError), and `load()` streams the data in, converting
// dtypes and re-laying out. A GGUF-quantized tensor is dequantized on the host chunk by chunk, unless the
// module takes it with `allowQuantized`: then its blocks come as a QuantizedWeight (weights-quantized.ts).

import type { GpuContext } from './context.js';
import { formatShape, shapeSize, type DType } from './dtype.js';
import { CheckpointError, type CheckpointProblem } from './errors.js';
import { openComponentTensors } from './component-tensors.js';
import type { ModelSource } from './model-source.js';
import type { QuantizedWeight } from './quantized.js';
import { concatRowsEntry, readEntryAs, uploadEntryInto, type QuantizedBlocks, type TensorEntry, type TensorSource } from './tensor-source.js';
import { Tensor } from './tensor.js';
import { allocQuantizedWeight, uploadBlocksInto } from './weights-quantized.js';
import { recordFileParameters } from './parameter-stats.js';

export type HostData = Float32Array | Uint16Array | Int32Array;

export interface TakeOptions {
  dtype?: DType;
  /** The shape the file must hold when it differs from the allocated one (a re-layout by `transform`). */
  fileShape?: readonly number[];
  /** Other shapes with the same row-major data (e.g. a 1×1 conv [o,i,1,1] for a linear [o,i]). */
  alternateShapes?: readonly (readonly number[])[];
  /**
   * Host-side re-layout or transform of the (already dtype-converted) data; it returns the allocated
   * shape's element count (a transform may change it: a Winograd conv weight is [T, Cout, Cin]).
   */
  transform?: (data: HostData, fileShape: readonly number[]) => HostData;
  /**
   * A tensor the file stores quantized (2-D or more) is returned as a QuantizedWeight (its blocks, in
   * the file's PyTorch shape) for a kernel that dequantizes in the tile load; `dtype` and `transform`
   * then do not apply. Other tensors load as without it.
   */
  allowQuantized?: boolean;
}

type QuantizedTake = TakeOptions & { allowQuantized: true };

interface Pending {
  key: string;
  entry: TensorEntry;
  tensor: Tensor;
  /** Element offset in `tensor` (stacked parameters). */
  offsetElems: number;
  /** A row range of the file tensor (row-chunked parameters). */
  sourceOffsetElems?: number;
  countElems?: number;
  transform?: TakeOptions['transform'];
  /** Quantized blocks copied as they are (a QuantizedWeight's data). */
  blocks?: QuantizedBlocks;
}

export interface LoadProgress {
  loadedBytes: number;
  totalBytes: number;
  key: string;
}

export interface LoadOptions {
  signal?: AbortSignal;
  onProgress?: (p: LoadProgress) => void;
}

export class WeightStore {
  private readonly where = new Map<string, TensorEntry>();
  private readonly used = new Set<string>();
  private readonly problems: CheckpointProblem[] = [];
  private readonly pending: Pending[] = [];
  private placeholderSeed: Tensor | null = null;
  readonly taken: Tensor[] = [];

  constructor(
    readonly ctx: GpuContext,
    /** Where the tensors come from (a component's safetensors files, a mapped single file, …). */
    readonly files: readonly TensorSource[],
    readonly dtype: DType,
    /** Keys in the file that the model deliberately does not use. */
    private readonly ignore: readonly RegExp[] = [],
    /** The name to use in messages (the file or folder). */
    readonly label = files.map((f) => f.name).join(', '),
  ) {
    for (const f of files) for (const k of f.keys()) this.where.set(k, f.get(k)!);
  }

  /** Opens a component's weights: a diffusers folder's files (variant first, with fallback) or a mapped single file's. */
  static async open(
    ctx: GpuContext,
    source: ModelSource,
    subfolder: string,
    opts: { dtype: DType; variant?: string; ignore?: RegExp[]; onNotice?: (msg: string) => void },
  ): Promise<WeightStore> {
    const tensors = await openComponentTensors(source, subfolder, { variant: opts.variant, onNotice: opts.onNotice });
    return new WeightStore(ctx, [tensors], opts.dtype, opts.ignore);
  }

  has(key: string): boolean {
    return this.where.has(key);
  }

  info(key: string): TensorEntry | undefined {
    return this.where.get(key);
  }

  keys(): string[] {
    return [...this.where.keys()];
  }

  /**
   * Allocates the parameter `key` with `shape` and queues its upload; problems are collected. The
   * shape is compared with the file's header first: a parameter the file cannot fill (and every one
   * after the first problem) gets a placeholder instead of a buffer, so a config asking for absurd
   * shapes (vocab_size 1e9) is a CheckpointError from finish(), never gigabytes allocated first.
   */
  take(key: string, shape: readonly number[], opts: QuantizedTake): Tensor | QuantizedWeight;
  take(key: string, shape: readonly number[], opts?: TakeOptions & { allowQuantized?: false }): Tensor;
  take(key: string, shape: readonly number[], opts?: TakeOptions): Tensor | QuantizedWeight;
  take(key: string, shape: readonly number[], opts: TakeOptions = {}): Tensor | QuantizedWeight {
    if (opts.allowQuantized && this.quantizedAs([key], [opts.fileShape ?? shape], opts.alternateShapes)) return this.takeBlocks([key]);
    const dtype = opts.dtype ?? this.dtype;
    const entry = this.check(key, opts.fileShape ?? shape, dtype, opts.alternateShapes);
    const tensor = this.allocate(shape, dtype, key, !!entry);
    if (entry && this.isReal(tensor)) this.pending.push({ key, entry, tensor, offsetElems: 0, transform: opts.transform });
    if (opts.fileShape) recordFileParameters(tensor, shapeSize(opts.fileShape)); // e.g. Winograd-transformed: the file's parameters
    return tensor;
  }

  /**
   * Several parameters stacked along their first axis into one tensor (e.g. to_q, to_k, to_v →
   * one [3C, C] projection). Each key must have `partShapes`; the result is [Σ rows, ...rest] — with
   * `allowQuantized`, a QuantizedWeight when every part is stored quantized in the same type.
   */
  takeStacked(keys: readonly string[], partShapes: readonly (readonly number[])[], opts: Omit<QuantizedTake, 'transform' | 'fileShape'>): Tensor | QuantizedWeight;
  takeStacked(keys: readonly string[], partShapes: readonly (readonly number[])[], opts?: Omit<TakeOptions, 'transform' | 'fileShape'> & { allowQuantized?: false }): Tensor;
  takeStacked(keys: readonly string[], partShapes: readonly (readonly number[])[], opts?: Omit<TakeOptions, 'transform' | 'fileShape'>): Tensor | QuantizedWeight;
  takeStacked(keys: readonly string[], partShapes: readonly (readonly number[])[], opts: Omit<TakeOptions, 'transform' | 'fileShape'> = {}): Tensor | QuantizedWeight {
    if (opts.allowQuantized && this.quantizedAs(keys, partShapes, opts.alternateShapes)) return this.takeBlocks(keys);
    const dtype = opts.dtype ?? this.dtype;
    const rest = partShapes[0].slice(1);
    const rows = partShapes.reduce((a, s) => a + s[0], 0);
    const entries = keys.map((k, i) => this.check(k, partShapes[i], dtype, opts.alternateShapes));
    const tensor = this.allocate([rows, ...rest], dtype, keys.join('+'), entries.every((e) => e));
    let offset = 0;
    keys.forEach((key, i) => {
      const entry = entries[i];
      if (entry && this.isReal(tensor)) this.pending.push({ key, entry, tensor, offsetElems: offset });
      offset += shapeSize(partShapes[i]);
    });
    return tensor;
  }

  /**
   * A 2-D parameter split by rows into chunks of at most `maxBytes` each (a table larger than one
   * storage binding, e.g. bigG's token embedding in f32). Returns the chunks and their first rows.
   */
  takeRowChunks(key: string, shape: readonly [number, number], maxBytes: number, opts: Pick<TakeOptions, 'dtype'> = {}): { chunks: Tensor[]; rowStarts: number[] } {
    const dtype = opts.dtype ?? this.dtype;
    const entry = this.check(key, shape, dtype);
    if (!entry || this.problems.length) return { chunks: [this.allocate(shape, dtype, key, false)], rowStarts: [0] };
    const rowBytes = shape[1] * (dtype === 'f16' ? 2 : 4);
    const rowsPer = Math.max(1, Math.floor(maxBytes / rowBytes));
    const chunks: Tensor[] = [];
    const rowStarts: number[] = [];
    for (let r = 0; r < shape[0]; r += rowsPer) {
      const rows = Math.min(rowsPer, shape[0] - r);
      const t = this.allocate([rows, shape[1]], dtype, `${key}[${r}:${r + rows}]`, true);
      chunks.push(t);
      rowStarts.push(r);
      this.pending.push({ key, entry, tensor: t, offsetElems: 0, sourceOffsetElems: r * shape[1], countElems: t.size });
    }
    return { chunks, rowStarts };
  }

  /**
   * Whether every key is present, untaken, of an accepted shape (same rows) and stored quantized in one
   * type. A row may end mid-block (a ComfyUI-flattened conv): the kernels read the blocks as one stream.
   */
  private quantizedAs(keys: readonly string[], shapes: readonly (readonly number[])[], alternates: TakeOptions['alternateShapes'] = []): boolean {
    const entries = keys.map((k) => this.where.get(k));
    const type = entries[0]?.quantized?.type;
    return !!type && entries.every((e, i) => !!e && e.quantized?.type === type && e.shape.length >= 2 && !this.used.has(keys[i]) && e.shape[0] === shapes[i][0] && [shapes[i], ...alternates].some((s) => sameShape(s, e.shape)));
  }

  /** The keys' blocks, stacked by rows, as one QuantizedWeight of the file's PyTorch shape. */
  private takeBlocks(keys: readonly string[]): QuantizedWeight {
    const entry = keys.length === 1 ? this.where.get(keys[0])! : concatRowsEntry(keys.map((k) => this.where.get(k)!));
    const blocks = entry.quantized!;
    for (const k of keys) this.used.add(k);
    // after a problem: a placeholder, as for float parameters (finish() throws before anything runs)
    const data = this.allocate([Math.ceil(blocks.byteLength / 4)], 'u32', keys.join('+'), true);
    const w = allocQuantizedWeight(blocks.type, entry.shape, data);
    recordFileParameters(data, shapeSize(entry.shape));
    if (this.isReal(data)) this.pending.push({ key: keys.join('+'), entry, tensor: data, offsetElems: 0, blocks });
    return w;
  }

  /** Compares `key` in the file with the shape and dtype wanted; returns its entry, or null after recording the problem. */
  private check(key: string, fileShape: readonly number[], dtype: DType, alternateShapes: readonly (readonly number[])[] = []): TensorEntry | null {
    const entry = this.where.get(key);
    if (!entry) {
      this.problems.push({ key, kind: 'missing', expected: formatShape(fileShape) });
      return null;
    }
    if (this.used.has(key)) throw new Error(`WeightStore: key ${key} taken twice (a model-building bug)`);
    this.used.add(key);
    if (![fileShape, ...alternateShapes].some((s) => sameShape(s, entry.shape))) {
      this.problems.push({ key, kind: 'shape', expected: formatShape(fileShape), actual: formatShape(entry.shape) });
      return null;
    }
    if (!isFloatOrInt(entry.dtype, dtype)) {
      this.problems.push({ key, kind: 'dtype', expected: dtype, actual: entry.quantized?.type ?? entry.dtype }); // a quantized entry: its format
      return null;
    }
    return entry;
  }

  private isReal(t: Tensor): boolean {
    return t.storage !== this.placeholderSeed?.storage;
  }

  /**
   * A weight tensor when `real` and no problem has been seen; otherwise a placeholder: the shape asked
   * for over one shared 16-byte buffer. finish() throws whenever a placeholder exists, so none is ever
   * computed with or loaded into; disposeAll() frees them with the rest.
   */
  private allocate(shape: readonly number[], dtype: DType, label: string, real: boolean): Tensor {
    if (real && !this.problems.length) {
      const t = this.ctx.weight(shape, dtype, label);
      this.taken.push(t);
      return t;
    }
    if (!this.placeholderSeed) {
      this.placeholderSeed = this.ctx.weight([4], 'f32', 'placeholder (a weight the file cannot fill)');
      this.taken.push(this.placeholderSeed);
    }
    const storage = this.placeholderSeed.storage;
    storage.refs++;
    const t = new Tensor(this.ctx, shape, dtype, storage, `${label} (placeholder)`);
    this.taken.push(t);
    return t;
  }

  /** The first of `keys` present in the file (e.g. new vs legacy attention names), else keys[0]. */
  pick(...keys: string[]): string {
    return keys.find((k) => this.where.has(k)) ?? keys[0];
  }

  /** Throws CheckpointError listing every missing, mis-shaped and unexpected key. */
  finish(): void {
    const unexpected: CheckpointProblem[] = [];
    for (const [k, e] of this.where) {
      if (this.used.has(k) || this.ignore.some((r) => r.test(k))) continue;
      unexpected.push({ key: e.stored === k ? k : `${k} (${e.stored})`, kind: 'unexpected', actual: formatShape(e.shape) });
    }
    const all = [...this.problems, ...unexpected];
    if (all.length) throw new CheckpointError(this.label, all);
  }

  /** Bytes of file data the queued parameters will read. */
  get totalBytes(): number {
    return this.pending.reduce((a, p) => a + pendingBytes(p), 0);
  }

  /** Streams every queued parameter to the GPU. */
  async load(opts: LoadOptions = {}): Promise<void> {
    const total = this.totalBytes;
    let loaded = 0;
    let sinceDrain = 0;
    // Bound the writes the queue holds in staging memory: wait for it every 128 MiB.
    const drain = async (bytes: number) => {
      sinceDrain += bytes;
      if (sinceDrain >= 128 << 20) {
        sinceDrain = 0;
        await this.ctx.raceLost(this.ctx.device.queue.onSubmittedWorkDone());
      }
    };
    for (const p of this.pending) {
      const info = p.entry;
      const progress = (b: number) => {
        loaded += b;
        opts.onProgress?.({ loadedBytes: loaded, totalBytes: total, key: p.key });
      };
      // a quantized tensor loaded dequantized reads its blocks: count those bytes
      const fileBytes = info.quantized ? info.quantized.byteLength / info.byteLength : 1;
      if (p.blocks) {
        await uploadBlocksInto(p.blocks, p.key, p.tensor, { signal: opts.signal, drain, onBytes: progress });
      } else if (!p.transform) {
        await uploadEntryInto(p.entry, p.key, p.tensor, {
          targetOffsetElems: p.offsetElems,
          sourceOffsetElems: p.sourceOffsetElems,
          countElems: p.countElems,
          signal: opts.signal,
          drain,
          onBytes: (b) => progress(b * fileBytes),
        });
      } else {
        const data = await readEntryAs(p.entry, p.key, p.tensor.dtype, opts.signal);
        const out = p.transform(data, info.shape);
        if (out.length !== p.tensor.size) throw new Error(`WeightStore: transform of ${p.key} gave ${out.length} values for the allocated shape ${formatShape(p.tensor.shape)}`);
        const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
        this.ctx.write(p.tensor, bytes.byteLength % 4 ? padTo4(bytes) : bytes, p.offsetElems * (out.BYTES_PER_ELEMENT));
        await drain(bytes.byteLength);
        progress(info.byteLength * fileBytes);
      }
    }
    this.pending.length = 0;
    await this.ctx.sync();
  }

  /** Disposes every tensor this store allocated (after a failed load). */
  disposeAll(): void {
    for (const t of this.taken) t.dispose();
  }

  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close()));
  }
}

function pendingBytes(p: Pending): number {
  if (p.blocks) return p.blocks.byteLength;
  const all = p.entry.quantized?.byteLength ?? p.entry.byteLength;
  return p.countElems === undefined ? all : (all / shapeSize(p.entry.shape)) * p.countElems;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function isFloatOrInt(file: string, to: DType): boolean {
  const float = file === 'F32' || file === 'F16' || file === 'BF16' || file === 'F64';
  return to === 'i32' ? file === 'I64' || file === 'I32' : float;
}

function padTo4(b: Uint8Array): Uint8Array {
  const p = new Uint8Array(Math.ceil(b.byteLength / 4) * 4);
  p.set(b);
  return p;
}

/**
 * Builds a model from an opened store and streams its weights in. A model whose load fails (abort,
 * I/O) is disposed; the store's files are closed either way.
 */
export async function buildAndLoad<M extends { dispose(): void }>(store: WeightStore, build: (store: WeightStore) => M, opts: LoadOptions = {}): Promise<M> {
  try {
    const model = build(store);
    try {
      await store.load(opts);
    } catch (e) {
      model.dispose();
      throw e;
    }
    return model;
  } finally {
    await store.close();
  }
}

/**
 * The dtype a component runs in: the one asked for, else f16 when the device has shader-f16. f16 on
 * a device without it falls back to f32 — the documented path — and says so.
 */
export function chooseComputeDtype(ctx: GpuContext, requested: 'f16' | 'f32' | undefined, what: string, onNotice: (msg: string) => void = console.warn): 'f16' | 'f32' {
  const dtype = requested ?? (ctx.f16 ? 'f16' : 'f32');
  if (dtype === 'f16' && !ctx.f16) {
    onNotice(`the device has no shader-f16: running the ${what} in f32 (twice the memory and bandwidth)`);
    return 'f32';
  }
  return dtype;
}
