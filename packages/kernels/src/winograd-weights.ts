// Winograd F(m×m, 3×3) transform matrices and the load-time weight transform U = G g Gᵀ.
// A 3×3 correlation over an (m+2)×(m+2) input tile d gives an m×m output tile Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A
// (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016, §4): with T = (m+2)² points
// ξ, the convolution becomes T independent GEMMs over the channels — (m+2)²/(9m²) of the direct FLOPs
// (F(2×2): 16/36 = 1/2.25; F(4×4): 36/144 = 1/4). Interpolation points 0, ±1, ∞ (m = 2) and 0, ±1, ±2, ∞
// (m = 4); F(4×4) amplifies rounding (its Bᵀ and Aᵀ hold 4, 5 and 8), so it is offered in f32 only.
// The weight layout is [T, Cout, Cin]: point ξ's [Cout, Cin] slice is one GEMM's B operand (Linear layout).
import { f16ArrayToF32, f32ArrayToF16, InvalidArgumentError } from '@ssd/tensor';

export type WinogradTile = 2 | 4;

export interface WinogradMatrices {
  /** Output tile side m; input tile side n = m + 2. */
  readonly m: WinogradTile;
  readonly n: number;
  /** Bᵀ [n, n]: input transform. */
  readonly BT: readonly (readonly number[])[];
  /** G [n, 3]: weight transform. */
  readonly G: readonly (readonly number[])[];
  /** Aᵀ [m, n]: output transform. */
  readonly AT: readonly (readonly number[])[];
}

export const WINOGRAD: Readonly<Record<WinogradTile, WinogradMatrices>> = Object.freeze({
  2: {
    m: 2,
    n: 4,
    BT: [
      [1, 0, -1, 0],
      [0, 1, 1, 0],
      [0, -1, 1, 0],
      [0, 1, 0, -1],
    ],
    G: [
      [1, 0, 0],
      [1 / 2, 1 / 2, 1 / 2],
      [1 / 2, -1 / 2, 1 / 2],
      [0, 0, 1],
    ],
    AT: [
      [1, 1, 1, 0],
      [0, 1, -1, -1],
    ],
  },
  4: {
    m: 4,
    n: 6,
    BT: [
      [4, 0, -5, 0, 1, 0],
      [0, -4, -4, 1, 1, 0],
      [0, 4, -4, -1, 1, 0],
      [0, -2, -1, 2, 1, 0],
      [0, 2, -1, -2, 1, 0],
      [0, 4, 0, -5, 0, 1],
    ],
    G: [
      [1 / 4, 0, 0],
      [-1 / 6, -1 / 6, -1 / 6],
      [-1 / 6, 1 / 6, -1 / 6],
      [1 / 24, 1 / 12, 1 / 6],
      [1 / 24, -1 / 12, 1 / 6],
      [0, 0, 1],
    ],
    AT: [
      [1, 1, 1, 1, 1, 0],
      [0, 1, -1, 2, -2, 0],
      [0, 1, 1, 4, 4, 0],
      [0, 1, -1, 8, -8, 1],
    ],
  },
});

/** The shape of the transformed weight of an OIHW 3×3 weight: [T, Cout, Cin]. */
export function winogradWeightShape(oihw: readonly number[], tile: WinogradTile): number[] {
  if (oihw.length !== 4 || oihw[2] !== 3 || oihw[3] !== 3) throw new InvalidArgumentError(`winogradWeightShape: expected an OIHW 3×3 shape [Cout, Cin, 3, 3], got [${oihw.join(', ')}]`);
  const n = WINOGRAD[tile].n;
  return [n * n, oihw[0], oihw[1]];
}

/**
 * U[ξ, co, ci] = (G g[co, ci] Gᵀ)[ξ] for a PyTorch OIHW 3×3 weight (f32 values, or f16 bit patterns as a
 * Uint16Array), computed in float64 and rounded to f32 (then to f16 for f16 weights).
 */
export function winogradWeightFromOIHW<T extends Float32Array | Uint16Array>(data: T, oihw: readonly number[], tile: WinogradTile): { data: T; shape: number[] } {
  const shape = winogradWeightShape(oihw, tile);
  const [co, ci] = oihw;
  if (data.length !== co * ci * 9) throw new InvalidArgumentError(`winogradWeightFromOIHW: ${data.length} values for OIHW shape [${oihw.join(', ')}] (${co * ci * 9} elements)`);
  const src = data instanceof Uint16Array ? f16ArrayToF32(data) : data;
  const { G, n } = WINOGRAD[tile];
  const T = n * n;
  const out = new Float32Array(T * co * ci);
  const gg = new Float64Array(n * 3); // G g for one (co, ci)
  for (let o = 0; o < co; o++) {
    for (let i = 0; i < ci; i++) {
      const g = (o * ci + i) * 9;
      for (let a = 0; a < n; a++) for (let c = 0; c < 3; c++) gg[a * 3 + c] = G[a][0] * src[g + c] + G[a][1] * src[g + 3 + c] + G[a][2] * src[g + 6 + c];
      for (let a = 0; a < n; a++) {
        for (let b = 0; b < n; b++) out[((a * n + b) * co + o) * ci + i] = gg[a * 3] * G[b][0] + gg[a * 3 + 1] * G[b][1] + gg[a * 3 + 2] * G[b][2];
      }
    }
  }
  return { data: (data instanceof Uint16Array ? f32ArrayToF16(out) : out) as T, shape };
}
