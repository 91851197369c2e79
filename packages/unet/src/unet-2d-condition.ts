// UNet2DConditionModel for the SDXL family (diffusers models/unets/unet_2d_condition.py), built
// entirely from config.json: SSD-1B, Segmind-Vega, SDXL base and custom configs run the same code.
// Activations are NHWC; `forwardNCHW` converts at the edge. Intermediates are freed as soon as the
// skip stack allows, so peak memory is the weights plus the live skips plus one block's temporaries.
import {
  buildAndLoad, chooseComputeDtype, InvalidArgumentError, openModelSource, parameterStats, readComponentConfig, ShapeError, formatShape, WeightStore,
  type DType, type GpuContext, type LoadProgress, type ModelSource, type Tensor,
} from '@ssd/tensor';
import { cast, concatChannels, Conv2d, GroupNorm, nchwToNhwc, nhwcToNchw, silu, timestepEmbedding } from '@ssd/kernels';
import { parseUNetConfig, type UNet2DConditionConfig, type UNetSpec } from './config.js';
import { TimestepEmbedding } from './embeddings.js';
import { DownBlock, MidBlock, UpBlock } from './unet-2d-blocks.js';

export interface UNetForwardInput {
  /** Noisy latents, NHWC [B, H, W, in_channels]. Cast to the model dtype if needed. */
  sample: Tensor;
  /** One timestep for the whole batch, or one per sample. */
  timestep: number | ArrayLike<number>;
  /** [B, 77, cross_attention_dim] (prompt embeddings). */
  encoderHiddenStates: Tensor;
  /** [B, text_embeds dim] pooled text embeddings (addition_embed_type "text_time"). */
  textEmbeds?: Tensor;
  /** Per sample (orig h, orig w, crop top, crop left, target h, target w). */
  timeIds?: readonly (readonly number[])[];
  /** Called with named intermediates (conv_in, down_blocks.i, mid_block, up_blocks.i, conv_norm_out), NHWC; clone to keep. */
  onIntermediate?: (name: string, t: Tensor) => void;
}

export interface UNetLoadOptions {
  subfolder?: string;
  /** 'f16' (when the device has shader-f16; otherwise f32 with a notice) or 'f32'. */
  dtype?: 'f16' | 'f32';
  /** Weight variant to prefer, e.g. 'fp16' (falls back to the default weights with a notice). */
  variant?: string;
  context: GpuContext;
  signal?: AbortSignal;
  onProgress?: (p: LoadProgress) => void;
  onNotice?: (message: string) => void;
}

export class UNet2DConditionModel {
  readonly spec: UNetSpec;
  readonly dtype: DType;
  readonly convIn: Conv2d;
  readonly timeEmbedding: TimestepEmbedding;
  readonly addEmbedding: TimestepEmbedding | null;
  readonly downBlocks: DownBlock[];
  readonly midBlock: MidBlock | null;
  readonly upBlocks: UpBlock[];
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;
  private readonly params: Tensor[];
  private disposed = false;

  /**
   * Builds the model from a config object, taking every parameter from `weights` (missing,
   * unexpected and mis-shaped keys are reported together by `weights.finish()`, called here).
   * Call `weights.load()` afterwards to stream the data in (fromPretrained does both).
   */
  constructor(
    readonly ctx: GpuContext,
    readonly config: Readonly<UNet2DConditionConfig>,
    weights: WeightStore,
  ) {
    const spec = (this.spec = parseUNetConfig(config as UNet2DConditionConfig));
    this.dtype = weights.dtype;
    const boc = spec.blockOutChannels;
    try {
      this.convIn = new Conv2d(weights, 'conv_in', spec.inChannels, boc[0], { kernelSize: 3, padding: 1 });
      this.timeEmbedding = new TimestepEmbedding(weights, 'time_embedding', boc[0], spec.timeEmbedDim);
      this.addEmbedding = spec.addition ? new TimestepEmbedding(weights, 'add_embedding', spec.addition.inputDim, spec.timeEmbedDim) : null;
      this.downBlocks = spec.down.map((d, i) => new DownBlock(weights, `down_blocks.${i}`, d, spec));
      this.midBlock = spec.mid ? new MidBlock(weights, 'mid_block', spec.mid, spec) : null;
      this.upBlocks = spec.up.map((u, i) => new UpBlock(weights, `up_blocks.${i}`, u, spec));
      this.convNormOut = new GroupNorm(weights, 'conv_norm_out', spec.normGroups, boc[0], spec.normEps);
      this.convOut = new Conv2d(weights, 'conv_out', boc[0], spec.outChannels, { kernelSize: 3, padding: 1 });
      weights.finish();
    } catch (e) {
      weights.disposeAll();
      throw e;
    }
    this.params = [...weights.taken];
  }

  /** Loads a diffusers UNet folder (local path, URL base or ModelSource). */
  static async fromPretrained(source: string | ModelSource, options: UNetLoadOptions): Promise<UNet2DConditionModel> {
    const ctx = options.context;
    const src = openModelSource(source);
    const subfolder = options.subfolder ?? 'unet';
    const config = (await readComponentConfig(src, subfolder)) as UNet2DConditionConfig;
    const dtype = chooseComputeDtype(ctx, options.dtype, 'UNet', options.onNotice);
    const store = await WeightStore.open(ctx, src, subfolder, { dtype, variant: options.variant, onNotice: options.onNotice });
    return buildAndLoad(store, (s) => new UNet2DConditionModel(ctx, config, s), { signal: options.signal, onProgress: options.onProgress });
  }

  /** Number of parameters (every weight tensor's elements). */
  get parameterCount(): number {
    return parameterStats(this.params).count;
  }

  get weightBytes(): number {
    return parameterStats(this.params).bytes;
  }

