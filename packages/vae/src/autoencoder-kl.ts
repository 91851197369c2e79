// AutoencoderKL (diffusers models/autoencoders/autoencoder_kl.py) for the SDXL family: the decoder
// that turns pipeline latents into images and the encoder that turns images into a latent
// distribution, each run whole or in blended tiles (tiling/) so that a 1024² image fits WebGPU's
// storage-binding limit, with non-finite outputs reported by stage (numerics.ts).
//
// Contracts (see README.md):
//   decode(latents)  pipeline latents NHWC [B, h, w, C] → image NHWC f32 [B, h·f, w·f, 3], [-1, 1]
//                    unclamped; applies `latents / scaling_factor (+ shift)` itself.
//   encode(image)    image NHWC [B, H, W, 3] in [-1, 1] → DiagonalGaussianDistribution in VAE space
//                    (NOT multiplied by scaling_factor: that is toPipelineLatents / encodeLatents).
import { parameterStats, buildAndLoad, InvalidArgumentError, type DType, type GpuContext, type ModelSource, type Tensor, type WeightStore } from '@ssd/tensor';
import { Conv2d, convScratchBytes, type ConvAlgorithm } from '@ssd/kernels';
import { openAutoencoder, type AutoencoderLoadOptions } from './open-autoencoder.js';
import { parseAutoencoderKLConfig, type AutoencoderKLConfig, type AutoencoderKLSpec } from './config.js';
import { DiagonalGaussianDistribution } from './distribution.js';
import { checkInput, readNHWC, toPipelineLatents, toVaeLatents, type NoiseGenerator } from './latents.js';
import { estimateKLDecode, estimateKLEncode, type ConvScratch } from './tiling/memory-plan.js';
import { exactTilePlan, planExactDecode, sweepDecode, type ExactDecodePlan, type ExactPlanBounds } from './tiling/exact-decode.js';
import { exactEncodeTilePlan, planExactEncode, sweepEncode, type ExactEncodePlan } from './tiling/exact-encode.js';
import { runOnHost, runWhole, type PassSpec } from './tiling/tiled-pass.js';
import { planTiles, tileBudget, type HostImage, type TilePlan, type TilingOptions } from './tiling/tiling.js';
import { Decoder, Encoder } from './vae.js';
import type { Probe } from './vae-blocks.js';

export interface RunOptions extends TilingOptions {
  signal?: AbortSignal;
  /** Called after each tile with (tiles done, tiles in all). */
  onTile?: (done: number, total: number) => void;
}

export interface DecoderOutput {
  /** NHWC f32 [B, H, W, out_channels], nominally [-1, 1] and not clamped. The caller owns it. */
  sample: Tensor;
  tiling: TilePlan;
}

export interface AutoencoderKLOutput {
  /** In the VAE's latent space; the caller owns (and disposes) it. */
  latentDist: DiagonalGaussianDistribution;
  tiling: TilePlan;
}

export interface EncodeLatentsOptions extends RunOptions {
  /** Draws the sample's noise (torch order). Without it (and without `noise`) the mean is used. */
  generator?: NoiseGenerator;
  /** Explicit NHWC noise for the sample, instead of a generator. */
  noise?: Tensor;
}

export class AutoencoderKL {
  readonly spec: AutoencoderKLSpec;
  readonly dtype: DType;
  readonly encoder: Encoder | null;
  readonly quant_conv: Conv2d | null;
  readonly decoder: Decoder | null;
  readonly post_quant_conv: Conv2d | null;
  private readonly params: Tensor[];
  private disposed = false;

  /**
   * Builds the model from its config, taking every parameter from `weights` (missing, unexpected
   * and mis-shaped keys are reported together by `weights.finish()`, called here). Call
   * `weights.load()` afterwards (fromPretrained does both). `parts` skips one half of the weights.
   */
  constructor(
    readonly ctx: GpuContext,
    readonly config: Readonly<AutoencoderKLConfig>,
    weights: WeightStore,
    parts: 'both' | 'decoder' | 'encoder' = 'both',
    /** The 3×3 stride-1 convs' algorithm (see AutoencoderLoadOptions.convAlgorithm). */
    readonly convAlgorithm: ConvAlgorithm | 'auto' = 'auto',
  ) {
    const spec = (this.spec = parseAutoencoderKLConfig(config as AutoencoderKLConfig));
    this.dtype = weights.dtype;
    const lat = spec.latentChannels;
    try {
      const enc = parts !== 'decoder';
      const dec = parts !== 'encoder';
      this.encoder = enc ? new Encoder(weights, 'encoder', spec, convAlgorithm) : null;
      this.quant_conv = enc && spec.useQuantConv ? new Conv2d(weights, 'quant_conv', 2 * lat, 2 * lat, { kernelSize: 1 }) : null;
      this.decoder = dec ? new Decoder(weights, 'decoder', spec, convAlgorithm) : null;
      this.post_quant_conv = dec && spec.usePostQuantConv ? new Conv2d(weights, 'post_quant_conv', lat, lat, { kernelSize: 1 }) : null;
      weights.finish();
    } catch (e) {
      weights.disposeAll();
      throw e;
    }
    this.params = [...weights.taken];
  }

