// memoryBudgetBytes / `ssd generate --memory-budget`: the GPU memory a run may hold. Weights that cannot
// fit are refused before any is loaded, a run that fits runs inside it (the pool gives way first) with
// the same latents, and the CLI records the budget and the peak.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DeviceLimitError, InvalidArgumentError } from '@ssd/tensor';
import { StableDiffusionXLPipeline, type GenerateOptions } from '@ssd/pipeline';
import { planUNetMemory, unetConvScratch } from '@ssd/unet';
import { bytesArg, parseArgs } from '../src/cli-args.js';
import { fixturesDir, hasFixtures, repoRoot, testContext } from '../../../testing/index.js';

const model = join(fixturesDir, 'models/tiny-ssd1b');
const tmp = mkdtempSync(join(tmpdir(), 'ssd-budget-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const run: GenerateOptions = { prompt: 'a red cube', negativePrompt: 'blurry', numInferenceSteps: 2, width: 64, height: 64, seed: 11, guidanceScale: 5, outputType: 'latent' };

describe('--memory-budget sizes', () => {
  const parse = (v: string) => bytesArg(parseArgs(['--memory-budget', v], { values: ['memory-budget'], flags: [] }), 'memory-budget');
  it('reads decimal and binary units and plain bytes', () => {
    expect(parse('3GB')).toBe(3e9);
    expect(parse('1.6gb')).toBe(1.6e9);
    expect(parse('2.5GiB')).toBe(2.5 * 2 ** 30);
    expect(parse('1600MB')).toBe(1.6e9);
    expect(parse('512 MiB')).toBe(2 ** 29);
    expect(parse('3000000000')).toBe(3e9);
  });
  it('refuses what is not a size, by name', () => {
    for (const v of ['lots', '0', '-3GB', '3TB', 'GB', '1e9', '']) expect(() => parse(v), v).toThrow(/--memory-budget .*must be a size such as 3GB/);
  });
});

describe.skipIf(!hasFixtures('models/tiny-ssd1b'))('memoryBudgetBytes', () => {
  const load = (options: { memoryBudgetBytes?: number; onLoadProgress?: () => void }) =>
    StableDiffusionXLPipeline.fromPretrained(model, { dtype: 'f32', onNotice: () => {}, ...options });

  it('resident weights beyond the budget are refused before any is loaded, naming them', async () => {
    const probe = await StableDiffusionXLPipeline.fromPretrained(model, { dtype: 'f32', memory: 'low', onNotice: () => {} });
    const stages = probe.components.stageWeightBytes!;
    await probe.dispose();
    let loads = 0;
    const e = await load({ memoryBudgetBytes: stages.textEncoders + stages.unet - 1, onLoadProgress: () => void loads++ }).catch((x) => x);
    expect(e).toBeInstanceOf(DeviceLimitError);
    expect(e.message).toMatch(/the text encoders' \([\d,]+ bytes\) and the UNet's \([\d,]+ bytes\) weights held resident.*--low-memory.*ssd quantize/);
    expect(e.message).toContain(`≥ ${(stages.textEncoders + stages.unet).toLocaleString('en-US')}`);
    expect(loads).toBe(0);
  });

  it('a run inside a budget gives the unbudgeted latents and stays under it', async () => {
    const free = await load({});
    const resident = free.ctx.memory.liveBytes;
    const a = await free.generate(run);
    const { peakBytes, peakLiveBytes } = free.ctx.memory;
    // what checkFits asks for: the resident weights plus the UNet activation plan (an upper bound)
    const plan = planUNetMemory(free.components.unetSpec, 2, 8, 8, 4, unetConvScratch(free.ctx, 'f32')).peakActivationBytes;
    await free.dispose();
    const budget = Math.max(peakLiveBytes, resident + plan) + 4096;
    const tight = await load({ memoryBudgetBytes: budget });
    try {
      expect(tight.ctx.memoryBudgetBytes).toBe(budget);
      const b = await tight.generate(run);
      expect(b.report.peakBytes).toBeGreaterThan(0);
      expect(b.report.peakBytes).toBeLessThanOrEqual(budget);
      expect([...b.latents.data]).toEqual([...a.latents.data]);
    } finally {
      await tight.dispose();
    }
  });

  it('under a budget the resident VAE\'s decode plan is checked before the first step', async () => {
    const pipe = await load({ memoryBudgetBytes: 1e9 });
    try {
      const vae = pipe.components.residentVae!;
      const asked: number[][] = [];
      vae.planDecode = (b: number, h: number, w: number) => {
        asked.push([b, h, w]);
        throw new DeviceLimitError('memory for one 4×4 latent tile (bytes)', 2e9, 1e9, 'vae decode: even the smallest tile does not fit the budget or the binding limit');
      };
      let forwards = 0;
      const unet = pipe.components.unet;
      const forward = unet.forward.bind(unet);
      unet.forward = (input) => (forwards++, forward(input));
      const e = await pipe.generate({ ...run, width: 64, height: 96, numImagesPerPrompt: 2 }).catch((x) => x);
      expect(e).toBeInstanceOf(DeviceLimitError);
      expect(e.message).toMatch(/64×96: the VAE decode after the denoising cannot fit beside the resident weights \(checked before the first step/);
      expect(asked).toEqual([[2, 12, 8]]);
      expect(forwards).toBe(0);
    } finally {
      await pipe.dispose();
    }
  });

  it('is not a second budget for a shared context, and must be a positive number', async () => {
    const ctx = await testContext();
    await expect(StableDiffusionXLPipeline.fromPretrained(model, { context: ctx, memoryBudgetBytes: 1e9 })).rejects.toThrow(/memoryBudgetBytes with a shared context: set the context's memoryBudgetBytes/);
    for (const b of [0, -1, NaN, '3GB' as unknown as number]) await expect(load({ memoryBudgetBytes: b }), String(b)).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('ssd generate --memory-budget: the image, the budget and the peak in the report; too small a budget refused before loading', () => {
    const cli = (...extra: string[]) => spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', join(repoRoot, 'packages/pipeline/src/cli.ts'), 'generate', '--model', model, '--prompt', 'a red cube', '--steps', '1', '--width', '64', '--height', '64', '--dtype', 'f32', '--quiet', ...extra], {
      cwd: repoRoot, encoding: 'utf8', env: { ...process.env, NODE_NO_WARNINGS: '1' }, timeout: 120_000,
    });
    const report = join(tmp, 'r.json');
    const ok = cli('--memory-budget', '1GB', '--out', join(tmp, 'a.png'), '--report', report);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/peak GPU memory \d+\.\d{3} GB of a 1\.00 GB budget/);
    const r = JSON.parse(readFileSync(report, 'utf8'));
    expect(r.memoryBudgetBytes).toBe(1e9);
    expect(r.peakBytes).toBeGreaterThan(0);
    expect(r.peakBytes).toBeLessThanOrEqual(1e9);
    const small = cli('--memory-budget', '100kB', '--out', join(tmp, 'b.png'));
    expect(small.status, small.stderr).toBe(5); // DeviceLimitError
    expect(small.stderr).toMatch(/weights held resident/);
    expect(small.stderr).not.toMatch(/loaded /);
  });
});
