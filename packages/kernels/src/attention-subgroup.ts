// The subgroup variant of attention (see attention.ts for the math and the legend): a workgroup is P
// groups of LANES invocations, each group one subgroup; lane l owns query rows row0 + l + LANES·r
// (r < R) and channels [p·DC, (p+1)·DC) of them, with q and the output accumulator o in registers.
// Keys go in blocks of KB = LANES: lane l loads key j0 + l (its DC channels, V per load), and each
// lane takes key c from lane c with subgroupBroadcast — one load per lane feeds KB·R FMAs.
//
// Why this shape: lavapipe runs a subgroup as one SIMD batch and scalarises every storage or
// workgroup load (8 scalar loads with bounds checks), while a broadcast is one register shuffle and
// an FMA one vector instruction. The tile is unrolled here in TypeScript: WGSL needs a constant lane
// for subgroupBroadcast, and lavapipe keeps any private array indexed by a loop variable in memory.
// R·DC is bounded by register spills and LLVM compile time (bench/kernels-dev/attention.ts).
//
// Correct at any subgroup size: the kernel is built for LANES (the adapter's minimum subgroup size)
// and checks at run time that every group of LANES invocations is one subgroup in invocation order.
// If not (another size, a driver that packs differently) the whole workgroup runs the portable
// algorithm (attend_tiles) instead. Tests force other lane counts to exercise that path.
import { TILES_WGSL, attentionHeader, type AttentionSpec } from './attention-wgsl.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * Loads of one operand's DC channels in units of V elements: the declarations of unit u, and its
 * values as groups of ≤ 4 channels (one scalar or A4 each — a broadcast moves a whole group).
 */
function loadUnits(spec: AttentionSpec, name: string, buf: 'q' | 'k' | 'v', base: string): { decl: (u: number) => string; groups: (u: number) => { expr: string; d0: number; n: number }[] } {
  const V = spec.vec;
  if (V === 1) return { decl: (u) => `let ${name}${u} = A(${buf}[${base} + ${u}u]);`, groups: (u) => [{ expr: `${name}${u}`, d0: u, n: 1 }] };
  if (V === 4) return { decl: (u) => `let ${name}${u} = A4(${buf}[${base} + ${u}u]);`, groups: (u) => [{ expr: `${name}${u}`, d0: 4 * u, n: 4 }] };
  return {
    decl: (u) => `let ${name}w${u} = ${buf}[${base} + ${u}u]; let ${name}${u} = lo4(${name}w${u}); let ${name}h${u} = hi4(${name}w${u});`,
    groups: (u) => [
      { expr: `${name}${u}`, d0: 8 * u, n: 4 },
      { expr: `${name}h${u}`, d0: 8 * u + 4, n: 4 },
    ],
  };
}

/** Component e of a group value `b` (a scalar when the group has one channel). */
const comp = (b: string, n: number, e: number) => (n === 1 ? b : `${b}[${e}]`);

