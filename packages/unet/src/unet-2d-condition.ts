// UNet2DConditionModel for the SDXL family (diffusers models/unets/unet_2d_condition.py), built
// entirely from config.json: SSD-1B, Segmind-Vega, SDXL base and custom configs run the same code.
// Activations are NHWC; `forwardNCHW` converts at the edge. Intermediates are freed as soon as the
// skip stack allows, so peak memory is the weights plus the live skips plus one block's temporaries.
import {
  buildAndLoad, chooseComputeDtype, InvalidArgumentError, openModelSource, parameterStats, readComponentConfig, ShapeError, formatShape, TensorScope, WeightStore,
  withScopeSync, type DType, type GpuContext, type LoadProgress, type ModelSource, type Tensor,
} from '@ssd/tensor';
import { cast, collectLoraWeights, concatChannels, Conv2d, GroupNorm, namedLoraTargets, nchwToNhwc, nhwcToNchw, silu, timestepEmbedding, type LoraTarget } from '@ssd/kernels';
import { parseUNetConfig, type UNet2DConditionConfig, type UNetSpec } from './config.js';
import { TimestepEmbedding } from './embeddings.js';
import { getDownBlock, getMidBlock, getUpBlock, type DownBlock, type MidBlock, type UpBlock } from './unet-2d-blocks.js';

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
  /**
   * LCM-distilled UNets (time_cond_proj_dim): the guidance embedding [B, time_cond_proj_dim], e.g.
   * guidanceScaleEmbedding(guidance − 1); added through time_embedding.cond_proj. Optional, as in diffusers.
   */
  timestepCond?: Tensor;
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
  readonly conv_in: Conv2d;
  readonly time_embedding: TimestepEmbedding;
  readonly add_embedding: TimestepEmbedding | null;
  readonly down_blocks: DownBlock[];
  readonly mid_block: MidBlock | null;
  readonly up_blocks: UpBlock[];
  readonly conv_norm_out: GroupNorm;
  readonly conv_out: Conv2d;
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
      this.conv_in = new Conv2d(weights, 'conv_in', spec.inChannels, boc[0], { kernelSize: 3, padding: 1 });
      this.time_embedding = new TimestepEmbedding(weights, 'time_embedding', boc[0], spec.timeEmbedDim, spec.timeCondProjDim);
      this.add_embedding = spec.addition ? new TimestepEmbedding(weights, 'add_embedding', spec.addition.inputDim, spec.timeEmbedDim) : null;
      this.down_blocks = spec.down.map((d, i) => getDownBlock(weights, `down_blocks.${i}`, d, spec));
      this.mid_block = spec.mid ? getMidBlock(weights, 'mid_block', spec.mid, spec) : null;
      this.up_blocks = spec.up.map((u, i) => getUpBlock(weights, `up_blocks.${i}`, u, spec));
      this.conv_norm_out = new GroupNorm(weights, 'conv_norm_out', spec.normGroups, boc[0], spec.normEps);
      this.conv_out = new Conv2d(weights, 'conv_out', boc[0], spec.outChannels, { kernelSize: 3, padding: 1 });
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

  /**
   * The linear layers LoRA can patch, by diffusers module path
   * ("down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q", "….resnets.0.time_emb_proj").
   */
  namedLinearLayers(): Map<string, LoraTarget> {
    return namedLoraTargets(this, 'linear');
  }

  /** The convolutions LoRA (LoCon) can patch, by diffusers module path ("down_blocks.0.resnets.0.conv1"). */
  namedConv2dLayers(): Map<string, LoraTarget> {
    return namedLoraTargets(this, 'conv2d');
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
    const s = new TensorScope(); // casts and every intermediate; the skip stack owns the skips
    const skips: Tensor[] = [];
    try {
      const asDtype = (t: Tensor) => (t.dtype === this.dtype ? t : s.track(cast(t, this.dtype as 'f16' | 'f32')));
      const x = asDtype(sample);
      const context = asDtype(ehs);
      const dbg = input.onIntermediate;

      // 1. time: the sinusoidal projection and its embedding (+ the SDXL text_time embedding), then SiLU once for every resnet
      const tProj = s.track(timestepEmbedding(ctx, timesteps, spec.blockOutChannels[0], { flipSinToCos: spec.flipSinToCos, freqShift: spec.freqShift, dtype: this.dtype }));
      const aug = this.add_embedding && spec.addition ? this.addEmbeds(s, input, batch, asDtype) : undefined;
      const cond = input.timestepCond ? asDtype(this.checkTimestepCond(input.timestepCond, batch)) : undefined;
      const emb = s.track(this.time_embedding.forward(tProj, aug, cond));
      s.drop(tProj, aug);
      const tembAct = s.then(emb, silu);

      // 2. pre-process, 3. down, 4. mid
      let h = this.conv_in.forward(x);
      dbg?.('conv_in', h);
      skips.push(h);
      this.down_blocks.forEach((block, i) => {
        h = block.forward(h, tembAct, context, skips);
        dbg?.(`down_blocks.${i}`, h);
      });
      if (this.mid_block) {
        h = s.track(this.mid_block.forward(h, tembAct, context)); // h was on the skip stack: not disposed
        dbg?.('mid_block', h);
      }
      // 5. up: h is ours (a block's output, freed once read) or the skip stack's (left to it)
      const upFactor = 2 ** this.up_blocks.filter((u) => u.spec.addUpsample).length;
      const forwardUpsampleSize = height % upFactor !== 0 || width % upFactor !== 0;
      this.up_blocks.forEach((block, i) => {
        const next = skips[skips.length - 1 - block.spec.numLayers];
        const size = forwardUpsampleSize && block.spec.addUpsample && next ? ([next.shape[1], next.shape[2]] as const) : undefined;
        const out = s.track(block.forward(h, tembAct, context, skips, size));
        if (s.owns(h)) s.drop(h);
        h = out;
        dbg?.(`up_blocks.${i}`, h);
      });
      s.drop(tembAct);

      // 6. post-process
      const n = s.then(h, (t) => this.conv_norm_out.forward(t, { silu: true }));
      dbg?.('conv_norm_out', n);
      return this.conv_out.forward(n);
    } finally {
      s.dispose();
      for (const t of skips) t.dispose(); // none remain in a well-formed config
    }
  }

  /** LCM-distilled UNets' guidance embedding [B, time_cond_proj_dim], checked against the config. */
  private checkTimestepCond(tc: Tensor, batch: number): Tensor {
    const dim = this.spec.timeCondProjDim;
    if (dim === null) throw new InvalidArgumentError('UNet2DConditionModel: timestepCond was given but this UNet has no time_cond_proj_dim (time_embedding.cond_proj)');
    if (tc.rank !== 2 || tc.shape[0] !== batch || tc.shape[1] !== dim) throw new ShapeError('UNet2DConditionModel', 'timestepCond', `[${batch}, ${dim}] (time_cond_proj_dim)`, formatShape(tc.shape));
    return tc;
  }

  /** The text_time embedding: add_embedding(concat(text_embeds, time projections of the time ids)), owned by `s`. */
  private addEmbeds(s: TensorScope, input: UNetForwardInput, batch: number, asDtype: (t: Tensor) => Tensor): Tensor {
    const { spec, ctx } = this;
    const addition = spec.addition!;
    const { textEmbeds, timeIds } = input;
    if (!textEmbeds || !timeIds) throw new InvalidArgumentError('UNet2DConditionModel: this UNet (addition_embed_type "text_time") needs textEmbeds and timeIds');
    if (timeIds.length !== batch) throw new InvalidArgumentError(`UNet2DConditionModel: ${timeIds.length} timeIds rows for a batch of ${batch}`);
    const flat = timeIds.flatMap((r) => [...r]);
    const perSample = flat.length / batch;
    const timeProj = s.track(timestepEmbedding(ctx, flat, addition.timeEmbedDim, { flipSinToCos: spec.flipSinToCos, freqShift: spec.freqShift, dtype: this.dtype }));
    const timeEmbeds = s.then(timeProj, (t) => t.reshape([batch, perSample * addition.timeEmbedDim]));
    const te = asDtype(textEmbeds);
    if (te.shape[1] + timeEmbeds.shape[1] !== addition.inputDim) {
      throw new ShapeError('UNet2DConditionModel', 'textEmbeds', `[${batch}, ${addition.inputDim - timeEmbeds.shape[1]}] (projection_class_embeddings_input_dim ${addition.inputDim} − ${perSample}×${addition.timeEmbedDim})`, formatShape(te.shape));
    }
    const addEmbeds = s.then(timeEmbeds, (t) => concatChannels(te, t)); // text first, then time ids
    return s.then(addEmbeds, (e) => this.add_embedding!.forward(e));
  }

  /** forward() with NCHW sample in and NCHW noise prediction out (the layout diffusers uses). */
  forwardNCHW(input: UNetForwardInput): Tensor {
    return withScopeSync((s) => {
      const nhwc = s.track(nchwToNhwc(input.sample));
      const y = s.track(this.forward({ ...input, sample: nhwc }));
      s.drop(nhwc);
      return nhwcToNchw(y); // y is freed once it is recorded
    });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const w of collectLoraWeights(this)) w.dispose();
    for (const t of this.params) t.dispose();
  }
}
