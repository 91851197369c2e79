// @ssd under Deno's own WebGPU (wgpu/naga on whatever adapter Deno finds): runs the bundled tiny
// SSD-1B end to end with a fixed seed, writes the final latents (NCHW f32, safetensors) and the image.
//   deno run --allow-read --allow-write --allow-env --sloppy-imports --conditions=source smoke.ts [out-dir]
// (`--conditions=source` + `--sloppy-imports` run the packages from their TypeScript sources, no build
// needed; examples/deno/test/deno.test.ts compares the latents with Node's.) Options as env vars:
// SSD_SMOKE_STEPS (3), SSD_SMOKE_SIZE (128), SSD_SMOKE_SEED (42), SSD_SMOKE_DTYPE (f32).
import { createContext, encodeSafetensors } from '@ssd/tensor';
import { encodePng, formatParameters, StableDiffusionXLPipeline } from '@ssd/pipeline';

declare const Deno: {
  args: string[];
  env: { get(name: string): string | undefined };
  mkdir(path: string, options?: { recursive?: boolean }): Promise<void>;
  writeFile(path: string, data: Uint8Array): Promise<void>;
  writeTextFile(path: string, data: string): Promise<void>;
  version: { deno: string };
};

// the same settings as test/deno.test.ts uses on the Node side
const SMOKE = {
  prompt: 'a lighthouse on a cliff at dusk',
  negativePrompt: 'blurry',
  guidanceScale: 5,
  scheduler: 'euler',
};

const here = new URL('.', import.meta.url);
const model = new URL('../../fixtures/models/tiny-ssd1b/', here).pathname;
const outDir = Deno.args[0] ?? new URL('../../test-artifacts/deno/', here).pathname;
const steps = Number(Deno.env.get('SSD_SMOKE_STEPS') ?? 3);
const size = Number(Deno.env.get('SSD_SMOKE_SIZE') ?? 128);
const seed = Number(Deno.env.get('SSD_SMOKE_SEED') ?? 42);
const dtype = (Deno.env.get('SSD_SMOKE_DTYPE') ?? 'f32') as 'f16' | 'f32';

const ctx = await createContext();
console.log(`deno ${Deno.version.deno}; adapter: ${ctx.info.description}; features: ${ctx.info.features.join(', ')}`);
const t0 = performance.now();
const pipe = await StableDiffusionXLPipeline.fromPretrained(model, { context: ctx, dtype, scheduler: SMOKE.scheduler, onNotice: (m) => console.log(`notice: ${m}`) });
console.log(`loaded in ${(performance.now() - t0).toFixed(0)} ms (${pipe.dtype})`);
const r = await pipe.generate({
  prompt: SMOKE.prompt,
  negativePrompt: SMOKE.negativePrompt,
  guidanceScale: SMOKE.guidanceScale,
  numInferenceSteps: steps,
  width: size,
  height: size,
  seed,
  onStep: (s) => console.log(`step ${s.step}/${s.total} (t=${s.timestep}) ${s.elapsedMs.toFixed(0)} ms`),
});
await Deno.mkdir(outDir, { recursive: true });
const dir = outDir.replace(/\/?$/, '/');
await Deno.writeFile(
  `${dir}latents.safetensors`,
  encodeSafetensors({ latents: { dtype: 'F32', shape: r.latents.shape, data: r.latents.data } }, { seed: String(seed), steps: String(steps), size: String(size), dtype: pipe.dtype, adapter: ctx.info.description }),
);
const parameters = formatParameters({ prompt: SMOKE.prompt, negativePrompt: SMOKE.negativePrompt, steps, guidanceScale: SMOKE.guidanceScale, seed, width: size, height: size, scheduler: SMOKE.scheduler, model: 'tiny-ssd1b' });
await Deno.writeFile(`${dir}image.png`, encodePng(r.images[0], { text: { parameters } }));
console.log(`done in ${r.report.totalMs.toFixed(0)} ms (${r.report.itPerSec.toFixed(2)} it/s); wrote ${dir}latents.safetensors and image.png`);
await pipe.dispose();
ctx.destroy();
