// linear with a QuantizedWeight vs float64 over the dequantized weight: every block format on every
// variant (portable, subgroups, tiled) in f16 and f32, at awkward sizes — M and N not tile multiples,
// several blocks per row (3 of 32, or 2 super-blocks of 256), K-quant rows that end inside a
// super-block — every epilogue, the default tiles, row chunks past the binding limit, and refusals.
// Weights are random blocks (every scale, min, sign and high-bit pattern) or quantized random values.
// Outputs are poisoned; every element is checked.
import { describe, expect, it } from 'vitest';
import { createContext, DTypeError, InvalidArgumentError, ShapeError, type DType, type GpuContext, type QuantType } from '@ssd/tensor';
import { linear, type GemmTile, type GemmVariant } from '../src/matmul.js';
import { ACTIVATIONS, type Activation } from '../src/shader.js';
import { relL2, testContext } from '../../../testing/index.js';
import { matmulRef } from './reference/matmul.js';
import { dequantizeRef, quantizeRef } from './reference/quantized.js';
import { input, runPoisoned } from './poisoned-run.js';
import { QUANT_TOL as TOL, QUANT_TYPES, quantPaths, randomQuantized, uploadQuantized } from './quantized-weight.js';
import { randomArray } from '../../../testing/index.js';

const ctx = await testContext();
const QUANT_PATHS = quantPaths(ctx);

interface Case {
  type: QuantType;
  M: number;
  K: number;
  N: number;
  bias?: boolean;
  activation?: Activation;
  residual?: boolean;
  /** batch dims of x: [..., M, K] */
  lead?: number[];
  weights?: 'bits' | 'values';
}
const FULL = { bias: true, activation: 'silu', residual: true } as const;
const kOf = (type: QuantType) => (type.endsWith('_K') ? 512 : 96);

function name(dtype: DType, path: string, c: Case): string {
  const epi = [c.bias && 'bias', c.activation && c.activation !== 'none' && c.activation, c.residual && 'residual'].filter(Boolean).join('+');
  return `linear ${c.type} ${dtype} ${path} M=${c.M} K=${c.K} N=${c.N}${c.lead ? ` lead=${c.lead.join('×')}` : ''}${epi ? ' ' + epi : ''}${c.weights === 'values' ? ' quantized values' : ''}`;
}

async function check(g: GpuContext, label: string, dtype: DType, c: Case, opts: { force?: GemmVariant; tile?: GemmTile }): Promise<number> {
  const lead = c.lead ?? [];
  const outShape = [...lead, c.M, c.N];
  const rows = lead.reduce((a, d) => a * d, c.M);
  const x = input(g, [...lead, c.M, c.K], dtype, label + ' x');
  const { w, values } = randomQuantized(g, c.type, [c.N, c.K], label + ' w', c.weights);
  const bias = c.bias ? input(g, [c.N], dtype, label + ' bias') : null;
  const res = c.residual ? input(g, outShape, dtype, label + ' residual') : null;
  const r = await runPoisoned(g, rows * c.N, dtype, () => linear(x.t, w, { ...opts, bias: bias?.t, activation: c.activation, residual: res?.t }));
  expect(r.out.shape).toEqual(outShape);
  expect(r.out.dtype).toBe(dtype);
  const ref = matmulRef(x.v, values, rows, c.K, c.N, { bias: bias?.v, activation: c.activation, residual: res?.v });
  const err = relL2(r.values, ref);
  expect(err).toBeLessThanOrEqual(TOL[dtype as 'f32' | 'f16']);
  expect(r.tailIntact).toBe(true);
  for (const t of [x.t, w, bias?.t, res?.t, r.out]) t?.dispose();
  return err;
}

const skipF16 = (dtype: DType) => dtype === 'f16' && !ctx.f16;
const skipPath = (p: GemmVariant) => p === 'subgroups' && !ctx.subgroups;

