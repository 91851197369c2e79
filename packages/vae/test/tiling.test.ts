// Tiling: the blend reproduces an image exactly when the tiles agree (so every tile lands where it
// belongs, short edge tiles included); the planner's choices against the binding limit and a
// budget; the estimate against the measured peak; and tiled vs untiled decode on the fixture VAE at
// a size that takes 9 tiles — exact tiling within 2/255 after 8-bit quantisation (diffusers' blend
// reported beside it), and the same for encode.
import { afterAll, describe, expect, it } from 'vitest';
import { DeviceLimitError, InvalidArgumentError } from '@ssd/tensor';
import { AutoencoderKL, imagesToRgba8, parseAutoencoderKLConfig, type HostImage } from '@ssd/vae';
import { estimateKLDecode } from '../src/tiling/memory-plan.js';
import { blendTiles, cropHost, planTiles, tileStarts } from '../src/tiling/tiling.js';
import { maxAbsDiff, prng, relL2, testContext } from '../../../testing/index.js';
import { klModelDir, readNhwc, referenceFile, referenceJson } from './fixtures.js';

const ctx = await testContext();
const json = await referenceJson('vae');
const vae = await AutoencoderKL.fromPretrained(klModelDir(json), { context: ctx });
afterAll(() => vae.dispose());

function gaussian(n: number, seed: string, std: number): Float32Array {
  const r = prng(seed);
  return Float32Array.from({ length: n }, () => std * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()));
}

describe('blendTiles (host)', () => {
  // tiles cut from one image agree on their overlaps, so blending must give the image back
  for (const [h, w, tile, scale] of [[20, 13, 8, 1], [16, 16, 8, 8], [9, 30, 12, 2], [5, 5, 4, 3]] as const) {
    it(`${h}×${w} latent, tile ${tile}, output ×${scale}`, () => {
      const stride = tile * 0.75;
      const big = { data: Float32Array.from({ length: 2 * h * scale * w * scale * 3 }, (_, i) => Math.sin(i * 0.37)), shape: [2, h * scale, w * scale, 3] } as HostImage;
      const grid = tileStarts(h, stride).map((y) => tileStarts(w, stride).map((x) =>
        cropHost(big, y * scale, x * scale, Math.min(tile, h - y) * scale, Math.min(tile, w - x) * scale)));
      const extent = Math.floor(tile * scale * 0.25);
      const out = blendTiles(grid, extent, tile * scale - extent);
      expect(out.shape).toEqual(big.shape);
      expect(maxAbsDiff(out.data, big.data)).toBeLessThan(1e-6);
    });
  }
});

describe('planTiles', () => {
  const sdxl = parseAutoencoderKLConfig({
    block_out_channels: [128, 256, 512, 512], layers_per_block: 2, norm_num_groups: 32, sample_size: 1024,
    down_block_types: Array(4).fill('DownEncoderBlock2D'), up_block_types: Array(4).fill('UpDecoderBlock2D'),
  });
  const plan = (h: number, w: number, bytes: number, opts = {}) =>
    planTiles(ctx, { op: 'decode', h, w, defaultTile: 128, estimate: (th, tw) => estimateKLDecode(sdxl, 1, th, tw, bytes) }, opts);

  it('1024² in f32 is tiled so that every tensor fits the binding, and within budget', () => {
    const p = plan(128, 128, 4);
    expect(p.tiled).toBe(true);
    expect(p.tileLatentSize % 4).toBe(0);
    expect(p.estimate.largestTensorBytes).toBeLessThanOrEqual(ctx.limits.maxStorageBufferBindingSize);
    expect(p.tiles).toBe(p.rows * p.cols);
    console.log(`SDXL 1024² f32: ${p.tiles} tiles of ${p.tileLatentSize} latent px, ~${(p.estimate.peakBytes / 2 ** 20).toFixed(0)} MiB per tile`);
    const whole = estimateKLDecode(sdxl, 1, 128, 128, 4);
    expect(whole.largestTensorBytes).toBe(256 * 1024 * 1024 * 4); // the 256-channel tensors at full resolution
  });
  it('a smaller budget gives smaller tiles; an explicit tile size is used as given', () => {
    const a = plan(128, 128, 2);
    const b = plan(128, 128, 2, { tileBudgetBytes: 64 << 20 });
    expect(b.tileLatentSize).toBeLessThan(a.tileLatentSize);
    expect(b.estimate.peakBytes).toBeLessThanOrEqual(64 << 20);
    expect(plan(128, 128, 4, { tileLatentSize: 32 })).toMatchObject({ tiled: true, tileLatentSize: 32, strideLatent: 24, rows: 6, cols: 6 });
  });
  it("'never' refuses what cannot be bound; bad options are errors", () => {
    expect(() => plan(128, 128, 4, { tiling: 'never' })).toThrow(DeviceLimitError);
    expect(plan(16, 16, 4, { tiling: 'never' }).tiled).toBe(false);
    expect(() => plan(128, 128, 4, { tileLatentSize: 30 })).toThrow(InvalidArgumentError);
    expect(() => plan(128, 128, 4, { tileLatentSize: 128 })).toThrow(DeviceLimitError);
    expect(() => plan(16, 16, 4, { tiling: 'sometimes' as never })).toThrow(InvalidArgumentError);
  });
});

