// AutoencoderTiny — TAESD / TAESDXL in diffusers' layout (models/autoencoders/autoencoder_tiny.py;
// its EncoderTiny and DecoderTiny are in vae-tiny.ts). No norms and no attention: ReLU convs, so it
// runs in f16 (force_upcast false) and decodes ~20× faster than the KL decoder; good for previews and
// fast final decodes. Same contracts as AutoencoderKL: decode takes
// pipeline latents (÷ scaling_factor, 1.0 for TAESDXL), returns NHWC f32 in [-1, 1]; encode returns
// raw latents (no distribution), which encodeLatents multiplies by scaling_factor.
import { parameterStats, buildAndLoad, InvalidArgumentError, withScopeSync, type DType, type GpuContext, type WeightStore, type Tensor, type ModelSource } from '@ssd/tensor';
import { affine } from '@ssd/kernels';
import type { DecoderOutput, EncodeLatentsOptions, RunOptions } from './autoencoder-kl.js';
import { openAutoencoder, type AutoencoderLoadOptions } from './open-autoencoder.js';
import { parseAutoencoderTinyConfig, type AutoencoderTinyConfig, type AutoencoderTinySpec } from './config.js';
import { checkInput, readNHWC, toPipelineLatents, toVaeLatents } from './latents.js';
import { estimateTinyDecode, estimateTinyEncode } from './tiling/memory-plan.js';
import { runOnHost, runWhole, type PassSpec } from './tiling/tiled-pass.js';
import { planTiles, tileBudget, type HostImage, type TilePlan, type TilingOptions } from './tiling/tiling.js';
import { planTinyExact, sweepDecodeTiny, tinyExactTilePlan, type TinyExactPlan } from './tiling/exact-decode-tiny.js';
import { DecoderTiny, EncoderTiny, runLayers } from './vae-tiny.js';

export interface AutoencoderTinyOutput {
  /** Raw latents NHWC f32 [B, h, w, C] (encoder output, not multiplied by scaling_factor). The caller owns it. */
  latents: Tensor;
  tiling: TilePlan;
}

export class AutoencoderTiny {
  readonly spec: AutoencoderTinySpec;
  readonly dtype: DType;
  readonly encoder: EncoderTiny | null;
  readonly decoder: DecoderTiny | null;
  private readonly params: Tensor[];
  private disposed = false;

  constructor(
    readonly ctx: GpuContext,
    readonly config: Readonly<AutoencoderTinyConfig>,
    weights: WeightStore,
    parts: 'both' | 'decoder' | 'encoder' = 'both',
  ) {
    this.spec = parseAutoencoderTinyConfig(config as AutoencoderTinyConfig);
    this.dtype = weights.dtype;
    try {
      this.encoder = parts !== 'decoder' ? new EncoderTiny(weights, 'encoder', this.spec) : null;
      this.decoder = parts !== 'encoder' ? new DecoderTiny(weights, 'decoder', this.spec) : null;
      weights.finish();
    } catch (e) {
      weights.disposeAll();
      throw e;
    }
    this.params = [...weights.taken];
  }

  /** Loads a diffusers AutoencoderTiny folder (e.g. madebyollin/taesdxl). f16 by default when available. */
  static async fromPretrained(source: string | ModelSource, options: AutoencoderLoadOptions): Promise<AutoencoderTiny> {
    const { ctx, config, store, parts } = await openAutoencoder(source, options, 'AutoencoderTiny', parseAutoencoderTinyConfig, { decoder: [/^encoder\./], encoder: [/^decoder\./] });
    return buildAndLoad(store, (s) => new AutoencoderTiny(ctx, config, s, parts), { signal: options.signal, onProgress: options.onProgress });
  }

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

  planDecode(batch: number, h: number, w: number, opts: TilingOptions = {}): TilePlan {
    return this.planDecodeWith(batch, h, w, opts).plan;
  }

  private planDecodeWith(batch: number, h: number, w: number, opts: TilingOptions): { plan: TilePlan; exact?: TinyExactPlan } {
    const op = 'AutoencoderTiny.decode';
    const bytes = this.dtype === 'f16' ? 2 : 4;
    const tileMode = opts.tileMode ?? 'exact';
    if (tileMode !== 'exact' && tileMode !== 'blend') throw new InvalidArgumentError(`${op}: tileMode must be 'exact' or 'blend', got ${JSON.stringify(tileMode)}`);
    const base = planTiles(this.ctx, { op, h, w, defaultTile: 64, estimate: (th, tw) => estimateTinyDecode(this.spec, batch, th, tw, bytes) }, opts);
    if (!base.tiled || tileMode === 'blend' || !this.decoder) return { plan: base };
    const size = opts.tileLatentSize ?? (opts.tiling === 'always' ? base.tileLatentSize : undefined);
    const exact = planTinyExact(this.decoder, this.spec, h, w, bytes * batch, this.ctx.limits.maxStorageBufferBindingSize, tileBudget(this.ctx, op, opts), size);
    return { plan: tinyExactTilePlan(exact, this.spec.downFactor, base.reason, h, w), exact };
  }

