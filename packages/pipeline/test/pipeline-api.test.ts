// The diffusers-parity API of issue 15 against the fixtures: encodePrompt (diffusers' encode_prompt
// outputs), generate from precomputed embeddings, clip_skip (reference/clip_skip.*), seeds beyond
// 2^53 (torch keeps a uint64 seed, mt19937 its low 32 bits), denoising_end, and x̂₀ previews.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError, NodeFileSource, parseJsonLenient, SafetensorsFile } from '@ssd/tensor';
import { StableDiffusionXLPipeline, TorchGenerator, type GenerateOptions } from '@ssd/pipeline';
import { fixturesDir, hasFixtures, maxAbsDiff, relL2, testContext } from '../../../testing/index.js';

const ref = (f: string) => join(fixturesDir, 'reference', f);
const model = join(fixturesDir, 'models/tiny-ssd1b');
let pipe: StableDiffusionXLPipeline;
beforeAll(async () => {
  pipe = await StableDiffusionXLPipeline.fromPretrained(model, { context: await testContext(), dtype: 'f32', onNotice: () => {} });
});
afterAll(async () => pipe?.dispose());

const base: GenerateOptions = { prompt: 'a red cube on a table', negativePrompt: 'blurry', numInferenceSteps: 3, width: 64, height: 64, seed: 9, outputType: 'latent' };

describe('encodePrompt (diffusers encode_prompt)', () => {
  it('returns the four embeddings the UNet gets, per reference/pipeline.* (cat([negative, prompt]))', async () => {
    const meta = parseJsonLenient(readFileSync(ref('pipeline.json'), 'utf8'));
    const st = await SafetensorsFile.open(new NodeFileSource(ref('pipeline.safetensors')));
    const run = meta.runs.find((r: { name: string }) => r.name === 'euler_cfg_128x128');
    const e = await pipe.encodePrompt({ prompt: run.prompt, negativePrompt: run.negative_prompt });
    try {
      const hidden = await st.readFloat32(`${run.name}.encoder_hidden_states`);
      const pooled = await st.readFloat32(`${run.name}.text_embeds`);
      const half = hidden.length / 2;
      expect(e.promptEmbeds.shape).toEqual([1, 77, 40]);
      expect(e.pooledPromptEmbeds.shape).toEqual([1, 16]);
      expect(relL2(await e.negativePromptEmbeds!.read(), hidden.subarray(0, half))).toBeLessThanOrEqual(1e-5);
      expect(relL2(await e.promptEmbeds.read(), hidden.subarray(half))).toBeLessThanOrEqual(1e-5);
      expect(relL2(await e.negativePooledPromptEmbeds!.read(), pooled.subarray(0, pooled.length / 2))).toBeLessThanOrEqual(1e-5);
      expect(relL2(await e.pooledPromptEmbeds.read(), pooled.subarray(pooled.length / 2))).toBeLessThanOrEqual(1e-5);
    } finally {
      e.dispose();
      await st.source.close();
    }
  });

  it('zero negatives without a negative prompt (force_zeros_for_empty_prompt), none without guidance, rows repeated per image', async () => {
    const e = await pipe.encodePrompt({ prompt: ['a', 'b'], numImagesPerPrompt: 2 });
    expect(e.promptEmbeds.shape).toEqual([4, 77, 40]);
    const neg = (await e.negativePromptEmbeds!.read()) as Float32Array;
    expect(neg.every((v) => v === 0)).toBe(true);
    const pos = (await e.promptEmbeds.read()) as Float32Array;
    const row = 77 * 40;
    expect(maxAbsDiff(pos.subarray(0, row), pos.subarray(row, 2 * row))).toBe(0); // 'a', 'a'
    expect(maxAbsDiff(pos.subarray(row, 2 * row), pos.subarray(2 * row, 3 * row))).toBeGreaterThan(0); // 'a' vs 'b'
    e.dispose();
    const u = await pipe.encodePrompt({ prompt: 'a', doClassifierFreeGuidance: false });
    expect(u.negativePromptEmbeds).toBeNull();
    expect(u.negativePooledPromptEmbeds).toBeNull();
    u.dispose();
  });

  it('generate from encodePrompt outputs equals generate from the prompts, bit for bit', async () => {
    const before = pipe.ctx.memory.liveBytes;
    const fromText = await pipe.generate({ ...base, numImagesPerPrompt: 2 });
    const e = await pipe.encodePrompt({ prompt: base.prompt, negativePrompt: base.negativePrompt });
    const { prompt: _p, negativePrompt: _n, ...rest } = base;
    const fromEmbeds = await pipe.generate({ ...rest, numImagesPerPrompt: 2, promptEmbeds: e.promptEmbeds, pooledPromptEmbeds: e.pooledPromptEmbeds, negativePromptEmbeds: e.negativePromptEmbeds!, negativePooledPromptEmbeds: e.negativePooledPromptEmbeds! });
    expect([...fromEmbeds.latents.data]).toEqual([...fromText.latents.data]);
    expect(e.promptEmbeds.disposed).toBe(false); // the caller's tensors are not freed
    e.dispose();
    expect(pipe.ctx.memory.liveBytes).toBe(before);
  });

  it('refuses inconsistent embedding inputs before running', async () => {
    const e = await pipe.encodePrompt({ prompt: 'x' });
    try {
      const cases: [Partial<GenerateOptions>, RegExp][] = [
        [{ promptEmbeds: e.promptEmbeds }, /needs pooledPromptEmbeds/],
        [{ promptEmbeds: e.promptEmbeds, pooledPromptEmbeds: e.pooledPromptEmbeds, prompt: 'x' }, /either prompt or promptEmbeds/],
        [{ promptEmbeds: e.promptEmbeds, pooledPromptEmbeds: e.pooledPromptEmbeds, negativePromptEmbeds: e.negativePromptEmbeds! }, /go together/],
        [{ promptEmbeds: e.promptEmbeds, pooledPromptEmbeds: e.pooledPromptEmbeds, clipSkip: 1 }, /clipSkip applies to text prompts/],
      ];
      for (const [o, msg] of cases) {
        const { prompt: _p, negativePrompt: _n, ...rest } = base;
        const err = await pipe.generate({ ...rest, ...o }).catch((x) => x);
        expect(err, String(msg)).toBeInstanceOf(InvalidArgumentError);
        expect(err.message).toMatch(msg);
      }
    } finally {
      e.dispose();
    }
  });
});

