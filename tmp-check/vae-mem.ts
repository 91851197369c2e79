import { parseAutoencoderKLConfig, estimateKLEncode } from '../packages/vae/src/index.js';
import { planExactEncode } from '../packages/vae/src/exact-encode.js';
const cfg = { _class_name: 'AutoencoderKL', act_fn: 'silu', block_out_channels: [128, 256, 512, 512], down_block_types: Array(4).fill('DownEncoderBlock2D'), up_block_types: Array(4).fill('UpDecoderBlock2D'), force_upcast: true, in_channels: 3, latent_channels: 4, layers_per_block: 2, norm_num_groups: 32, out_channels: 3, sample_size: 1024, scaling_factor: 0.13025 };
const spec = parseAutoencoderKLConfig(cfg as never);
const mib = (b: number) => (b / 2 ** 20).toFixed(0) + ' MiB';
for (const bytes of [4, 2]) {
  const e = estimateKLEncode(spec as never, 1, 1024, 1024, bytes);
  console.log(`untiled ${bytes === 4 ? 'f32' : 'f16'}: peak ${mib(e.peakBytes)}, largest tensor ${mib(e.largestTensorBytes)}`);
  const p = planExactEncode(spec as never, 1024, 1024, bytes, 128 * 2 ** 20, 2 ** 30)!;
  console.log(`exact: latent stage peak ${mib(p.latentStage.peakBytes)} largest ${mib(p.latentStage.largestTensorBytes)}, sweep peak ${mib(p.sweepPeakBytes)}, sweeps ${p.sweeps.length}, tile passes ${p.tilePasses}, first tile ${p.firstTile}`);
}