  /** Noise prediction, NHWC [B, H, W, out_channels] in the model dtype. Records; does not submit. */
  forward(input: UNetForwardInput): Tensor {
    if (this.disposed) throw new InvalidArgumentError('UNet2DConditionModel was disposed');
    const { spec, ctx } = this;
    const { sample, encoderHiddenStates: ehs } = input;
    if (sample.rank !== 4 || sample.shape[3] !== spec.inChannels) throw new ShapeError('UNet2DConditionModel', 'sample', `[B, H, W, ${spec.inChannels}] (NHWC)`, formatShape(sample.shape));
    const [batch, height, width] = sample.shape;
    const crossDim = spec.down.find((d) => d.type === 'CrossAttnDownBlock2D')?.crossAttentionDim ?? spec.mid?.crossAttentionDim;
    if (ehs.rank !== 3 || ehs.shape[0] !== batch || (crossDim !== undefined && ehs.shape[2] !== crossDim)) {
      throw new ShapeError('UNet2DConditionModel', 'encoderHiddenStates', `[${batch}, tokens, ${crossDim}]`, formatShape(ehs.shape));
    }
    const timesteps = typeof input.timestep === 'number' ? Array(batch).fill(input.timestep) : Array.from(input.timestep);
    if (timesteps.length !== batch) throw new InvalidArgumentError(`UNet2DConditionModel: ${timesteps.length} timesteps for a batch of ${batch}`);
    const owned: Tensor[] = [];
    const asDtype = (t: Tensor) => {
      if (t.dtype === this.dtype) return t;
      const c = cast(t, this.dtype as 'f16' | 'f32');
      owned.push(c);
      return c;
    };
    const x = asDtype(sample);
    const context = asDtype(ehs);
    const dbg = input.onIntermediate;

    // time embedding (+ the SDXL text_time embedding), then SiLU once for every resnet
    const tProj = timestepEmbedding(ctx, timesteps, spec.blockOutChannels[0], { flipSinToCos: spec.flipSinToCos, freqShift: spec.freqShift, dtype: this.dtype });
    let aug: Tensor | undefined;
    if (this.addEmbedding && spec.addition) {
      const { textEmbeds, timeIds } = input;
      if (!textEmbeds || !timeIds) throw new InvalidArgumentError('UNet2DConditionModel: this UNet (addition_embed_type "text_time") needs textEmbeds and timeIds');
      if (timeIds.length !== batch) throw new InvalidArgumentError(`UNet2DConditionModel: ${timeIds.length} timeIds rows for a batch of ${batch}`);
      const flat = timeIds.flatMap((r) => [...r]);
      const perSample = flat.length / batch;
      const timeProj = timestepEmbedding(ctx, flat, spec.addition.timeEmbedDim, { flipSinToCos: spec.flipSinToCos, freqShift: spec.freqShift, dtype: this.dtype });
      const timeEmbeds = timeProj.reshape([batch, perSample * spec.addition.timeEmbedDim]);
      timeProj.dispose();
      const te = asDtype(textEmbeds);
      if (te.shape[1] + timeEmbeds.shape[1] !== spec.addition.inputDim) {
        throw new ShapeError('UNet2DConditionModel', 'textEmbeds', `[${batch}, ${spec.addition.inputDim - timeEmbeds.shape[1]}] (projection_class_embeddings_input_dim ${spec.addition.inputDim} − ${perSample}×${spec.addition.timeEmbedDim})`, formatShape(te.shape));
      }
      const addEmbeds = concatChannels(te, timeEmbeds); // text first, then time ids
      timeEmbeds.dispose();
      aug = this.addEmbedding.forward(addEmbeds);
      addEmbeds.dispose();
    }
    const emb = this.timeEmbedding.forward(tProj, aug);
    tProj.dispose();
    aug?.dispose();
    const tembAct = silu(emb);
    emb.dispose();

    const skips: Tensor[] = [];
    let h = this.convIn.forward(x);
    dbg?.('conv_in', h);
    skips.push(h);
    this.downBlocks.forEach((block, i) => {
      h = block.forward(h, tembAct, context, skips);
      dbg?.(`down_blocks.${i}`, h);
    });
    if (this.midBlock) {
      h = this.midBlock.forward(h, tembAct, context); // h was on the skip stack: not disposed
      dbg?.('mid_block', h);
    }
    const upFactor = 2 ** this.upBlocks.filter((u) => u.spec.addUpsample).length;
    const forwardUpsampleSize = height % upFactor !== 0 || width % upFactor !== 0;
    let owner = !!this.midBlock; // whether h belongs to us (not to the skip stack)
    this.upBlocks.forEach((block, i) => {
      const next = skips[skips.length - 1 - block.spec.numLayers];
      const size = forwardUpsampleSize && block.spec.addUpsample && next ? ([next.shape[1], next.shape[2]] as const) : undefined;
      const out = block.forward(h, tembAct, context, skips, size);
      if (owner) h.dispose();
      h = out;
      owner = true;
      dbg?.(`up_blocks.${i}`, h);
    });
    tembAct.dispose();
    const n = this.convNormOut.forward(h, { silu: true });
    h.dispose();
    dbg?.('conv_norm_out', n);
    const out = this.convOut.forward(n);
    n.dispose();
    for (const t of owned) t.dispose();
    for (const s of skips) s.dispose(); // none remain in a well-formed config
    return out;
  }

  /** forward() with NCHW sample in and NCHW noise prediction out (the layout diffusers uses). */
  forwardNCHW(input: UNetForwardInput): Tensor {
    const nhwc = nchwToNhwc(input.sample);
    const y = this.forward({ ...input, sample: nhwc });
    nhwc.dispose();
    const out = nhwcToNchw(y);
    y.dispose();
    return out;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of this.params) t.dispose();
  }
}
