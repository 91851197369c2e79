// Transformer2DModel and BasicTransformerBlock (diffusers models/transformers/transformer_2d.py,
// models/attention.py) in NHWC: [B, H, W, C] is already the token layout [B, H·W, C], so there is no
// permute; each residual add is folded into the epilogue of the linear that produces it.
import { withScopeSync, type Tensor, type WeightStore } from '@ssd/tensor';
import { Attention, FeedForward, GroupNorm, LayerNorm, Linear } from '@ssd/kernels';

export interface Transformer2DConfig {
  channels: number;
  heads: number;
  depth: number;
  crossAttentionDim: number;
  groups: number;
  useLinearProjection: boolean;
}

export class BasicTransformerBlock {
  readonly norm1: LayerNorm;
  readonly attn1: Attention;
  readonly norm2: LayerNorm;
  readonly attn2: Attention;
  readonly norm3: LayerNorm;
  readonly ff: FeedForward;

  constructor(store: WeightStore, prefix: string, dim: number, heads: number, crossAttentionDim: number) {
    const dimHead = dim / heads;
    this.norm1 = new LayerNorm(store, `${prefix}.norm1`, dim, 1e-5);
    this.attn1 = new Attention(store, `${prefix}.attn1`, { queryDim: dim, heads, dimHead });
    this.norm2 = new LayerNorm(store, `${prefix}.norm2`, dim, 1e-5);
    this.attn2 = new Attention(store, `${prefix}.attn2`, { queryDim: dim, heads, dimHead, crossAttentionDim });
    this.norm3 = new LayerNorm(store, `${prefix}.norm3`, dim, 1e-5);
    this.ff = new FeedForward(store, `${prefix}.ff`, dim);
  }

  /** h [B, N, C] → [B, N, C]; does not dispose h. */
  forward(h: Tensor, context: Tensor): Tensor {
    return withScopeSync((s) => {
      const h1 = s.then(s.track(this.norm1.forward(h)), (n) => this.attn1.forward(n, undefined, { residual: h }));
      const h2 = s.then(s.track(this.norm2.forward(h1)), (n) => this.attn2.forward(n, context, { residual: h1 }));
      s.drop(h1);
      return s.keep(s.then(s.track(this.norm3.forward(h2)), (n) => this.ff.forward(n, h2))); // h2 freed on return
    });
  }
}

export class Transformer2DModel {
  readonly norm: GroupNorm;
  readonly proj_in: Linear;
  readonly transformer_blocks: BasicTransformerBlock[];
  readonly proj_out: Linear;

  constructor(store: WeightStore, prefix: string, readonly config: Transformer2DConfig) {
    const { channels: c, heads, depth, crossAttentionDim, groups } = config;
    this.norm = new GroupNorm(store, `${prefix}.norm`, groups, c, 1e-6);
    // use_linear_projection=false stores proj_in/out as 1×1 convs: the same matrix (Linear accepts both)
    this.proj_in = new Linear(store, `${prefix}.proj_in`, c, c);
    this.transformer_blocks = Array.from({ length: depth }, (_, k) => new BasicTransformerBlock(store, `${prefix}.transformer_blocks.${k}`, c, heads, crossAttentionDim));
    this.proj_out = new Linear(store, `${prefix}.proj_out`, c, c);
  }

  /** x [B, H, W, C] → [B, H, W, C] (x + transformer(x)); does not dispose x. */
  forward(x: Tensor, context: Tensor): Tensor {
    const [b, hgt, wid, c] = x.shape;
    return withScopeSync((s) => {
      const tokens = s.track(x.reshape([b, hgt * wid, c])); // a view: frees nothing
      let h = s.then(s.track(this.norm.forward(tokens)), (n) => this.proj_in.forward(n));
      for (const block of this.transformer_blocks) h = s.then(h, (t) => block.forward(t, context));
      const out = s.then(h, (t) => this.proj_out.forward(t, { residual: tokens }));
      return s.keep(s.then(out, (o) => o.reshape([b, hgt, wid, c])));
    });
  }
}
