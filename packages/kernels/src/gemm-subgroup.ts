// The subgroup variant of the register-blocked GEMM (matmul, linear, conv2d): the portable kernel's
// tile (TILE_M rows × TILE_N columns per lane, lanes over columns), but the TILE_M A values of a K
// step are loaded once per subgroup instead of once per lane: lane l loads rows m0 + l + LANES·r and
// every lane takes row i from lane i % LANES with subgroupBroadcast (a register shuffle).
//
// On lavapipe every storage load costs ~8 scalar loads (one per lane of the SIMD batch) while a
// broadcast is one shuffle, so loads per K step drop from TILE_M + TILE_N to TILE_M/LANES + TILE_N
// per lane: 32×4 tiles run ~3× faster than the portable kernel's best (bench/kernels-dev/gemm.ts).
//
// Correct at any subgroup size: the kernel is built for LANES = the adapter's subgroup size and
// checks at run time that its workgroup is one subgroup with lanes in invocation order
// (subgroup_size ≥ LANES and subgroup_invocation_id == local_invocation_index everywhere). If not
// (another size, e.g. an adapter whose subgroups vary in width), it computes the same outputs with a
// plain loop in which every lane reads A itself. Both paths are tested (tile.lanes forces a size).
import { expandUnit, gemmHeader, regsBOffsets, regsDecl, regsFma, regsLoadB, regsStore, unitParts, type GemmSpec } from './gemm-wgsl.js';

export function subgroupWgsl(spec: GemmSpec): string {
  const { tileM, tileN, lanes } = spec;
  if (tileM % lanes !== 0) throw new RangeError(`subgroup GEMM: tileM ${tileM} must be a multiple of the lanes ${lanes}`);
  const head = gemmHeader(spec, { LANES: lanes, TILE_M: tileM, TILE_N: tileN });
  const groups = Array.from({ length: tileM / lanes }, (_, r) => r);

  // FMAs of one K step: row i = r·LANES + l comes from lane l's unit ar{r}, broadcast part by part
  const fmas: string[] = [];
  for (const r of groups) {
    for (let l = 0; l < lanes; l++) {
      const i = r * lanes + l;
      const parts = unitParts(spec, `ar${r}`).map((p, q) => {
        fmas.push(`let s${i}_${q} = subgroupBroadcast(${p}, ${l}u);`);
        return `s${i}_${q}`;
      });
      fmas.push(regsFma(spec, i, parts, tileN));
    }
  }

  let loop: string;
  if (!spec.conv) {
    const aOff = groups.map((r) => `let ao${r} = a_row(z, m0 + lid + ${r}u * LANES) / V;`).join('\n    ');
    const loads = groups.map((r) => expandUnit(spec, `ar${r}`, `ld_a(ao${r} + k)`)).join('\n        ');
    loop = `${aOff}
    for (var k = 0u; k < u.KV; k++) {
        ${regsLoadB(spec, tileN, 'k')}
        ${loads}
        ${fmas.join('\n        ')}
    }`;
  } else {
    const pix = groups.map((r) => `let p${r} = pix(z, m0 + lid + ${r}u * LANES, tap); let ok${r} = p${r} != PAD; let ao${r} = select(0u, p${r}, ok${r}) / V;`).join('\n      ');
    const loads = groups.map((r) => expandUnit(spec, `ar${r}`, `select(zero_lv(), ld_a(ao${r} + c), ok${r})`)).join('\n        ');
    loop = `let cv = u.C / V;
    for (var tap = 0u; tap < KH * KW; tap++) {
      ${pix}
      let bt = tap * cv;
      for (var c = 0u; c < cv; c++) {
        ${regsLoadB(spec, tileN, 'bt + c')}
        ${loads}
        ${fmas.join('\n        ')}
      }
    }`;
  }

  return `${head}
// oneSubgroup is uniform in fact (see the header), which the uniformity analysis cannot know
@diagnostic(off, subgroup_uniformity)
@compute @workgroup_size(LANES)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) ssize: u32) {
  let z = wid.z;
  let m0 = wid.y * TILE_M;
  let n0 = wid.x * (LANES * TILE_N) + lid;
  // the broadcasts below need this workgroup to be one subgroup whose lane i is invocation i
  let oneSubgroup = ssize >= LANES && subgroupAll(sid == lid);
  if (oneSubgroup) {
    ${regsBOffsets(tileN).replace(/\n {2}/g, '\n    ')}
    ${regsDecl(tileM, tileN).replace(/\n {2}/g, '\n    ')}
    ${loop}
    ${regsStore(tileM, tileN).replace(/\n {2}/g, '\n    ')}
  } else {
    // another subgroup size: the same outputs, every lane reading A itself
    let k4 = (u.K + 3u) / 4u;
    for (var t = 0u; t < TILE_M * TILE_N; t++) {
      let m = m0 + t / TILE_N;
      let n = n0 + (t % TILE_N) * LANES;
      var s = 0.0;
      for (var q = 0u; q < k4; q++) { s += dot(load_a4(z, m, q), load_b4(z, n, q)); }
      finish(z, m, n, s);
    }
  }
}
`;
}
