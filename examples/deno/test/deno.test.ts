// The Deno smoke script (examples/deno/smoke.ts, Deno's own WebGPU: wgpu/naga) gives the same final
// latents as Node (Dawn) for the same seed and settings: f32 on both, rel-L2 ≤ 1e-4 (DESIGN.md's f32
// whole-model bound: the two run the same WGSL through different compilers and drivers, so only
// summation order and fused-multiply-add choices differ), and 8-bit images within 2/255.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { NodeFileSource, SafetensorsFile } from '@ssd/tensor';
import { decodePng, StableDiffusionXLPipeline } from '@ssd/pipeline';
import { maxAbsDiff, relL2, repoRoot, testContext } from '../../../testing/index.js';

const here = fileURLToPath(new URL('..', import.meta.url));
const deno = join(here, 'node_modules/.bin/deno');
const STEPS = 3;
const SIZE = 128;
const SEED = 42;
// the same settings as smoke.ts's SMOKE (not imported: that file is a Deno program with top-level await)
const SMOKE = { prompt: 'a lighthouse on a cliff at dusk', negativePrompt: 'blurry', guidanceScale: 5, scheduler: 'euler' };

function runDeno(outDir: string, script = 'smoke.ts'): Promise<string> {
  const args = ['run', '--allow-read', '--allow-write', '--allow-env', '--sloppy-imports', '--conditions=source', join(here, script), outDir];
  const env = { ...process.env, SSD_SMOKE_STEPS: String(STEPS), SSD_SMOKE_SIZE: String(SIZE), SSD_SMOKE_SEED: String(SEED), SSD_SMOKE_DTYPE: 'f32', NO_COLOR: '1' };
  return new Promise((resolve, reject) => {
    execFile(deno, args, { env, cwd: here, timeout: 280_000, maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`deno smoke.ts failed (${err.message}):\n${stdout}\n${stderr}`));
      else resolve(stdout + stderr);
    });
  });
}

describe('Deno smoke script', () => {
  const out = mkdtempSync(join(tmpdir(), 'ssd-deno-'));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('runs the tiny model end to end and matches Node (f32 latents rel-L2 ≤ 1e-4)', async () => {
    const log = await runDeno(out);
    console.log(log.trim());
    const st = await SafetensorsFile.open(new NodeFileSource(join(out, 'latents.safetensors')));
    const denoLatents = await st.readFloat32('latents');
    await st.source.close();

    const ctx = await testContext();
    const pipe = await StableDiffusionXLPipeline.fromPretrained(join(repoRoot, 'fixtures/models/tiny-ssd1b'), { context: ctx, dtype: 'f32', scheduler: SMOKE.scheduler, onNotice: () => {} });
    const r = await pipe.generate({ prompt: SMOKE.prompt, negativePrompt: SMOKE.negativePrompt, guidanceScale: SMOKE.guidanceScale, numInferenceSteps: STEPS, width: SIZE, height: SIZE, seed: SEED });
    await pipe.dispose();

    expect(denoLatents.length).toBe(r.latents.data.length);
    const err = relL2(denoLatents, r.latents.data);
    const png = decodePng(new Uint8Array(readFileSync(join(out, 'image.png'))), 'deno image.png');
    const rgb = (d: ArrayLike<number>) => Uint8Array.from({ length: SIZE * SIZE * 3 }, (_, i) => d[Math.floor(i / 3) * 4 + (i % 3)]);
    const imgDiff = maxAbsDiff(rgb(png.data), rgb(r.images[0].data));
    console.log(`deno vs node: latents rel-L2 ${err.toExponential(2)}, image max |Δ| ${imgDiff}/255`);
    expect(err).toBeLessThanOrEqual(1e-4);
    expect(imgDiff).toBeLessThanOrEqual(2);
  });

  it('reads weight files piece by piece (DenoFileSource): exact bytes under concurrent reads, truncation and missing files named', async () => {
    const line = (await runDeno(out, 'checks/file-source.ts')).trim().split('\n').pop()!;
    const r = JSON.parse(line) as { ok: boolean; problems: string[] };
    expect(r.problems).toEqual([]);
    expect(r.ok).toBe(true);
  });
});
