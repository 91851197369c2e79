// pnpm bench:clip [--dtype f16,f32] [--runs N] [--prompts N] [--out file.json]
//
// The SDXL prompt path at real size: tokenizer load time and throughput (prompts/s, both tokenizers,
// cold and warm BPE cache) on the real CLIP vocabulary, then CLIP-L (text_encoder) and OpenCLIP-bigG
// (text_encoder_2) with random weights synthesised in-process from the reference key lists, encoding
// as StableDiffusionXLPipeline does (CLIP-L to its penultimate layer; bigG every layer plus the
// pooled, projected EOS row) for 1 prompt and for 2 (prompt + negative prompt), in f16 and f32: load
// time, first (compiling) and median encode time, weights and peak GPU memory.
// Writes bench/results/clip-<adapter>.json.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createContext, type GpuContext } from '@ssd/tensor';
import { CLIPTextModel, CLIPTokenizer } from '@ssd/clip';
import { repoRoot, syntheticModelSource } from './lib/random-model.js';
import { adapterRecord, fmtMs, hostRecord, median, mib, peakRssBytes, resultSlug } from './lib/timing.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const { values: args } = parseArgs({
  options: {
    dtype: { type: 'string', default: 'f16,f32' },
    runs: { type: 'string' },
    prompts: { type: 'string', default: '2000' },
    out: { type: 'string' },
  },
});

const WORDS = (
  'a photo of an astronaut riding horse on mars cinematic lighting highly detailed portrait woman cyberpunk city at night ' +
  'neon rain oil painting by greg rutkowski trending artstation 4k 8k hdr sharp focus bokeh 35mm film grain castle mountain ' +
  'lake sunrise golden hour dragon flying over forest cat wearing sunglasses watercolor illustration anime style studio ghibli ' +
  'isometric low poly render unreal engine octane volumetric fog ultra realistic macro shot of a bee on a flower!'
).split(' ');

/** Varied prompts (3–60 words) from a fixed LCG: realistic lengths, some past 77 tokens. */
function prompts(n: number, seed: number): string[] {
  let s = seed >>> 0;
  const r = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
  return Array.from({ length: n }, (_, i) => {
    const len = 3 + Math.floor(r() * 58);
    const words = Array.from({ length: len }, () => WORDS[Math.floor(r() * WORDS.length)]);
    return `${words.join(r() < 0.3 ? ', ' : ' ')} #${i}`;
  });
}

interface TokenizerRow {
  tokenizer: string;
  loadMs: number;
  coldPromptsPerSec: number;
  warmPromptsPerSec: number;
  meanTokens: number;
  truncatedPrompts: number;
}

async function benchTokenizers(count: number): Promise<TokenizerRow[]> {
  const rows: TokenizerRow[] = [];
  const src = await syntheticModelSource('ssd-1b', 'F16', []);
  for (const sub of ['tokenizer', 'tokenizer_2']) {
    const t0 = performance.now();
    const tok = await CLIPTokenizer.fromPretrained(src, sub);
    const loadMs = performance.now() - t0;
    const list = prompts(count, 7);
    let t = performance.now();
    let tokens = 0;
    let truncated = 0;
    for (const p of list) {
      const e = tok.encode(p);
      tokens += e.attentionMask.reduce((a: number, m: number) => a + m, 0);
      if (e.truncatedTokens) truncated++;
    }
    const coldMs = performance.now() - t;
    t = performance.now();
    for (const p of list) tok.encode(p);
    const warmMs = performance.now() - t;
    rows.push({ tokenizer: sub, loadMs, coldPromptsPerSec: count / (coldMs / 1000), warmPromptsPerSec: count / (warmMs / 1000), meanTokens: tokens / count, truncatedPrompts: truncated });
    console.log(`${sub.padEnd(12)} load ${fmtMs(loadMs)} ms; ${count} prompts: ${(count / (coldMs / 1000)).toFixed(0)} prompts/s cold cache, ${(count / (warmMs / 1000)).toFixed(0)} prompts/s warm (mean ${(tokens / count).toFixed(1)} tokens, ${truncated} truncated)`);
  }
  return rows;
}

interface EncoderRow {
  dtype: string;
  batch: number;
  loadMs: number;
  weightBytes: number;
  parameters: number;
  firstMs: number;
  ms: number;
  runs: number[];
  clipLMs: number;
  bigGMs: number;
  peakBytes: number;
  peakLiveBytes: number;
}

