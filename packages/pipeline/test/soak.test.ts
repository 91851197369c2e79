// Soak: 50 consecutive generations on the tiny model with varied sizes, schedulers and seeds. Live GPU
// bytes and process RSS stay flat, and every result is identical to a fresh pipeline's for the same
// arguments (no state leaks from one call into the next).
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createContext } from '@ssd/tensor';
import { StableDiffusionXLPipeline, type GenerateOptions } from '@ssd/pipeline';
import { fixturesDir } from '../../../testing/index.js';

const model = join(fixturesDir, 'models/tiny-ssd1b');
const CONFIGS: { scheduler: string; opts: GenerateOptions }[] = [
  { scheduler: 'euler', opts: { prompt: 'a house', negativePrompt: 'fog', width: 64, height: 64, numInferenceSteps: 2, seed: 1 } },
  { scheduler: 'euler-a', opts: { prompt: 'a boat', width: 96, height: 64, numInferenceSteps: 3, seed: 2 } },
  { scheduler: 'dpm++2m-karras', opts: { prompt: 'a tree', width: 64, height: 96, numInferenceSteps: 3, seed: 3, guidanceScale: 7 } },
  { scheduler: 'ddim', opts: { prompt: 'a cat', width: 128, height: 64, numInferenceSteps: 2, seed: 4, guidanceScale: 1 } },
  { scheduler: 'unipc', opts: { prompt: 'a dog', negativePrompt: '', width: 64, height: 64, numInferenceSteps: 3, seed: 5, numImagesPerPrompt: 2 } },
];

describe('soak', () => {
  it('50 generations: flat GPU memory and RSS, results identical to fresh runs', async () => {
    const ctx = await createContext();
    const fresh: Float32Array[] = [];
    for (const c of CONFIGS) {
      const p = await StableDiffusionXLPipeline.fromPretrained(model, { context: ctx, dtype: 'f32', scheduler: c.scheduler, onNotice: () => {} });
      fresh.push((await p.generate(c.opts)).latents.data);
      await p.dispose();
    }
    const pipe = await StableDiffusionXLPipeline.fromPretrained(model, { context: ctx, dtype: 'f32', onNotice: () => {} });
    const live: number[] = [];
    const rss: number[] = [];
    for (let i = 0; i < 50; i++) {
      const c = CONFIGS[i % CONFIGS.length];
      pipe.setScheduler(c.scheduler);
      const r = await pipe.generate(c.opts);
      expect(r.images.length).toBe(c.opts.numImagesPerPrompt ?? 1);
      expect(Buffer.from(r.latents.data.buffer).equals(Buffer.from(fresh[i % CONFIGS.length].buffer)), `run ${i} (${c.scheduler})`).toBe(true);
      live.push(ctx.memory.liveBytes);
      (globalThis as { gc?: () => void }).gc?.(); // vitest.config.ts runs tests with --expose-gc
      rss.push(process.memoryUsage().rss);
    }
    const mib = (b: number) => (b / 2 ** 20).toFixed(1);
    const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
    const early = med(rss.slice(5, 15));
    const late = med(rss.slice(40, 50));
    console.log(
      `soak: live GPU bytes ${mib(Math.min(...live))}–${mib(Math.max(...live))} MiB over 50 runs (pooled ${mib(ctx.memory.pooledBytes)} MiB), ` +
        `RSS median ${mib(early)} MiB over runs 6–15 → ${mib(late)} MiB over runs 41–50 (min ${mib(Math.min(...rss))}, max ${mib(Math.max(...rss))})`,
    );
    expect(new Set(live).size).toBe(1); // exactly flat: every run frees all it allocated
    // lavapipe's buffers are host memory and the allocator is noisy (±40 MiB); a leak of one latent
    // or image per run would add far more than this over 35 runs
    expect(late - early).toBeLessThan(48 * 2 ** 20);
    await pipe.dispose();
    expect(ctx.memory.liveBytes).toBe(0);
    ctx.destroy();
  });
});
