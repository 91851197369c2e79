// A seeded run with every component read from the fixture SGM single file (tokenizers from @ssd/clip):
// the thin path fromSingleFile will take — SingleFileSource + withSdxlTokenizers into fromPretrained —
// reproduces diffusers' reference/single_file f16 run (the same fp16 weights, upcast to f32).
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NodeFileSource, SafetensorsFile, SingleFileSource } from '@ssd/tensor';
import { withSdxlTokenizers } from '@ssd/clip';
import { StableDiffusionXLPipeline } from '@ssd/pipeline';
import { fixturesDir, hasFixtures, maxAbsDiff, relL2, testContext } from '../../../testing/index.js';

const FILE = 'models/single-file/tiny-ssd1b-sgm.fp16.safetensors';
const REF = 'reference/single_file.safetensors';

describe.skipIf(!hasFixtures(FILE, REF))('StableDiffusionXLPipeline from a single-file checkpoint', () => {
  it("reproduces diffusers' seeded f16 single-file run", async () => {
    const ctx = await testContext();
    const sf = await SingleFileSource.open(join(fixturesDir, FILE));
    const pipe = await StableDiffusionXLPipeline.fromPretrained(withSdxlTokenizers(sf), { context: ctx, dtype: 'f32', onNotice: () => {} });
    const st = await SafetensorsFile.open(new NodeFileSource(join(fixturesDir, REF)));
    try {
      const r = await pipe.generate({ prompt: 'an isometric illustration of a tiny island', negativePrompt: 'text, watermark', seed: 3161, numInferenceSteps: 4, guidanceScale: 5, width: 128, height: 128 });
      const err = relL2(r.latents.data, await st.readFloat32('f16.final_latents'));
      const want = (await st.read('f16.image_uint8')) as Uint8Array;
      const img = r.images[0];
      const got = new Uint8Array(img.width * img.height * 3);
      for (let p = 0; p < img.width * img.height; p++) for (let c = 0; c < 3; c++) got[p * 3 + c] = img.data[p * 4 + c];
      console.log(`single file f16: final latents rel-L2 ${err.toExponential(2)}, image max |Δ| ${maxAbsDiff(got, want)}/255`);
      // same weights as diffusers' run: only f32 summation order differs (the fp16-vs-fp32 weight effect is 3.1e-4)
      expect(err).toBeLessThanOrEqual(1e-4);
      expect(maxAbsDiff(got, want)).toBeLessThanOrEqual(2);
    } finally {
      await pipe.dispose();
      await st.source.close();
    }
  });
});
