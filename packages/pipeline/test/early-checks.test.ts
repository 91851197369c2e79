// Issue 20, the pipeline's part: every option, output path and config is checked before any weight
// loads; constant or saturated results are NumericalErrors, not images written as success.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, encodeSafetensors, NodeFileSource, NumericalError, SafetensorsFile } from '@ssd/tensor';
import { crc32, encodePng, StableDiffusionXLPipeline, type GenerateOptions } from '@ssd/pipeline';
import { fixturesDir, repoRoot, testContext } from '../../../testing/index.js';

const model = join(fixturesDir, 'models/tiny-ssd1b');
const tmp = mkdtempSync(join(tmpdir(), 'ssd-early-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function ssd(...args: string[]) {
  const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', join(repoRoot, 'packages/pipeline/src/cli.ts'), ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { ...process.env, NODE_NO_WARNINGS: '1' },
    timeout: 120_000,
  });
  if (r.error) throw new Error(`ssd ${args.join(' ')}: ${r.error.message}`);
  return { code: r.status, stderr: r.stderr };
}
const gen = (...extra: string[]) => ssd('generate', '--model', model, '--prompt', 'a red cube', '--steps', '1', '--width', '64', '--height', '64', '--dtype', 'f32', '--quiet', ...extra);

describe('ssd generate checks before loading anything', () => {
  const dir = join(tmp, 'a-folder');
  mkdirSync(dir);
  const file = join(tmp, 'a-file');
  writeFileSync(file, 'x');
  const img = join(tmp, 'in.png');
  writeFileSync(img, encodePng({ width: 32, height: 32, data: new Uint8ClampedArray(32 * 32 * 4).fill(200) }));
  // a decompression bomb: a valid small PNG whose IHDR claims 16384×16384
  const bomb = join(tmp, 'bomb.png');
  const png = encodePng({ width: 16, height: 16, data: new Uint8ClampedArray(16 * 16 * 4) });
  const dv = new DataView(png.buffer, png.byteOffset);
  dv.setUint32(16, 16384);
  dv.setUint32(20, 16384);
  dv.setUint32(29, crc32(png.subarray(12, 29)));
  writeFileSync(bomb, png);
  const cases: [string, string[], RegExp][] = [
    ['an init image claiming 16384² (refused from its header)', ['--init-image', bomb], /image is 16384×16384 but the output size is 64×64/],
    ['an init image claiming 16384² without --width/--height', ['--init-image', bomb, '--width', '1024'], /image is 16384×16384/],
    ['--out is a directory', ['--out', dir], /--out ".*a-folder": is a directory/],
    ['--out-latents is a directory', ['--out-latents', dir], /--out-latents ".*a-folder": is a directory/],
    ['--report under a file', ['--report', join(file, 'r.json')], /--report ".*": .*a-file is not a directory/],
    ['--out under /proc (Node\'s recursive mkdir loops there)', ['--out', '/proc/ssd/x.png'], /--out "\/proc\/ssd\/x.png": cannot create its folder \/proc\/ssd/],
    ['--num-images 0', ['--num-images', '0'], /numImagesPerPrompt = 0: must be an integer in 1\.\.64/],
    ['--guidance-rescale 2', ['--guidance-rescale', '2'], /guidanceRescale = 2: must be in \[0, 1\]/],
    ['--strength 1.5', ['--init-image', img, '--strength', '1.5', '--width', '32', '--height', '32'], /strength = 1.5: must be in \(0, 1\]/],
    ['an init image of another size', ['--init-image', img], /image is 32×32 but the output size is 64×64/],
    ['--cfg-batch halves', ['--cfg-batch', 'halves'], /--cfg-batch "halves": use together or split/],
  ];
  for (const [name, argv, msg] of cases) {
    it(name, () => {
      const r = gen(...argv);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr).not.toMatch(/loaded /); // refused before the model loaded
    });
  }
});

