// Sigma placement shared by the sigma-based schedulers (diffusers v0.26 set_timesteps): interpolating the
// training sigmas at the timesteps, Karras et al.'s ρ = 7 schedule (with timesteps read back through
// _sigma_to_t) and Lu et al.'s uniform-λ schedule.
import type { ConfigReader } from './config.js';
import { karrasSigmas, npInterp, npLinspace, npLogF32, roundHalfEven, sigmaToT } from './numpy-compat.js';

/** np.log of the float32 training sigma table, as numpy computes it (float32). */
export function logSigmaTable(sigmas: Float32Array): Float32Array {
  return sigmas.map(npLogF32);
}

/** np.interp(timesteps, arange(T), sigmas) in float64. */
export function interpSigmas(timesteps: readonly number[], table: Float32Array): number[] {
  return timesteps.map((t) => npInterp(t, table));
}

/**
 * Karras sigmas between `inSigmas`' last and first values (or the config's sigma_min / sigma_max when
 * set: diffusers reads them whenever the config has them, even for classes without those keys).
 */
export function karrasFrom(cfg: ConfigReader, sigmaLast: number, sigmaFirst: number, n: number): number[] {
  const sigmaMin = cfg.optionalNumber('sigma_min') ?? sigmaLast;
  const sigmaMax = cfg.optionalNumber('sigma_max') ?? sigmaFirst;
  return Array.from(karrasSigmas(sigmaMin, sigmaMax, n));
}

/** Fractional timesteps for sigmas (Euler keeps them; the multistep solvers round half to even). */
export function timestepsForSigmas(sigmas: readonly number[], logSigmas: Float32Array, round: boolean): number[] {
  return sigmas.map((s) => {
    const t = sigmaToT(s, logSigmas);
    return round ? roundHalfEven(t) : t;
  });
}

/**
 * DPMSolverMultistepScheduler._convert_to_lu: uniform steps from the first to the last entry of the
 * flipped log-sigma table (which diffusers v0.26 passes as "lambdas"), then σ = exp(λ).
 */
export function luSigmas(logSigmas: Float32Array, n: number): number[] {
  const lambdaMin = logSigmas[0];
  const lambdaMax = logSigmas[logSigmas.length - 1];
  return Array.from(npLinspace(0, 1, n), (r) => Math.exp(lambdaMax + r * (lambdaMin - lambdaMax)));
}
