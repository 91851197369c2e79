// The DPM-Solver / DPM-Solver++ multistep updates of diffusers v0.26 (scheduling_dpmsolver_multistep.py:
// dpm_solver_first_order_update, multistep_dpm_solver_second/third_order_update) as linear forms over the
// basis [sample, m₀ (newest converted output), m₁, m₂, noise]. Papers: arXiv 2206.00927, 2211.01095.
import { mix, unit, type Form, type VpPoint } from './solver-coefficients.js';

export type DpmAlgorithm = 'dpmsolver++' | 'sde-dpmsolver++' | 'dpmsolver' | 'sde-dpmsolver';
export type DpmSolverType = 'midpoint' | 'heun';

const N = 5;
const X = unit(N, 0);
const M = [unit(N, 1), unit(N, 2), unit(N, 3)];
const NOISE = unit(N, 4);

/** First order (DPM-Solver-1 ≡ DDIM) from s to t. */
export function firstOrder(alg: DpmAlgorithm, t: VpPoint, s: VpPoint): Form {
  const h = t.lambda - s.lambda;
  switch (alg) {
    case 'dpmsolver++':
      return mix(N, [X, t.sigma / s.sigma], [M[0], -t.alpha * (Math.exp(-h) - 1)]);
    case 'dpmsolver':
      return mix(N, [X, t.alpha / s.alpha], [M[0], -t.sigma * (Math.exp(h) - 1)]);
    case 'sde-dpmsolver++':
      return mix(N, [X, (t.sigma / s.sigma) * Math.exp(-h)], [M[0], t.alpha * (1 - Math.exp(-2 * h))], [NOISE, t.sigma * Math.sqrt(1 - Math.exp(-2 * h))]);
    case 'sde-dpmsolver':
      return mix(N, [X, t.alpha / s.alpha], [M[0], -2 * t.sigma * (Math.exp(h) - 1)], [NOISE, t.sigma * Math.sqrt(Math.exp(2 * h) - 1)]);
  }
}

/** Second-order multistep from s0 (m₀) with the previous point s1 (m₁). */
export function secondOrder(alg: DpmAlgorithm, type: DpmSolverType, t: VpPoint, s0: VpPoint, s1: VpPoint): Form {
  const h = t.lambda - s0.lambda;
  const r0 = (s0.lambda - s1.lambda) / h;
  const d1 = mix(N, [M[0], 1 / r0], [M[1], -1 / r0]); // D1 = (m₀ − m₁)/r₀
  const mid = type === 'midpoint';
  switch (alg) {
    case 'dpmsolver++': {
      const a = t.alpha * (Math.exp(-h) - 1);
      return mix(N, [X, t.sigma / s0.sigma], [M[0], -a], [d1, mid ? -0.5 * a : t.alpha * ((Math.exp(-h) - 1) / h + 1)]);
    }
    case 'dpmsolver': {
      const a = t.sigma * (Math.exp(h) - 1);
      return mix(N, [X, t.alpha / s0.alpha], [M[0], -a], [d1, mid ? -0.5 * a : -t.sigma * ((Math.exp(h) - 1) / h - 1)]);
    }
    case 'sde-dpmsolver++': {
      const a = t.alpha * (1 - Math.exp(-2 * h));
      const c1 = mid ? 0.5 * a : t.alpha * ((1 - Math.exp(-2 * h)) / (-2 * h) + 1);
      return mix(N, [X, (t.sigma / s0.sigma) * Math.exp(-h)], [M[0], a], [d1, c1], [NOISE, t.sigma * Math.sqrt(1 - Math.exp(-2 * h))]);
    }
    case 'sde-dpmsolver': {
      const a = t.sigma * (Math.exp(h) - 1);
      const c1 = mid ? -a : -2 * t.sigma * ((Math.exp(h) - 1) / h - 1);
      return mix(N, [X, t.alpha / s0.alpha], [M[0], -2 * a], [d1, c1], [NOISE, t.sigma * Math.sqrt(Math.exp(2 * h) - 1)]);
    }
  }
}

/** Third-order multistep (the deterministic algorithms only, as in diffusers). */
export function thirdOrder(alg: 'dpmsolver++' | 'dpmsolver', t: VpPoint, s0: VpPoint, s1: VpPoint, s2: VpPoint): Form {
  const h = t.lambda - s0.lambda;
  const r0 = (s0.lambda - s1.lambda) / h;
  const r1 = (s1.lambda - s2.lambda) / h;
  const d10 = mix(N, [M[0], 1 / r0], [M[1], -1 / r0]);
  const d11 = mix(N, [M[1], 1 / r1], [M[2], -1 / r1]);
  const diff = mix(N, [d10, 1], [d11, -1]);
  const d1 = mix(N, [d10, 1], [diff, r0 / (r0 + r1)]);
  const d2 = mix(N, [diff, 1 / (r0 + r1)]);
  if (alg === 'dpmsolver++') {
    const e = Math.exp(-h) - 1;
    return mix(N, [X, t.sigma / s0.sigma], [M[0], -t.alpha * e], [d1, t.alpha * (e / h + 1)], [d2, -t.alpha * ((e + h) / (h * h) - 0.5)]);
  }
  const e = Math.exp(h) - 1;
  return mix(N, [X, t.alpha / s0.alpha], [M[0], -t.sigma * e], [d1, -t.sigma * (e / h - 1)], [d2, -t.sigma * ((e - h) / (h * h) - 0.5)]);
}

