// Addressing a model's LoRA-adaptable layers by diffusers module path
// ("down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q" → that projection). The walk follows
// the module tree generically — every LoraWeight reachable through fields and arrays — and names each
// part by the checkpoint key prefix it was loaded from, so it holds however the fields are named.
import { GpuContext, Tensor, WeightStore } from '@ssd/tensor';
import { LoraWeight, type LoraKind, type LoraPart } from './lora-weight.js';

/** One diffusers module a LoRA can patch: a part (row range) of a LoraWeight. */
export interface LoraTarget {
  readonly path: string;
  readonly kind: LoraKind;
  readonly weight: LoraWeight;
  readonly part: LoraPart;
  /** Input features (conv2d: input channels). */
  readonly inFeatures: number;
  /** Output features of this module (its rows of the weight). */
  readonly outFeatures: number;
  /** 1 for linear layers. */
  readonly kernelSize: number;
}

/** Every LoraWeight reachable from `root` through object fields and arrays, in field order. */
export function collectLoraWeights(root: object): LoraWeight[] {
  const out: LoraWeight[] = [];
  const seen = new Set<object>();
  const visit = (v: unknown, depth: number): void => {
    if (v === null || typeof v !== 'object' || depth > 32 || seen.has(v)) return;
    seen.add(v);
    if (v instanceof LoraWeight) {
      out.push(v);
      return;
    }
    if (v instanceof Tensor || v instanceof GpuContext || v instanceof WeightStore || ArrayBuffer.isView(v) || v instanceof Map || v instanceof Set || v instanceof Promise) return;
    for (const child of Array.isArray(v) ? v : Object.values(v)) visit(child, depth + 1);
  };
  visit(root, 0);
  return out;
}

/** path → target for every part of every LoraWeight under `root` (only one kind when given). */
export function namedLoraTargets(root: object, kind?: LoraKind): Map<string, LoraTarget> {
  const map = new Map<string, LoraTarget>();
  for (const w of collectLoraWeights(root)) {
    if (kind && w.kind !== kind) continue;
    const { kernelSize, inFeatures } = w;
    for (const part of w.parts) {
      if (map.has(part.path)) throw new Error(`namedLoraTargets: two layers claim the module path "${part.path}" (a model-building bug)`);
      map.set(part.path, { path: part.path, kind: w.kind, weight: w, part, inFeatures, outFeatures: part.rows, kernelSize });
    }
  }
  return map;
}