describe.skipIf(!hasFixtures('reference/clip_skip.safetensors'))('clip_skip (reference/clip_skip.*)', () => {
  it('matches diffusers: the prompt from hidden_states[-(clip_skip + 2)], the negative unchanged', async () => {
    const meta = parseJsonLenient(readFileSync(ref('clip_skip.json'), 'utf8'));
    const st = await SafetensorsFile.open(new NodeFileSource(ref('clip_skip.safetensors')));
    const run = meta.run;
    const call = (clipSkip?: number) => pipe.generate({
      prompt: 'a portrait of a knight in ornate armor', negativePrompt: 'cartoon', numInferenceSteps: 4, guidanceScale: 5,
      height: 96, width: 96, clipSkip, seed: 3171,
    });
    const e = await pipe.encodePrompt({ prompt: 'a portrait of a knight in ornate armor', negativePrompt: 'cartoon', clipSkip: meta.clip_skip });
    const hidden = await st.readFloat32(`${run.name}.prompt_embeds`);
    expect(relL2(await e.negativePromptEmbeds!.read(), hidden.subarray(0, hidden.length / 2))).toBeLessThanOrEqual(1e-5);
    expect(relL2(await e.promptEmbeds.read(), hidden.subarray(hidden.length / 2))).toBeLessThanOrEqual(1e-5);
    e.dispose();
    const r = await call(meta.clip_skip);
    const want = await st.readFloat32(`${run.name}.final_latents`);
    const err = relL2(r.latents.data, want);
    console.log(`clip_skip1: final latents rel-L2 ${err.toExponential(2)}`);
    expect(err).toBeLessThanOrEqual(1e-4);
    const without = await call(undefined);
    expect(relL2(without.latents.data, want), 'clip_skip changes the result').toBeGreaterThan(1e-3);
    const img = r.images[0];
    const u8 = (await st.read(`${run.name}.image_uint8`)) as Uint8Array;
    let worst = 0;
    for (let p = 0; p < img.width * img.height; p++) for (let ch = 0; ch < 3; ch++) worst = Math.max(worst, Math.abs(img.data[p * 4 + ch] - u8[p * 3 + ch]));
    expect(worst).toBeLessThanOrEqual(2);
    await st.source.close();
  });

  it('refuses a clipSkip beyond the encoders\' depth', async () => {
    const err = await pipe.generate({ ...base, clipSkip: 9 }).catch((x) => x);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toMatch(/clipSkip = 9: the text encoders have 3 layers/);
  });
});

describe('seeds as torch takes them', () => {
  it('a seed beyond 2^53 (bigint or decimal string) draws what torch draws: mt19937 takes the low 32 bits', async () => {
    const big = 2n ** 60n + 7n;
    expect([...new TorchGenerator(big).randn([1, 4, 4, 4])]).toEqual([...new TorchGenerator(7).randn([1, 4, 4, 4])]);
    const a = await pipe.generate({ ...base, seed: String(big) });
    const b = await pipe.generate({ ...base, seed: 7 });
    expect(a.seed).toBe(big);
    expect([...a.latents.data]).toEqual([...b.latents.data]);
    const max = await pipe.generate({ ...base, seed: 2n ** 64n - 1n });
    expect(max.seed).toBe(2n ** 64n - 1n);
  });
  it('refuses seeds outside 0 … 2^64 − 1 and non-integers', async () => {
    for (const seed of [2n ** 64n, -1, '1e3', 1.5, '18446744073709551616']) {
      const err = await pipe.generate({ ...base, seed }).catch((x) => x);
      expect(err, String(seed)).toBeInstanceOf(InvalidArgumentError);
      expect(err.message).toMatch(/seed = /);
    }
  });
});

describe('denoisingEnd and previews', () => {
  it('denoisingEnd keeps the timesteps ≥ round(T − end·T) (diffusers denoising_end)', async () => {
    const steps: number[] = [];
    const r = await pipe.generate({ ...base, numInferenceSteps: 4, denoisingEnd: 0.5, onStep: (s) => void steps.push(s.timestep) });
    expect(steps).toEqual([751, 501]); // of 751, 501, 251, 1: cutoff 500
    expect(r.report.stepMs.length).toBe(2);
    const bad = await pipe.generate({ ...base, denoisingEnd: 1 }).catch((x) => x);
    expect(bad.message).toMatch(/denoisingEnd = 1: must be in \(0, 1\)/);
  });

  it("preview 'denoised' shows the scheduler's x̂₀, which differs from the latents preview", async () => {
    const seen: Record<string, Uint8ClampedArray[]> = { latents: [], denoised: [] };
    for (const kind of ['latents', 'denoised'] as const) {
      await pipe.generate({ ...base, preview: kind, onStep: (s) => void seen[kind].push(s.preview!.data) });
    }
    expect(seen.denoised.length).toBe(3);
    expect(maxAbsDiff(seen.denoised[0], seen.latents[0])).toBeGreaterThan(0);
  });
});
