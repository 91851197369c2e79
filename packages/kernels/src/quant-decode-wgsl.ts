// WGSL decoders of ggml's block formats (ggml-common.h; values as ggml-quants.c dequantize_row_*),
// reading the weight's GGUF bytes bound as `b: array<u32>`. The unit is a *group* of 32 values — a
// whole block of the 32-value types, one sub-block of a K-quant super-block (256 values) — addressed
// by its flat index g over the tensor (row n of an [N, K] weight is groups n·K/32 … (n+1)·K/32 − 1,
// whether or not rows end on a block boundary). `qhead(g)` reads what the group shares (scales,
// mins, high bits, where its quants start); `qquad(h, q)` returns values 4q … 4q+3 (q < 8) in f32,
// `qoct(h, s)` values 8s … 8s+7 (s < 4) with fewer loads (the register tiles' K step).
// Blocks of 34, 18, 22 and 210 bytes start on 2-byte boundaries half the time: `bu32` reads a word
// at any even byte offset (two loads, a funnel shift). Products d·sc·q are exact in f32 except
// q6_K's (25 bits: one rounding, as ggml's float code), and min subtraction rounds once.
import type { QuantType } from '@ssd/tensor';

const COMMON = /* wgsl */ `
// what a group of 32 shares: o = byte offset of its quants; x, y, z type-specific; d, m scale and min
struct QH { o: u32, x: u32, y: u32, z: u32, d: f32, m: f32 }
// the u32 at even byte offset o
fn bu32(o: u32) -> u32 {
  let w = o >> 2u;
  let lo = b[w];
  return select(lo, (lo >> 16u) | (b[w + 1u] << 16u), (o & 2u) != 0u);
}
// the 8 bytes at even byte offset o as two words (three loads where two bu32 would take four)
fn bu64(o: u32) -> vec2<u32> {
  let w = o >> 2u;
  let x0 = b[w];
  let x1 = b[w + 1u];
  let x2 = b[w + 2u];
  return select(vec2<u32>(x0, x1), vec2<u32>((x0 >> 16u) | (x1 << 16u), (x1 >> 16u) | (x2 << 16u)), (o & 2u) != 0u);
}
// the 8 bytes at a 4-aligned byte offset
fn bw64(o: u32) -> vec2<u32> { let w = o >> 2u; return vec2<u32>(b[w], b[w + 1u]); }
// values 8s … 8s+7 of a group: the register tiles' K step
struct Oct { l: A4, h: A4 }
// the f16 at even byte offset o
fn bhalf(o: u32) -> f32 { return unpack2x16float(b[o >> 2u])[(o >> 1u) & 1u]; }
// the four bytes of w, low first, unsigned and sign-extended
fn bytes4(w: u32) -> vec4<u32> { return (vec4<u32>(w) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu); }
fn sbytes4(w: u32) -> vec4<i32> { return (vec4<i32>(bitcast<i32>(w)) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u); }
// low (q < 4) or high (q ≥ 4) nibbles of the 16 nibble bytes at o: values 4q … 4q+3 of a 32-value block
fn nibbles(o: u32, q: u32) -> u32 { return (bu32(o + 4u * (q & 3u)) >> (4u * (q >> 2u))) & 0x0f0f0f0fu; }
// the same for values 8s … 8s+7, from the 8 nibble bytes at o + 8·(s & 1) (read by bu64 or bw64)
fn nibbles8(v: vec2<u32>, s: u32) -> vec2<u32> { return (v >> vec2<u32>(4u * (s >> 1u))) & vec2<u32>(0x0f0f0f0fu); }
// bits 4q … 4q+3 of a 32-bit high-bit mask, as four 0/16 lanes
fn highbits(qh: u32, q: u32) -> vec4<u32> { return ((vec4<u32>(qh >> (4u * q)) >> vec4<u32>(0u, 1u, 2u, 3u)) & vec4<u32>(1u)) << vec4<u32>(4u); }
`;

/** K-quants' get_scale_min_k4: 6-bit scale and min of sub-block j from the 12 scale bytes (3 words). */
const SCALE_MIN_K4 = /* wgsl */ `
fn scale_min_k4(j: u32, s0: u32, s1: u32, s2: u32) -> vec2<f32> {
  let sh = 8u * (j & 3u);
  let a = (s0 >> sh) & 0xffu; // scales[j] (j < 4) or scales[j − 4]
  let c = (s1 >> sh) & 0xffu; // scales[j + 4] (j < 4) or scales[j]
  let e = (s2 >> sh) & 0xffu; // scales[j + 4] (j ≥ 4)
  let lo = vec2<u32>(a & 63u, c & 63u);
  let hi = vec2<u32>((e & 0xfu) | ((a >> 6u) << 4u), (e >> 4u) | ((c >> 6u) << 4u));
  return vec2<f32>(select(hi, lo, j < 4u));
}
// d·scale and dmin·min of sub-block j of the super-block at byte o (4-aligned: 144 and 176 are)
fn k_scales(o: u32, j: u32) -> vec2<f32> {
  let w = o >> 2u;
  let dm = unpack2x16float(b[w]);
  return dm * scale_min_k4(j, b[w + 1u], b[w + 2u], b[w + 3u]);
}
`;