  /** Loads a diffusers AutoencoderKL folder (local path, URL base or ModelSource). */
  static async fromPretrained(source: string | ModelSource, options: AutoencoderLoadOptions): Promise<AutoencoderKL> {
    const ignore = { decoder: [/^encoder\./, /^quant_conv\./], encoder: [/^decoder\./, /^post_quant_conv\./] };
    const { ctx, config, store, parts } = await openAutoencoder(source, options, 'AutoencoderKL', parseAutoencoderKLConfig, ignore);
    return buildAndLoad(store, (s) => new AutoencoderKL(ctx, config, s, parts, options.convAlgorithm ?? 'auto'), { signal: options.signal, onProgress: options.onProgress });
  }

  /** Image pixels per latent pixel (8 for SDXL). */
  get vaeScaleFactor(): number {
    return this.spec.downFactor;
  }

  get scalingFactor(): number {
    return this.spec.scalingFactor;
  }

  get parameterCount(): number {
    return parameterStats(this.params).count;
  }

  get weightBytes(): number {
    return parameterStats(this.params).bytes;
  }

  /** The tiling a decode of latents [batch, h, w, C] would use (nothing runs). */
  planDecode(batch: number, h: number, w: number, opts: TilingOptions = {}): TilePlan {
    return this.planDecodeWith(batch, h, w, opts).plan;
  }

  private planDecodeWith(batch: number, h: number, w: number, opts: TilingOptions): { plan: TilePlan; exact?: ExactDecodePlan } {
    const op = 'AutoencoderKL.decode';
    const bytes = this.dtype === 'f16' ? 2 : 4;
    const tileMode = opts.tileMode ?? 'exact';
    if (tileMode !== 'exact' && tileMode !== 'blend') throw new InvalidArgumentError(`${op}: tileMode must be 'exact' or 'blend', got ${JSON.stringify(tileMode)}`);
    const base = planTiles(this.ctx, { op, h, w, defaultTile: this.defaultTile, windowed: true, estimate: (th, tw) => estimateKLDecode(this.spec, batch, th, tw, bytes, this.convScratch) }, opts);
    if (!base.tiled || tileMode === 'blend') return { plan: base };
    const size = opts.tileLatentSize ?? (opts.tiling === 'always' ? base.tileLatentSize : undefined);
    const exact = planExactDecode(this.spec, h, w, this.exactBounds(bytes, op, opts), size);
    if (!exact) return { plan: { ...base, reason: `${base.reason}; the latent stage does not fit whole, so the tiles are blended (approximate)` } };
    return { plan: exactTilePlan(exact, this.spec.downFactor, base.reason), exact };
  }

  /** The tiling an encode of images [batch, H, W, 3] would use (nothing runs). */
  planEncode(batch: number, height: number, width: number, opts: TilingOptions = {}): TilePlan {
    return this.planEncodeWith(batch, height, width, opts).plan;
  }

  private planEncodeWith(batch: number, height: number, width: number, opts: TilingOptions): { plan: TilePlan; exact?: ExactEncodePlan } {
    const op = 'AutoencoderKL.encode';
    const f = this.spec.downFactor;
    const bytes = this.dtype === 'f16' ? 2 : 4;
    const tileMode = opts.tileMode ?? 'exact';
    if (tileMode !== 'exact' && tileMode !== 'blend') throw new InvalidArgumentError(`${op}: tileMode must be 'exact' or 'blend', got ${JSON.stringify(tileMode)}`);
    const base = planTiles(this.ctx, {
      op,
      h: Math.ceil(height / f),
      w: Math.ceil(width / f),
      defaultTile: this.defaultTile,
      windowed: true,
      estimate: (th, tw) => estimateKLEncode(this.spec, batch, Math.min(th * f, height), Math.min(tw * f, width), bytes, this.convScratch),
    }, opts);
    if (!base.tiled || tileMode === 'blend' || height % f || width % f) return { plan: base };
    const size = opts.tileLatentSize ?? (opts.tiling === 'always' ? base.tileLatentSize : undefined);
    const exact = planExactEncode(this.spec, height, width, this.exactBounds(bytes, op, opts), size);
    if (!exact) return { plan: { ...base, reason: `${base.reason}; the latent stage does not fit whole, so the tiles are blended (approximate)` } };
    return { plan: exactEncodeTilePlan(exact, f, base.reason), exact };
  }

