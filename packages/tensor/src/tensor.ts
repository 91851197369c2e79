// A Tensor: shape, dtype and a GPU buffer shared through a ref-counted storage (a reshape is a free
// view). dispose() returns the buffer to the context's pool when the last view goes.

import { DTYPE_BYTES, formatShape, shapeSize, type DType } from './dtype.js';
import { InvalidArgumentError } from './errors.js';
import type { GpuContext } from './context.js';

/** The buffer behind one or more tensors (views). */
export class Storage {
  refs = 1;
  constructor(
    readonly buffer: GPUBuffer,
    readonly pooled: boolean,
  ) {}
}

export class Tensor {
  readonly shape: readonly number[];
  readonly size: number;
  private disposedFlag = false;

  /** Use ctx.empty / ctx.fromData / ctx.weight instead of constructing directly. */
  constructor(
    readonly ctx: GpuContext,
    shape: readonly number[],
    readonly dtype: DType,
    readonly storage: Storage,
    readonly label: string,
  ) {
    this.shape = Object.freeze([...shape]);
    this.size = shapeSize(shape);
  }

  get byteSize(): number {
    return this.size * DTYPE_BYTES[this.dtype];
  }

  get rank(): number {
    return this.shape.length;
  }

  get disposed(): boolean {
    return this.disposedFlag;
  }

  /** The GPU buffer (at least byteSize bytes, 16-byte aligned). Throws if disposed. */
  get buffer(): GPUBuffer {
    if (this.disposedFlag) throw new InvalidArgumentError(`tensor "${this.label}" ${formatShape(this.shape)} was used after dispose()`);
    return this.storage.buffer;
  }

  /** A view with another shape of the same size; shares the buffer. */
  reshape(shape: readonly number[]): Tensor {
    const resolved = resolveShape(shape, this.size);
    if (shapeSize(resolved) !== this.size) {
      throw new InvalidArgumentError(`reshape: cannot view ${formatShape(this.shape)} (${this.size} elements) as ${formatShape(shape)}`);
    }
    this.buffer; // throws if disposed
    this.storage.refs++;
    return new Tensor(this.ctx, resolved, this.dtype, this.storage, this.label);
  }

  /** Reads the values back (f16 as Float32Array). Submits pending work. */
  read(): Promise<Float32Array | Int32Array | Uint32Array> {
    return this.ctx.read(this);
  }

  /** Reads the raw bytes (f16 as bit patterns). */
  readBytes(): Promise<Uint8Array> {
    return this.ctx.readBytes(this);
  }

  /** Frees this view; the buffer goes back to the pool when no view uses it. Idempotent. */
  dispose(): void {
    if (this.disposedFlag) return;
    this.disposedFlag = true;
    this.ctx.releaseStorage(this.storage);
  }

  toString(): string {
    return `Tensor(${this.label}, ${formatShape(this.shape)}, ${this.dtype})`;
  }
}

function resolveShape(shape: readonly number[], size: number): number[] {
  const out = [...shape];
  const infer = out.indexOf(-1);
  if (infer >= 0) {
    const rest = out.reduce((a, d, i) => (i === infer ? a : a * d), 1);
    out[infer] = rest === 0 ? 0 : size / rest;
  }
  for (const d of out) {
    if (!Number.isInteger(d) || d < 0) throw new InvalidArgumentError(`invalid shape ${formatShape(shape)} for ${size} elements`);
  }
  return out;
}
