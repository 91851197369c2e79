// The tiny pipeline from GGUF files that `ssd quantize` writes: the final latents against the fp16
// folder's run, per type and with --quantize-convs (q4_K quantizes no tensor of the tiny model — no row
// is whole 256-value blocks — so its run is the fp16 run bit for bit), and the CLI: `ssd quantize` then
// `ssd generate --model x.gguf`, with its argument errors.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FolderSource, GgufFile, NodeFileSink, NodeFileSource, quantizeModelToGguf } from '@ssd/tensor';
import { StableDiffusionXLPipeline, type GenerateOptions } from '@ssd/pipeline';
import { fixturesDir, hasFixtures, relL2, repoRoot, testContext } from '../../../testing/index.js';

const FOLDER = 'models/tiny-ssd1b';
const tmp = mkdtempSync(join(tmpdir(), 'ssd-gguf-pipe-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const RUN: GenerateOptions = { prompt: 'a lighthouse on a cliff at dusk', negativePrompt: 'blurry', seed: 1234, numInferenceSteps: 3, guidanceScale: 5, width: 64, height: 64, outputType: 'latent' };

/** Measured on lavapipe; each bound is about twice its type's error, and the error grows as bits shrink. */
const BOUNDS: Record<string, number> = { q8_0: 4e-3, 'q8_0 --quantize-convs': 6e-3, q5_0: 3e-2, q4_0: 6e-2, q4_K: 0 };

describe.skipIf(!hasFixtures(`${FOLDER}/unet/diffusion_pytorch_model.fp16.safetensors`))('the tiny pipeline from GGUF', () => {
  it('final latents against the fp16 folder, per type', async () => {
    const ctx = await testContext();
    const folder = join(fixturesDir, FOLDER);
    const fp16 = await StableDiffusionXLPipeline.fromPretrained(folder, { context: ctx, dtype: 'f32', variant: 'fp16', onNotice: () => {} });
    const ref = (await fp16.generate(RUN)).latents.data;
    const params = fp16.components.unet.parameterCount;
    await fp16.dispose();
    const errors: Record<string, number> = {};
    for (const run of Object.keys(BOUNDS)) {
      const [type, convs] = run.split(' ');
      const file = join(tmp, `tiny-${type}${convs ? '-convs' : ''}.gguf`);
      const r = await quantizeModelToGguf(new FolderSource(folder), new NodeFileSink(file), { type, sourceVariant: 'fp16', quantizeConvs: !!convs });
      // fromPretrained takes a .gguf path too
      const pipe = await StableDiffusionXLPipeline.fromPretrained(file, { context: ctx, dtype: 'f32', onNotice: () => {} });
      try {
        expect(pipe.components.unet.parameterCount, run).toBe(params); // quantized blocks count as their values, not their u32 words
        errors[run] = relL2((await pipe.generate(RUN)).latents.data, ref);
      } finally {
        await pipe.dispose();
      }
      console.log(`tiny pipeline ${run}: ${Object.entries(r.types).map(([t, n]) => `${n} ${t}`).join(', ')} tensors, ${r.bytes} bytes; final latents rel-L2 vs fp16 ${errors[run].toExponential(2)}`);
    }
    for (const [type, bound] of Object.entries(BOUNDS)) expect(errors[type], type).toBeLessThanOrEqual(bound);
    expect(errors.q8_0).toBeGreaterThan(0); // quantized weights did reach the run
    expect(errors.q8_0).toBeLessThan(errors.q4_0);
    expect(errors['q8_0 --quantize-convs']).toBeGreaterThan(errors.q8_0); // the convs' weights did change
  });
});

function ssd(...args: string[]) {
  const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', join(repoRoot, 'packages/pipeline/src/cli.ts'), ...args], {
    cwd: repoRoot, encoding: 'utf8', env: { ...process.env, NODE_NO_WARNINGS: '1' }, timeout: 240_000,
  });
  if (r.error) throw new Error(`ssd ${args.join(' ')}: ${r.error.message}`);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.split('\n').filter((l) => l && !l.startsWith('Warning: maxDynamic')).join('\n') };
}