describe('folders diffusers accepts', () => {
  it('text_encoder_2/config.json without "architectures" (diffusers takes the class from model_index.json)', async () => {
    const dir = join(tmp, 'no-architectures');
    cpSync(model, dir, { recursive: true });
    const cfgPath = join(dir, 'text_encoder_2/config.json');
    const { architectures: _a, ...cfg } = JSON.parse(readFileSync(cfgPath, 'utf8'));
    writeFileSync(cfgPath, JSON.stringify(cfg));
    const ctx = await testContext();
    const opts = { prompt: 'a red cube', numInferenceSteps: 1, width: 64, height: 64, seed: 3, outputType: 'latent' as const };
    const a = await StableDiffusionXLPipeline.fromPretrained(dir, { context: ctx, dtype: 'f32', onNotice: () => {} });
    const b = await StableDiffusionXLPipeline.fromPretrained(model, { context: ctx, dtype: 'f32', onNotice: () => {} });
    try {
      expect([...(await a.generate(opts)).latents.data]).toEqual([...(await b.generate(opts)).latents.data]);
    } finally {
      await a.dispose();
      await b.dispose();
    }
  });
});

describe('configs before weights', () => {
  it('a scheduler config we cannot run fails before any weight is read', async () => {
    const bad = join(tmp, 'bad-scheduler');
    cpSync(model, bad, { recursive: true });
    const cfgPath = join(bad, 'scheduler/scheduler_config.json');
    writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(readFileSync(cfgPath, 'utf8')), timestep_spacing: 'bogus' }));
    let loads = 0;
    const e = await StableDiffusionXLPipeline.fromPretrained(bad, { context: await testContext(), dtype: 'f32', onNotice: () => {}, onLoadProgress: () => void loads++ }).catch((x) => x);
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toMatch(/timestep_spacing/);
    expect(loads).toBe(0);
  });
});

/** A copy of the tiny model whose VAE decoder's conv_out has its weight/bias replaced. */
async function withVaeOut(name: string, weight: (v: number) => number, bias: (v: number) => number): Promise<string> {
  const dir = join(tmp, name);
  cpSync(model, dir, { recursive: true });
  const path = join(dir, 'vae/diffusion_pytorch_model.safetensors');
  const st = await SafetensorsFile.open(new NodeFileSource(path));
  const tensors: Parameters<typeof encodeSafetensors>[0] = {};
  for (const [key, info] of st.tensors) {
    let data = await st.readFloat32(key);
    if (key === 'decoder.conv_out.weight') data = data.map(weight);
    if (key === 'decoder.conv_out.bias') data = data.map(bias);
    tensors[key] = { dtype: 'F32', shape: info.shape, data: new Uint8Array(data.buffer) };
  }
  await st.source.close();
  writeFileSync(path, encodeSafetensors(tensors));
  return dir;
}

describe('degenerate results are errors', () => {
  const base: GenerateOptions = { prompt: 'a red cube', numInferenceSteps: 1, width: 64, height: 64, seed: 1 };
  for (const [name, weight, bias, msg] of [
    ['an all-zero VAE output layer (flat gray)', () => 0, () => 0, /a constant image \(every pixel at level 128\/255\) came out of the VAE decode/],
    ['a VAE bias of 1e30 (white)', (v: number) => v, () => 1e30, /a saturated image \(100\.00% of values clipped to black or white\) came out of the VAE decode/],
  ] as const) {
    it(name, async () => {
      const pipe = await StableDiffusionXLPipeline.fromPretrained(await withVaeOut(name.replace(/\W+/g, '-'), weight, bias), { context: await testContext(), dtype: 'f32', onNotice: () => {} });
      try {
        const e = await pipe.generate(base).catch((x) => x);
        expect(e).toBeInstanceOf(NumericalError);
        expect(e.message).toMatch(msg);
        expect(e.message).toMatch(/allowDegenerate/);
        const ok = await pipe.generate({ ...base, allowDegenerate: true });
        expect(ok.images.length).toBe(1);
      } finally {
        await pipe.dispose();
      }
    });
  }
});
