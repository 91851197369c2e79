// A complete text-to-image script with @ssd/pipeline in Node. Copy it, then:
//   node --import tsx generate.ts [model folder or URL] [prompt]
// (from this repository: `node --conditions=source --import tsx examples/node/generate.ts`).
// Without a model argument it uses the repository's tiny random test model (its images are noise).
import { writeFile } from 'node:fs/promises';
import { createContext } from '@ssd/tensor';
import { encodePng, formatParameters, StableDiffusionXLPipeline } from '@ssd/pipeline';

const model = process.argv[2] ?? new URL('../../fixtures/models/tiny-ssd1b', import.meta.url).pathname;
const prompt = process.argv[3] ?? 'a photo of an astronaut riding a horse on the moon';

// One WebGPU context (Dawn via the `webgpu` package in Node; navigator.gpu in browsers).
const ctx = await createContext();
console.log(`adapter: ${ctx.info.description}`);

// Load tokenizers, both text encoders, the UNet, the VAE and the scheduler from model_index.json.
// fp16 weights and f16 compute when the device supports shader-f16; the VAE decodes in f32.
const pipe = await StableDiffusionXLPipeline.fromPretrained(model, {
  context: ctx,
  variant: 'fp16',
  onLoadProgress: (p) => process.stdout.write(`\rloading ${p.component}: ${((100 * p.loadedBytes) / p.totalBytes).toFixed(0)}%   `),
});
console.log();

// Ctrl-C stops between steps and frees the run's GPU memory.
const abort = new AbortController();
process.once('SIGINT', () => abort.abort());

const result = await pipe.generate({
  prompt,
  negativePrompt: 'blurry, low quality',
  numInferenceSteps: 25,
  guidanceScale: 7,
  seed: 42, // the same seed gives the same noise as diffusers with torch.Generator("cpu").manual_seed(42)
  onStep: ({ step, total }) => process.stdout.write(`\rstep ${step}/${total}`),
  signal: abort.signal,
});
console.log(`\n${result.report.itPerSec.toFixed(2)} it/s, peak GPU memory ${(result.report.peakBytes / 2 ** 20).toFixed(0)} MiB`);

// PNG with the generation parameters in a text chunk, as common SD tools write it.
const [image] = result.images;
const parameters = formatParameters({ prompt, steps: 25, scheduler: pipe.scheduler, guidanceScale: 7, seed: result.seed, width: image.width, height: image.height, model });
await writeFile('out.png', encodePng(image, { text: { parameters } }));
console.log('wrote out.png');

await pipe.dispose();
ctx.destroy();
