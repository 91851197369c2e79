// attention: out[b, i, h·D + d] = Σ_j softmax_j(scale · q[b,i,h]·k[b,j,h] [+ causal mask]) · v[b, j, h·D + d]
// Legend: B batch, Nq queries, Nk keys, H heads, D head dim; q/k/v rows are [B, N, rowStride] with a
// head's D channels at channelOffset + h·D (a fused QKV projection [B, N, 3C] is read in place).
// Flash-style: keys stream in blocks through an online softmax (running max m, sum l, rescaled
// accumulator o), so the Nq×Nk scores never exist. The scale, times log2(e), is folded into Q and the
// softmax uses exp2. Masked and out-of-range keys score -1e30 (finite: exp2(-1e30 - m) is 0 and never
// NaN); every row sees key 0 in the first block, so m is a real score after it.
//
// Both variants give each invocation R query rows and a chunk DC = D/P of the head dim; P groups of
// LANES invocations form a workgroup (P > 1 for D > 64: the VAE's D = 512 runs as 8 × 64, partial
// scores summed through workgroup memory) so q and o stay within DC registers per row.
// - portable (attention-wgsl.ts): K and V tiles of KT keys in workgroup memory and loops over them (constant
//   bounds that GPU compilers unroll; uniform bounds on CPU adapters, see AttentionSpec.dynamicLoops).
// - subgroups (attention-subgroup.ts): unrolled register tiles; lane l loads key j0 + l and the
//   others take it with subgroupBroadcast — lavapipe turns every storage or workgroup load into 8
//   scalar loads, so sharing loads through register shuffles is what makes it ~10× faster there.
// Precision: f16 or f32 storage, f32 scores/statistics/accumulators, one rounding at the store.
// Source: Dao et al., FlashAttention (2022), Algorithm 1; Milakov & Gimelshein, online softmax (2018).
import { DeviceLimitError, DTypeError, DTYPE_BYTES, InvalidArgumentError, foldWorkgroups, formatShape, ShapeError, Tensor, type GpuContext } from '@ssd/tensor';
import { subgroupAttentionWgsl } from './attention-subgroup.js';
import { ATTENTION_UNIFORMS, portableWgsl, tileKeys, type AttentionSpec, type AttentionVariant } from './attention-wgsl.js';
import { expectFloat, expectRank } from './validate.js';

export type { AttentionSpec, AttentionVariant };

/** A q/k/v operand: a tensor [B, N, rowStride] holding heads×headDim channels starting at channelOffset (lets a fused QKV projection [B, N, 3C] be read in place: offsets 0, C, 2C). */
export type AttentionOperand = Tensor | { tensor: Tensor; channelOffset: number };

/** Tile specialisation (tests, bench): rows per invocation, lanes per part, parts of D, keys per block. */
export interface AttentionTile {
  readonly rows?: number;
  readonly lanes?: number;
  readonly parts?: number;
  readonly keyBlock?: number;
}

export interface AttentionOptions {
  /** Head h uses channels [h·D, (h+1)·D) of the operand (diffusers/transformers split heads into contiguous chunks). */
  heads: number;
  /** Default: (q channels)/heads for a plain Tensor; required with channelOffset operands. */
  headDim?: number;
  /** Default 1/sqrt(D); folded into Q. */
  scale?: number;
  /** CLIP's causal mask: query i attends to keys j ≤ i. */
  causal?: boolean;
  /** Force a variant (tests, bench); default: chooseAttentionVariant(ctx). */
  force?: AttentionVariant;
  tile?: AttentionTile;
}

/**
 * The variant an adapter gets. CPU drivers (lavapipe, SwiftShader) scalarise every load per SIMD lane,
 * so sharing K/V through subgroupBroadcast pays there (~10× on lavapipe, bench/kernels-dev/attention.ts).
 * GPUs get the workgroup-memory kernel: the subgroup one has not been measured on a GPU.
 */
export function chooseAttentionVariant(ctx: GpuContext): AttentionVariant {
  return ctx.subgroups && ctx.info.isCpu && (ctx.info.subgroupMinSize ?? 0) >= 4 ? 'subgroups' : 'portable';
}

/** Smallest P with D % P == 0 and D/P ≤ 64 (64 channels per invocation keep q and o in registers). */
function defaultParts(D: number): number {
  let p = Math.ceil(D / 64);
  while (D % p) p++;
  return p;
}

/** The spec for one problem on this context. */
export function attentionSpec(ctx: GpuContext, dtype: 'f32' | 'f16', D: number, aligned: (n: number) => boolean, opts: { force?: AttentionVariant; tile?: AttentionTile } = {}): AttentionSpec {
  const variant = opts.force ?? chooseAttentionVariant(ctx);
  const t = opts.tile ?? {};
  const parts = t.parts ?? defaultParts(D);
  if (!Number.isInteger(parts) || parts < 1 || D % parts) throw new RangeError(`attention: tile.parts ${parts} must divide the head dim ${D}`);
  const DC = D / parts;
  const vec = dtype === 'f16' && aligned(8) && DC % 8 === 0 ? 8 : aligned(4) && DC % 4 === 0 ? 4 : 1;
  if (variant === 'subgroups') {
    const lanes = t.lanes ?? ctx.info.subgroupMinSize ?? 8;
    // 4 rows × 64 channels per lane: more rows share each broadcast but spill (bench/kernels-dev/attention.ts)
    const rows = t.rows ?? (DC <= 32 ? 8 : DC <= 64 ? 4 : 2);
    return Object.freeze({ variant, dtype, headDim: D, parts, lanes, rows, keyBlock: lanes, vec, dynamicLoops: true });
  }
  const lanes = t.lanes ?? (ctx.info.isCpu ? 8 : Math.max(8, 64 / parts));
  const rows = t.rows ?? 1;
  const spec: AttentionSpec = Object.freeze({ variant, dtype, headDim: D, parts, lanes, rows, keyBlock: t.keyBlock ?? 32, vec, dynamicLoops: ctx.info.isCpu });
  // K and V tiles plus the partial scores stay within 16 KiB (WebGPU's default workgroup storage)
  return Object.freeze({ ...spec, keyBlock: tileKeys(spec) });
}

