// Elementwise ops: unary maps (SiLU, GELU erf/tanh, scale), add and mul with NumPy broadcasting up
// to rank 6, and GEGLU. f16 or f32 storage, f32 math; output dtype = input dtype.
//
// Flat ops (unary, same-shape or scalar-broadcast binary) run through windows.ts: vec4 when the
// element count allows, FLAT_PER vectors per invocation, split into windows when a tensor is larger
// than maxStorageBufferBindingSize. Broadcasting binary ops first collapse the shapes (adjacent axes
// that broadcast the same way merge, size-1 output axes drop), so [2,5,7,3] + [2,1,1,3] runs as
// [2, 35, 3] with b strides [3, 0, 1]; each invocation decodes its output index with one div/mod
// per collapsed axis. They vectorise along the innermost axis when it is a multiple of 4 (an
// operand broadcast along it is read as a splatted scalar).
import { formatShape, prologue, ShapeError, type DType, type Tensor, type UniformLayout } from '@ssd/tensor';
import { activationWgsl, type Activation } from './shader.js';
import { expectDtype, expectFloat } from './validate.js';
import { dispatchFlat, FLAT_MAIN_WGSL, FLAT_WG, flatUniforms, requireBindable } from './windows.js';

// ---------------------------------------------------------------------------------------- unary

type UnaryOp = Exclude<Activation, 'none'> | 'scale';

interface UnarySpec {
  readonly dtype: DType;
  readonly op: UnaryOp;
  readonly vec: 1 | 4;
}

const UNARY_UNIFORMS = flatUniforms(1, [['s', 'f32']]);

