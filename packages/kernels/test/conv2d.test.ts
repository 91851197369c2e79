// conv2d vs a float64 convolution written from the definition (PyTorch OIHW weights re-laid with
// conv2dWeightFromOIHW): 1×1 and 3×3, stride 1 and 2, symmetric and asymmetric padding (the VAE
// encoder's F.pad(0,1,0,1) + stride 2), nearest 2× upsampling fused into the gather, per-sample bias,
// residual, Cin/Cout not multiples of 4, batch 2, a scaled-down SDXL shape; f32 and f16; the
// portable, subgroup and tiled kernels; chunks of output rows past maxStorageBufferBindingSize.
// Geometry variety runs on the portable kernel (the address code is shared); each kernel also runs
// its own 3×3 cases. Outputs are poisoned and every element is checked.
import { describe, expect, it } from 'vitest';
import { createContext, DeviceLimitError, DTypeError, InvalidArgumentError, ShapeError, type DType, type GpuContext } from '@ssd/tensor';
import { conv2d, conv2dWeightFromOIHW, conv2dWeightShape, type Conv2dOptions } from '../src/conv2d.js';
import { chooseGemmVariant, type GemmTile } from '../src/gemm.js';
import type { GemmVariant } from '../src/gemm-wgsl.js';
import type { Activation } from '../src/shader.js';
import { relL2, testContext } from '../../../testing/index.js';
import { conv2dRef } from './reference/conv2d.js';
import { input, runPoisoned, tolerance } from './poisoned-run.js';

const ctx = await testContext();
const NO_F16 = 'adapter has no shader-f16';
const NO_SUBGROUPS = 'adapter has no subgroups';
const sg = ctx.info.subgroupMinSize ?? 8;
const TILES: Record<GemmVariant, GemmTile> = {
  portable: { m: 2, n: 2, lanes: 8 },
  subgroups: { m: sg, n: 1, lanes: sg },
  tiled: { m: 32, n: 32 },
};

interface Case {
  /** x [B, H, W, Cin] */
  x: [number, number, number, number];
  cout: number;
  k: number;
  stride?: 1 | 2;
  pad?: number | [number, number, number, number];
  upsample?: 1 | 2;
  bias?: 'shared' | 'per-sample';
  activation?: Activation;
  residual?: boolean;
}

function caseName(dtype: DType, variant: string, c: Case): string {
  const [B, H, W, C] = c.x;
  const pad = c.pad === undefined ? '' : ` pad=${Array.isArray(c.pad) ? c.pad.join(',') : c.pad}`;
  const epi = [c.bias && (c.bias === 'per-sample' ? 'per-sample-bias' : 'bias'), c.activation, c.residual && 'residual'].filter(Boolean).join('+');
  return `conv2d ${dtype} ${variant} ${B}×${H}×${W}×${C}→${c.cout} ${c.k}×${c.k}${c.stride === 2 ? ' s2' : ''}${pad}${c.upsample === 2 ? ' up2' : ''}${epi ? ' ' + epi : ''}`;
}

async function check(on: GpuContext, name: string, dtype: DType, c: Case, force: GemmVariant | undefined, tile: GemmTile | undefined): Promise<void> {
  const [B, H, W, C] = c.x;
  const N = c.cout;
  const x = input(on, c.x, dtype, name + ' x');
  const wOIHW = input(on, [N, C, c.k, c.k], dtype, name + ' w'); // only its values are used
  wOIHW.t.dispose();
  const wl = conv2dWeightFromOIHW(wOIHW.v, [N, C, c.k, c.k]);
  const w = on.fromData(wl.data, wl.shape, dtype, 'w');
  const bias = c.bias ? input(on, c.bias === 'per-sample' ? [B, N] : [N], dtype, name + ' bias') : null;
  const pad = c.pad === undefined ? [0, 0, 0, 0] : typeof c.pad === 'number' ? [c.pad, c.pad, c.pad, c.pad] : c.pad;
  const ref = conv2dRef(x.v, c.x, wOIHW.v, [N, C, c.k, c.k], { stride: c.stride, padding: pad as [number, number, number, number], upsample: c.upsample, bias: bias?.v, perSampleBias: c.bias === 'per-sample', activation: c.activation });
  const res = c.residual ? input(on, ref.shape, dtype, name + ' residual') : null;
  if (res) for (let i = 0; i < ref.out.length; i++) ref.out[i] += res.v[i];
  const opts: Conv2dOptions = { bias: bias?.t, stride: c.stride, padding: c.pad, upsample: c.upsample, activation: c.activation, residual: res?.t, force, tile };
  const r = await runPoisoned(on, ref.out.length, dtype, () => conv2d(x.t, w, opts));
  expect(r.out.shape).toEqual(ref.shape);
  expect(r.out.dtype).toBe(dtype);
  expect(relL2(r.values, ref.out)).toBeLessThanOrEqual(tolerance(dtype));
  expect(r.tailIntact).toBe(true);
  for (const t of [x.t, w, bias?.t, res?.t, r.out]) t?.dispose();
}

