// Text-to-image with the installed @ssd/pipeline in Node (Dawn, via the `webgpu` package it brings):
//   node generate.mjs <model folder or URL> <out.png> [prompt]
// Prints the adapter, the seed and the PNG's path as one JSON line.
import { writeFile } from 'node:fs/promises';
import { encodePng, formatParameters, StableDiffusionXLPipeline } from '@ssd/pipeline';

const [model, out, prompt = 'a lighthouse on a cliff at dusk'] = process.argv.slice(2);
const pipe = await StableDiffusionXLPipeline.fromPretrained(model, { dtype: 'f32', onNotice: () => {} });
try {
  const seed = 42;
  const result = await pipe.generate({ prompt, numInferenceSteps: 2, width: 64, height: 64, seed });
  const parameters = formatParameters({ prompt, steps: 2, scheduler: pipe.scheduler, guidanceScale: 5, seed, width: 64, height: 64 });
  await writeFile(out, encodePng(result.images[0], { text: { parameters } }));
  console.log(JSON.stringify({ adapter: result.report.adapter, seed: result.seed, out }));
} finally {
  await pipe.dispose();
}
