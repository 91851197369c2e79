// planUNetMemory's activation estimate against a forward's measured peak of live tensor bytes: an upper
// bound (a size that needs more is refused up front) and a close one (within 1.5×, so a size that fits
// is not refused): the fixture UNets (SSD-1B's and SDXL's block layouts) at several latent sizes and
// batches, in f32 and f16, with this adapter's conv algorithms (Winograd scratch included).
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FolderSource, type GpuContext, type Tensor } from '@ssd/tensor';
import { planUNetMemory, UNet2DConditionModel, unetConvScratch } from '@ssd/unet';
import { fixturesDir, hasFixtures, testContext } from '../../../testing/index.js';

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await testContext();
});

const MODELS: [string, string, string][] = [
  ['tiny-ssd1b', 'models/tiny-ssd1b', 'unet'],
  ['tiny-sdxl-unet', 'models/tiny-sdxl-unet', ''],
];
// latent h × w and batch: a 1024²-class latent, an odd size (ceil'd downsampling), batch 1 and 2
const CASES: [number, number, number][] = [[128, 128, 1], [96, 72, 2], [120, 88, 1]];

function fill(n: number, seed: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(seed * 12.9898 + i * 78.233) * 0.8;
  return x;
}

describe.each(MODELS)('%s', (name, dir, subfolder) => {
  for (const dtype of ['f32', 'f16'] as const) {
    it.skipIf(!hasFixtures(dir))(`${dtype}: the plan bounds the measured peak and stays within 1.5× of it`, async () => {
      if (dtype === 'f16' && !ctx.f16) return;
      const unet = await UNet2DConditionModel.fromPretrained(new FolderSource(join(fixturesDir, dir)), { subfolder, context: ctx, dtype });
      try {
        const spec = unet.spec;
        const cross = spec.down.find((d) => d.type === 'CrossAttnDownBlock2D')?.crossAttentionDim ?? 40;
        const textDim = spec.addition ? spec.addition.inputDim - 6 * spec.addition.timeEmbedDim : 0;
        for (const [h, w, b] of CASES) {
          const inputs: Tensor[] = [
            ctx.fromData(fill(b * h * w * spec.inChannels, 1), [b, h, w, spec.inChannels], dtype),
            ctx.fromData(fill(b * 77 * cross, 2), [b, 77, cross], dtype),
            ctx.fromData(fill(b * Math.max(textDim, 1), 3), [b, Math.max(textDim, 1)], dtype),
          ];
          await ctx.sync();
          ctx.resetPeak();
          const before = ctx.memory.liveBytes;
          const out = unet.forward({ sample: inputs[0], timestep: 400, encoderHiddenStates: inputs[1], textEmbeds: textDim ? inputs[2] : undefined, timeIds: spec.addition ? Array.from({ length: b }, () => [h * 8, w * 8, 0, 0, h * 8, w * 8]) : undefined });
          await ctx.sync();
          const measured = ctx.memory.peakLiveBytes - before;
          out.dispose();
          inputs.forEach((t) => t.dispose());
          const plan = planUNetMemory(spec, b, h, w, dtype === 'f16' ? 2 : 4, unetConvScratch(ctx, dtype)).peakActivationBytes;
          const what = `${name} ${dtype} latent ${h}×${w} batch ${b}: plan ${plan} bytes, measured ${measured}`;
          console.log(`${what} (×${(plan / measured).toFixed(2)})`);
          expect(measured, what).toBeGreaterThan(4 * 2 ** 20); // big enough that the plan's fixed slack does not decide
          expect(plan, what).toBeGreaterThanOrEqual(measured);
          expect(plan, what).toBeLessThanOrEqual(1.5 * measured);
        }
      } finally {
        unet.dispose();
      }
    });
  }
});
