// The schedulers' array algebra on the GPU: latents live as NHWC f32 tensors; a linear combination is
// one `combine` kernel; noise is drawn on the host in torch's NCHW order (so seeds reproduce
// diffusers) and re-laid to NHWC before upload.
import { permute, type GpuContext, type Tensor } from '@ssd/tensor';
import { clamp, combine, thresholdSample } from '@ssd/kernels';
import type { LatentOps } from './schedulers/latent-ops.js';
import type { TorchGenerator } from './random/torch-generator.js';

export class GpuLatentOps implements LatentOps<Tensor> {
  constructor(readonly ctx: GpuContext) {}

  combine(terms: ReadonlyArray<readonly [Tensor, number]>): Tensor {
    return combine(terms, { outDtype: 'f32' });
  }

  randnLike(like: Tensor, generator: TorchGenerator): Tensor {
    return randnNHWC(this.ctx, generator, like.shape as [number, number, number, number]);
  }

  clamp(x: Tensor, lo: number, hi: number): Tensor {
    return clamp(x, lo, hi);
  }

  threshold(x: Tensor, ratio: number, maxValue: number): Tensor {
    return thresholdSample(x, ratio, maxValue);
  }

  release(x: Tensor): void {
    x.dispose();
  }
}

/** torch.randn([B, C, H, W], generator) drawn on the host, uploaded as NHWC [B, H, W, C] f32. */
export function randnNHWC(ctx: GpuContext, generator: TorchGenerator, nhwc: readonly [number, number, number, number]): Tensor {
  const [b, h, w, c] = nhwc;
  const nchw = generator.randn([b, c, h, w]);
  return ctx.fromData(permute(nchw, [b, c, h, w], [0, 2, 3, 1]), [b, h, w, c], 'f32', 'noise');
}

/** NCHW host data → NHWC f32 tensor. */
export function uploadNCHW(ctx: GpuContext, data: Float32Array, nchw: readonly number[], label = 'latents'): Tensor {
  const [b, c, h, w] = nchw;
  return ctx.fromData(permute(data, nchw, [0, 2, 3, 1]), [b, h, w, c], 'f32', label);
}

/** NHWC tensor → NCHW host data. */
export async function downloadNCHW(t: Tensor): Promise<Float32Array> {
  const [b, h, w, c] = t.shape;
  const data = (await t.read()) as Float32Array;
  return permute(data, [b, h, w, c], [0, 3, 1, 2]);
}