export function subgroupAttentionWgsl(spec: AttentionSpec): string {
  const { rows: R, lanes: LANES, parts: P, headDim: D, vec: V } = spec;
  const DC = D / P;
  if (spec.keyBlock !== LANES) throw new RangeError(`subgroup attention: keyBlock ${spec.keyBlock} must equal lanes ${LANES}`);
  const rs = range(R);
  const cs = range(LANES);
  const units = range(DC / V);
  const body: string[] = [];
  const emit = (s: string) => body.push(s);

  for (const r of rs) {
    emit(`let row${r} = w.row0 + ${r}u * LANES + lane;`);
    emit(`let qu${r} = q_at(w, row${r}, p) / V;`);
    const ql = loadUnits(spec, `qx${r}_`, 'q', `qu${r}`);
    for (const u of units) {
      emit(ql.decl(u));
      for (const g of ql.groups(u)) {
        for (let e = 0; e < g.n; e++) emit(`let q${r}_${g.d0 + e} = ${comp(g.expr, g.n, e)} * u.scale; var o${r}_${g.d0 + e} = A(0.0);`);
      }
    }
    emit(`var m${r} = NEG; var l${r} = A(0.0);`);
  }
  emit('for (var j0 = 0u; j0 < w.kend; j0 += LANES) {');
  // scores: s[r][c] = q_r · k_{j0+c} over this part's channels
  emit(`let ku = k_at(w, j0 + lane, p) / V;`);
  for (const r of rs) emit(cs.map((c) => `var s${r}_${c} = A(0.0);`).join(' '));
  const kl = loadUnits(spec, 'kx', 'k', 'ku');
  for (const u of units) {
    emit(kl.decl(u));
    for (const g of kl.groups(u)) {
      for (const c of cs) {
        const fmas = range(g.n).flatMap((e) => rs.map((r) => `s${r}_${c} = fma(q${r}_${g.d0 + e}, ${comp('b', g.n, e)}, s${r}_${c});`));
        emit(`{ let b = subgroupBroadcast(${g.expr}, ${c}u); ${fmas.join(' ')} }`);
      }
    }
  }
  if (P > 1) {
    // the P parts' partial scores meet in workgroup memory: part p sums every P-th (row, key) pair
    // of all parts, then every part reads all the sums (R·KB·(2 + 1/P) accesses per lane, not R·KB·(P + 1))
    for (const r of rs) emit(cs.map((c) => `partial[part_ix(p, ${r}u, ${c}u, lane, LANES)] = s${r}_${c};`).join(' '));
    emit('workgroupBarrier();');
    emit('for (var i = p; i < R * LANES; i += P) { scores[i * LANES + lane] = sum_parts(i / LANES, i % LANES, lane, LANES); }');
    emit('workgroupBarrier();');
    for (const r of rs) emit(cs.map((c) => `s${r}_${c} = scores[${r * LANES + c}u * LANES + lane];`).join(' '));
  }
  // online softmax: running max m, rescale factor al, probabilities overwrite s
  for (const r of rs) {
    emit(cs.map((c) => `s${r}_${c} = select(NEG, s${r}_${c}, visible(j0 + ${c}u, row${r}));`).join(' '));
    emit(`let mx${r} = max(m${r}, ${cs.reduce((acc, c) => (acc ? `max(${acc}, s${r}_${c})` : `s${r}_${c}`), '')});`);
    emit(`let al${r} = exp2(m${r} - mx${r}); m${r} = mx${r};`);
    emit(cs.map((c) => `s${r}_${c} = exp2(s${r}_${c} - mx${r});`).join(' '));
    emit(`l${r} = l${r} * al${r} + (${cs.map((c) => `s${r}_${c}`).join(' + ')});`);
  }
  // o = o·al + Σ_c p_c · v_{j0+c}
  emit(`let vu = v_at(w, j0 + lane, p) / V;`);
  const vl = loadUnits(spec, 'vx', 'v', 'vu');
  for (const u of units) {
    emit(vl.decl(u));
    for (const g of vl.groups(u)) {
      emit(range(g.n).flatMap((e) => rs.map((r) => `o${r}_${g.d0 + e} *= al${r};`)).join(' '));
      for (const c of cs) {
        const fmas = range(g.n).flatMap((e) => rs.map((r) => `o${r}_${g.d0 + e} = fma(s${r}_${c}, ${comp('b', g.n, e)}, o${r}_${g.d0 + e});`));
        emit(`{ let b = subgroupBroadcast(${g.expr}, ${c}u); ${fmas.join(' ')} }`);
      }
    }
  }
  emit('}');
  for (const r of rs) {
    emit(`if (row${r} < u.nq) {`);
    emit(`  let oa = out_at(w, row${r}, p); let inv = 1.0 / l${r};`);
    for (let d = 0; d < DC; d++) emit(`  out[oa + ${d}u] = S(o${r}_${d} * inv);`);
    emit('}');
  }

  return (
    attentionHeader(spec) +
    TILES_WGSL +
    /* wgsl */ `
var<workgroup> mismatch: u32;
var<workgroup> scores: array<A, ${P > 1 ? R * LANES * LANES : 1}>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) ssize: u32) {
  let g = linear_workgroup(wid, nwg);
  if (g >= u.groups) { return; }
  // the broadcasts need each group of LANES invocations to be one subgroup, lane i = invocation i
  if (ssize < LANES || sid != lid % LANES) { mismatch = 1u; }
  if (workgroupUniformLoad(&mismatch) != 0u) {
    attend_tiles(g, lid);
    return;
  }
  let w = work_of(g);
  let lane = lid % LANES;
  let p = lid / LANES;
  ${body.join('\n  ')}
}
`
  );
}
