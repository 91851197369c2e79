// Bad input and runtime faults (issue 11): every case gives its typed error with a message naming
// the input and the fix — never a hang, a crash, a NaN image or leaked GPU memory. docs/errors.md
// lists what the user sees for each.
import { cpSync, mkdtempSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AbortError, CheckpointError, ConfigError, createContext, DeviceLimitError, DeviceLostError, InvalidArgumentError, ModelLoadError, NumericalError, SafetensorsError, type GpuContext } from '@ssd/tensor';
import { StableDiffusionXLPipeline, type GenerateOptions } from '@ssd/pipeline';
import { fixturesDir, testContext } from '../../../testing/index.js';
import { serveFolder } from '../../../testing/http-server.js';
import { planUNetMemory } from '@ssd/unet';
import { LOW_MEMORY_POOL_BYTES } from '../src/components.js';

const model = join(fixturesDir, 'models/tiny-ssd1b');
const tmp = mkdtempSync(join(tmpdir(), 'ssd-hard-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A copy of the tiny model, changed by `edit`. */
function tampered(name: string, edit: (dir: string) => void): string {
  const dir = join(tmp, name);
  cpSync(model, dir, { recursive: true });
  edit(dir);
  return dir;
}

async function loadError(source: string, opts: object = {}): Promise<Error> {
  const ctx = await testContext();
  const before = ctx.memory.liveBytes;
  const e = await StableDiffusionXLPipeline.fromPretrained(source, { context: ctx, dtype: 'f32', onNotice: () => {}, ...opts }).then(
    async (p) => {
      await p.dispose();
      return new Error('loaded');
    },
    (x: Error) => x,
  );
  expect(ctx.memory.liveBytes, 'no GPU memory left behind').toBe(before);
  return e;
}

const base: GenerateOptions = { prompt: 'a red cube', negativePrompt: 'blurry', numInferenceSteps: 2, width: 64, height: 64, seed: 5 };

describe('bad model folders', () => {
  it('missing model_index.json', async () => {
    const e = await loadError(tampered('no-index', (d) => unlinkSync(join(d, 'model_index.json'))));
    expect(e).toBeInstanceOf(ModelLoadError);
    expect(e.message).toMatch(/model_index\.json was not found/);
  });
  it('a missing component folder', async () => {
    const e = await loadError(tampered('no-unet', (d) => rmSync(join(d, 'unet'), { recursive: true })));
    expect(e).toBeInstanceOf(ModelLoadError);
    expect(e.message).toMatch(/unet/);
  });
  it('a missing weight file lists what was looked for', async () => {
    const e = await loadError(tampered('no-weights', (d) => {
      unlinkSync(join(d, 'vae/diffusion_pytorch_model.safetensors'));
      unlinkSync(join(d, 'vae/diffusion_pytorch_model.fp16.safetensors'));
    }));
    expect(e).toBeInstanceOf(ModelLoadError);
    expect(e.message).toMatch(/no weights for "vae".*looked for: vae\/diffusion_pytorch_model\.safetensors/s);
  });
  it('a folder with only the fp16 variant says so (the Hub layout of SSD-1B / Vega)', async () => {
    const e = await loadError(tampered('only-fp16', (d) => unlinkSync(join(d, 'vae/diffusion_pytorch_model.safetensors'))), { variant: undefined });
    expect(e).toBeInstanceOf(ModelLoadError);
    expect(e.message).toMatch(/no weights for "vae".*found vae\/diffusion_pytorch_model\.fp16\.safetensors: load the "fp16" variant/s);
  });
  it('a truncated weight file', async () => {
    const e = await loadError(tampered('truncated', (d) => {
      const f = join(d, 'unet/diffusion_pytorch_model.safetensors');
      truncateSync(f, readFileSync(f).length - 1000);
    }));
    expect(e).toBeInstanceOf(SafetensorsError);
    expect(e.message).toMatch(/truncated/);
  });
  it('a config whose shapes disagree with the weights', async () => {
    const e = await loadError(tampered('bad-config', (d) => {
      const p = join(d, 'unet/config.json');
      const cfg = JSON.parse(readFileSync(p, 'utf8'));
      cfg.block_out_channels = [16, 32, 96];
      writeFileSync(p, JSON.stringify(cfg));
    }));
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(/expected \[96/);
  });
  it('a weight file of another architecture', async () => {
    const other = join(fixturesDir, 'models/tiny-sdxl-unet/diffusion_pytorch_model.safetensors');
    const e = await loadError(tampered('foreign', (d) => cpSync(other, join(d, 'unet/diffusion_pytorch_model.safetensors'))));
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(/another architecture/);
    expect(e.message).toMatch(/unexpected: mid_block\.attentions/);
  });
  it('a broken tokenizer vocab or merges file', async () => {
    const e1 = await loadError(tampered('bad-vocab', (d) => writeFileSync(join(d, 'tokenizer/vocab.json'), '{"a": 1,')));
    expect(e1).toBeInstanceOf(ModelLoadError);
    expect(e1.message).toMatch(/vocab\.json/);
    const e2 = await loadError(tampered('bad-merges', (d) => writeFileSync(join(d, 'tokenizer_2/merges.txt'), '#version: 0.2\na b c\n')));
    expect(e2).toBeInstanceOf(ModelLoadError);
    expect(e2.message).toMatch(/merges\.txt/);
  });
  it('a URL base that answers 404 or 500, or drops the connection mid-file', async () => {
    const server = await serveFolder(fixturesDir);
    try {
      const url = `${server.url}/models/tiny-ssd1b`;
      server.misbehave.set('unet/diffusion_pytorch_model.safetensors', 'status-404');
      expect(await loadError(url)).toBeInstanceOf(ModelLoadError);
      server.misbehave.set('unet/diffusion_pytorch_model.safetensors', 'status-500');
      const e500 = await loadError(url);
      expect(e500).toBeInstanceOf(ModelLoadError);
      server.misbehave.set('unet/diffusion_pytorch_model.safetensors', 'drop-mid-file');
      const eDrop = await loadError(url);
      expect(eDrop).toBeInstanceOf(ModelLoadError);
      server.misbehave.clear();
      const p = await StableDiffusionXLPipeline.fromPretrained(url, { context: await testContext(), dtype: 'f32', onNotice: () => {} });
      await p.dispose();
    } finally {
      await server.close();
    }
  });
});

describe('bad generation options', () => {
  let pipe: StableDiffusionXLPipeline;
  beforeAll(async () => {
    pipe = await StableDiffusionXLPipeline.fromPretrained(model, { context: await testContext(), dtype: 'f32', onNotice: () => {} });
  });
  afterAll(() => pipe.dispose());

  const bad: [string, Partial<GenerateOptions>, RegExp][] = [
    ['width not a multiple of 8', { width: 100 }, /width = 100: must be a multiple of 8.*nearest valid: 96 or 104/],
    ['zero height', { height: 0 }, /height = 0: must be a positive integer/],
    ['negative width', { width: -64 }, /width = -64/],
    ['absurd size', { width: 65536 }, /larger than 4096/],
    ['0 steps', { numInferenceSteps: 0 }, /numInferenceSteps = 0: must be an integer ≥ 1/],
    ['absurd steps', { numInferenceSteps: 5000 }, /at most 1000/],
    ['fractional steps', { numInferenceSteps: 2.5 }, /integer/],
    ['NaN guidance', { guidanceScale: NaN }, /guidanceScale = NaN: must be a finite number/],
    ['infinite guidance', { guidanceScale: Infinity }, /guidanceScale = Infinity/],
    ['unsafe seed', { seed: 2 ** 53 }, /seed = 9007199254740992: must be an integer/],
    ['fractional seed', { seed: 1.5 }, /seed = 1.5/],
    ['negative seed', { seed: -1 }, /seed = -1/],
    ['prompt not a string', { prompt: 42 as unknown as string }, /prompt = 42: must be a string/],
    ['latents of the wrong size', { latents: new Float32Array(10) }, /latents has 10 values; expected 1×4×8×8/],
  ];
  for (const [name, opts, msg] of bad) {
    it(name, async () => {
      const e = await pipe.generate({ ...base, ...opts }).catch((x) => x);
      expect(e).toBeInstanceOf(InvalidArgumentError);
      expect(e.message).toMatch(msg);
    });
  }

  it('an unknown scheduler name is a ConfigError listing the valid names', async () => {
    expect(() => pipe.setScheduler('karras-magic')).toThrow(ConfigError);
    expect(() => pipe.setScheduler('karras-magic')).toThrow(/euler-a/);
    const e = await loadError(model, { scheduler: 'karras-magic' });
    expect(e).toBeInstanceOf(ConfigError);
  });

  it('an init image of the wrong size or format', async () => {
    const img = { width: 32, height: 32, data: new Uint8ClampedArray(32 * 32 * 4) };
    const e1 = await pipe.img2img({ ...base, image: img }).catch((x) => x);
    expect(e1).toBeInstanceOf(InvalidArgumentError);
    expect(e1.message).toMatch(/image is 32×32 but the output size is 64×64/);
    const e2 = await pipe.img2img({ ...base, image: { width: 64, height: 64, data: new Uint8ClampedArray(10) } }).catch((x) => x);
    expect(e2.message).toMatch(/image data has 10 values/);
    const e3 = await pipe.img2img({ ...base, image: { width: 64, height: 64, data: new Uint8ClampedArray(64 * 64 * 4) }, strength: 1.5 }).catch((x) => x);
    expect(e3.message).toMatch(/strength = 1.5/);
  });

  it('odd prompts work: empty, 10,000 characters (reported as truncated), control characters and lone surrogates', async () => {
    for (const prompt of ['', 'x '.repeat(5000), 'a\u0000b\u0007c\u202e\ud800 \udfff cat\ufffe']) {
      const r = await pipe.generate({ ...base, prompt, outputType: 'latent' });
      expect(r.latents.data.every(Number.isFinite)).toBe(true);
      if (prompt.length > 1000) expect(r.report.truncated.length).toBeGreaterThan(0);
    }
  });

  it('a size the device cannot hold is refused up front with DeviceLimitError', async () => {
    const ctx = await createContext({ limits: { maxStorageBufferBindingSize: 256 << 10 } });
    const small = await StableDiffusionXLPipeline.fromPretrained(model, { context: ctx, dtype: 'f32', onNotice: () => {} });
    try {
      const e = await small.generate({ ...base, width: 512, height: 512 }).catch((x) => x);
      expect(e).toBeInstanceOf(DeviceLimitError);
      expect(e.message).toMatch(/512×512.*in one binding.*smaller size/);
      expect(ctx.memory.liveBytes).toBe(small.components.unet.weightBytes + liveNonUNet(small));
      const ok = await small.generate({ ...base, width: 128, height: 128 });
      expect(ok.images[0].data.length).toBe(128 * 128 * 4);
    } finally {
      await small.dispose();
      ctx.destroy();
    }
  });

  it('low-memory mode checks each stage against the memory budget before loading anything', async () => {
    // stage sizes from the file headers equal what loading takes
    const probe = await StableDiffusionXLPipeline.fromPretrained(model, { dtype: 'f32', memory: 'low', onNotice: () => {} });
    const stages = probe.components.stageWeightBytes!;
    const unet = await probe.components.acquireUNet();
    expect(stages.unet).toBe(unet.weightBytes);
    probe.components.releaseUNet(unet);
    await probe.dispose();
    // a budget that holds the UNet's activations at 1024² but not its weights too: refused up front
    // (low-memory mode runs guidance's two halves one after the other: the UNet sees batch 1)
    const act = planUNetMemory(probe.components.unetSpec, 1, 128, 128, 4).peakActivationBytes;
    const budget = Math.round(act + stages.unet / 2);
    expect(budget).toBeGreaterThan(stages.textEncoders);
    const ctx = await createContext({ memoryBudgetBytes: budget });
    let loads = 0;
    const low = await StableDiffusionXLPipeline.fromPretrained(model, { context: ctx, dtype: 'f32', memory: 'low', onNotice: () => {}, onLoadProgress: () => void loads++ });
    try {
      const e = await low.generate({ ...base, width: 1024, height: 1024 }).catch((x) => x);
      expect(e).toBeInstanceOf(DeviceLimitError);
      expect(e.message).toMatch(/1024×1024 \(UNet batch 1\): the UNet's weights .* plus its estimated activations/);
      expect(loads).toBe(0);
      expect(ctx.memory.liveBytes).toBe(0);
      const ok = await low.generate(base);
      expect(ok.images[0].data.length).toBe(64 * 64 * 4);
      expect(loads).toBeGreaterThan(0);
    } finally {
      await low.dispose();
      ctx.destroy();
    }
  });

  it('non-finite latents are caught at the step where they appear (NumericalError with a hint)', async () => {
    // finite inputs that overflow f32 once scaled by init_noise_sigma
    const huge = new Float32Array(4 * 8 * 8).fill(0.5);
    huge[17] = 3e38;
    const e = await pipe.generate({ ...base, latents: huge }).catch((x) => x);
    expect(e).toBeInstanceOf(NumericalError);
    expect(e.message).toMatch(/after denoising step 1 of 2/);
    expect(e.message).toMatch(/Check guidanceScale/);
    const lat = new Float32Array(4 * 8 * 8).fill(0.5);
    lat[17] = NaN;
    const e2 = await pipe.generate({ ...base, latents: lat }).catch((x) => x);
    expect(e2).toBeInstanceOf(NumericalError);
    // and the pipeline still works
    const ok = await pipe.generate(base);
    expect(ok.images.length).toBe(1);
  });
});

/** GPU bytes of everything but the UNet in a resident pipeline (text encoders, VAE). */
function liveNonUNet(p: StableDiffusionXLPipeline): number {
  return p.ctx.memory.liveBytes - p.components.unet.weightBytes;
}

describe('runtime faults', () => {
  let ctx: GpuContext;
  let pipe: StableDiffusionXLPipeline;
  let reference: Float32Array;
  beforeAll(async () => {
    ctx = await createContext();
    pipe = await StableDiffusionXLPipeline.fromPretrained(model, { context: ctx, dtype: 'f32', onNotice: () => {} });
    reference = (await pipe.generate({ ...base, numInferenceSteps: 3, outputType: 'latent' })).latents.data;
  });
  afterAll(async () => {
    await pipe.dispose();
    ctx.destroy();
  });

  async function abortAt(label: string, arm: (c: AbortController) => Partial<GenerateOptions>): Promise<void> {
    const before = ctx.memory.liveBytes;
    const c = new AbortController();
    const e = await pipe.generate({ ...base, numInferenceSteps: 3, signal: c.signal, ...arm(c) }).catch((x) => x);
    expect(e, label).toBeInstanceOf(AbortError);
    expect(e.name).toBe('AbortError');
    expect(ctx.memory.liveBytes, `${label}: GPU memory back to its level`).toBe(before);
    const again = await pipe.generate({ ...base, numInferenceSteps: 3, outputType: 'latent' });
    expect([...again.latents.data], `${label}: the next call works and is unchanged`).toEqual([...reference]);
  }

  it('abort before starting, at each step, and before decoding', async () => {
    await abortAt('already aborted', (c) => (c.abort(), {}));
    for (let k = 1; k <= 3; k++) await abortAt(`at step ${k}`, (c) => ({ onStep: ({ step }) => (step === k ? c.abort() : undefined) }));
  });

  it('abort during loading (and in low-memory mode, during text-encoder, UNet and VAE loading)', async () => {
    const c = new AbortController();
    const before = ctx.memory.liveBytes;
    let events = 0;
    const e = await StableDiffusionXLPipeline.fromPretrained(model, {
      context: ctx,
      dtype: 'f32',
      signal: c.signal,
      onNotice: () => {},
      onLoadProgress: (p) => (++events === 3 && c.abort(), void p),
    }).catch((x) => x);
    expect(e).toBeInstanceOf(AbortError);
    expect(ctx.memory.liveBytes).toBe(before);
    const low = await StableDiffusionXLPipeline.fromPretrained(model, { context: ctx, dtype: 'f32', memory: 'low', onNotice: () => {} });
    try {
      const lowBefore = ctx.memory.liveBytes;
      for (const component of ['text_encoder', 'unet', 'vae']) {
        const c2 = new AbortController();
        const lowPipe = low.components as unknown as { options: { onLoadProgress?: (p: { component: string }) => void } };
        (lowPipe.options as { onLoadProgress?: unknown }).onLoadProgress = (p: { component: string }) => p.component === component && c2.abort();
        const e2 = await low.generate({ ...base, signal: c2.signal }).catch((x) => x);
        expect(e2, component).toBeInstanceOf(AbortError);
        expect(ctx.memory.liveBytes, component).toBe(lowBefore);
      }
      (low.components as unknown as { options: { onLoadProgress?: unknown } }).options.onLoadProgress = undefined;
      const poolCap = ctx.maxPooledBytes;
      const capsSeen: number[] = [];
      const r = await low.generate({ ...base, numInferenceSteps: 3, outputType: 'latent', onStep: () => void capsSeen.push(ctx.maxPooledBytes) });
      expect([...r.latents.data]).toEqual([...reference]);
      expect(ctx.memory.liveBytes).toBe(lowBefore); // low memory: encoders and VAE released again
      // low memory: the pool is capped while the run lasts, and given back its own cap after
      expect(capsSeen).toEqual([LOW_MEMORY_POOL_BYTES, LOW_MEMORY_POOL_BYTES, LOW_MEMORY_POOL_BYTES]);
      expect(poolCap).toBeGreaterThan(LOW_MEMORY_POOL_BYTES);
      expect(ctx.maxPooledBytes).toBe(poolCap);
    } finally {
      await low.dispose();
    }
  });

  it('two generate() calls at once run one after the other, in order', async () => {
    const order: string[] = [];
    const a = pipe.generate({ ...base, numInferenceSteps: 3, outputType: 'latent', onStep: () => void order.push('a') });
    const b = pipe.generate({ ...base, numInferenceSteps: 3, outputType: 'latent', onStep: () => void order.push('b') });
    const [ra, rb] = await Promise.all([a, b]);
    expect(order.join('')).toBe('aaabbb');
    expect([...ra.latents.data]).toEqual([...reference]);
    expect([...rb.latents.data]).toEqual([...reference]);
  });

  it('two pipelines on one context share the pipeline cache without interfering', async () => {
    const other = await StableDiffusionXLPipeline.fromPretrained(model, { context: ctx, dtype: 'f32', scheduler: 'dpm++2m', onNotice: () => {} });
    try {
      const compiled = ctx.pipelineCount;
      const solo = (await other.generate({ ...base, numInferenceSteps: 3, outputType: 'latent' })).latents.data;
      const [x, y] = await Promise.all([
        pipe.generate({ ...base, numInferenceSteps: 3, outputType: 'latent' }),
        other.generate({ ...base, numInferenceSteps: 3, outputType: 'latent' }),
      ]);
      expect([...x.latents.data]).toEqual([...reference]);
      expect([...y.latents.data]).toEqual([...solo]);
      expect(ctx.pipelineCount - compiled).toBeLessThan(10); // only the new scheduler's few kernels
    } finally {
      await other.dispose();
    }
  });

  it('device loss mid-run is a DeviceLostError (no hang); a fresh pipeline on a new context works', async () => {
    const lostCtx = await createContext();
    const doomed = await StableDiffusionXLPipeline.fromPretrained(model, { context: lostCtx, dtype: 'f32', onNotice: () => {} });
    const e = await doomed.generate({ ...base, numInferenceSteps: 3, onStep: ({ step }) => (step === 1 ? lostCtx.device.destroy() : undefined) }).catch((x) => x);
    expect(e).toBeInstanceOf(DeviceLostError);
    await doomed.dispose();
    const fresh = await createContext();
    const p = await StableDiffusionXLPipeline.fromPretrained(model, { context: fresh, dtype: 'f32', onNotice: () => {} });
    const r = await p.generate({ ...base, numInferenceSteps: 3, outputType: 'latent' });
    expect([...r.latents.data]).toEqual([...reference]);
    await p.dispose();
    fresh.destroy();
  });
});
