// Low-rank adapters (LoRA) on one GEMM weight: a Linear [N, K], a conv's OHWI [N, kh, kw, C] or its
// Winograd transform [T, N, C] (a 3×3 layer loaded for conv2dWinograd: adapters stay OHWI, the side
// path is a direct conv, and merged copies are transformed on the GPU), or a
// stacked projection (q/k/v as one [3·inner, C]) whose row ranges are separate diffusers modules.
// y = act(x·Wᵀ + b + Σᵢ cᵢ·(x·Aᵢᵀ)·Bᵢᵀ) + residual — for a conv, Aᵢ is a conv with the layer's
// kernel, stride and padding and Bᵢ a 1×1 conv (diffusers models/lora.py LoRACompatibleConv). The base
// tensor is never written, so removing the adapters (or unfusing) restores the base bit for bit. A
// quantized base has no float copy to merge into: its adapters always run on the side (fuse freezes them).
import { formatShape, ShapeError, type DType, type GpuContext, type QuantizedWeight, type Tensor } from '@ssd/tensor';
import { conv2d, type Conv2dOptions } from '../conv2d.js';
import { conv2dWinograd } from '../conv2d-winograd.js';
import { activate, add, scale } from '../elementwise.js';
import { nchwToNhwc } from '../layout.js';
import { linear, matmul, type MatmulOptions } from '../matmul.js';
import { isQuantizedWeight } from '../quantized-gemm.js';
import { expectDtype } from '../validate.js';
import { winogradWeightTransform } from '../winograd-weight-gpu.js';
import type { WinogradTile } from '../winograd-weights.js';

export type LoraKind = 'linear' | 'conv2d';

/**
 * How live (unfused) adapters run. `side`: two small GEMMs per adapter and forward, chained through
 * the residual epilogue. `merged`: W' = W + Σ cᵢ·Bᵢ·Aᵢ kept in a copy (rebuilt when an adapter or
 * coefficient changes); the forward is then the plain GEMM.
 */
export type LoraMode = 'side' | 'merged';

/** One diffusers module inside the weight: rows [rowOffset, rowOffset + rows) of the output. */
export interface LoraPart {
  readonly path: string;
  readonly rowOffset: number;
  readonly rows: number;
}

/**
 * One adapter on the whole weight. down: [R, K] (linear) or OHWI [R, kh, kw, C] (conv2d); up: [N, R]
 * over every output row (rows of parts the adapter does not patch are zero). Per-module alpha/r is
 * folded into the data by the loader; the per-call coefficient is separate (setCoefficient).
 */
export interface LowRankPair {
  readonly down: Tensor;
  readonly up: Tensor;
}

type Term = readonly [name: string, pair: LowRankPair, c: number];

export class LoraWeight {
  /**
   * The mode of every layer without its own `mode`. `side`, by measurement (kernels README): +19–30% per
   * forward on lavapipe at rank 4–64, where merged copies cost +0% but hold every patched weight twice.
   */
  static defaultMode: LoraMode = 'side';
  /** This layer's mode (undefined: LoraWeight.defaultMode). */
  mode: LoraMode | undefined;
  private readonly pairs = new Map<string, LowRankPair>();
  private readonly coefficients = new Map<string, number>();
  private readonly scaledDowns = new Map<string, { c: number; t: Tensor }>();
  private merged: { key: string; t: Tensor } | null = null;
  private fusedCopy: { key: string; t: Tensor; names: ReadonlySet<string> } | null = null;
  /** fuse() on a quantized base: the adapters frozen at their coefficients (c·A owned when c ≠ 1). */
  private fusedSide: { names: ReadonlySet<string>; terms: (LowRankPair & { owned: boolean })[] } | null = null;
  private readonly layerDtype: DType;

  constructor(
    /** The layer's weight as loaded (a conv's QuantizedWeight keeps the file's OIHW shape); never written. */
    readonly base: Tensor | QuantizedWeight,
    readonly kind: LoraKind,
    readonly parts: readonly LoraPart[],
    /** A conv2d base in conv2dWinograd's layout [T, N, C] (its output tile), else null. */
    readonly winograd: WinogradTile | null = null,
    /** The layer's compute dtype, which adapters must have: a quantized base's (a float base's is its dtype). */
    dtype: DType = 'f32',
  ) {
    this.layerDtype = isQuantizedWeight(base) ? dtype : base.dtype;
    const n = this.outFeatures;
    if (parts.some((p) => p.rowOffset < 0 || p.rows < 1 || p.rowOffset + p.rows > n)) {
      throw new ShapeError('LoraWeight', 'parts', `row ranges inside [0, ${n})`, JSON.stringify(parts));
    }
  }

