// pnpm bench:lora [--dtype f16|f32] [--rank 64] [--rounds 4] [--out file.json]
// LoRA side path vs merged copy (kernels LoraWeight): ms per forward and extra GPU memory, with no adapter,
// side path, merged copy — on the fixture UNet + fixture LoRA (rank 4, batch 2, latent 16²) and on one
// Vega/SDXL level-1 block at 512² (C 640, 32×32 tokens, batch 2: stacked q/k/v, to_out, GEGLU feed-forward,
// two 3×3 convs) with rank-`--rank` adapters. Writes bench/results/lora-<adapter>.json.
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createContext, FolderSource, type GpuContext, type Tensor } from '@ssd/tensor';
import { conv2dWeightShape, LoraWeight, type LoraMode } from '@ssd/kernels';
import { UNet2DConditionModel } from '@ssd/unet';
import { LoraAdapters } from '@ssd/pipeline';
import { adapterRecord, fmtMs, hostRecord, median, mib, resultSlug } from './lib/timing.js';
import { normalArray, unetInputs } from './lib/unet-inputs.js';

const here = fileURLToPath(new URL('.', import.meta.url));
// the LoRA fixtures live only in ../shared/fixtures (not copied into the repository)
const fixturesDir = process.env.SSD_FIXTURES ?? fileURLToPath(new URL('../../shared/fixtures', import.meta.url));
const { values: args } = parseArgs({ options: { dtype: { type: 'string' }, rank: { type: 'string', default: '64' }, rounds: { type: 'string', default: '4' }, out: { type: 'string' } } });

interface Row {
  mode: 'none' | LoraMode;
  /** Median and minimum over the rounds (the machine may be shared: the minimum is the least disturbed). */
  msPerForward: number;
  minMs: number;
  runs: number[];
  /** The first forward after switching to this mode (merged: includes building the copies), median. */
  firstMs: number;
  extraBytes: number;
}

/**
 * Rounds of [none, side, merged]: each mode is switched to, run once untimed (its first forward:
 * compiles, and for merged builds the copies — reported as firstMs), then timed once. Interleaving the
 * modes spreads the load of other processes over all three.
 */
async function measure(ctx: GpuContext, name: string, setMode: (m: Row['mode']) => void, extraBytes: () => number, forward: () => Tensor, rounds: number): Promise<Row[]> {
  const modes = ['none', 'side', 'merged'] as const;
  const times = new Map<string, { first: number[]; runs: number[]; bytes: number }>(modes.map((m) => [m, { first: [], runs: [], bytes: 0 }]));
  for (let r = 0; r <= rounds; r++) {
    for (const mode of modes) {
      const rec = times.get(mode)!;
      setMode(mode);
      let t0 = performance.now();
      forward().dispose();
      await ctx.sync();
      if (r > 0) rec.first.push(performance.now() - t0); // round 0 only compiles
      t0 = performance.now();
      forward().dispose();
      await ctx.sync();
      if (r > 0) rec.runs.push(performance.now() - t0);
      rec.bytes = extraBytes();
    }
  }
  return modes.map((mode) => {
    const rec = times.get(mode)!;
    const row: Row = { mode, msPerForward: median(rec.runs), minMs: Math.min(...rec.runs), runs: rec.runs, firstMs: median(rec.first), extraBytes: rec.bytes };
    console.log(`${name} ${mode.padEnd(6)} ${fmtMs(row.msPerForward).padStart(8)} ms/forward median, ${fmtMs(row.minMs).padStart(8)} min (first after switching ${fmtMs(row.firstMs)} ms); extra GPU memory ${mib(row.extraBytes)} MiB (${row.extraBytes.toLocaleString('en-US')} B)`);
    return row;
  });
}

