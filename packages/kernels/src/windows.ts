// Flat windows: how the elementwise and reduction kernels stay under maxStorageBufferBindingSize.
// An op over n elements whose tensors would bind more than the limit runs as several dispatches, each
// binding a window of every tensor. Window starts are multiples of 256 elements and each binding's
// offset is rounded down to minStorageBufferOffsetAlignment (≤ 256 bytes by the WebGPU spec); the
// remainder is passed to the kernel as an element offset (a multiple of 4 whenever the window start is,
// so vec4 indexing survives).
import { DeviceLimitError, DTYPE_BYTES, foldWorkgroups, type DispatchBinding, type GpuContext, type Tensor, type UniformLayout } from '@ssd/tensor';

/** Elements [start, start + count) of a flat op. */
export interface FlatWindow {
  readonly start: number;
  readonly count: number;
}

const WINDOW_QUANTUM = 256; // elements; keeps every window start vec4- and 256-byte-friendly

/**
 * Windows covering n elements such that `count · bytes + 256` fits the binding limit for every
 * element size in `bytesPerElem` (one entry per windowed tensor). One window when everything fits.
 */
export function planWindows(ctx: GpuContext, op: string, n: number, bytesPerElem: readonly number[]): FlatWindow[] {
  const limit = ctx.limits.maxStorageBufferBindingSize;
  const maxBytes = Math.max(...bytesPerElem);
  if (n * maxBytes <= limit) return [{ start: 0, count: n }];
  const w = Math.floor((limit - 256) / maxBytes / WINDOW_QUANTUM) * WINDOW_QUANTUM;
  if (w <= 0) throw new DeviceLimitError('maxStorageBufferBindingSize', WINDOW_QUANTUM * maxBytes + 256, limit, `${op}: one ${WINDOW_QUANTUM}-element window`);
  const out: FlatWindow[] = [];
  for (let s = 0; s < n; s += w) out.push({ start: s, count: Math.min(w, n - s) });
  return out;
}

/** A binding of `count` elements of `t` from element `start`, plus the kernel-side element offset. */
export interface WindowBinding {
  readonly binding: Tensor | DispatchBinding;
  /** Element index, inside the bound range, of element `start`. */
  readonly offsetElems: number;
}

/** Binds elements [start, start + count) of t (the whole tensor when that is the whole range). */
export function bindWindow(t: Tensor, start: number, count: number): WindowBinding {
  const bytes = DTYPE_BYTES[t.dtype];
  if (start === 0 && count >= t.size) return { binding: t, offsetElems: 0 };
  const align = Math.max(4, t.ctx.limits.minStorageBufferOffsetAlignment);
  const offset = Math.floor((start * bytes) / align) * align;
  const offsetElems = (start * bytes - offset) / bytes;
  // round the size up to 16 bytes (vec4 of f32) without running past the buffer
  const size = Math.min(t.buffer.size - offset, Math.ceil(((offsetElems + count) * bytes) / 16) * 16);
  return { binding: { buffer: t.buffer, offset, size }, offsetElems };
}

/** Invocations per workgroup and elements (vectors) per invocation of every flat kernel. */
export const FLAT_WG = 64;
export const FLAT_PER = 16;

/**
 * The entry point of a flat kernel: each invocation calls `apply(i)` for u.per (= FLAT_PER) indices
 * i < u.n, strided by the workgroup size (neighbouring invocations touch neighbouring vectors). The
 * kernel defines `fn apply(i: u32)` and the const WG. The trip count is a uniform on purpose: with a
 * constant one, LLVM unrolls the loop and lavapipe's pipeline compile grows from ~0.1 s to ~1.5 s.
 */
export const FLAT_MAIN_WGSL = /* wgsl */ `
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let base = linear_workgroup(wid, nwg) * (WG * u.per) + lid;
  for (var k = 0u; k < u.per; k++) {
    let i = base + k * WG;
    if (i < u.n) { apply(i); }
  }
}
`;

/** One input of a flat op: windowed along with the output (from element `base` + window start) or bound whole. */
export interface FlatInput {
  readonly t: Tensor;
  /** Element of t that lines up with output element 0 (default 0). */
  readonly base?: number;
  /** Bind the whole tensor in every window (a broadcast scalar). */
  readonly whole?: boolean;
}

/** Uniform layout of a flat kernel: n, per, then off0..off{k−1} (one per input), then the op's own fields. */
export function flatUniforms(inputs: number, extra: UniformLayout = []): UniformLayout {
  return [['n', 'u32'], ['per', 'u32'], ...Array.from({ length: inputs }, (_, i) => [`off${i}`, 'u32'] as const), ...extra];
}

/**
 * Records a flat op over `n` output elements in as many windows as the binding limit needs. Each
 * window sets u.n (in vectors of `vec`), u.off<i> (input i's first vector inside its binding) and,
 * for layouts that have it, u.start (the window's first output vector, for kernels that index whole
 * inputs by the global output index).
 */
export function dispatchFlat(
  ctx: GpuContext,
  a: {
    pipeline: GPUComputePipeline;
    label: string;
    n: number;
    vec: number;
    inputs: readonly FlatInput[];
    out: Tensor;
    layout: UniformLayout;
    values?: Record<string, number>;
  },
): void {
  const windowed = a.inputs.filter((i) => !i.whole).map((i) => DTYPE_BYTES[i.t.dtype]);
  const windows = planWindows(ctx, a.label, a.n, [...windowed, DTYPE_BYTES[a.out.dtype]]);
  for (const w of windows) {
    const values: Record<string, number> = { ...a.values, n: Math.ceil(w.count / a.vec), per: FLAT_PER, start: w.start / a.vec };
    const bindings = a.inputs.map((inp, i) => {
      if (inp.whole) {
        values[`off${i}`] = 0;
        return inp.t;
      }
      const b = bindWindow(inp.t, (inp.base ?? 0) + w.start, w.count);
      if (b.offsetElems % a.vec !== 0) throw new Error(`${a.label}: window offset ${b.offsetElems} is not a multiple of ${a.vec}`);
      values[`off${i}`] = b.offsetElems / a.vec;
      return b.binding;
    });
    const o = bindWindow(a.out, w.start, w.count);
    if (o.offsetElems !== 0) throw new Error(`${a.label}: output window at element ${w.start} is not aligned`);
    ctx.dispatch({
      pipeline: a.pipeline,
      bindings: [...bindings, o.binding],
      uniforms: { layout: a.layout, values },
      workgroups: foldWorkgroups(Math.ceil(values.n / (FLAT_WG * FLAT_PER)), ctx.limits.maxComputeWorkgroupsPerDimension),
      label: windows.length > 1 ? `${a.label} window ${w.start}+${w.count}` : a.label,
    });
  }
}

/**
 * Throws DeviceLimitError (before anything is allocated or recorded) when a tensor an op binds whole
 * is larger than maxStorageBufferBindingSize. `parts`: [argument name, byte size].
 */
export function requireBindable(ctx: GpuContext, op: string, parts: ReadonlyArray<readonly [string, number]>): void {
  const limit = ctx.limits.maxStorageBufferBindingSize;
  for (const [arg, bytes] of parts) {
    if (bytes > limit) throw new DeviceLimitError('maxStorageBufferBindingSize', bytes, limit, `${op}: ${arg} is bound whole (split or tile the op)`);
  }
}