  private exactBounds(dtypeBytes: number, op: string, opts: TilingOptions): ExactPlanBounds {
    const { maxStorageBufferBindingSize: binding, maxBufferSize: maxBuffer } = this.ctx.limits;
    return { dtypeBytes, binding, maxBuffer, budget: tileBudget(this.ctx, op, opts), scratch: this.convScratch };
  }

  /**
   * The scratch bytes a 3×3 conv of this model allocates (Winograd's V and Mt; none when direct), for
   * the memory plans: the layers chose their algorithm the same way (nn.Conv2d, chooseConvAlgorithm).
   */
  private readonly convScratch: ConvScratch = (cin, cout, b, h, w, upsample = 1) =>
    convScratchBytes(this.ctx, { dtype: this.dtype === 'f16' ? 'f16' : 'f32', inChannels: cin, outChannels: cout }, b, h, w, upsample, this.convAlgorithm === 'auto' ? undefined : this.convAlgorithm);

  /** diffusers' tile_latent_min_size: sample_size / 2^(blocks − 1). */
  private get defaultTile(): number {
    const s = this.config.sample_size;
    const size = Array.isArray(s) ? s[0] : (s ?? 32);
    return Math.floor(size / this.spec.downFactor);
  }

  /**
   * Pipeline latents NHWC [B, h, w, latent_channels] (f32 or f16) → image NHWC f32 [B, h·f, w·f, 3]
   * in [-1, 1] (unclamped). Divides by scaling_factor (and adds shift_factor / latents_mean) itself.
   * Throws NumericalError naming the stage if any output value is NaN or ±inf.
   */
  async decode(latents: Tensor, opts: RunOptions = {}): Promise<DecoderOutput> {
    this.checkAlive();
    if (!this.decoder) throw new InvalidArgumentError('AutoencoderKL.decode: this model was loaded with parts: \'encoder\'');
    const host = toVaeLatents(await readNHWC(latents, 'AutoencoderKL.decode', 'latents', this.spec.latentChannels), this.spec.latentScaling);
    checkInput(host, this.dtype, 'vae decoder input', 'vae decoder');
    const [b, h, w] = host.shape;
    const { plan, exact } = this.planDecodeWith(b, h, w, opts);
    const pass = this.pass('vae decoder', 1, this.spec.downFactor, (x, probe) => this.runDecoder(x, probe), opts);
    if (plan.mode === 'whole') return { sample: await runWhole(pass, host), tiling: plan };
    if (plan.mode === 'blend') {
      const out = await runOnHost(pass, host, plan);
      return { sample: this.ctx.fromData(out.data, out.shape, 'f32', 'vae image'), tiling: plan };
    }
    // exact: per sample, the latent stage whole, then the layer sweeps (exact-decode.ts)
    const images: HostImage[] = [];
    for (let n = 0; n < b; n++) {
      const zn = cropBatch(host, n);
      const stage = this.pass('vae decoder', 1, 1, (x, probe) => this.runLatentStage(x, probe), opts);
      const f = await runOnHost(stage, zn, { ...plan, tiled: false });
      images.push(await sweepDecode({ ctx: this.ctx, dtype: this.dtype, decoder: this.decoder, signal: opts.signal, onTile: opts.onTile }, f, exact!));
    }
    const out = concatBatchHost(images);
    return { sample: this.ctx.fromData(out.data, out.shape, 'f32', 'vae image'), tiling: plan };
  }

  /** `decode(latents).sample`: what a pipeline needs. */
  async decodeLatents(latents: Tensor, opts: RunOptions = {}): Promise<Tensor> {
    return (await this.decode(latents, opts)).sample;
  }

  /**
   * Images NHWC [B, H, W, in_channels] in [-1, 1] (f32 or f16; H and W multiples of 8 when tiled) →
   * the latent distribution in the VAE's space (diffusers `encode(x).latent_dist`, unscaled).
   */
  async encode(image: Tensor, opts: RunOptions = {}): Promise<AutoencoderKLOutput> {
    this.checkAlive();
    if (!this.encoder) throw new InvalidArgumentError('AutoencoderKL.encode: this model was loaded with parts: \'decoder\'');
    const host = await readNHWC(image, 'AutoencoderKL.encode', 'image', this.spec.inChannels);
    checkInput(host, this.dtype, 'vae encoder input', 'vae encoder');
    const [b, hh, ww] = host.shape;
    const f = this.spec.downFactor;
    const { plan, exact } = this.planEncodeWith(b, hh, ww, opts);
    if (plan.tiled && (hh % f || ww % f)) {
      throw new InvalidArgumentError(`AutoencoderKL.encode: a tiled encode needs an image size that is a multiple of ${f}, got ${ww}×${hh}`);
    }
    const pass = this.pass('vae encoder', f, 1, (x, probe) => this.runEncoder(x, probe), opts);
    if (!exact) return { latentDist: new DiagonalGaussianDistribution(this.ctx, await runOnHost(pass, host, plan)), tiling: plan };
    // exact: per sample, the layer sweeps, then the latent stage whole (exact-encode.ts)
    const moments: HostImage[] = [];
    for (let n = 0; n < b; n++) {
      const latentStage = (x: HostImage) => runOnHost(this.pass('vae encoder', 1, 1, (t, probe) => this.runEncoderLatentStage(t, probe), opts), x, { ...plan, tiled: false });
      moments.push(await sweepEncode({ ctx: this.ctx, dtype: this.dtype, signal: opts.signal, onTile: opts.onTile }, this.encoder, cropBatch(host, n), exact, latentStage));
    }
    return { latentDist: new DiagonalGaussianDistribution(this.ctx, concatBatchHost(moments)), tiling: plan };
  }