describe('planTiles for windowed kernels (AutoencoderKL)', () => {
  const sdxl = parseAutoencoderKLConfig({
    block_out_channels: [128, 256, 512, 512], layers_per_block: 2, norm_num_groups: 32, sample_size: 1024,
    down_block_types: Array(4).fill('DownEncoderBlock2D'), up_block_types: Array(4).fill('UpDecoderBlock2D'),
  });
  const plan = (h: number, bytes: number, opts = {}) =>
    planTiles(ctx, { op: 'decode', h, w: h, defaultTile: 128, windowed: true, estimate: (th, tw) => estimateKLDecode(sdxl, 1, th, tw, bytes) }, opts);

  it('tensors past the binding limit no longer force tiles: 512² f32 runs whole within 1 GiB, 1024² whole within a 4 GiB budget', () => {
    expect(estimateKLDecode(sdxl, 1, 64, 64, 4).largestTensorBytes).toBeGreaterThan(ctx.limits.maxStorageBufferBindingSize);
    expect(plan(64, 4)).toMatchObject({ mode: 'whole', tiled: false });
    expect(plan(128, 4).tiled).toBe(true);
    expect(plan(128, 4, { tileBudgetBytes: 4 * 2 ** 30 })).toMatchObject({ mode: 'whole', tiled: false });
    expect(plan(128, 4, { tiling: 'never' }).tiled).toBe(false);
  });
  it('the attention operands still bind whole: a latent whose QKV exceeds the binding limit is tiled, or refused with never', () => {
    const e = estimateKLDecode(sdxl, 1, 256, 256, 4);
    expect(e.largestWholeBindingBytes).toBe(3 * 512 * 256 * 256 * 4);
    expect(plan(256, 4, { tileBudgetBytes: 64 * 2 ** 30 }).tiled).toBe(true);
    expect(() => plan(256, 4, { tiling: 'never' })).toThrow(/attention operands/);
  });
});

describe('a whole decode past the binding limit (windowed kernels) on the fixture VAE', () => {
  it('256 KiB bindings: the 192×160 image runs whole and matches the decode on the full limits (rel-L2 ≤ 1e-5)', async () => {
    const small = await testContext({ limits: { maxStorageBufferBindingSize: 256 * 1024 } });
    expect(small.limits.maxStorageBufferBindingSize).toBe(256 * 1024);
    const model = await AutoencoderKL.fromPretrained(klModelDir(json), { context: small, parts: 'decoder' });
    try {
      const z = gaussian(24 * 20 * 4, 'windowed', 0.8);
      const plan = model.planDecode(1, 24, 20);
      expect(plan).toMatchObject({ mode: 'whole', tiled: false });
      expect(plan.estimate.largestTensorBytes).toBeGreaterThan(256 * 1024);
      const a = await vae.decode(ctx.fromData(z, [1, 24, 20, 4], 'f32', 'latents'));
      const b = await model.decode(small.fromData(z, [1, 24, 20, 4], 'f32', 'latents'));
      const err = relL2((await b.sample.read()) as Float32Array, (await a.sample.read()) as Float32Array);
      console.log(`whole decode with 256 KiB bindings (largest tensor ${(plan.estimate.largestTensorBytes / 1024).toFixed(0)} KiB) vs full limits: rel-L2 ${err.toExponential(2)}`);
      expect(err).toBeLessThanOrEqual(1e-5);
      a.sample.dispose();
      b.sample.dispose();
    } finally {
      model.dispose();
    }
  });
});

