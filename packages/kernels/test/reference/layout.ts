// Oracles for the layout ops: plain index arithmetic on row-major arrays (exact: these ops only move data).

export function upsampleNearest2xRef(x: ArrayLike<number>, B: number, H: number, W: number, C: number): Float64Array {
  const out = new Float64Array(B * 4 * H * W * C);
  for (let b = 0; b < B; b++)
    for (let y = 0; y < 2 * H; y++)
      for (let xx = 0; xx < 2 * W; xx++)
        for (let c = 0; c < C; c++) out[((b * 2 * H + y) * 2 * W + xx) * C + c] = x[((b * H + (y >> 1)) * W + (xx >> 1)) * C + c];
  return out;
}

export function concatChannelsRef(a: ArrayLike<number>, ca: number, b: ArrayLike<number>, cb: number): Float64Array {
  const rows = a.length / ca;
  const out = new Float64Array(rows * (ca + cb));
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < ca; j++) out[r * (ca + cb) + j] = a[r * ca + j];
    for (let j = 0; j < cb; j++) out[r * (ca + cb) + ca + j] = b[r * cb + j];
  }
  return out;
}

/** NCHW → NHWC. */
export function nchwToNhwcRef(x: ArrayLike<number>, B: number, C: number, H: number, W: number): Float64Array {
  const out = new Float64Array(B * C * H * W);
  for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) for (let p = 0; p < H * W; p++) out[(b * H * W + p) * C + c] = x[(b * C + c) * H * W + p];
  return out;
}

/** NHWC → NCHW. */
export function nhwcToNchwRef(x: ArrayLike<number>, B: number, H: number, W: number, C: number): Float64Array {
  const out = new Float64Array(B * C * H * W);
  for (let b = 0; b < B; b++) for (let p = 0; p < H * W; p++) for (let c = 0; c < C; c++) out[(b * C + c) * H * W + p] = x[(b * H * W + p) * C + c];
  return out;
}