describe('linear with a quantized weight', () => {
  // every format on every variant; the variant changes only the tiling and the dtype only A's loads
  // and the store, so both dtypes run on every variant for one 32-value and one K-quant format
  for (const type of QUANT_TYPES) {
    for (const path of QUANT_PATHS) {
      const both = type === 'q8_0' || type === 'q4_K';
      for (const dtype of both ? (['f32', 'f16'] as const) : path.name === 'portable' ? (['f32'] as const) : (['f16'] as const)) {
        const c: Case = { type, M: 67, K: kOf(type), N: 19, ...FULL };
        const label = name(dtype, path.name, c);
        it(label, async ({ skip }) => {
          if (skipF16(dtype) || skipPath(path.name)) skip();
          await check(ctx, label, dtype, c, { force: path.name, tile: path.tile });
        });
      }
    }
  }

  // every epilogue (each is its own kernel), on the subgroup path the CPU adapters run
  const epilogues: Omit<Case, 'type' | 'M' | 'K' | 'N'>[] = [{}, { bias: true }, { residual: true }, ...ACTIVATIONS.filter((a) => a !== 'none').map((activation) => ({ bias: true, activation }))];
  for (const e of epilogues) {
    const c: Case = { type: 'q4_K', M: 13, K: 256, N: 21, ...e };
    const label = name('f16', 'subgroups', c);
    it(label, async ({ skip }) => {
      if (skipF16('f16')) skip();
      await check(ctx, label, 'f16', c, { tile: QUANT_PATHS[1].tile });
    });
  }

  // what models run: the adapter's default variant and tile, batch dims, quantized (not random) values
  for (const type of ['q8_0', 'q4_K'] as const) {
    for (const dtype of ['f16', 'f32'] as const) {
      const c: Case = { type, M: 37, K: kOf(type) * 2, N: 67, lead: [2], ...FULL, weights: 'values' };
      const label = name(dtype, 'default', c);
      it(label, async ({ skip }) => {
        if (skipF16(dtype)) skip();
        await check(ctx, label, dtype, c, {});
      });
    }
  }

  // a workgroup wider than the subgroup: the subgroup kernel's fallback (every lane reads A itself)
  for (const type of ['q5_0', 'q5_K'] as const) {
    const c: Case = { type, M: 21, K: kOf(type), N: 19, ...FULL };
    const label = name('f16', 'subgroups-fallback', c);
    it(label, async ({ skip }) => {
      if (skipF16('f16') || skipPath('subgroups')) skip();
      const lanes = 2 * (ctx.info.subgroupMaxSize ?? 8);
      await check(ctx, label, 'f16', c, { force: 'subgroups', tile: { m: lanes, n: 1, lanes } });
    });
  }

  // K-quant rows that end inside a super-block (160 values: 5 groups), as ComfyUI-GGUF's reshaped tensors
  for (const type of ['q4_K', 'q5_K', 'q6_K'] as const) {
    const c: Case = { type, M: 9, K: 160, N: 8, ...FULL };
    const label = name('f16', 'subgroups', c) + ' rows across super-blocks';
    it(label, async ({ skip }) => {
      if (skipF16('f16')) skip();
      await check(ctx, label, 'f16', c, { tile: QUANT_PATHS[1].tile });
    });
  }

  it('a [N, K, 1, 1] weight (a 1×1 conv stored for a Linear) runs as [N, K]', async () => {
    const x = input(ctx, [5, 64], 'f32', '1x1 x');
    const { w, values } = randomQuantized(ctx, 'q8_0', [3, 64, 1, 1], '1x1 w');
    const out = linear(x.t, w, { force: 'portable', tile: QUANT_PATHS[0].tile });
    expect(relL2(await out.read(), matmulRef(x.v, values, 5, 64, 3))).toBeLessThanOrEqual(TOL.f32);
    for (const t of [x.t, w, out]) t.dispose();
  });

  it('rejects weights that do not fit the problem before recording', () => {
    const x = input(ctx, [4, 64], 'f32', 'bad x').t;
    const w = randomQuantized(ctx, 'q8_0', [3, 64], 'bad w').w;
    const before = ctx.pipelineCount;
    expect(() => linear(x, { ...w, shape: [3, 32] })).toThrow(ShapeError); // K ≠ x's
    const x48 = input(ctx, [4, 48], 'f32', 'bad x48').t;
    expect(() => linear(x48, { ...w, shape: [4, 48] })).toThrow(/multiple of 32/); // K not whole groups
    expect(() => linear(x, { ...w, shape: [1, 64], type: 'q4_K' })).toThrow(/whole 256-value q4_K blocks/);
    expect(() => linear(x, { ...w, shape: [4, 64] })).toThrow(/u32 words/); // data too short for 4 rows
    expect(() => linear(x, { ...w, data: x })).toThrow(DTypeError);
    expect(() => linear(x, { ...w, type: 'q3_K' as QuantType })).toThrow(InvalidArgumentError);
    expect(ctx.pipelineCount).toBe(before);
    for (const t of [x, x48, w]) t.dispose();
  });
});

describe('quantized linear past maxStorageBufferBindingSize', () => {
  // 4 KiB bindings: x, out and residual are split into row chunks bound as windows; the weight is whole
  const small = createContext({ limits: { maxStorageBufferBindingSize: 4096 } });
  it('linear q5_1 f32 portable M=150 K=64 N=12 bias+silu+residual in row chunks', async () => {
    const c = await small;
    const label = 'chunked q5_1';
    await check(c, label, 'f32', { type: 'q5_1', M: 150, K: 64, N: 12, ...FULL }, { force: 'portable', tile: QUANT_PATHS[0].tile });
  });
});

describe('the test quantizers (quantize_row_*_ref)', () => {
  // round trip of values uniform in [-1, 1]: the error of each format's step (q8_0 ≈ 1/254 of the
  // block max, 4-bit ≈ 1/30, …), measured: q8_0 0.005, q4_0 0.077, q4_1 0.070, q5_0 0.039, q5_1
  // 0.034, q4_K 0.07, q5_K 0.035, q6_K 0.018 (rel-L2)
  const bound: Record<QuantType, number> = { q8_0: 0.01, q4_0: 0.12, q4_1: 0.1, q5_0: 0.06, q5_1: 0.05, q4_K: 0.1, q5_K: 0.05, q6_K: 0.03 };
  for (const type of QUANT_TYPES) {
    it(`${type}: dequantize(quantize(x)) ≈ x`, () => {
      const x = randomArray(1024, `round trip ${type}`);
      expect(relL2(dequantizeRef(type, quantizeRef(type, x)), x)).toBeLessThanOrEqual(bound[type]);
    });
  }

  it('uploads as whole u32 words (a q8_0 block is 34 bytes)', () => {
    const w = uploadQuantized(ctx, 'q8_0', [1, 32], quantizeRef('q8_0', randomArray(32, 'pad')));
    expect(w.data.shape).toEqual([9]);
    w.dispose();
  });
});
