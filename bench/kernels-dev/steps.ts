// Why the steady denoising step is unsteady: K UNet CFG steps (batch 2) ended exactly as the pipeline's
// step loop ends them (packages/pipeline/src/run.ts: ctx.sync({ expectedMs: the best of the last three
// steps after the first })), with per step: wall ms, the process's CPU ms (lavapipe's threads are
// ours; Dawn's polling adds to it), the time spent inside the final wait, and the pool's growth.
//   node --conditions=source --import tsx bench/kernels-dev/steps.ts --from models/ssd-1b-f16 [--latent 32] [--steps 4]
//        [--wait run|spin|nap1]   run: run.ts's rule; spin: never nap; nap1: step 2 naps 75% of step 1 too
//        [--ab]   two UNets in one process, the first with every 3×3 conv direct ($SSD_CONV_ALGORITHM=direct),
//                 the second with the adapter's choice; their steps alternate (A/B under the same load)
import { parseArgs } from 'node:util';
import { createContext } from '@ssd/tensor';
import { UNet2DConditionModel } from '@ssd/unet';
import { unetInputs } from '../lib/unet-inputs.js';

const { values: args } = parseArgs({
  options: { from: { type: 'string' }, latent: { type: 'string', default: '32' }, steps: { type: 'string', default: '4' }, wait: { type: 'string', default: 'run' }, ab: { type: 'boolean', default: false } },
});
if (!args.from) throw new Error('--from <make-random-model folder> is required');
const latent = Number(args.latent);
const ctx = await createContext();
const dtype = ctx.f16 ? 'f16' : 'f32';
const t0 = performance.now();
const load = () => UNet2DConditionModel.fromPretrained(args.from!, { context: ctx, dtype, variant: dtype === 'f16' ? 'fp16' : undefined });
const unets: { name: string; unet: UNet2DConditionModel }[] = [];
if (args.ab) {
  process.env.SSD_CONV_ALGORITHM = 'direct';
  unets.push({ name: 'direct', unet: await load() });
  delete process.env.SSD_CONV_ALGORITHM;
}
unets.push({ name: args.ab ? 'table' : 'unet', unet: await load() });
console.log(`${ctx.info.description} | UNet loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s | latent ${latent}² batch 2 ${dtype} | wait ${args.wait}`);
const inputs = unetInputs(ctx, unets[0].unet, 2, latent, latent, 999);
await ctx.sync();

const stepMs: number[] = [];
for (let k = 0; k < Number(args.steps) * unets.length; k++) {
  const i = Math.floor(k / unets.length);
  const { name, unet } = unets[k % unets.length];
  const ts = performance.now();
  const c0 = process.cpuUsage();
  const pipes0 = ctx.pipelineCount;
  const mem0 = ctx.memory;
  const out = unet.forward(inputs);
  const recordMs = performance.now() - ts;
  const measured = stepMs.slice(unets.length).slice(-3 * unets.length);
  const expectedMs = args.wait === 'spin' ? 0 : args.wait === 'nap1' && i === 1 ? stepMs[k - unets.length] : measured.length ? Math.min(...measured) : 0;
  const tw = performance.now();
  await ctx.sync({ expectedMs });
  const waitMs = performance.now() - tw;
  out.dispose();
  const ms = performance.now() - ts;
  stepMs.push(ms);
  const c = process.cpuUsage(c0);
  const mem = ctx.memory;
  const os = await import('node:os');
  console.log(
    `${unets.length > 1 ? `${name} ` : ''}step ${i + 1}: ${(ms / 1000).toFixed(1)} s wall, cpu ${((c.user + c.system) / 1e6).toFixed(1)} s, recording ${(recordMs / 1000).toFixed(1)} s (${ctx.pipelineCount - pipes0} new pipelines), ` +
      `nap ${((expectedMs * 0.75) / 1000).toFixed(1)} s, in sync ${(waitMs / 1000).toFixed(1)} s, pool +${((mem.allocatedBytes - mem0.allocatedBytes) / 2 ** 20).toFixed(0)} MiB (allocated ${(mem.allocatedBytes / 2 ** 20).toFixed(0)} MiB), load ${os.loadavg()[0].toFixed(1)}`,
  );
}
inputs.dispose();
for (const u of unets) u.unet.dispose();
ctx.destroy();