describe('tiled vs untiled on the fixture VAE', () => {
  it('estimate vs measured peak of an untiled decode; intermediates are freed', async () => {
    const [h, w] = [24, 20];
    const latents = ctx.fromData(gaussian(h * w * 4, 'peak', 0.5), [1, h, w, 4], 'f32', 'latents');
    const live0 = ctx.memory.liveBytes;
    ctx.resetPeak();
    const { sample, tiling } = await vae.decode(latents);
    const measured = ctx.memory.peakLiveBytes - live0;
    console.log(`decode ${h}×${w}: estimated ${(tiling.estimate.peakBytes / 2 ** 20).toFixed(2)} MiB, measured ${(measured / 2 ** 20).toFixed(2)} MiB`);
    expect(measured).toBeLessThanOrEqual(tiling.estimate.peakBytes * 1.1);
    expect(measured).toBeGreaterThanOrEqual(tiling.estimate.peakBytes * 0.7);
    expect(ctx.memory.liveBytes - live0).toBe(sample.buffer.size); // only the image is left
    sample.dispose();
    latents.dispose();
  });

  it('decode: 32×32 latent, exact tiles of 12 vs whole — max |Δ| after 8-bit quantisation ≤ 2/255 (and diffusers\' blend for comparison)', async () => {
    const ref = await referenceFile('vae');
    const stdRef = (await readNhwc(ref, `${json.decode_cases![0].name}.latents`)).data;
    const std = Math.sqrt(stdRef.reduce((a, v) => a + v * v, 0) / stdRef.length);
    const latents = ctx.fromData(gaussian(32 * 32 * 4, 'tiles', std), [1, 32, 32, 4], 'f32', 'latents');
    const whole = await vae.decode(latents, { tiling: 'never' });
    const a = (await whole.sample.read()) as Float32Array;
    const [qa] = await imagesToRgba8(whole.sample);
    let passes = 0;
    const exact = await vae.decode(latents, { tiling: 'always', tileLatentSize: 12, onTile: (d, n) => (passes = n) });
    expect(exact.tiling).toMatchObject({ mode: 'exact', tiled: true, tiles: 9, rows: 3, cols: 3 });
    expect(passes).toBe(exact.tiling.tilePasses);
    const blend = await vae.decode(latents, { tiling: 'always', tileLatentSize: 12, tileMode: 'blend' });
    expect(blend.tiling).toMatchObject({ mode: 'blend', tiles: 16 }); // starts every ⌊0.75·12⌋ = 9: 0, 9, 18, 27
    for (const [name, r] of [['exact', exact], ['blend', blend]] as const) {
      const b = (await r.sample.read()) as Float32Array;
      const [qb] = await imagesToRgba8(r.sample);
      const q = maxAbsDiff(qa.data, qb.data);
      console.log(`tiled (${name}, ${r.tiling.tiles} tiles${r.tiling.tilePasses ? `, ${r.tiling.sweeps} sweeps, ${r.tiling.tilePasses} tile passes` : ''}) vs untiled decode 256²: max |Δ| ${maxAbsDiff(a, b).toExponential(2)} in [-1,1], ${q}/255 after quantisation, rel-L2 ${relL2(b, a).toExponential(2)}`);
      if (name === 'exact') {
        expect(q).toBeLessThanOrEqual(2);
        expect(relL2(b, a)).toBeLessThanOrEqual(1e-4);
      }
      r.sample.dispose();
    }
    whole.sample.dispose();
    latents.dispose();
  });

  it('auto tiling under a small budget, and a budget the smallest tile misses', async () => {
    const latents = ctx.fromData(gaussian(16 * 24 * 4, 'auto', 0.5), [1, 16, 24, 4], 'f32', 'latents');
    const whole = vae.planDecode(1, 16, 24);
    expect(whole.tiled).toBe(false);
    const { sample, tiling } = await vae.decode(latents, { tileBudgetBytes: Math.floor(whole.estimate.peakBytes / 3) });
    expect(tiling).toMatchObject({ tiled: true, mode: 'exact' });
    expect(tiling.tiles).toBeGreaterThan(1);
    expect(sample.shape).toEqual([1, 128, 192, 3]);
    const whole2 = await vae.decode(latents);
    expect(relL2((await sample.read()) as Float32Array, (await whole2.sample.read()) as Float32Array)).toBeLessThanOrEqual(1e-4);
    whole2.sample.dispose();
    await expect(vae.decode(latents, { tileBudgetBytes: 1024 })).rejects.toThrow(DeviceLimitError);
    sample.dispose();
    latents.dispose();
  });

  it('under a context memory budget the decode stays inside it at every budget (the plan counts the pool\'s size classes)', async () => {
    const latents = ctx.fromData(gaussian(32 * 32 * 4, 'budget', 0.5), [1, 32, 32, 4], 'f32', 'latents');
    const whole = vae.planDecode(1, 32, 32).estimate.peakBytes;
    const live0 = ctx.memory.liveBytes;
    let tiled = 0;
    try {
      for (const part of [1.06, 1.02, 0.9, 0.6, 0.45, 0.33, 0.27, 0.21, 0.17, 0.13]) {
        const free = Math.floor(whole * part);
        ctx.trim();
        ctx.memoryBudgetBytes = live0 + free;
        ctx.resetPeak();
        const r = await vae.decode(latents).catch((e: Error) => e);
        if (r instanceof Error) {
          // refused while planning, never by an allocation halfway through
          expect(r.message, `free ${free}`).toMatch(/smallest tile does not fit/);
          continue;
        }
        expect(ctx.memory.peakLiveBytes - live0, `free ${free}: ${r.tiling.reason}`).toBeLessThanOrEqual(free);
        if (r.tiling.tiled) tiled++;
        r.sample.dispose();
      }
    } finally {
      ctx.memoryBudgetBytes = Infinity;
      latents.dispose();
    }
    expect(tiled).toBeGreaterThan(3);
  });

  it('encode: 256² image, exact tiles vs whole (latent mean rel-L2 ≤ 1e-4; blend reported)', async () => {
    const r = prng('image');
    const img = Float32Array.from({ length: 256 * 256 * 3 }, (_, i) => Math.sin((i % 768) / 40 + Math.floor(i / 768) / 30) * 0.8 + 0.2 * (2 * r() - 1));
    const image = ctx.fromData(img, [1, 256, 256, 3], 'f32', 'image');
    const whole = await vae.encode(image, { tiling: 'never' });
    const a = (await whole.latentDist.mean.read()) as Float32Array;
    for (const tileMode of ['exact', 'blend'] as const) {
      const tiled = await vae.encode(image, { tiling: 'always', tileLatentSize: 12, tileMode });
      expect(tiled.tiling).toMatchObject({ mode: tileMode, tiled: true });
      expect(tiled.tiling.tiles).toBeGreaterThan(1);
      const b = (await tiled.latentDist.mean.read()) as Float32Array;
      console.log(`tiled encode 256² (${tileMode}, ${tiled.tiling.tiles} tiles) vs untiled: latent mean max |Δ| ${maxAbsDiff(a, b).toExponential(2)}, rel-L2 ${relL2(b, a).toExponential(2)}`);
      if (tileMode === 'exact') expect(relL2(b, a)).toBeLessThanOrEqual(1e-4);
      tiled.latentDist.dispose();
    }
    whole.latentDist.dispose();
    image.dispose();
  });
});