async function tiny(ctx: GpuContext, dtype: 'f16' | 'f32', runs: number) {
  const unet = await UNet2DConditionModel.fromPretrained(new FolderSource(`${fixturesDir}/models/tiny-ssd1b`), { context: ctx, dtype, variant: dtype === 'f16' ? 'fp16' : undefined });
  const adapters = new LoraAdapters({ unet });
  const info = await adapters.load(`${fixturesDir}/models/loras/lora_kohya_sgm.safetensors`, { skip: ['text_encoder', 'text_encoder_2'] });
  const inputs = unetInputs(ctx, unet, 2, 16, 16, 999);
  const rows = await measure(
    ctx,
    'tiny',
    (m) => (m === 'none' ? adapters.setAdapters(info.name, 0) : (adapters.setAdapters(info.name, 1), adapters.setMode(m))),
    () => adapters.extraBytes,
    () => unet.forward(inputs),
    runs,
  );
  const result = { what: 'tiny-ssd1b UNet (fixture) + fixture LoRA, batch 2, latent 16²', baseWeightBytes: unet.weightBytes, lora: info, rows };
  inputs.dispose();
  adapters.unload();
  unet.dispose();
  return result;
}

async function mid(ctx: GpuContext, dtype: 'f16' | 'f32', rank: number, runs: number) {
  const C = 640;
  const tokens = 32 * 32;
  let seed = 100;
  const t = (shape: number[], scale = 0.05) => ctx.fromData(normalArray(shape.reduce((a, b) => a * b, 1), seed++, scale), shape, dtype, 'bench');
  const layers: { name: string; w: LoraWeight; x: Tensor; conv: boolean }[] = [];
  const linearLayer = (name: string, n: number, k: number, parts: number) => {
    const w = new LoraWeight(t([n, k]), 'linear', Array.from({ length: parts }, (_, i) => ({ path: `${name}.${i}`, rowOffset: (i * n) / parts, rows: n / parts })));
    const R = rank * parts;
    w.setAdapter('bench', { down: t([R, k]), up: t([n, R]) });
    layers.push({ name, w, x: t([2, tokens, k], 1), conv: false });
  };
  const convLayer = (name: string) => {
    const w = new LoraWeight(t(conv2dWeightShape([C, C, 3, 3])), 'conv2d', [{ path: name, rowOffset: 0, rows: C }]);
    w.setAdapter('bench', { down: t([rank, 3, 3, C]), up: t([C, rank]) });
    layers.push({ name, w, x: t([2, 32, 32, C], 1), conv: true });
  };
  linearLayer('attn1.qkv', 3 * C, C, 3);
  linearLayer('attn1.to_out.0', C, C, 1);
  linearLayer('ff.net.0.proj', 8 * C, C, 1);
  linearLayer('ff.net.2', C, 4 * C, 1);
  convLayer('resnets.0.conv1');
  convLayer('resnets.0.conv2');
  const baseWeightBytes = layers.reduce((a, l) => a + ('kind' in l.w.base ? l.w.base.data : l.w.base).byteSize, 0);
  const forward = () => {
    let last: Tensor | null = null;
    for (const l of layers) {
      last?.dispose();
      last = l.conv ? l.w.conv2d(l.x, { padding: 1 }) : l.w.linear(l.x);
    }
    return last!;
  };
  const rows = await measure(
    ctx,
    `mid (rank ${rank})`,
    (m) => {
      for (const l of layers) {
        l.w.setCoefficient('bench', m === 'none' ? 0 : 1);
        if (m !== 'none') l.w.mode = m;
      }
    },
    () => layers.reduce((a, l) => a + l.w.extraBytes, 0),
    forward,
    runs,
  );
  const result = { what: `one level-1 block at 512² (C ${C}, ${tokens} tokens, batch 2): ${layers.map((l) => l.name).join(', ')}; rank ${rank} per module`, baseWeightBytes, rows };
  for (const l of layers) {
    l.w.dispose();
    l.w.base.dispose();
    l.x.dispose();
  }
  return result;
}

async function main(): Promise<void> {
  const ctx = await createContext();
  const dtype = (args.dtype ?? (ctx.f16 ? 'f16' : 'f32')) as 'f16' | 'f32';
  const runs = Number(args.rounds);
  const rank = Number(args.rank);
  console.log(`adapter: ${ctx.info.description}; dtype ${dtype}`);
  const results = { bench: 'lora', date: new Date().toISOString(), dtype, adapter: adapterRecord(ctx), host: await hostRecord(), tiny: await tiny(ctx, dtype, runs), mid: await mid(ctx, dtype, rank, runs) };
  const out = args.out ?? `${here}results/lora-${resultSlug(ctx)}.json`;
  await writeFile(out, JSON.stringify(results, null, 2) + '\n');
  console.log(`wrote ${out}`);
  ctx.destroy();
}

await main();
