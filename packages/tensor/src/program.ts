// How a kernel is described, compiled and cached: the WGSL prologue every kernel starts with, the
// uniform struct generated from one field list (WGSL declaration and packed bytes cannot drift apart),
// and the cache key derived mechanically from a kernel's whole spec.
//
// The pattern every kernel follows (see packages/tensor/src/ops/add.ts for the smallest example):
//   1. a frozen `Spec` holding everything that changes the WGSL (dtype, epilogue, tile sizes, path);
//   2. `wgsl(spec)`: prologue(spec-derived options) + a body written against `S` (storage scalar)
//      and `A` (f32 accumulator), with bindings @group(0) @binding(1..n) in argument order;
//   3. the op: validate shapes/dtypes, `ctx.kernel(name, spec, wgsl)`, allocate the output,
//      `ctx.dispatch(...)` with the uniform values, return the Tensor — never submit, never read back.

import type { DType } from './dtype.js';

export type UniformType = 'u32' | 'i32' | 'f32';
/** Ordered uniform fields: [name, type]. All are 4-byte scalars, packed in order. */
export type UniformLayout = readonly (readonly [string, UniformType])[];

export interface PrologueOptions {
  /** Storage scalar type `S` (and `S2`, `S4`). */
  dtype?: DType;
  uniforms?: UniformLayout;
  /** Compile-time constants emitted as `const NAME = value;` (u32 for integers ≥ 0 unless typed). */
  consts?: Record<string, number | boolean | { value: number; type: 'u32' | 'i32' | 'f32' }>;
  /** Emit `enable subgroups;`. */
  subgroups?: boolean;
  /** Emit `enable f16;` even if S is f32 (a kernel that reads one f16 tensor and writes f32). */
  f16?: boolean;
}

/** The start of every kernel's WGSL: enables, scalar aliases, constants, uniforms, helpers. */
export function prologue(o: PrologueOptions): string {
  const dtype = o.dtype ?? 'f32';
  const lines: string[] = [];
  if (dtype === 'f16' || o.f16) lines.push('enable f16;');
  if (o.subgroups) lines.push('enable subgroups;');
  const s = dtype === 'f16' ? 'f16' : dtype === 'i32' ? 'i32' : dtype === 'u32' ? 'u32' : 'f32';
  lines.push(`alias S = ${s};`, `alias S2 = vec2<${s}>;`, `alias S4 = vec4<${s}>;`);
  lines.push('alias A = f32;', 'alias A2 = vec2<f32>;', 'alias A4 = vec4<f32>;');
  for (const [name, v] of Object.entries(o.consts ?? {})) {
    if (typeof v === 'boolean') lines.push(`const ${name} = ${v};`);
    else if (typeof v === 'number') {
      if (!Number.isInteger(v) || v < 0) throw new Error(`prologue: const ${name}=${v} needs an explicit type`);
      lines.push(`const ${name}: u32 = ${v}u;`);
    } else lines.push(`const ${name}: ${v.type} = ${literal(v.value, v.type)};`);
  }
  if (o.uniforms && o.uniforms.length) {
    lines.push(`struct Uniforms {\n${o.uniforms.map(([n, t]) => `  ${n}: ${t},`).join('\n')}\n}`);
    lines.push('@group(0) @binding(0) var<uniform> u: Uniforms;');
  }
  // A dispatch larger than maxComputeWorkgroupsPerDimension is folded into y (and z); kernels recover
  // the linear workgroup index with this.
  lines.push(
    'fn linear_workgroup(wid: vec3<u32>, nwg: vec3<u32>) -> u32 { return wid.x + (wid.y + wid.z * nwg.y) * nwg.x; }',
  );
  return lines.join('\n') + '\n';
}

function literal(v: number, t: 'u32' | 'i32' | 'f32'): string {
  if (t === 'u32') return `${v >>> 0}u`;
  if (t === 'i32') return `${v | 0}i`;
  if (!Number.isFinite(v)) throw new Error(`prologue: non-finite f32 constant ${v}`);
  const s = v.toPrecision(9);
  return s.includes('e') || s.includes('.') ? s : s + '.0';
}

/** Packs uniform values in layout order. Missing or non-finite values are errors. */
export function packUniforms(layout: UniformLayout, values: Record<string, number>, label: string): ArrayBuffer {
  const buf = new ArrayBuffer(Math.max(16, Math.ceil((layout.length * 4) / 16) * 16));
  const dv = new DataView(buf);
  layout.forEach(([name, type], i) => {
    const v = values[name];
    if (v === undefined || !Number.isFinite(v)) throw new Error(`${label}: uniform ${name} = ${v}`);
    if (type === 'u32') {
      if (v < 0 || v > 0xffffffff || !Number.isInteger(v)) throw new RangeError(`${label}: uniform ${name} = ${v} is not a u32`);
      dv.setUint32(i * 4, v, true);
    } else if (type === 'i32') {
      if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) throw new RangeError(`${label}: uniform ${name} = ${v} is not an i32`);
      dv.setInt32(i * 4, v, true);
    } else dv.setFloat32(i * 4, v, true);
  });
  return buf;
}

/** A cache key derived from all of a spec's fields (sorted), so no field can be forgotten. */
export function specKey(name: string, spec: object): string {
  return `${name}${stableStringify(spec)}`;
}

function stableStringify(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'undefined';
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`;
  const entries = Object.entries(v as Record<string, unknown>)
    .filter(([, x]) => x !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, x]) => `${k}:${stableStringify(x)}`).join(',')}}`;
}

/** Splits a 1-D workgroup count over x and y so neither exceeds `maxPerDim`. */
export function foldWorkgroups(count: number, maxPerDim: number): [number, number, number] {
  if (count <= maxPerDim) return [Math.max(1, count), 1, 1];
  const y = Math.ceil(count / maxPerDim);
  if (y > maxPerDim) throw new RangeError(`dispatch of ${count} workgroups exceeds ${maxPerDim}² workgroups`);
  return [Math.ceil(count / y), y, 1];
}
