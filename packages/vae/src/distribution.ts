// diffusers DiagonalGaussianDistribution (models/autoencoders/vae.py): the encoder's moments split
// into mean and logvar along the channels, logvar clamped to [−30, 20], std = exp(0.5·logvar), and
// sample = mean + std·noise with the noise drawn by the caller (the pipeline's torch generator).
import { InvalidArgumentError, ShapeError, formatShape, Tensor, type GpuContext } from '@ssd/tensor';
import { nchwToNhwcHost, type NoiseGenerator } from './latents.js';
import type { HostImage } from './tiling/tiling.js';

export class DiagonalGaussianDistribution {
  /** NHWC f32 [B, h, w, C], in the VAE's latent space (not multiplied by scaling_factor). */
  readonly mean: Tensor;
  /** Clamped to [−30, 20]. */
  readonly logvar: Tensor;
  readonly std: Tensor;
  readonly shape: readonly [number, number, number, number];
  private readonly meanHost: Float32Array;
  private readonly stdHost: Float32Array;

  /** `moments` [B, h, w, 2C]: channels [0, C) are the mean, [C, 2C) the log-variance. */
  constructor(readonly ctx: GpuContext, moments: HostImage) {
    const [b, h, w, c2] = moments.shape;
    const c = c2 / 2;
    const n = b * h * w;
    this.shape = [b, h, w, c];
    this.meanHost = new Float32Array(n * c);
    const logvar = new Float32Array(n * c);
    this.stdHost = new Float32Array(n * c);
    for (let p = 0; p < n; p++) {
      for (let k = 0; k < c; k++) {
        this.meanHost[p * c + k] = moments.data[p * c2 + k];
        const lv = Math.min(20, Math.max(-30, moments.data[p * c2 + c + k]));
        logvar[p * c + k] = lv;
        this.stdHost[p * c + k] = Math.fround(Math.exp(Math.fround(0.5 * lv)));
      }
    }
    this.mean = ctx.fromData(this.meanHost, this.shape, 'f32', 'latent_dist.mean');
    this.logvar = ctx.fromData(logvar, this.shape, 'f32', 'latent_dist.logvar');
    this.std = ctx.fromData(this.stdHost, this.shape, 'f32', 'latent_dist.std');
  }

  /** The mean, on the host: NHWC f32. */
  get meanData(): Float32Array {
    return this.meanHost;
  }

  /**
   * mean + std·noise (f32, as torch), host values NHWC. `noise` is an NHWC tensor of the mean's shape,
   * or a generator whose randn([B, C, h, w]) is drawn in torch's NCHW order — what diffusers'
   * `latent_dist.sample(generator)` draws.
   */
  async sampleData(noise: Tensor | NoiseGenerator): Promise<Float32Array> {
    const [b, h, w, c] = this.shape;
    let eps: Float32Array;
    if (noise instanceof Tensor) {
      if (noise.rank !== 4 || noise.shape.some((d, i) => d !== this.shape[i])) {
        throw new ShapeError('DiagonalGaussianDistribution.sample', 'noise', formatShape(this.shape), formatShape(noise.shape));
      }
      eps = (await noise.read()) as Float32Array;
    } else if (noise && typeof (noise as NoiseGenerator).randn === 'function') {
      eps = nchwToNhwcHost(noise.randn([b, c, h, w]), b, c, h, w);
    } else {
      throw new InvalidArgumentError('DiagonalGaussianDistribution.sample: noise must be an NHWC tensor or a generator with randn(shape)');
    }
    const out = new Float32Array(eps.length);
    for (let i = 0; i < out.length; i++) out[i] = Math.fround(this.meanHost[i] + Math.fround(this.stdHost[i] * eps[i]));
    return out;
  }

  /** A sample as a new NHWC f32 tensor (the caller owns it). See sampleData. */
  async sample(noise: Tensor | NoiseGenerator): Promise<Tensor> {
    return this.ctx.fromData(await this.sampleData(noise), this.shape, 'f32', 'latent sample');
  }

  /** The distribution's mode (its mean) as a new tensor the caller owns. */
  mode(): Tensor {
    return this.ctx.clone(this.mean, 'latent mode');
  }

  dispose(): void {
    this.mean.dispose();
    this.logvar.dispose();
    this.std.dispose();
  }
}