describe.skipIf(!hasFixtures(`${FOLDER}/unet/diffusion_pytorch_model.fp16.safetensors`))('ssd quantize', () => {
  it('writes a GGUF that ssd generate --model loads', () => {
    const out = join(tmp, 'cli-q5_0.gguf');
    const q = ssd('quantize', '--model', join(fixturesDir, FOLDER), '--type', 'q5_0', '--variant', 'fp16', '--out', out, '--quiet');
    expect(q.stderr).toBe('');
    expect(q.code).toBe(0);
    expect(q.stdout).toMatch(/wrote .*cli-q5_0\.gguf \([\d,]+ bytes; tensors: 799 f16, 158 q5_0\)/);
    const png = join(tmp, 'cli.png');
    const g = ssd('generate', '--model', out, '--prompt', 'a cat', '--steps', '1', '--width', '64', '--height', '64', '--seed', '1', '--out', png);
    expect(g.code, g.stderr).toBe(0);
    expect(existsSync(png)).toBe(true);
  });

  it('--conv-type: the UNet convolutions in their own type, the rest in --type, rules first', async () => {
    const out = join(tmp, 'cli-conv-type.gguf');
    const q = ssd('quantize', '--model', join(fixturesDir, FOLDER), '--type', 'q8_0', '--variant', 'fp16', '--quantize-convs', '--conv-type', 'q4_0', '--tensor-type-rules', 'diffusion_model\\.out\\.2\\.weight$=f16', '--out', out, '--quiet');
    expect(q.code, q.stderr).toBe(0);
    const g = await GgufFile.open(new NodeFileSource(out));
    try {
      const types = new Map([...g.tensors].map(([k, t]) => [k, t.type.name]));
      const convs = [...types.keys()].filter((k) => k.startsWith('model.diffusion_model.') && g.kv.has(`comfy.gguf.orig_shape.${k}`));
      expect(convs.length).toBeGreaterThan(5);
      for (const k of convs) expect(types.get(k), k).toBe('q4_0');
      expect(types.get('model.diffusion_model.out.2.weight')).toBe('f16'); // the rule, not --conv-type
      // the rest of the UNet by --type and sd.cpp's rules (which also quantize 1-D norm weights of whole blocks)
      const q8 = [...types.entries()].filter(([k, t]) => k.startsWith('model.diffusion_model.') && t === 'q8_0').map(([k]) => k);
      expect(q8).toContain('model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight');
      expect(q8).toContain('model.diffusion_model.output_blocks.3.1.transformer_blocks.0.ff.net.2.weight');
    } finally {
      await g.close();
    }
    await expect(quantizeModelToGguf(new FolderSource(join(fixturesDir, FOLDER)), new NodeFileSink(join(tmp, 'no.gguf')), { type: 'q8_0', convType: 'q4_0' })).rejects.toThrow(/convType = "q4_0" needs quantizeConvs/);
    await expect(quantizeModelToGguf(new FolderSource(join(fixturesDir, FOLDER)), new NodeFileSink(join(tmp, 'no.gguf')), { type: 'q4_K', quantizeConvs: true, convFallback: 'q6_K' })).rejects.toThrow(/convFallback = "q6_K": must be a 32-value block type/);
  });

  it('refuses bad arguments before reading anything', () => {
    const model = join(fixturesDir, FOLDER);
    const cases: [string[], RegExp, number][] = [
      [['--model', model, '--type', 'q2_K', '--out', 'x.gguf'], /--type "q2_K": must be one of f32, f16, bf16, q8_0/, 2],
      [['--model', model, '--type', 'q8_0', '--out', 'x.safetensors'], /must end in \.gguf/, 2],
      [['--model', model, '--type', 'q8_0'], /--out is required/, 2],
      [['--model', model, '--type', 'q8_0', '--out', join(tmp, 'q.gguf'), '--quantizer', 'fast'], /--quantizer "fast": use ref .* or sdcpp/, 2],
      [['--model', model, '--type', 'q8_0', '--out', join(tmp, 'r.gguf'), '--tensor-type-rules', 'vae=q3'], /the type of rule "vae=q3" = "q3"/, 2],
      [['--model', join(tmp, 'missing'), '--type', 'q8_0', '--out', join(tmp, 'm.gguf')], /model folder not found/, 4],
      [['--model', model, '--type', 'q8_0', '--out', join(tmp, 'c.gguf'), '--conv-type', 'q4_0'], /--conv-type needs --quantize-convs/, 2],
      [['--model', model, '--type', 'q8_0', '--out', join(tmp, 'c.gguf'), '--quantize-convs', '--conv-type', 'q3_K'], /--conv-type "q3_K": must be one of/, 2],
      [['--model', model, '--type', 'q4_K', '--out', join(tmp, 'c.gguf'), '--quantize-convs', '--conv-fallback', 'q4_K'], /--conv-fallback "q4_K": must be a 32-value block type/, 2],
      [['--model', model, '--type', 'q4_K', '--out', join(tmp, 'c.gguf'), '--conv-fallback', 'q5_0'], /--conv-fallback needs --quantize-convs/, 2],
    ];
    for (const [argv, message, code] of cases) {
      const r = ssd('quantize', ...argv);
      expect(r.stderr, argv.join(' ')).toMatch(message);
      expect(r.code, argv.join(' ')).toBe(code);
    }
  });
});