  /** N: output rows of the GEMM (every part). */
  get outFeatures(): number {
    return this.base.shape[this.winograd ? 1 : 0];
  }

  /** Input features (conv2d: input channels). */
  get inFeatures(): number {
    return this.kind === 'linear' ? this.reduceSize : this.base.shape[this.winograd ? 2 : isQuantizedWeight(this.base) ? 1 : 3];
  }

  /** The conv's kernel size (1 for linear layers). */
  get kernelSize(): number {
    return this.kind === 'linear' ? 1 : this.winograd ? 3 : this.base.shape[isQuantizedWeight(this.base) ? 2 : 1];
  }

  /** K of the direct GEMM: in features (linear) or kh·kw·Cin (conv2d, also for a Winograd base). */
  get reduceSize(): number {
    return this.kind === 'linear' ? this.base.shape.reduce((a, d) => a * d, 1) / this.base.shape[0] : this.kernelSize ** 2 * this.inFeatures;
  }

  /** The dtype adapters must have (the layer's activations). */
  get dtype(): DType {
    return this.layerDtype;
  }

  get ctx(): GpuContext {
    return isQuantizedWeight(this.base) ? this.base.data.ctx : this.base.ctx;
  }

  /** The shape of a rank-R adapter's down projection: [R, K] (linear) or OHWI [R, k, k, Cin] (conv2d). */
  downShape(R: number): number[] {
    return this.kind === 'linear' ? [R, this.reduceSize] : [R, this.kernelSize, this.kernelSize, this.inFeatures];
  }

  /** Names of the adapters this layer holds (live or fused), in the order they were set. */
  get adapterNames(): string[] {
    return [...this.pairs.keys()];
  }

  /** Whether a fused copy is in use (fuse() without unfuse()). */
  get isFused(): boolean {
    return this.fusedCopy !== null || this.fusedSide !== null;
  }

  /** GPU bytes this layer holds beyond its base weight (adapters, scaled copies, merged/fused copies). */
  get extraBytes(): number {
    let b = 0;
    for (const p of this.pairs.values()) b += p.down.byteSize + p.up.byteSize;
    for (const s of this.scaledDowns.values()) b += s.t.byteSize;
    if (this.merged) b += this.merged.t.byteSize;
    if (this.fusedCopy) b += this.fusedCopy.t.byteSize;
    for (const t of this.fusedSide?.terms ?? []) if (t.owned) b += t.down.byteSize;
    return b;
  }

  /** Adds (or replaces) an adapter; the layer owns the tensors from now on. Its coefficient starts at 0. */
  setAdapter(name: string, pair: LowRankPair): void {
    const op = `LoraWeight(${this.parts.map((p) => p.path).join(', ')})`;
    const { down, up } = pair;
    expectDtype(op, 'down', down, this.dtype);
    expectDtype(op, 'up', up, this.dtype);
    const R = down.shape[0];
    const downShape = this.downShape(R);
    if (R < 1 || formatShape(down.shape) !== formatShape(downShape)) {
      throw new ShapeError(op, `adapter "${name}" down`, this.kind === 'linear' ? `[R, ${this.reduceSize}]` : `[R, ${downShape.slice(1).join(', ')}] (OHWI)`, formatShape(down.shape));
    }
    if (formatShape(up.shape) !== formatShape([this.outFeatures, R])) {
      throw new ShapeError(op, `adapter "${name}" up`, formatShape([this.outFeatures, R]), formatShape(up.shape));
    }
    if (this.pairs.has(name)) this.deleteAdapter(name);
    this.pairs.set(name, pair);
    this.coefficients.set(name, 0);
  }

  /** Removes an adapter and frees its tensors; a fused copy that includes it is dropped (unfused). */
  deleteAdapter(name: string): void {
    const p = this.pairs.get(name);
    if (!p) return;
    if (this.fusedCopy?.names.has(name) || this.fusedSide?.names.has(name)) this.unfuse();
    this.pairs.delete(name);
    this.coefficients.delete(name);
    this.dropScaled(name);
    this.dropMerged();
    p.down.dispose();
    p.up.dispose();
  }