function unaryWgsl(spec: UnarySpec): string {
  const fn = spec.op === 'scale' ? 'fn activate(x: f32) -> f32 { return x * u.s; }\n' : activationWgsl(spec.op);
  const map =
    spec.vec === 4
      ? 'alias SV = S4;\nalias AV = A4;\nfn map_v(v: A4) -> A4 { return A4(activate(v.x), activate(v.y), activate(v.z), activate(v.w)); }'
      : 'alias SV = S;\nalias AV = A;\nfn map_v(v: A) -> A { return activate(v); }';
  return (
    prologue({ dtype: spec.dtype, uniforms: UNARY_UNIFORMS, consts: { WG: FLAT_WG } }) +
    fn +
    map +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<SV>;
@group(0) @binding(2) var<storage, read_write> out: array<SV>;
fn apply(i: u32) { out[i] = SV(map_v(AV(x[i + u.off0]))); }
` +
    FLAT_MAIN_WGSL
  );
}

function unary(op: string, x: Tensor, kind: UnaryOp, s = 1): Tensor {
  expectFloat(op, 'x', x);
  const ctx = x.ctx;
  const vec = x.size % 4 === 0 ? 4 : 1;
  const spec: UnarySpec = Object.freeze({ dtype: x.dtype, op: kind, vec });
  const out = ctx.empty(x.shape, x.dtype, op);
  dispatchFlat(ctx, {
    pipeline: ctx.kernel('elementwise.unary', spec, unaryWgsl),
    label: `elementwise.${kind}[${x.dtype} v${vec}]`,
    n: x.size,
    vec,
    inputs: [{ t: x }],
    out,
    layout: UNARY_UNIFORMS,
    values: { s },
  });
  return out;
}

/** SiLU x·σ(x), elementwise. */
export function silu(x: Tensor): Tensor {
  return unary('silu', x, 'silu');
}

/** GELU, exact (erf, torch's default) or with the tanh approximation. */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  return unary('gelu', x, approximate === 'tanh' ? 'gelu_tanh' : 'gelu');
}

/** Any epilogue activation on its own (the LoRA side path adds its term before the activation). */
export function activate(x: Tensor, act: Activation): Tensor {
  if (act === 'none') return x.ctx.clone(x, 'activate(none)');
  return unary(act, x, act);
}

/** x · s, elementwise (s rounded to f32). */
export function scale(x: Tensor, s: number): Tensor {
  if (!Number.isFinite(s)) throw new ShapeError('scale', 's', 'a finite number', String(s));
  return unary('scale', x, 'scale', s);
}

// ---------------------------------------------------------------------------------------- binary

type BinaryOp = 'add' | 'mul';
const MAX_RANK = 6;

interface BinarySpec {
  readonly dtype: DType;
  /** Collapsed rank (1..6). */
  readonly rank: number;
  readonly vec: 1 | 4;
  /** Whether a / b vary along the innermost collapsed axis (else they are read as splatted scalars). */
  readonly aInner: boolean;
  readonly bInner: boolean;
}

const DIM_FIELDS = [...Array(MAX_RANK).keys()];
const BINARY_UNIFORMS: UniformLayout = flatUniforms(2, [
  ['start', 'u32'],
  ['isMul', 'u32'], // add or mul: a uniform, so that both share one pipeline per shape class
  ...DIM_FIELDS.map((k) => [`d${k}`, 'u32'] as const),
  ...DIM_FIELDS.map((k) => [`a${k}`, 'u32'] as const),
  ...DIM_FIELDS.map((k) => [`b${k}`, 'u32'] as const),
]);

function binaryWgsl(spec: BinarySpec): string {
  const av = spec.vec === 4 ? 'A4' : 'A';
  const operand = (name: string, inner: boolean) =>
    spec.vec === 4 && inner
      ? `@group(0) @binding(${name === 'a' ? 1 : 2}) var<storage, read> ${name}: array<S4>;\nfn load_${name}(o: u32) -> A4 { return A4(${name}[o]); }`
      : `@group(0) @binding(${name === 'a' ? 1 : 2}) var<storage, read> ${name}: array<S>;\nfn load_${name}(o: u32) -> ${av} { return ${av}(A(${name}[o])); }`;
  // one div/mod per collapsed axis, innermost (d0) first; the outermost needs no modulo
  const axes = DIM_FIELDS.slice(0, spec.rank).map((k) =>
    k === spec.rank - 1
      ? `  oa += rem * u.a${k}; ob += rem * u.b${k};`
      : `  c = rem % u.d${k}; rem = rem / u.d${k}; oa += c * u.a${k}; ob += c * u.b${k};`,
  );
  return (
    prologue({ dtype: spec.dtype, uniforms: BINARY_UNIFORMS, consts: { WG: FLAT_WG } }) +
    operand('a', spec.aInner) +
    '\n' +
    operand('b', spec.bInner) +
    `\n@group(0) @binding(3) var<storage, read_write> out: array<${spec.vec === 4 ? 'S4' : 'S'}>;\n` +
    // rank 1: operands are windowed with the output (window-local index); else bound whole (global index)
    `fn offsets(i: u32) -> vec2<u32> {\n  var rem = ${spec.rank === 1 ? 'i' : 'i + u.start'};\n  var c = 0u;\n  var oa = u.off0;\n  var ob = u.off1;\n${axes.join('\n')}\n  return vec2<u32>(oa, ob);\n}\n` +
    `fn combine(a: ${av}, b: ${av}) -> ${av} { return select(a + b, a * b, u.isMul != 0u); }\n` +
    /* wgsl */ `
fn apply(i: u32) {
  let o = offsets(i);
  out[i] = ${spec.vec === 4 ? 'S4' : 'S'}(combine(load_a(o.x), load_b(o.y)));
}
` +
    FLAT_MAIN_WGSL
  );
}

/** NumPy broadcast of two shapes, or null if incompatible. */
export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] | null {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const da = a[a.length - r + i] ?? 1;
    const db = b[b.length - r + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) return null;
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Collapsed axes, innermost first: sizes and element strides of a and b (0 where broadcast). */
function collapse(out: readonly number[], a: readonly number[], b: readonly number[]): { dims: number[]; sa: number[]; sb: number[] } {
  const r = out.length;
  const pa = [...Array(r - a.length).fill(1), ...a];
  const pb = [...Array(r - b.length).fill(1), ...b];
  const dims: number[] = [];
  const fa: boolean[] = [];
  const fb: boolean[] = [];
  for (let i = r - 1; i >= 0; i--) {
    if (out[i] === 1) continue;
    const ia = pa[i] !== 1;
    const ib = pb[i] !== 1;
    const last = dims.length - 1;
    if (last >= 0 && fa[last] === ia && fb[last] === ib) dims[last] *= out[i];
    else {
      dims.push(out[i]);
      fa.push(ia);
      fb.push(ib);
    }
  }
  if (dims.length === 0) return { dims: [1], sa: [1], sb: [1] };
  const strides = (full: boolean[]) => {
    let s = 1;
    return dims.map((d, k) => {
      const v = full[k] ? s : 0;
      if (full[k]) s *= d;
      return v;
    });
  };
  return { dims, sa: strides(fa), sb: strides(fb) };
}

function binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  expectFloat(op, 'a', a);
  expectDtype(op, 'b', b, a.dtype);
  const shape = broadcastShapes(a.shape, b.shape);
  if (!shape || shape.length > MAX_RANK) {
    throw new ShapeError(op, 'b', `a shape broadcastable with ${formatShape(a.shape)} (rank ≤ ${MAX_RANK})`, formatShape(b.shape));
  }
  const ctx = a.ctx;
  const { dims, sa, sb } = collapse(shape, a.shape, b.shape);
  // rank 1 (same shape, or a scalar operand) is windowed; otherwise the operands are bound whole
  if (dims.length > 1) requireBindable(ctx, op, [['a', a.byteSize], ['b', b.byteSize]]);
  const out = ctx.empty(shape, a.dtype, op);
  if (out.size === 0) return out;
  const rank = dims.length;
  const vec = dims[0] % 4 === 0 ? 4 : 1;
  const aInner = sa[0] === 1;
  const bInner = sb[0] === 1;
  const spec: BinarySpec = Object.freeze({ dtype: a.dtype, rank, vec, aInner, bInner });
  // strides in units of each binding's element (vec4 for an operand that varies along axis 0)
  const values: Record<string, number> = { isMul: op === 'mul' ? 1 : 0 };
  for (let k = 0; k < MAX_RANK; k++) {
    const inner = k === 0 ? vec : 1;
    values[`d${k}`] = k < rank ? dims[k] / inner : 1;
    values[`a${k}`] = k < rank ? (vec === 4 && aInner ? (k === 0 ? 1 : sa[k] / 4) : sa[k]) : 0;
    values[`b${k}`] = k < rank ? (vec === 4 && bInner ? (k === 0 ? 1 : sb[k] / 4) : sb[k]) : 0;
  }
  const flat = rank === 1;
  dispatchFlat(ctx, {
    pipeline: ctx.kernel('elementwise.binary', spec, binaryWgsl),
    label: `elementwise.${op}[${a.dtype} r${rank} v${vec}]`,
    n: out.size,
    vec,
    inputs: [
      { t: a, whole: !flat || !aInner },
      { t: b, whole: !flat || !bInner },
    ],
    out,
    layout: BINARY_UNIFORMS,
    values,
  });
  return out;
}

/** a + b with NumPy broadcasting (rank ≤ 6), same float dtype. */
export function add(a: Tensor, b: Tensor): Tensor {
  return binary('add', a, b);
}

/** a · b with NumPy broadcasting (rank ≤ 6), same float dtype. */
export function mul(a: Tensor, b: Tensor): Tensor {
  return binary('mul', a, b);
}

// ---------------------------------------------------------------------------------------- GEGLU

interface GegluSpec {
  readonly dtype: DType;
  readonly vec: 1 | 4;
}

const GEGLU_UNIFORMS = flatUniforms(1, [['f', 'u32'], ['start', 'u32']]);

function gegluWgsl(spec: GegluSpec): string {
  const [sv, av] = spec.vec === 4 ? ['S4', 'A4'] : ['S', 'A'];
  const gate = spec.vec === 4 ? 'A4(activate(g.x), activate(g.y), activate(g.z), activate(g.w))' : 'activate(g)';
  return (
    prologue({ dtype: spec.dtype, uniforms: GEGLU_UNIFORMS, consts: { WG: FLAT_WG } }) +
    activationWgsl('gelu') +
    `alias SV = ${sv};\nalias AV = ${av};\nfn gate_of(g: AV) -> AV { return ${gate}; }\n` +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<SV>;
@group(0) @binding(2) var<storage, read_write> out: array<SV>;
// out[r, j] = x[r, j] · gelu(x[r, F + j]), in vectors: u.f = F / V; x is bound whole
fn apply(i: u32) {
  let g = i + u.start;
  let at = g + (g / u.f) * u.f;
  out[i] = SV(AV(x[at]) * gate_of(AV(x[at + u.f])));
}
` +
    FLAT_MAIN_WGSL
  );
}

