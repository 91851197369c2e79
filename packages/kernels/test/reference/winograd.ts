// float64 reference of the Winograd weight transform, from the definition: U[ξ=(a,b), n, c] =
// Σ_{ky,kx} G[a][ky] · w[n, c, ky, kx] · G[b][kx] for a PyTorch OIHW 3×3 weight, in the [T, N, C] layout.
import { WINOGRAD, type WinogradTile } from '../../src/winograd-weights.js';

export function winogradWeightRef(wOIHW: ArrayLike<number>, N: number, C: number, tile: WinogradTile): Float64Array {
  const { G, n } = WINOGRAD[tile];
  const out = new Float64Array(n * n * N * C);
  for (let a = 0; a < n; a++) {
    for (let b = 0; b < n; b++) {
      for (let o = 0; o < N; o++) {
        for (let c = 0; c < C; c++) {
          let s = 0;
          for (let ky = 0; ky < 3; ky++) for (let kx = 0; kx < 3; kx++) s += G[a][ky] * wOIHW[((o * C + c) * 3 + ky) * 3 + kx] * G[b][kx];
          out[((a * n + b) * N + o) * C + c] = s;
        }
      }
    }
  }
  return out;
}