  /** cᵢ of one adapter (0 turns it off). Has no effect on an adapter inside the fused copy until unfuse(). */
  setCoefficient(name: string, c: number): void {
    if (!this.pairs.has(name)) return;
    if (!Number.isFinite(c)) throw new ShapeError('LoraWeight', `coefficient of "${name}"`, 'a finite number', String(c));
    this.coefficients.set(name, c);
  }

  coefficient(name: string): number {
    return this.coefficients.get(name) ?? 0;
  }

  /** Merges every live adapter at its current coefficient into a fused copy that the forward uses. */
  fuse(): void {
    const live = this.liveTerms();
    if (!live.length) return;
    if (isQuantizedWeight(this.base)) {
      const terms = live.map(([, p, c]) => ({ down: c === 1 ? p.down : scale(p.down, c), up: p.up, owned: c !== 1 }));
      this.fusedSide = { names: new Set([...(this.fusedSide?.names ?? []), ...live.map((l) => l[0])]), terms: [...(this.fusedSide?.terms ?? []), ...terms] };
      return;
    }
    const base = this.fusedCopy?.t ?? this.base;
    const key = this.keyOf(live);
    let t: Tensor;
    if (this.merged?.key === key) {
      t = this.merged.t; // the live merged copy is exactly what fusing would compute
      this.merged = null;
    } else t = this.merge(base, live);
    const names = new Set([...(this.fusedCopy?.names ?? []), ...live.map((l) => l[0])]);
    this.fusedCopy?.t.dispose();
    this.fusedCopy = { key, t, names };
    this.dropMerged();
  }

  /** Drops the fused copy: the forward is the base weight (plus live adapters) again, bit for bit. */
  unfuse(): void {
    this.fusedCopy?.t.dispose();
    this.fusedCopy = null;
    for (const t of this.fusedSide?.terms ?? []) if (t.owned) t.down.dispose();
    this.fusedSide = null;
    this.dropMerged();
  }

  /** Frees every adapter and copy (never the base weight). */
  dispose(): void {
    this.unfuse();
    for (const name of [...this.pairs.keys()]) this.deleteAdapter(name);
  }

  /** linear with the adapters: y = act(x·W'ᵀ + bias) + residual. */
  linear(x: Tensor, opts: Pick<MatmulOptions, 'bias' | 'activation' | 'residual'> = {}): Tensor {
    const { weight, side } = this.current();
    if (!side.length) return linear(x, weight, opts);
    const act = opts.activation ?? 'none';
    let y = linear(x, weight, { bias: opts.bias, residual: act === 'none' ? opts.residual : undefined });
    for (const s of side) y = this.addLowRank(y, linear(x, s.down), s.up);
    return this.finish(y, act, opts.residual);
  }

  /** conv2d with the adapters: the down projection is a conv with the same stride, padding and upsampling. */
  conv2d(x: Tensor, opts: Conv2dOptions = {}): Tensor {
    const { weight, side } = this.current();
    const base = (o: Conv2dOptions) => (this.winograd && !isQuantizedWeight(weight) ? conv2dWinograd(x, weight, o) : conv2d(x, weight, o));
    if (!side.length) return base(opts);
    const act = opts.activation ?? 'none';
    let y = base({ ...opts, activation: undefined, residual: act === 'none' ? opts.residual : undefined });
    const geometry: Conv2dOptions = { stride: opts.stride, padding: opts.padding, upsample: opts.upsample, force: opts.force };
    for (const s of side) y = this.addLowRank(y, conv2d(x, s.down, geometry), s.up);
    return this.finish(y, act, opts.residual);
  }

  /** y + h·upᵀ (the up projection's residual epilogue does the add); frees y and h. */
  private addLowRank(y: Tensor, h: Tensor, up: Tensor): Tensor {
    const next = linear(h, up, { residual: y });
    h.dispose();
    y.dispose();
    return next;
  }

  /** The activation and the residual the GEMM epilogue could not apply (they come after the low-rank sum). */
  private finish(y: Tensor, act: MatmulOptions['activation'], residual: Tensor | undefined): Tensor {
    if (!act || act === 'none') return y;
    const a = activate(y, act);
    y.dispose();
    if (!residual) return a;
    const r = add(a, residual);
    a.dispose();
    return r;
  }

