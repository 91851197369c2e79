// Embeddings and gathers: token embedding lookup (CLIP's token_embedding + position_embedding), row
// gather (CLIP's pooled output at the EOS position), and the sinusoidal timestep embedding of
// diffusers' get_timestep_embedding, computed on the host.
//
// Legend: B batch, T tokens, D embedding width, V vocabulary rows; N rows, C channels for gathers.
// The lookups are flat ops (windows.ts entry point) over output vectors (vec4 when D or C allows),
// with the table/source bound whole (a table larger than one storage binding needs the chunked
// tokenEmbedding instead). Indices are clamped on the GPU; host-known ids are checked first.
import { DeviceLimitError, DTypeError, formatShape, InvalidArgumentError, prologue, ShapeError, type DType, type GpuContext, type Tensor, type UniformLayout } from '@ssd/tensor';
import { expectDtype, expectFloat, expectRank } from './validate.js';
import { dispatchFlat, FLAT_MAIN_WGSL, FLAT_WG, flatUniforms, requireBindable } from './windows.js';

function requireF16(ctx: GpuContext, op: string, dtype: DType): void {
  if (dtype === 'f16' && !ctx.f16) throw new DeviceLimitError('feature shader-f16', 'present', 'absent', `${op} on f16 tensors`);
}

function vecAliases(vec: 1 | 4): string {
  return vec === 4 ? 'alias SV = S4;\nalias AV = A4;\n' : 'alias SV = S;\nalias AV = A;\n';
}

// ---------------------------------------------------------------------------------------- embedding

interface EmbeddingSpec {
  readonly dtype: DType;
  readonly vec: 1 | 4;
  readonly hasPositions: boolean;
}

const EMBEDDING_UNIFORMS: UniformLayout = flatUniforms(0, [['start', 'u32'], ['dv', 'u32'], ['t', 'u32'], ['vocab', 'u32']]);