const DECODERS: Record<QuantType, string> = {
  // block_q8_0 (34 bytes): d, qs[32] int8
  q8_0: /* wgsl */ `
fn qhead(g: u32) -> QH { let o = g * 34u; return QH(o + 2u, 0u, 0u, 0u, bhalf(o), 0.0); }
fn qquad(h: QH, q: u32) -> A4 { return A4(sbytes4(bu32(h.o + 4u * q))) * h.d; }
fn qoct(h: QH, s: u32) -> Oct { let v = bu64(h.o + 8u * s); return Oct(A4(sbytes4(v.x)) * h.d, A4(sbytes4(v.y)) * h.d); }
`,
  // block_q4_0 (18 bytes): d, qs[16]; value j < 16 is the low nibble of qs[j], j + 16 the high one; q − 8
  q4_0: /* wgsl */ `
fn qhead(g: u32) -> QH { let o = g * 18u; return QH(o + 2u, 0u, 0u, 0u, bhalf(o), 0.0); }
fn qquad(h: QH, q: u32) -> A4 { return (A4(bytes4(nibbles(h.o, q))) - 8.0) * h.d; }
fn qoct(h: QH, s: u32) -> Oct { let v = nibbles8(bu64(h.o + 8u * (s & 1u)), s); return Oct((A4(bytes4(v.x)) - 8.0) * h.d, (A4(bytes4(v.y)) - 8.0) * h.d); }
`,
  // block_q4_1 (20 bytes): d, m, qs[16]; d·q + m
  q4_1: /* wgsl */ `
fn qhead(g: u32) -> QH { let o = g * 20u; return QH(o + 4u, 0u, 0u, 0u, bhalf(o), bhalf(o + 2u)); }
fn qquad(h: QH, q: u32) -> A4 { return fma(A4(bytes4(nibbles(h.o, q))), A4(h.d), A4(h.m)); }
fn qoct(h: QH, s: u32) -> Oct {
  let v = nibbles8(bw64(h.o + 8u * (s & 1u)), s);
  return Oct(fma(A4(bytes4(v.x)), A4(h.d), A4(h.m)), fma(A4(bytes4(v.y)), A4(h.d), A4(h.m)));
}
`,
  // block_q5_0 (22 bytes): d, qh (bit j = fifth bit of value j), qs[16]; q − 16
  q5_0: /* wgsl */ `
fn qhead(g: u32) -> QH { let o = g * 22u; return QH(o + 6u, bu32(o + 2u), 0u, 0u, bhalf(o), 0.0); }
fn qquad(h: QH, q: u32) -> A4 { return (A4(bytes4(nibbles(h.o, q)) | highbits(h.x, q)) - 16.0) * h.d; }
fn qoct(h: QH, s: u32) -> Oct {
  let v = nibbles8(bu64(h.o + 8u * (s & 1u)), s);
  return Oct((A4(bytes4(v.x) | highbits(h.x, 2u * s)) - 16.0) * h.d, (A4(bytes4(v.y) | highbits(h.x, 2u * s + 1u)) - 16.0) * h.d);
}
`,
  // block_q5_1 (24 bytes): d, m, qh, qs[16]; d·q + m
  q5_1: /* wgsl */ `
fn qhead(g: u32) -> QH { let o = g * 24u; return QH(o + 8u, bu32(o + 4u), 0u, 0u, bhalf(o), bhalf(o + 2u)); }
fn qquad(h: QH, q: u32) -> A4 { return fma(A4(bytes4(nibbles(h.o, q)) | highbits(h.x, q)), A4(h.d), A4(h.m)); }
fn qoct(h: QH, s: u32) -> Oct {
  let v = nibbles8(bw64(h.o + 8u * (s & 1u)), s);
  return Oct(fma(A4(bytes4(v.x) | highbits(h.x, 2u * s)), A4(h.d), A4(h.m)), fma(A4(bytes4(v.y) | highbits(h.x, 2u * s + 1u)), A4(h.d), A4(h.m)));
}
`,
  // block_q4_K (144 bytes): d, dmin, scales[12], qs[128]; sub-block j is nibble j&1 of qs[32(j>>1) …];
  // d·sc·q − dmin·m
  q4_K: /* wgsl */ `
fn qhead(g: u32) -> QH {
  let o = (g >> 3u) * 144u;
  let j = g & 7u;
  let sm = k_scales(o, j);
  return QH(o + 16u + 32u * (j >> 1u), 4u * (j & 1u), 0u, 0u, sm.x, sm.y);
}
fn qquad(h: QH, q: u32) -> A4 { return fma(A4(bytes4((b[(h.o >> 2u) + q] >> h.x) & 0x0f0f0f0fu)), A4(h.d), A4(-h.m)); }
fn qoct(h: QH, s: u32) -> Oct {
  let v = (bw64(h.o + 8u * s) >> vec2<u32>(h.x)) & vec2<u32>(0x0f0f0f0fu);
  return Oct(fma(A4(bytes4(v.x)), A4(h.d), A4(-h.m)), fma(A4(bytes4(v.y)), A4(h.d), A4(-h.m)));
}
`,
  // block_q5_K (176 bytes): d, dmin, scales[12], qh[32], qs[128]; bit j of qh[l] is value l's fifth bit
  q5_K: /* wgsl */ `
fn qhead(g: u32) -> QH {
  let o = (g >> 3u) * 176u;
  let j = g & 7u;
  let sm = k_scales(o, j);
  return QH(o + 48u + 32u * (j >> 1u), 4u * (j & 1u), o + 16u, j, sm.x, sm.y);
}
fn qquad(h: QH, q: u32) -> A4 {
  let lo = (b[(h.o >> 2u) + q] >> h.x) & 0x0f0f0f0fu;
  let hi = (b[(h.y >> 2u) + q] >> h.z) & 0x01010101u;
  return fma(A4(bytes4(lo | (hi << 4u))), A4(h.d), A4(-h.m));
}
fn qoct(h: QH, s: u32) -> Oct {
  let lo = (bw64(h.o + 8u * s) >> vec2<u32>(h.x)) & vec2<u32>(0x0f0f0f0fu);
  let hi = (bw64(h.y + 8u * s) >> vec2<u32>(h.z)) & vec2<u32>(0x01010101u);
  let v = lo | (hi << vec2<u32>(4u));
  return Oct(fma(A4(bytes4(v.x)), A4(h.d), A4(-h.m)), fma(A4(bytes4(v.y)), A4(h.d), A4(-h.m)));
}
`,
  // block_q6_K (210 bytes): ql[128], qh[64], scales[16] int8, d. Sub-block j = 4n + r: value l takes
  // nibble r>>1 of ql[64n + 32(r&1) + l], bits 2r of qh[32n + l], scale scales[8n + 2r + l/16]; q − 32
  q6_K: /* wgsl */ `
fn qhead(g: u32) -> QH {
  let o = (g >> 3u) * 210u;
  let n = (g >> 2u) & 1u;
  let r = g & 3u;
  let d = bhalf(o + 208u);
  let sc = sbytes4(bu32(o + 192u + 8u * n + 2u * r));
  return QH(o + 64u * n + 32u * (r & 1u), 4u * (r >> 1u), o + 128u + 32u * n, 2u * r, d * f32(sc.x), d * f32(sc.y));
}
fn qquad(h: QH, q: u32) -> A4 {
  let lo = (bu32(h.o + 4u * q) >> h.x) & 0x0f0f0f0fu;
  let hi = (bu32(h.y + 4u * q) >> h.z) & 0x03030303u;
  return (A4(bytes4(lo | (hi << 4u))) - 32.0) * select(h.m, h.d, q < 4u);
}
fn qoct(h: QH, s: u32) -> Oct {
  let lo = (bu64(h.o + 8u * s) >> vec2<u32>(h.x)) & vec2<u32>(0x0f0f0f0fu);
  let hi = (bu64(h.y + 8u * s) >> vec2<u32>(h.z)) & vec2<u32>(0x03030303u);
  let v = lo | (hi << vec2<u32>(4u));
  let d = select(h.m, h.d, s < 2u);
  return Oct((A4(bytes4(v.x)) - 32.0) * d, (A4(bytes4(v.y)) - 32.0) * d);
}
`,
};

/** `qhead(g) -> QH`, `qquad(h, q) -> A4` and `qoct(h, s) -> Oct` for `type`, with their helpers (needs `b` and `A4`). */
export function quantDecodeWgsl(type: QuantType): string {
  return COMMON + (type.endsWith('_K') && type !== 'q6_K' ? SCALE_MIN_K4 : '') + DECODERS[type];
}