  /**
   * Images → pipeline latents NHWC f32: a sample of the latent distribution (noise from `generator`
   * in torch's order, or `noise`; the mean without either), times scaling_factor (diffusers' img2img
   * `retrieve_latents` then `scaling_factor * latents`).
   */
  async encodeLatents(image: Tensor, opts: EncodeLatentsOptions = {}): Promise<Tensor> {
    const { latentDist } = await this.encode(image, opts);
    try {
      const noise = opts.noise ?? opts.generator;
      const z = noise ? await latentDist.sampleData(noise) : new Float32Array(latentDist.meanData);
      return this.ctx.fromData(toPipelineLatents(z, this.spec.latentChannels, this.spec.latentScaling), latentDist.shape, 'f32', 'latents');
    } finally {
      latentDist.dispose();
    }
  }

  /** VAE-space latents (e.g. a latent_dist sample) → pipeline latents, on the host. */
  toPipelineLatents(z: Float32Array): Float32Array {
    return toPipelineLatents(new Float32Array(z), this.spec.latentChannels, this.spec.latentScaling);
  }

  /** post_quant_conv + Decoder on a model-dtype tile; keeps `z`. */
  private runDecoder(z: Tensor, probe?: Probe): Tensor {
    if (!this.post_quant_conv) return this.decoder!.forward(z, probe);
    const zq = this.post_quant_conv.forward(z);
    probe?.('post_quant_conv', zq);
    try {
      return this.decoder!.forward(zq, probe);
    } finally {
      zq.dispose();
    }
  }

  /** post_quant_conv + the decoder's latent-resolution stage (exact tiling); keeps `z`. */
  private runLatentStage(z: Tensor, probe?: Probe): Tensor {
    if (!this.post_quant_conv) return this.decoder!.forwardLatentStage(z, probe);
    const zq = this.post_quant_conv.forward(z);
    probe?.('post_quant_conv', zq);
    try {
      return this.decoder!.forwardLatentStage(zq, probe);
    } finally {
      zq.dispose();
    }
  }

  /** The encoder's latent-resolution stage + quant_conv (exact tiling); keeps `x`. */
  private runEncoderLatentStage(x: Tensor, probe?: Probe): Tensor {
    const h = this.encoder!.forwardLatentStage(x, probe);
    if (!this.quant_conv) return h;
    const moments = this.quant_conv.forward(h);
    h.dispose();
    probe?.('quant_conv', moments);
    return moments;
  }

  /** Encoder + quant_conv on a model-dtype tile; keeps `x`. */
  private runEncoder(x: Tensor, probe?: Probe): Tensor {
    const h = this.encoder!.forward(x, probe);
    if (!this.quant_conv) return h;
    const moments = this.quant_conv.forward(h);
    h.dispose();
    probe?.('quant_conv', moments);
    return moments;
  }

  private pass(what: string, inUnit: number, outUnit: number, run: PassSpec['run'], opts: RunOptions): PassSpec {
    return { ctx: this.ctx, dtype: this.dtype, what, inUnit, outUnit, run, signal: opts.signal, onTile: opts.onTile };
  }

  private checkAlive(): void {
    if (this.disposed) throw new InvalidArgumentError('AutoencoderKL: used after dispose()');
  }

  /** Frees every weight. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of this.params) t.dispose();
  }
}

function cropBatch(x: HostImage, n: number): HostImage {
  const [b, h, w, c] = x.shape;
  if (b === 1) return x;
  const per = h * w * c;
  return { data: x.data.slice(n * per, (n + 1) * per), shape: [1, h, w, c] };
}

function concatBatchHost(images: HostImage[]): HostImage {
  if (images.length === 1) return images[0];
  const [, h, w, c] = images[0].shape;
  const data = new Float32Array(images.length * h * w * c);
  images.forEach((im, n) => data.set(im.data, n * h * w * c));
  return { data, shape: [images.length, h, w, c] };
}