function embeddingWgsl(spec: EmbeddingSpec): string {
  const positions = spec.hasPositions
    ? `@group(0) @binding(3) var<storage, read> positions: array<SV>;
fn position(t: u32, j: u32) -> AV { return AV(positions[t * u.dv + j]); }
@group(0) @binding(4) var<storage, read_write> out: array<SV>;`
    : `fn position(t: u32, j: u32) -> AV { return AV(0.0); }
@group(0) @binding(3) var<storage, read_write> out: array<SV>;`;
  return (
    prologue({ dtype: spec.dtype, uniforms: EMBEDDING_UNIFORMS, consts: { WG: FLAT_WG } }) +
    vecAliases(spec.vec) +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read> table: array<SV>;
${positions}
// out[row, j] = table[clamp(ids[row]), j] + positions[row % T, j], in vectors of the embedding width
fn apply(i: u32) {
  let g = i + u.start;
  let row = g / u.dv;
  let j = g % u.dv;
  let id = u32(clamp(ids[row], 0i, i32(u.vocab) - 1i));
  out[i] = SV(AV(table[id * u.dv + j]) + position(row % u.t, j));
}
` +
    FLAT_MAIN_WGSL
  );
}

/**
 * Token embedding: ids [B, T] → table[ids] (+ positions[t] for t < T if given) → [B, T, D], in the
 * table's dtype. `ids` is an i32 tensor (out-of-range ids are clamped on the GPU) or host rows of
 * token ids, which are checked (an out-of-range id is an error) and uploaded.
 */
export function embedding(ids: Tensor | ReadonlyArray<ArrayLike<number>>, table: Tensor, positions?: Tensor): Tensor {
  const op = 'embedding';
  expectFloat(op, 'table', table);
  expectRank(op, 'table', table, 2, '[V, D]');
  const [vocab, D] = table.shape;
  const ctx = table.ctx;
  requireF16(ctx, op, table.dtype);
  requireBindable(ctx, op, [['table', table.byteSize], ['positions', positions?.byteSize ?? 0]]);
  let idTensor: Tensor;
  let owned = false;
  if (Array.isArray(ids)) {
    const rows = ids as ReadonlyArray<ArrayLike<number>>;
    const T = rows[0]?.length ?? 0;
    const flat = new Int32Array(rows.length * T);
    rows.forEach((r, b) => {
      if (r.length !== T) throw new ShapeError(op, `ids[${b}]`, `${T} tokens (as ids[0])`, `${r.length}`);
      for (let t = 0; t < T; t++) {
        const id = r[t];
        if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new InvalidArgumentError(`${op}: ids[${b}][${t}] = ${id} is outside the vocabulary [0, ${vocab})`);
        flat[b * T + t] = id;
      }
    });
    idTensor = ctx.fromData(flat, [rows.length, T], 'i32', `${op}.ids`);
    owned = true;
  } else {
    idTensor = ids as Tensor;
    expectDtype(op, 'ids', idTensor, 'i32');
    expectRank(op, 'ids', idTensor, 2, '[B, T]');
  }
  const [B, T] = idTensor.shape;
  if (positions) {
    expectDtype(op, 'positions', positions, table.dtype);
    if (positions.rank !== 2 || positions.shape[1] !== D || positions.shape[0] < T) {
      throw new ShapeError(op, 'positions', `[P ≥ ${T}, ${D}]`, formatShape(positions.shape));
    }
  }
  const out = ctx.empty([B, T, D], table.dtype, op);
  if (out.size > 0) {
    const vec = D % 4 === 0 ? 4 : 1;
    const spec: EmbeddingSpec = Object.freeze({ dtype: table.dtype, vec, hasPositions: !!positions });
    dispatchFlat(ctx, {
      pipeline: ctx.kernel('embedding', spec, embeddingWgsl),
      label: `embedding[${table.dtype} v${vec}${positions ? ' +positions' : ''}]`,
      n: out.size,
      vec,
      inputs: [idTensor, table, ...(positions ? [positions] : [])].map((t) => ({ t, whole: true })),
      out,
      layout: EMBEDDING_UNIFORMS,
      values: { dv: D / vec, t: T, vocab },
    });
  }
  if (owned) idTensor.dispose();
  return out;
}

// ---------------------------------------------------------------------------------------- gatherRows

interface GatherSpec {
  readonly dtype: DType;
  readonly vec: 1 | 4;
}

const GATHER_UNIFORMS: UniformLayout = flatUniforms(0, [['start', 'u32'], ['cv', 'u32'], ['rows', 'u32']]);

function gatherWgsl(spec: GatherSpec): string {
  return (
    prologue({ dtype: spec.dtype, uniforms: GATHER_UNIFORMS, consts: { WG: FLAT_WG } }) +
    vecAliases(spec.vec) +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<SV>;
@group(0) @binding(2) var<storage, read> index: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<SV>;
// out[b, j] = x[b, clamp(index[b]), j], in vectors of C
fn apply(i: u32) {
  let g = i + u.start;
  let b = g / u.cv;
  let j = g % u.cv;
  let r = u32(clamp(index[b], 0i, i32(u.rows) - 1i));
  out[i] = x[(b * u.rows + r) * u.cv + j];
}
` +
    FLAT_MAIN_WGSL
  );
}