  /** The weight the GEMM reads now, and the adapters still to add on the side. */
  private current(): { weight: Tensor | QuantizedWeight; side: LowRankPair[] } {
    const base = this.fusedCopy?.t ?? this.base;
    const live = this.liveTerms();
    const frozen = this.fusedSide?.terms ?? [];
    if (!live.length) {
      this.dropMerged(); // every adapter off: no copy is worth its memory
      return { weight: base, side: frozen };
    }
    if ((this.mode ?? LoraWeight.defaultMode) === 'merged' && !isQuantizedWeight(base)) {
      const key = this.keyOf(live);
      if (this.merged?.key !== key) {
        this.dropMerged();
        this.merged = { key, t: this.merge(base, live) };
      }
      return { weight: this.merged.t, side: [] };
    }
    this.dropMerged();
    return { weight: base, side: [...frozen, ...live.map(([name, p, c]) => ({ down: this.scaledDown(name, p, c), up: p.up }))] };
  }

  /** Adapters with a non-zero coefficient that are not inside the fused copy. */
  private liveTerms(): Term[] {
    const out: Term[] = [];
    for (const [name, p] of this.pairs) {
      const c = this.coefficients.get(name) ?? 0;
      if (c !== 0 && !this.fusedCopy?.names.has(name) && !this.fusedSide?.names.has(name)) out.push([name, p, c]);
    }
    return out;
  }

  private keyOf(live: readonly Term[]): string {
    return `${this.fusedCopy?.key ?? ''}|${live.map(([n, , c]) => `${n}:${c}`).join(',')}`;
  }

  /** c·A, cached while c holds (c = 1 uses A itself). */
  private scaledDown(name: string, p: LowRankPair, c: number): Tensor {
    if (c === 1) {
      this.dropScaled(name);
      return p.down;
    }
    const hit = this.scaledDowns.get(name);
    if (hit?.c === c) return hit.t;
    this.dropScaled(name);
    const t = scale(p.down, c);
    this.scaledDowns.set(name, { c, t });
    return t;
  }

  /**
   * base + Σ cᵢ·Bᵢ·Aᵢ on the GPU: one GEMM per adapter, Bᵢ [N, R] times (cᵢ·Aᵢ)ᵀ [K, R], with the running
   * sum as the residual — f32 accumulation, one rounding to the layer dtype per adapter.
   */
  private merge(base: Tensor, live: readonly Term[]): Tensor {
    const N = this.outFeatures;
    const K = this.reduceSize;
    if (this.winograd) {
      // the sum of the deltas in the direct layout, then U + G·Δ·Gᵀ in one pass
      const delta = this.mergeDeltas(null, live);
      const d4 = delta.reshape([N, 3, 3, this.inFeatures]);
      delta.dispose();
      const out = winogradWeightTransform(d4, this.winograd, { residual: base });
      d4.dispose();
      return out;
    }
    const acc = this.mergeDeltas(base, live);
    const out = acc.reshape(base.shape);
    acc.dispose();
    return out;
  }

  /** (base +) Σ cᵢ·Bᵢ·Aᵢ as [N, K]: each adapter's GEMM adds to the running sum in its epilogue. */
  private mergeDeltas(base: Tensor | null, live: readonly Term[]): Tensor {
    const N = this.outFeatures;
    const K = this.reduceSize;
    let acc: Tensor | null = base ? base.reshape([N, K]) : null;
    for (const [, p, c] of live) {
      const R = p.down.shape[0];
      const flat = p.down.reshape([1, R, 1, K]);
      const t4 = nchwToNhwc(flat); // [1, 1, K, R] = Aᵀ
      flat.dispose();
      const aT = t4.reshape([K, R]);
      t4.dispose();
      const scaled = c === 1 ? aT : scale(aT, c);
      if (scaled !== aT) aT.dispose();
      const next = matmul(p.up, scaled, { residual: acc ?? undefined });
      scaled.dispose();
      acc?.dispose();
      acc = next;
    }
    return acc!;
  }

  private dropScaled(name: string): void {
    this.scaledDowns.get(name)?.t.dispose();
    this.scaledDowns.delete(name);
  }

  private dropMerged(): void {
    this.merged?.t.dispose();
    this.merged = null;
  }
}
