// diffusers Attention (attention_processor.py, AttnProcessor2_0): to_q, to_k, to_v, to_out.0 with
// heads split into contiguous chunks of dimHead, scale 1/√dimHead. Self-attention loads q/k/v as
// one stacked [3·inner, C] projection (one matmul, read in place by the attention kernel); cross-
// attention stacks k/v. Legacy names (query/key/value/proj_attn) and 1×1-conv shapes are accepted.
// Each projection is a LoraWeight whose parts are the diffusers modules (to_q, to_k, to_v, to_out.0);
// quantized projections stay quantized (stacked parts of one format stack as their blocks).
import { withScopeSync, type QuantizedWeight, type Tensor, type WeightStore } from '@ssd/tensor';
import { attention } from '../attention.js';
import { LoraWeight } from './lora-weight.js';

export interface AttentionConfig {
  queryDim: number;
  /** Width of the context for cross-attention; omitted for self-attention. */
  crossAttentionDim?: number;
  heads: number;
  dimHead: number;
  /** Bias on to_q/to_k/to_v (false in the UNet, true in the VAE). */
  bias?: boolean;
  outBias?: boolean;
}

const NEW_NAMES = { q: 'to_q', k: 'to_k', v: 'to_v', out: 'to_out.0' };
const LEGACY_NAMES = { q: 'query', k: 'key', v: 'value', out: 'proj_attn' };

export class Attention {
  readonly inner: number;
  readonly isCross: boolean;
  /** Self: [3·inner, C] (q, k, v); cross: q [inner, C] and kv [2·inner, Cctx]. */
  readonly qkvWeight: Tensor | QuantizedWeight | null = null;
  readonly qkvBias: Tensor | null = null;
  readonly qWeight: Tensor | QuantizedWeight | null = null;
  readonly qBias: Tensor | null = null;
  readonly kvWeight: Tensor | QuantizedWeight | null = null;
  readonly kvBias: Tensor | null = null;
  readonly outWeight: Tensor | QuantizedWeight;
  readonly outBias: Tensor | null;
  /** The projections as LoRA-adaptable weights: qkv (self) or q and kv (cross), and out. */
  readonly qkvProj: LoraWeight | null = null;
  readonly qProj: LoraWeight | null = null;
  readonly kvProj: LoraWeight | null = null;
  readonly outProj: LoraWeight;

  constructor(
    store: WeightStore,
    readonly prefix: string,
    readonly config: AttentionConfig,
  ) {
    const { queryDim, heads, dimHead } = config;
    this.inner = heads * dimHead;
    this.isCross = config.crossAttentionDim !== undefined;
    const names = store.has(`${prefix}.${NEW_NAMES.q}.weight`) || !store.has(`${prefix}.${LEGACY_NAMES.q}.weight`) ? NEW_NAMES : LEGACY_NAMES;
    const key = (n: keyof typeof NEW_NAMES, p: 'weight' | 'bias') => `${prefix}.${names[n]}.${p}`;
    const conv1x1 = (s: number[]) => [[...s, 1, 1]];
    const part = (n: keyof typeof NEW_NAMES, i: number) => ({ path: `${prefix}.${names[n]}`, rowOffset: i * this.inner, rows: this.inner });
    if (!this.isCross) {
      const w = [this.inner, queryDim];
      this.qkvWeight = store.takeStacked([key('q', 'weight'), key('k', 'weight'), key('v', 'weight')], [w, w, w], { alternateShapes: conv1x1(w), allowQuantized: true });
      if (config.bias) this.qkvBias = store.takeStacked([key('q', 'bias'), key('k', 'bias'), key('v', 'bias')], [[this.inner], [this.inner], [this.inner]]);
      this.qkvProj = new LoraWeight(this.qkvWeight, 'linear', [part('q', 0), part('k', 1), part('v', 2)], null, store.dtype);
    } else {
      const ctxDim = config.crossAttentionDim!;
      this.qWeight = store.take(key('q', 'weight'), [this.inner, queryDim], { alternateShapes: conv1x1([this.inner, queryDim]), allowQuantized: true });
      const kv = [this.inner, ctxDim];
      this.kvWeight = store.takeStacked([key('k', 'weight'), key('v', 'weight')], [kv, kv], { alternateShapes: conv1x1(kv), allowQuantized: true });
      if (config.bias) {
        this.qBias = store.take(key('q', 'bias'), [this.inner]);
        this.kvBias = store.takeStacked([key('k', 'bias'), key('v', 'bias')], [[this.inner], [this.inner]]);
      }
      this.qProj = new LoraWeight(this.qWeight, 'linear', [part('q', 0)], null, store.dtype);
      this.kvProj = new LoraWeight(this.kvWeight, 'linear', [part('k', 0), part('v', 1)], null, store.dtype);
    }
    this.outWeight = store.take(key('out', 'weight'), [queryDim, this.inner], { alternateShapes: conv1x1([queryDim, this.inner]), allowQuantized: true });
    this.outBias = config.outBias === false ? null : store.take(key('out', 'bias'), [queryDim]);
    this.outProj = new LoraWeight(this.outWeight, 'linear', [{ path: `${prefix}.${names.out}`, rowOffset: 0, rows: queryDim }], null, store.dtype);
  }

  /** x [B, N, C] (and context [B, M, Cctx] for cross-attention) → [B, N, C] (+ residual). */
  forward(x: Tensor, context?: Tensor, opts: { residual?: Tensor } = {}): Tensor {
    const { heads, dimHead } = this.config;
    const inner = this.inner;
    if (this.isCross && !context) throw new Error(`${this.prefix}: cross-attention needs a context`);
    return withScopeSync((s) => {
      let h: Tensor;
      if (!this.isCross) {
        const qkv = s.track(this.qkvProj!.linear(x, { bias: this.qkvBias ?? undefined }));
        h = s.then(qkv, (t) =>
          attention({ tensor: t, channelOffset: 0 }, { tensor: t, channelOffset: inner }, { tensor: t, channelOffset: 2 * inner }, { heads, headDim: dimHead }),
        );
      } else {
        const q = s.track(this.qProj!.linear(x, { bias: this.qBias ?? undefined }));
        const kv = s.track(this.kvProj!.linear(context!, { bias: this.kvBias ?? undefined }));
        h = s.track(attention(q, { tensor: kv, channelOffset: 0 }, { tensor: kv, channelOffset: inner }, { heads, headDim: dimHead }));
        s.drop(q, kv);
      }
      return this.outProj.linear(h, { bias: this.outBias ?? undefined, residual: opts.residual }); // h is freed once it is recorded
    });
  }
}