async function benchEncoders(ctx: GpuContext, dtype: 'f16' | 'f32', runs: number): Promise<EncoderRow[]> {
  const src = await syntheticModelSource('ssd-1b', dtype === 'f16' ? 'F16' : 'F32', ['text_encoder', 'text_encoder_2']);
  const variant = dtype === 'f16' ? 'fp16' : undefined;
  const t0 = performance.now();
  const te1 = await CLIPTextModel.fromPretrained(src, 'text_encoder', { context: ctx, dtype, variant });
  const te2 = await CLIPTextModel.fromPretrained(src, 'text_encoder_2', { context: ctx, dtype, variant });
  const loadMs = performance.now() - t0;
  const weightBytes = ctx.memory.liveBytes;
  const parameters = te1.parameterCount + te2.parameterCount;
  console.log(`${dtype}: CLIP-L ${te1.parameterCount.toLocaleString('en-US')} + bigG ${te2.parameterCount.toLocaleString('en-US')} parameters, ${mib(weightBytes)} MiB, built and uploaded in ${(loadMs / 1000).toFixed(1)} s (weights synthesised on the CPU)`);
  const tok1 = await CLIPTokenizer.fromPretrained(src, 'tokenizer');
  const tok2 = await CLIPTokenizer.fromPretrained(src, 'tokenizer_2');
  const rows: EncoderRow[] = [];
  for (const batch of [1, 2]) {
    const texts = ['a photo of an astronaut riding a horse on mars, cinematic lighting', 'ugly, blurry, low quality'].slice(0, batch);
    const ids1 = texts.map((t) => tok1.encode(t).ids);
    const ids2 = texts.map((t) => tok2.encode(t).ids);
    // as StableDiffusionXLPipeline's encode_prompt: CLIP-L hidden_states[-2]; bigG hidden_states[-2] + pooled/projected
    const once = async () => {
      const t = performance.now();
      const o1 = te1.encode(ids1, { hiddenStates: [-2] });
      await ctx.sync();
      const t1 = performance.now();
      const o2 = te2.encode(ids2, { hiddenStates: [-2], pooled: true });
      await ctx.sync();
      const t2 = performance.now();
      o1.dispose();
      o2.dispose();
      return { total: t2 - t, l: t1 - t, g: t2 - t1 };
    };
    ctx.resetPeak();
    const first = await once();
    const times: { total: number; l: number; g: number }[] = [];
    for (let r = 0; r < runs; r++) times.push(await once());
    const ms = median(times.map((x) => x.total));
    const row: EncoderRow = {
      dtype, batch, loadMs, weightBytes, parameters, firstMs: first.total, ms, runs: times.map((x) => x.total),
      clipLMs: median(times.map((x) => x.l)), bigGMs: median(times.map((x) => x.g)),
      peakBytes: ctx.memory.peakBytes, peakLiveBytes: ctx.memory.peakLiveBytes,
    };
    rows.push(row);
    console.log(`  ${dtype} batch ${batch}: first ${fmtMs(first.total)} ms (compiles), then ${fmtMs(ms)} ms median of ${runs} (CLIP-L ${fmtMs(row.clipLMs)} ms, bigG ${fmtMs(row.bigGMs)} ms); peak GPU ${mib(row.peakBytes)} MiB (weights ${mib(weightBytes)} MiB)`);
  }
  te1.dispose();
  te2.dispose();
  ctx.trim();
  return rows;
}

async function main(): Promise<void> {
  const ctx = await createContext();
  const cpu = ctx.info.isCpu;
  const runs = Number(args.runs ?? (cpu ? 2 : 10));
  console.log(`adapter: ${ctx.info.description} (${ctx.f16 ? 'f16' : 'no f16'})`);
  const tokenizers = await benchTokenizers(Number(args.prompts));
  const encoders: EncoderRow[] = [];
  for (const dtype of args.dtype!.split(',') as ('f16' | 'f32')[]) {
    if (dtype !== 'f16' && dtype !== 'f32') throw new Error(`--dtype: f16 and/or f32, got ${dtype}`);
    if (dtype === 'f16' && !ctx.f16) {
      console.log('f16: skipped (no shader-f16 on this adapter)');
      continue;
    }
    encoders.push(...(await benchEncoders(ctx, dtype, runs)));
  }
  const vocabBytes = (await readFile(`${repoRoot}fixtures/tokenizer/vocab.json`)).length;
  const result = {
    bench: 'clip', date: new Date().toISOString(), adapter: adapterRecord(ctx), host: await hostRecord(), runs,
    method: 'encoder times: warm-up (compiles), then the median of `runs`, each ended by queue.onSubmittedWorkDone(); the tokenizer counts prompts encoded to 77 ids (padding and truncation included)',
    tokenizer: { vocabBytes, prompts: Number(args.prompts), rows: tokenizers },
    encoders, peakRssBytes: peakRssBytes(),
  };
  const file = args.out ?? `${here}results/clip-${resultSlug(ctx)}.json`;
  await mkdir(`${here}results`, { recursive: true });
  await writeFile(file, JSON.stringify(result, null, 2) + '\n');
  console.log(`wrote ${file}`);
  ctx.destroy();
}

await main();
