// WGSL pieces shared by the kernel families: activation functions (applied in f32), and the small
// helpers every op file uses to pick a storage dtype. The prologue itself (enables, S/A aliases,
// constants, uniforms) comes from @ssd/tensor's `prologue`.

export type Activation = 'none' | 'silu' | 'gelu' | 'gelu_tanh' | 'quick_gelu';
export const ACTIVATIONS: readonly Activation[] = ['none', 'silu', 'gelu', 'gelu_tanh', 'quick_gelu'];

/**
 * `fn activate(x: f32) -> f32` for one activation, plus `erf_approx`. WGSL has no erf: we use
 * Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7), far below f32 kernel tolerances.
 * GELU (erf) as torch.nn.functional.gelu; GELU-tanh as gelu(approximate='tanh');
 * quick-GELU x·σ(1.702x) as transformers' QuickGELUActivation; SiLU x·σ(x).
 */
export function activationWgsl(act: Activation): string {
  const body: Record<Activation, string> = {
    none: 'return x;',
    silu: 'return x / (1.0 + exp(-x));',
    gelu: 'return 0.5 * x * (1.0 + erf_approx(x * 0.7071067811865476));',
    gelu_tanh: 'let c = 0.7978845608028654 * (x + 0.044715 * x * x * x); return 0.5 * x * (1.0 + tanh_safe(c));',
    quick_gelu: 'return x / (1.0 + exp(-1.702 * x));',
  };
  return /* wgsl */ `
fn erf_approx(z: f32) -> f32 {
  let a = abs(z);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-a * a);
  return select(-y, y, z >= 0.0);
}
fn tanh_safe(z: f32) -> f32 {
  // tanh(z) = 1 − 2/(e^{2z}+1), clamped so that exp never overflows
  let c = clamp(z, -15.0, 15.0);
  return 1.0 - 2.0 / (exp(2.0 * c) + 1.0);
}
fn activate(x: f32) -> f32 { ${body[act]} }
`;
}

/** The float64 CPU reference of each activation (for tests and CPU fallbacks). */
export function activationRef(act: Activation): (x: number) => number {
  switch (act) {
    case 'none':
      return (x) => x;
    case 'silu':
      return (x) => x / (1 + Math.exp(-x));
    case 'gelu':
      return (x) => 0.5 * x * (1 + erf(x / Math.SQRT2));
    case 'gelu_tanh':
      return (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
    case 'quick_gelu':
      return (x) => x / (1 + Math.exp(-1.702 * x));
  }
}

/** erf to double precision (W. J. Cody's rational approximations via a high-order series/continued fraction). */
export function erf(x: number): number {
  const a = Math.abs(x);
  let r: number;
  if (a < 2.5) {
    // Taylor series: erf(x) = 2/√π Σ (−1)^n x^(2n+1) / (n! (2n+1))
    let term = a;
    let sum = a;
    const x2 = a * a;
    for (let n = 1; n < 80; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    r = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    // continued fraction for erfc, converges fast for a ≥ 2.5
    let f = 0;
    for (let n = 60; n >= 1; n--) f = n / 2 / (a + f);
    r = 1 - Math.exp(-a * a) / Math.sqrt(Math.PI) / (a + f);
  }
  return x < 0 ? -r : r;
}