function operand(x: AttentionOperand): { t: Tensor; off: number; explicit: boolean } {
  return x instanceof Tensor ? { t: x, off: 0, explicit: false } : { t: x.tensor, off: x.channelOffset, explicit: true };
}

/** softmax(Q·Kᵀ·scale [+ causal mask])·V per head, flash-style (online softmax), never materialising the Nq×Nk scores. q [B, Nq, ·], k/v [B, Nk, ·] → out [B, Nq, heads·D] (dtype of q). */
export function attention(q: AttentionOperand, k: AttentionOperand, v: AttentionOperand, opts: AttentionOptions): Tensor {
  const op = 'attention';
  const Q = operand(q);
  const K = operand(k);
  const V = operand(v);
  const legend = '[B, N, channels]';
  expectRank(op, 'q', Q.t, 3, legend);
  expectRank(op, 'k', K.t, 3, legend);
  expectRank(op, 'v', V.t, 3, legend);
  expectFloat(op, 'q', Q.t);
  for (const [name, x] of [['k', K], ['v', V]] as const) {
    if (x.t.dtype !== Q.t.dtype) throw new DTypeError(op, name, `${Q.t.dtype} (the dtype of q)`, x.t.dtype);
  }
  const H = opts.heads;
  if (!Number.isInteger(H) || H < 1) throw new InvalidArgumentError(`${op}: heads must be a positive integer, got ${H}`);
  let D = opts.headDim;
  if (D === undefined) {
    if (Q.explicit) throw new InvalidArgumentError(`${op}: headDim must be given with channelOffset operands`);
    D = Q.t.shape[2] / H;
  }
  if (!Number.isInteger(D) || D < 1) throw new InvalidArgumentError(`${op}: headDim must be a positive integer, got ${D} (q channels ${Q.t.shape[2]} / heads ${H}; pass headDim)`);
  const [B, Nq] = Q.t.shape;
  const Nk = K.t.shape[1];
  if (K.t.shape[0] !== B) throw new ShapeError(op, 'k', `[${B}, Nk, channels] (batch of q)`, formatShape(K.t.shape));
  if (formatShape(V.t.shape.slice(0, 2)) !== formatShape(K.t.shape.slice(0, 2))) throw new ShapeError(op, 'v', `[${B}, ${Nk}, channels] (batch and keys of k)`, formatShape(V.t.shape));
  if (Nk < 1) throw new ShapeError(op, 'k', '[B, Nk ≥ 1, channels]', formatShape(K.t.shape));
  for (const [name, x] of [['q', Q], ['k', K], ['v', V]] as const) {
    if (!Number.isInteger(x.off) || x.off < 0 || x.off + H * D > x.t.shape[2]) {
      throw new ShapeError(op, name, `[B, N, ≥ channelOffset ${x.off} + heads ${H} × headDim ${D}]`, formatShape(x.t.shape));
    }
  }
  const ctx = Q.t.ctx;
  const dtype = Q.t.dtype as 'f32' | 'f16';
  const out = ctx.empty([B, Nq, H * D], dtype, op);
  if (out.size === 0) return out;
  // Q, K and V are read in load units of `vec` elements: every row start and head offset must align
  const aligned = (n: number) => [Q, K, V].every((x) => x.t.shape[2] % n === 0 && x.off % n === 0) && D % n === 0;
  const spec = attentionSpec(ctx, dtype, D, aligned, opts);
  const limit = ctx.limits.maxStorageBufferBindingSize;
  for (const [name, t] of [['q', Q.t], ['k', K.t], ['v', V.t], ['out', out]] as const) {
    const bytes = t.size * DTYPE_BYTES[t.dtype];
    if (bytes > limit) {
      out.dispose();
      throw new DeviceLimitError('maxStorageBufferBindingSize', bytes, limit, `${op}: ${name} ${formatShape(t.shape)} ${t.dtype} (split the batch or the queries)`);
    }
  }
  const tiles = Math.ceil(Nq / (spec.rows * spec.lanes));
  const groups = B * H * tiles;
  const wgsl = spec.variant === 'subgroups' ? subgroupAttentionWgsl : portableWgsl;
  const label = `attention.${spec.variant}`;
  ctx.dispatch({
    pipeline: ctx.kernel(label, spec, wgsl),
    bindings: [Q.t, K.t, V.t, out],
    uniforms: {
      layout: ATTENTION_UNIFORMS,
      values: {
        nq: Nq, nk: Nk, heads: H, tiles, groups,
        q_stride: Q.t.shape[2], k_stride: K.t.shape[2], v_stride: V.t.shape[2],
        q_off: Q.off, k_off: K.off, v_off: V.off,
        scale: (opts.scale ?? 1 / Math.sqrt(D)) * Math.LOG2E,
        causal: opts.causal ? 1 : 0,
        dc: D / spec.parts,
        kt: tileKeys(spec),
        parts: spec.parts,
      },
    },
    workgroups: foldWorkgroups(groups, ctx.limits.maxComputeWorkgroupsPerDimension),
    label,
  });
  return out;
}
