// UniPC's B(h) updates (diffusers v0.26 scheduling_unipc_multistep.py multistep_uni_p_bh_update and
// multistep_uni_c_bh_update) as linear forms. Predictor basis: [x_i, m₀, m₁, m₂, –]; corrector basis:
// [x_{i−1}, m₀, m₁, m₂, m_t] where m₀ is the newest stored output and m_t the one just computed.
import { mix, solve, unit, type Form, type VpPoint } from './solver-coefficients.js';

const N = 5;
const X = unit(N, 0);
const M = [unit(N, 1), unit(N, 2), unit(N, 3)];
const MT = unit(N, 4);

/** The φ-function right-hand side b and the Vandermonde-like R of UniPC for `order` points. */
function system(order: number, rks: number[], hh: number, bh: number): { R: number[][]; b: number[] } {
  const hPhi1 = Math.expm1(hh);
  let hPhiK = hPhi1 / hh - 1;
  let factorial = 1;
  const R: number[][] = [];
  const b: number[] = [];
  for (let k = 1; k <= order; k++) {
    R.push(rks.map((r) => r ** (k - 1)));
    b.push((hPhiK * factorial) / bh);
    factorial *= k + 1;
    hPhiK = hPhiK / hh - 1 / factorial;
  }
  return { R, b };
}

/** The common part: x-coefficient, h·φ₁ and B(h), plus the scale (α_t for x̂₀, σ_t for ε̂). */
function base(predictX0: boolean, bh2: boolean, t: VpPoint, s0: VpPoint) {
  const h = t.lambda - s0.lambda;
  const hh = predictX0 ? -h : h;
  const hPhi1 = Math.expm1(hh);
  const bh = bh2 ? Math.expm1(hh) : hh;
  const xCoef = predictX0 ? t.sigma / s0.sigma : t.alpha / s0.alpha;
  const scale = predictX0 ? t.alpha : t.sigma;
  return { h, hh, hPhi1, bh, xCoef, scale };
}

/** UniP from point i (m₀ = newest output) to i + 1; `at(k)` gives the VP point of sigma index k. */
export function uniPredictor(predictX0: boolean, bh2: boolean, order: number, at: (k: number) => VpPoint, i: number): Form {
  const t = at(i + 1);
  const s0 = at(i);
  const { h, hh, hPhi1, bh, xCoef, scale } = base(predictX0, bh2, t, s0);
  let form = mix(N, [X, xCoef], [M[0], -scale * hPhi1]);
  if (order === 1) return form; // no D1 terms (and no 0/0 at a repeated final Karras sigma)
  const rks: number[] = [];
  const d1s: Form[] = [];
  for (let k = 1; k < order; k++) {
    const rk = (at(i - k).lambda - s0.lambda) / h;
    rks.push(rk);
    d1s.push(mix(N, [M[k], 1 / rk], [M[0], -1 / rk]));
  }
  rks.push(1);
  let rhos: number[];
  if (order === 2) rhos = [0.5];
  else {
    const { R, b } = system(order, rks, hh, bh);
    rhos = solve(R.slice(0, -1).map((row) => row.slice(0, -1)), b.slice(0, -1));
  }
  for (let k = 0; k < d1s.length; k++) form = mix(N, [form, 1], [d1s[k], -scale * bh * rhos[k]]);
  return form;
}

/** UniC at point i from the last sample x_{i−1} (point i − 1, output m₀) and the new output m_t. */
export function uniCorrector(predictX0: boolean, bh2: boolean, order: number, at: (k: number) => VpPoint, i: number): Form {
  const t = at(i);
  const s0 = at(i - 1);
  const { h, hh, hPhi1, bh, xCoef, scale } = base(predictX0, bh2, t, s0);
  const rks: number[] = [];
  const d1s: Form[] = [];
  for (let k = 1; k < order; k++) {
    const rk = (at(i - (k + 1)).lambda - s0.lambda) / h;
    rks.push(rk);
    d1s.push(mix(N, [M[k], 1 / rk], [M[0], -1 / rk]));
  }
  rks.push(1);
  let rhos = [0.5];
  if (order > 1) {
    const { R, b } = system(order, rks, hh, bh);
    rhos = solve(R, b);
  }
  let form = mix(N, [X, xCoef], [M[0], -scale * hPhi1]);
  for (let k = 0; k < d1s.length; k++) form = mix(N, [form, 1], [d1s[k], -scale * bh * rhos[k]]);
  const dt = mix(N, [MT, 1], [M[0], -1]); // D1_t = m_t − m₀
  return mix(N, [form, 1], [dt, -scale * bh * rhos[order - 1]]);
}