const FULL = { bias: 'shared', activation: 'silu', residual: true } as const;
// geometry and epilogue variety, on the portable kernel
const GEOMETRY: Case[] = [
  { x: [2, 7, 6, 8], cout: 5, k: 3, pad: 1, ...FULL },
  { x: [1, 9, 8, 3], cout: 6, k: 3, stride: 2, pad: 1, ...FULL }, // UNet Downsample2D, Cin = 3
  { x: [1, 8, 7, 8], cout: 7, k: 3, stride: 2, pad: [0, 0, 1, 1], ...FULL }, // VAE encoder Downsample2D
  { x: [2, 5, 4, 12], cout: 6, k: 3, pad: 1, upsample: 2, ...FULL }, // Upsample2D → conv
  { x: [2, 5, 4, 12], cout: 7, k: 1, ...FULL, bias: 'per-sample' }, // 1×1: the matmul kernel
  { x: [2, 6, 5, 8], cout: 6, k: 3, pad: 1, ...FULL, bias: 'per-sample' }, // ResnetBlock2D conv1 with the time embedding
  { x: [1, 4, 5, 8], cout: 3, k: 3 }, // no padding, no epilogue
  { x: [2, 16, 16, 32], cout: 32, k: 3, pad: 1, ...FULL }, // SDXL conv, scaled down
];
// every kernel: a 3×3 with the full epilogue (vec4; also with a per-sample bias) and a strided one
// with Cin = 3 (vec1)
const PER_VARIANT: Case[] = [GEOMETRY[0], GEOMETRY[1], GEOMETRY[5]];
// f16: vec8 (Cin = 16) on every kernel, and vec1 (Cin = 3, strided) on the portable one
const F16: Case[] = [
  { x: [2, 6, 5, 16], cout: 6, k: 3, pad: 1, ...FULL },
  { x: [1, 9, 8, 3], cout: 6, k: 3, stride: 2, pad: 1, ...FULL },
];

describe('conv2d', () => {
  for (const c of GEOMETRY) {
    const name = caseName('f32', 'portable', c);
    it(name, () => check(ctx, name, 'f32', c, 'portable', TILES.portable));
  }
  for (const variant of ['subgroups', 'tiled'] as const) {
    for (const c of PER_VARIANT) {
      const name = caseName('f32', variant, c);
      it(name, async ({ skip }) => {
        if (variant === 'subgroups' && !ctx.subgroups) skip(NO_SUBGROUPS);
        await check(ctx, name, 'f32', c, variant, TILES[variant]);
      });
    }
  }
  for (const variant of ['portable', 'subgroups', 'tiled'] as const) {
    for (const c of variant === 'portable' ? F16 : F16.slice(0, 1)) {
      const name = caseName('f16', variant, c);
      it(name, async ({ skip }) => {
        if (!ctx.f16) skip(NO_F16);
        if (variant === 'subgroups' && !ctx.subgroups) skip(NO_SUBGROUPS);
        await check(ctx, name, 'f16', c, variant, TILES[variant]);
      });
    }
  }
  // the default kernel and tile of this adapter
  for (const dtype of ['f32', 'f16'] as const) {
    const c: Case = { x: [2, 9, 10, 32], cout: 36, k: 3, pad: 1, ...FULL, bias: 'per-sample' };
    const name = caseName(dtype, `${chooseGemmVariant(ctx)} default tile`, c);
    it(name, async ({ skip }) => {
      if (dtype === 'f16' && !ctx.f16) skip(NO_F16);
      await check(ctx, name, dtype, c, undefined, undefined);
    });
  }

  it('rejects bad shapes, options and dtypes before recording', () => {
    const x = ctx.empty([1, 4, 4, 8], 'f32');
    const w = ctx.empty([5, 3, 3, 8], 'f32');
    expect(() => conv2d(x, ctx.empty([5, 3, 3, 7], 'f32'))).toThrow(ShapeError);
    expect(() => conv2d(x, ctx.empty([5, 8], 'f32'))).toThrow(ShapeError);
    expect(() => conv2d(ctx.empty([4, 4, 8], 'f32'), w)).toThrow(ShapeError);
    expect(() => conv2d(x, w, { bias: ctx.empty([4], 'f32') })).toThrow(/bias must have shape \[5\] or \[1, 5\]/);
    expect(() => conv2d(x, w, { residual: ctx.empty([1, 4, 4, 5], 'f32') })).toThrow(ShapeError); // no padding: 2×2 out
    expect(() => conv2d(x, w, { stride: 3 as 2 })).toThrow(InvalidArgumentError);
    expect(() => conv2d(x, w, { padding: -1 })).toThrow(InvalidArgumentError);
    expect(() => conv2d(ctx.empty([1, 2, 2, 8], 'f32'), w)).toThrow(ShapeError); // smaller than the kernel
    expect(() => conv2d(ctx.empty([1, 4, 4, 8], 'i32'), w)).toThrow(DTypeError);
    if (ctx.f16) expect(() => conv2d(x, ctx.empty([5, 3, 3, 8], 'f16'))).toThrow(DTypeError);
  });
});