/** x [B, N, C], index i32 [B] → [B, C] with out[b] = x[b, index[b]] (index clamped to [0, N)). */
export function gatherRows(x: Tensor, index: Tensor): Tensor {
  const op = 'gatherRows';
  expectRank(op, 'x', x, 3, '[B, N, C]');
  expectDtype(op, 'index', index, 'i32');
  const [B, N, C] = x.shape;
  if (index.rank !== 1 || index.shape[0] !== B) throw new ShapeError(op, 'index', `[B] = [${B}]`, formatShape(index.shape));
  if (N === 0 && B * C > 0) throw new ShapeError(op, 'x', '[B, N ≥ 1, C]', formatShape(x.shape));
  const ctx = x.ctx;
  requireF16(ctx, op, x.dtype);
  requireBindable(ctx, op, [['x', x.byteSize]]);
  const out = ctx.empty([B, C], x.dtype, op);
  if (out.size === 0) return out;
  const vec = C % 4 === 0 ? 4 : 1;
  dispatchFlat(ctx, {
    pipeline: ctx.kernel('gather_rows', Object.freeze<GatherSpec>({ dtype: x.dtype, vec }), gatherWgsl),
    label: `gather_rows[${x.dtype} v${vec}]`,
    n: out.size,
    vec,
    inputs: [
      { t: x, whole: true },
      { t: index, whole: true },
    ],
    out,
    layout: GATHER_UNIFORMS,
    values: { cv: C / vec, rows: N },
  });
  return out;
}

// ---------------------------------------------------------------------------------------- timesteps

/**
 * diffusers' get_timestep_embedding (models/embeddings.py) on the host, reproducing torch's float32
 * intermediates: exponent = f32(f32(−ln max_period) · i) / f32(half − freq_shift), freqs = f32(exp),
 * args = f32(f32(t) · freqs), then sin/cos (to ≤ 1 ulp of torch's float32 exp/sin/cos), [sin, cos]
 * or [cos, sin] with flip_sin_to_cos, zero-padded when dim is odd. Returns [B · dim] values.
 */
export function timestepEmbeddingValues(timesteps: ArrayLike<number>, dim: number, opts: { flipSinToCos: boolean; freqShift: number; maxPeriod?: number; scale?: number }): Float32Array {
  const f = Math.fround;
  const half = Math.floor(dim / 2);
  const maxPeriod = opts.maxPeriod ?? 10000;
  const scale = f(opts.scale ?? 1);
  const lnScale = f(-Math.log(maxPeriod));
  const divisor = f(half - opts.freqShift);
  const freqs = Array.from({ length: half }, (_, i) => f(Math.exp(f(f(lnScale * i) / divisor))));
  const out = new Float32Array(timesteps.length * dim);
  for (let b = 0; b < timesteps.length; b++) {
    const t = f(timesteps[b]);
    for (let i = 0; i < half; i++) {
      const arg = f(scale * f(t * freqs[i]));
      const [first, second] = opts.flipSinToCos ? [Math.cos(arg), Math.sin(arg)] : [Math.sin(arg), Math.cos(arg)];
      out[b * dim + i] = first;
      out[b * dim + half + i] = second;
    }
  }
  return out;
}

/**
 * Sinusoidal timestep embedding [B, dim] exactly as diffusers' Timesteps / get_timestep_embedding
 * (max_period 10000, scale 1), computed on the host in float64 from torch's float32 intermediates and
 * uploaded: WGSL's sin/cos carry no accuracy guarantee outside [−π, π] and the arguments reach 999 rad.
 */
export function timestepEmbedding(ctx: GpuContext, timesteps: ArrayLike<number>, dim: number, opts: { flipSinToCos: boolean; freqShift: number; dtype?: DType }): Tensor {
  const op = 'timestepEmbedding';
  if (!Number.isInteger(dim) || dim < 1) throw new InvalidArgumentError(`${op}: dim must be a positive integer, got ${dim}`);
  for (let b = 0; b < timesteps.length; b++) {
    if (!Number.isFinite(timesteps[b])) throw new InvalidArgumentError(`${op}: timesteps[${b}] = ${timesteps[b]}`);
  }
  const dtype = opts.dtype ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'f16') throw new DTypeError(op, 'dtype', 'f32 or f16', dtype);
  if (dim >= 2 && Math.floor(dim / 2) - opts.freqShift === 0) throw new InvalidArgumentError(`${op}: dim ${dim} with freq_shift ${opts.freqShift} divides by zero`);
  const values = timestepEmbeddingValues(timesteps, dim, opts);
  return ctx.fromData(values, [timesteps.length, dim], dtype, op);
}