/** GEGLU as diffusers: x [..., 2F] → x[..., :F] · gelu(x[..., F:]) (erf GELU), [..., F]. */
export function geglu(x: Tensor): Tensor {
  const op = 'geglu';
  expectFloat(op, 'x', x);
  const last = x.shape[x.rank - 1];
  if (x.rank < 1 || last % 2 !== 0) throw new ShapeError(op, 'x', '[..., 2F]', formatShape(x.shape));
  const F = last / 2;
  const ctx = x.ctx;
  requireBindable(ctx, op, [['x', x.byteSize]]);
  const out = ctx.empty([...x.shape.slice(0, -1), F], x.dtype, op);
  if (out.size === 0) return out;
  const vec = F % 4 === 0 ? 4 : 1;
  const spec: GegluSpec = Object.freeze({ dtype: x.dtype, vec });
  // x is bound whole (a row's gate sits F elements after its value); only the output is windowed
  dispatchFlat(ctx, {
    pipeline: ctx.kernel('elementwise.geglu', spec, gegluWgsl),
    label: `elementwise.geglu[${x.dtype} v${vec}]`,
    n: out.size,
    vec,
    inputs: [{ t: x, whole: true }],
    out,
    layout: GEGLU_UNIFORMS,
    values: { f: F / vec },
  });
  return out;
}