  planEncode(batch: number, height: number, width: number, opts: TilingOptions = {}): TilePlan {
    const f = this.spec.downFactor;
    const bytes = this.dtype === 'f16' ? 2 : 4;
    return planTiles(this.ctx, {
      op: 'AutoencoderTiny.encode',
      h: Math.ceil(height / f),
      w: Math.ceil(width / f),
      defaultTile: 64,
      estimate: (th, tw) => estimateTinyEncode(this.spec, batch, Math.min(th * f, height), Math.min(tw * f, width), bytes),
    }, opts);
  }

  /**
   * Pipeline latents NHWC [B, h, w, C] → image NHWC f32 [B, h·f, w·f, 3] in [-1, 1] (unclamped):
   * z = latents / scaling_factor, tanh(z/3)·3 (DecoderTiny's clamp), the layers, then x·2 − 1.
   */
  async decode(latents: Tensor, opts: RunOptions = {}): Promise<DecoderOutput> {
    this.checkAlive();
    if (!this.decoder) throw new InvalidArgumentError("AutoencoderTiny.decode: this model was loaded with parts: 'encoder'");
    const host = toVaeLatents(await readNHWC(latents, 'AutoencoderTiny.decode', 'latents', this.spec.latentChannels), this.spec.latentScaling);
    checkInput(host, this.dtype, 'taesd decoder input', 'taesd decoder');
    const d = host.data;
    for (let i = 0; i < d.length; i++) d[i] = Math.fround(Math.fround(Math.tanh(Math.fround(d[i] / 3))) * 3); // torch.tanh(x / 3) * 3
    const [b, h, w] = host.shape;
    const { plan, exact } = this.planDecodeWith(b, h, w, opts);
    const pass = this.pass('taesd decoder', 1, this.spec.downFactor, (x, probe) =>
      withScopeSync((s) => s.keep(s.then(s.track(this.decoder!.forward(x, probe)), (y) => affine(y, 2, -1, { outDtype: 'f32' })))), // [0, 1] → [-1, 1]
    opts);
    if (plan.mode === 'whole') return { sample: await runWhole(pass, host), tiling: plan };
    const out = exact
      ? await sweepDecodeTiny({ ctx: this.ctx, dtype: this.dtype, signal: opts.signal, onTile: opts.onTile }, this.decoder, exact, (layers) =>
          runOnHost(this.pass('taesd decoder', 1, 1, (x, probe) => runLayers(layers, x, probe), opts), host, { ...plan, tiled: false }))
      : await runOnHost(pass, host, plan);
    return { sample: this.ctx.fromData(out.data, out.shape, 'f32', 'taesd image'), tiling: plan };
  }

  async decodeLatents(latents: Tensor, opts: RunOptions = {}): Promise<Tensor> {
    return (await this.decode(latents, opts)).sample;
  }

  /** Images NHWC [B, H, W, 3] in [-1, 1] → raw latents (EncoderTiny on (x + 1) / 2; no sampling, no scaling). */
  async encode(image: Tensor, opts: RunOptions = {}): Promise<AutoencoderTinyOutput> {
    this.checkAlive();
    if (!this.encoder) throw new InvalidArgumentError("AutoencoderTiny.encode: this model was loaded with parts: 'decoder'");
    const host = await readNHWC(image, 'AutoencoderTiny.encode', 'image', this.spec.inChannels);
    const d = host.data;
    for (let i = 0; i < d.length; i++) d[i] = Math.fround(Math.fround(d[i] + 1) / 2); // x.add(1).div(2)
    checkInput(host, this.dtype, 'taesd encoder input', 'taesd encoder');
    const [b, hh, ww] = host.shape;
    const f = this.spec.downFactor;
    const plan = this.planEncode(b, hh, ww, opts);
    if (plan.tiled && (hh % f || ww % f)) throw new InvalidArgumentError(`AutoencoderTiny.encode: a tiled encode needs an image size that is a multiple of ${f}, got ${ww}×${hh}`);
    const pass = this.pass('taesd encoder', f, 1, (x, probe) => this.encoder!.forward(x, probe), opts);
    const out: HostImage = await runOnHost(pass, host, plan);
    return { latents: this.ctx.fromData(out.data, out.shape, 'f32', 'taesd latents'), tiling: plan };
  }

  /**
   * Images → pipeline latents: encode(image).latents × scaling_factor (diffusers' retrieve_latents
   * for `.latents`: deterministic, so a generator or noise in `opts` is not used).
   */
  async encodeLatents(image: Tensor, opts: EncodeLatentsOptions = {}): Promise<Tensor> {
    const { latents } = await this.encode(image, opts);
    try {
      const z = (await latents.read()) as Float32Array;
      return this.ctx.fromData(toPipelineLatents(new Float32Array(z), this.spec.latentChannels, this.spec.latentScaling), latents.shape, 'f32', 'latents');
    } finally {
      latents.dispose();
    }
  }

  private pass(what: string, inUnit: number, outUnit: number, run: PassSpec['run'], opts: RunOptions): PassSpec {
    return { ctx: this.ctx, dtype: this.dtype, what, inUnit, outUnit, run, signal: opts.signal, onTile: opts.onTile };
  }

  private checkAlive(): void {
    if (this.disposed) throw new InvalidArgumentError('AutoencoderTiny: used after dispose()');
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of this.params) t.dispose();
  }
}
