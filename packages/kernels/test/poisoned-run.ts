// Shared by the norm / elementwise / layout / reduction tests: seeded inputs (rounded to f16 when the
// tensor is f16, so references see what the GPU sees) and a poisoned run — the op's output buffer
// comes from NaN-filled pool buffers (NaN in the output's own dtype: testing's poisonPool fills f32
// NaN words, whose low halves are f16 zeros), every element is read back, and the buffer's tail past
// the output must still hold the poison.
import { DTYPE_BYTES, roundToF16InPlace, type DType, type GpuContext, type Tensor } from '@ssd/tensor';
import { randomArray, readWholeBuffer } from '../../../testing/index.js';

const POISON_WORD: Record<DType, number> = { f32: 0x7fc00000, f16: 0x7e007e00, i32: 0x7fc00000, u32: 0x7fc00000 };

/** A tensor of seeded values uniform in [lo, hi) + the values it holds (f16-rounded for f16). */
export function input(ctx: GpuContext, shape: readonly number[], dtype: DType, seed: string, lo = -1, hi = 1): { t: Tensor; v: Float32Array } {
  const n = shape.reduce((a, d) => a * d, 1);
  const v = randomArray(n, seed, lo, hi);
  if (dtype === 'f16') roundToF16InPlace(v);
  return { t: ctx.fromData(v, shape, dtype, seed), v };
}

/** Leaves `count` free pool buffers, filled with NaN of `dtype`, of the class an output of `bytes` takes. */
export function poisonFor(ctx: GpuContext, bytes: number, dtype: DType, count = 4): void {
  const words = Math.max(1, Math.ceil(bytes / 4));
  const ts = Array.from({ length: count }, () => ctx.empty([words], 'u32', 'poison'));
  for (const t of ts) ctx.write(t, new Uint32Array(t.buffer.size / 4).fill(POISON_WORD[dtype]), 0);
  for (const t of ts) t.dispose();
}

export interface PoisonedResult {
  out: Tensor;
  values: Float32Array | Int32Array | Uint32Array;
  /** Every byte of the output's buffer past its last element still holds the poison. */
  tailIntact: boolean;
}

/** Poisons the pool for an output of `outElems` × `outDtype`, runs `op`, reads everything back. */
export async function runPoisoned(ctx: GpuContext, outElems: number, outDtype: DType, op: () => Tensor): Promise<PoisonedResult> {
  poisonFor(ctx, outElems * DTYPE_BYTES[outDtype], outDtype);
  const out = op();
  const values = await out.read();
  const whole = await readWholeBuffer(out);
  const word = POISON_WORD[outDtype];
  const usedBytes = out.byteSize;
  let tailIntact = true;
  const firstFull = Math.ceil(usedBytes / 4);
  if (usedBytes % 4 === 2 && whole[firstFull - 1] >>> 16 !== word >>> 16) tailIntact = false;
  for (let i = firstFull; i < whole.length; i++) if (whole[i] !== word) tailIntact = false;
  return { out, values, tailIntact };
}

/** Tolerance of DESIGN.md for a kernel in this dtype (rel-L2 vs float64). */
export function tolerance(dtype: DType): number {
  return dtype === 'f16' ? 5e-3 : 1e-5;
}
