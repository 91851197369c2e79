// tokenEmbedding: out[b, t, :] = table[ids[b, t], :] + positions[t, :], with the table given as row
// chunks so that a vocabulary larger than one storage binding (bigG's 49,408×1280 in f32 = 253 MB)
// still works: one dispatch per chunk writes the rows whose id falls in that chunk. Ids are checked
// on the host first, so every output row is written exactly once.
import { foldWorkgroups, InvalidArgumentError, prologue, type GpuContext, type Tensor, type UniformLayout } from '@ssd/tensor';
import { expectFloat, expectShape } from './validate.js';

interface TokenEmbeddingSpec {
  readonly dtype: 'f32' | 'f16';
  readonly hasPositions: boolean;
}

const UNIFORMS: UniformLayout = [['n', 'u32'], ['d', 'u32'], ['t', 'u32'], ['rowStart', 'u32'], ['rows', 'u32']];

function wgsl(spec: TokenEmbeddingSpec): string {
  return (
    prologue({ dtype: spec.dtype, uniforms: UNIFORMS, consts: { WG: 64 } }) +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read> table: array<S>;
${spec.hasPositions ? '@group(0) @binding(3) var<storage, read> positions: array<S>;' : ''}
@group(0) @binding(${spec.hasPositions ? 4 : 3}) var<storage, read_write> out: array<S>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_workgroup(wid, nwg) * WG + lid;
  if (i >= u.n) { return; }
  let row = i / u.d;
  let col = i % u.d;
  let id = u32(ids[row]);
  if (id < u.rowStart || id >= u.rowStart + u.rows) { return; }
  var v = A(table[(id - u.rowStart) * u.d + col]);
  ${spec.hasPositions ? 'v += A(positions[(row % u.t) * u.d + col]);' : ''}
  out[i] = S(v);
}
`
  );
}

/**
 * ids: host token ids [B][T] (validated against the vocabulary size); tableChunks: row chunks of the
 * [V, D] table starting at rowStarts; positions [≥T, D] optional. Returns [B, T, D].
 */
export function tokenEmbedding(
  ctx: GpuContext,
  ids: readonly (ArrayLike<number>)[],
  tableChunks: readonly Tensor[],
  rowStarts: readonly number[],
  positions?: Tensor,
): Tensor {
  const b = ids.length;
  const t = ids[0]?.length ?? 0;
  const d = tableChunks[0].shape[1];
  const vocab = rowStarts[rowStarts.length - 1] + tableChunks[tableChunks.length - 1].shape[0];
  const flat = new Int32Array(b * t);
  ids.forEach((row, r) => {
    if (row.length !== t) throw new InvalidArgumentError(`tokenEmbedding: row ${r} has ${row.length} ids, row 0 has ${t}`);
    for (let k = 0; k < t; k++) {
      const id = row[k];
      if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new InvalidArgumentError(`tokenEmbedding: token id ${id} at [${r}, ${k}] is outside the vocabulary (0..${vocab - 1})`);
      flat[r * t + k] = id;
    }
  });
  for (const c of tableChunks) {
    expectFloat('tokenEmbedding', 'table', c);
    if (c.dtype !== tableChunks[0].dtype || c.shape[1] !== d) expectShape('tokenEmbedding', 'table chunk', c, [c.shape[0], d]);
  }
  const dtype = tableChunks[0].dtype as 'f32' | 'f16';
  if (positions && (positions.rank !== 2 || positions.shape[1] !== d || positions.shape[0] < t || positions.dtype !== dtype)) {
    expectShape('tokenEmbedding', 'positions', positions, [t, d], `[≥${t}, ${d}] ${dtype}`);
  }
  const idsT = ctx.fromData(flat, [b, t], 'i32', 'token ids');
  const out = ctx.empty([b, t, d], dtype, 'tokenEmbedding');
  const spec: TokenEmbeddingSpec = { dtype, hasPositions: !!positions };
  const pipeline = ctx.kernel('embedding.tokens', spec, wgsl);
  const n = out.size;
  tableChunks.forEach((chunk, k) => {
    ctx.dispatch({
      pipeline,
      bindings: positions ? [idsT, chunk, positions, out] : [idsT, chunk, out],
      uniforms: { layout: UNIFORMS, values: { n, d, t, rowStart: rowStarts[k], rows: chunk.shape[0] } },
      workgroups: foldWorkgroups(Math.ceil(n / 64), ctx.limits.maxComputeWorkgroupsPerDimension),
      label: 'tokenEmbedding',
    });
  });
  idsT.dispose();
  return out;
}