describe('conv2d past maxStorageBufferBindingSize', () => {
  // 4 KiB bindings: x, out and residual are split into chunks of output rows, each binding the input rows it reads
  const small = createContext({ limits: { maxStorageBufferBindingSize: 4096 } });
  const cases: Case[] = [
    { x: [2, 12, 10, 8], cout: 6, k: 3, pad: 1, ...FULL }, // x 7,680 bytes, out 5,760 bytes
    { x: [1, 13, 11, 8], cout: 5, k: 3, stride: 2, pad: [0, 0, 1, 1], ...FULL },
    { x: [1, 7, 6, 8], cout: 12, k: 3, pad: 1, upsample: 2, ...FULL }, // out 16,128 bytes
  ];
  // the chunking is the same TypeScript for every kernel: the geometries on one, one case on the others
  for (const variant of ['portable', 'subgroups', 'tiled'] as const) {
    for (const c of variant === 'portable' ? cases : cases.slice(0, 1)) {
      const name = caseName('f32', variant, c) + ' in row chunks';
      it(name, async ({ skip }) => {
        const on = await small;
        if (variant === 'subgroups' && !on.subgroups) skip(NO_SUBGROUPS);
        await check(on, name, 'f32', c, variant, TILES[variant]);
      });
    }
  }
  it('an image row past the limit is a DeviceLimitError naming the op', async () => {
    const on = await small;
    const x = on.empty([1, 3, 200, 8], 'f32', 'wide x'); // one row 6,400 bytes
    const w = on.empty([4, 3, 3, 8], 'f32');
    expect(() => conv2d(x, w, { padding: 1, force: 'portable', tile: TILES.portable })).toThrow(DeviceLimitError);
    expect(() => conv2d(x, w, { padding: 1, force: 'portable', tile: TILES.portable })).toThrow(/conv2d/);
  });
});

describe('conv2dWeightFromOIHW', () => {
  it('re-lays OIHW as OHWI for f32 values and f16 bit patterns', () => {
    const oihw = [2, 3, 2, 2];
    const n = 24;
    const f32 = Float32Array.from({ length: n }, (_, i) => i);
    const r = conv2dWeightFromOIHW(f32, oihw);
    expect(r.shape).toEqual([2, 2, 2, 3]);
    expect(conv2dWeightShape(oihw)).toEqual([2, 2, 2, 3]);
    expect(r.data).toBeInstanceOf(Float32Array);
    for (let o = 0; o < 2; o++) for (let i = 0; i < 3; i++) for (let h = 0; h < 2; h++) for (let w = 0; w < 2; w++) expect(r.data[((o * 2 + h) * 2 + w) * 3 + i]).toBe(f32[((o * 3 + i) * 2 + h) * 2 + w]);
    const u16 = Uint16Array.from({ length: n }, (_, i) => 0x3c00 + i);
    const h = conv2dWeightFromOIHW(u16, oihw);
    expect(h.data).toBeInstanceOf(Uint16Array);
    expect(Array.from(h.data)).toEqual(Array.from(r.data, (v) => 0x3c00 + v));
    // 1×1 weights keep their layout
    const one = Float32Array.from({ length: 6 }, (_, i) => i);
    expect(Array.from(conv2dWeightFromOIHW(one, [2, 3, 1, 1]).data)).toEqual(Array.from(one));
    expect(() => conv2dWeightFromOIHW(f32, [2, 3, 2])).toThrow(InvalidArgumentError);
    expect(() => conv2dWeightFromOIHW(f32, [2, 3, 2, 3])).toThrow(InvalidArgumentError);
  });
});
