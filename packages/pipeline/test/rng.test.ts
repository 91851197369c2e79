// TorchGenerator against torch 1.13's CPU RNG (../shared/fixtures/reference/rng.* and img2img.*): every case
// in rng.json replayed from its Python call. Fewer than 16 elements and torch.rand: bit-exact. ≥ 16 elements:
// bit-exact with the scalar kernel ('default' path, default_cpu.* tensors) and within 1 ulp of AVX2.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, NodeFileSource, SafetensorsFile } from '@ssd/tensor';
import { fixturesDir } from '../../../testing/index.js';
import { TorchGenerator, type NormalFillPath } from '../src/random/torch-generator.js';

const ref = `${fixturesDir}/reference`;
const meta = JSON.parse(readFileSync(`${ref}/rng.json`, 'utf8'));
const file = await SafetensorsFile.open(new NodeFileSource(`${ref}/rng.safetensors`));
const stored = new Set<string>(meta.tensors.map((t: { name: string }) => t.name));

interface Call {
  seeds: number[]; // one generator per seed; several = diffusers' randn_tensor with a list of generators
  kind: 'randn' | 'rand';
  shapes: number[][]; // consecutive calls on one generator
  take: number; // which call's result the tensor holds
}

/** The Python calls rng.json records, as data. An unknown form fails the test rather than being skipped. */
function parseCall(call: string): Call {
  const shape = (s: string) => s.split(',').map((d) => d.trim()).filter(Boolean).map(Number);
  let m = /^torch\.manual_seed\((-?\d+)\); then consecutive torch\.randn calls \[(.*)\]; this is call #(\d+)$/.exec(call);
  if (m) return { seeds: [Number(m[1])], kind: 'randn', shapes: [...m[2].matchAll(/\(([\d,\s]*)\)/g)].map((x) => shape(x[1])), take: Number(m[3]) };
  m = /^torch\.manual_seed\((-?\d+)\); torch\.(randn|rand)\(\(([\d,\s]*)\)\)$/.exec(call);
  if (m) return { seeds: [Number(m[1])], kind: m[2] as Call['kind'], shapes: [shape(m[3])], take: 0 };
  m = /^g = torch\.Generator\(\)\.manual_seed\((-?\d+)\); diffusers\.utils\.torch_utils\.randn_tensor\(\(([\d,\s]*)\), generator=g, dtype=torch\.float32\)$/.exec(call);
  if (m) return { seeds: [Number(m[1])], kind: 'randn', shapes: [shape(m[2])], take: 0 };
  m = /^randn_tensor\(\(([\d,\s]*)\), generator=\[torch\.Generator\(\)\.manual_seed\(s\) for s in \[([-\d,\s]*)\]\]\)/.exec(call);
  if (m) return { seeds: shape(m[2]), kind: 'randn', shapes: [shape(m[1])], take: 0 };
  throw new Error(`rng.json: unrecognised call form: ${call}`);
}

/** Runs a parsed call; a list of generators draws one batch row each (diffusers randn_tensor). */
function replay(c: Call, path: NormalFillPath): Float32Array {
  if (c.seeds.length > 1) {
    const [batch, ...rest] = c.shapes[0];
    expect(batch).toBe(c.seeds.length);
    const rows = c.seeds.map((s) => new TorchGenerator(s, { normalPath: path }).randn([1, ...rest]));
    const out = new Float32Array(rows.reduce((n, r) => n + r.length, 0));
    rows.forEach((r, i) => out.set(r, i * r.length));
    return out;
  }
  const g = new TorchGenerator(c.seeds[0], { normalPath: path });
  let out: Float32Array = new Float32Array(0);
  for (let i = 0; i <= c.take; i++) out = c.kind === 'rand' ? g.rand(c.shapes[i]) : g.randn(c.shapes[i]);
  return out;
}

const bits = new DataView(new ArrayBuffer(8));
/** Distance in float32 ulps (adjacent floats differ by 1). */
function ulps(a: number, b: number): number {
  bits.setFloat32(0, a);
  bits.setFloat32(4, b);
  const ia = bits.getInt32(0);
  const ib = bits.getInt32(4);
  const oa = ia < 0 ? -(ia & 0x7fffffff) : ia;
  const ob = ib < 0 ? -(ib & 0x7fffffff) : ib;
  return Math.abs(oa - ob);
}
function expectBitExact(out: Float32Array, want: Float32Array, what: string): void {
  expect(out.length, what).toBe(want.length);
  const bad = out.findIndex((v, i) => !Object.is(v, want[i]));
  expect(bad, `${what}: first difference at ${bad}: ${out[bad]} vs ${want[bad]}`).toBe(-1);
}

let avx2Total = 0;
let avx2Exact = 0;

describe('TorchGenerator vs torch 1.13 (rng.json)', () => {
  for (const c of meta.cases) {
    it(`${c.tensor}: ${c.call}`, async () => {
      const call = parseCall(c.call);
      const want = await file.readFloat32(c.tensor);
      const numel = call.shapes[call.take].reduce((a, b) => a * b, 1);
      if (typeof c.path === 'string') expect(c.path.startsWith('scalar')).toBe(numel < 16);
      const scalarOnly = call.kind === 'rand' || call.shapes.every((s) => s.reduce((a, b) => a * b, 1) < 16);
      // The scalar kernel of non-AVX2 builds: stored again as default_cpu.<name> where it differs.
      const plainRef = stored.has(`default_cpu.${c.tensor}`) ? await file.readFloat32(`default_cpu.${c.tensor}`) : want;
      expectBitExact(replay(call, 'default'), plainRef, 'default path');
      const avx2 = replay(call, 'avx2');
      if (scalarOnly) expectBitExact(avx2, want, 'small path / rand');
      let worst = 0;
      avx2.forEach((v, i) => {
        worst = Math.max(worst, ulps(v, want[i]));
        if (Object.is(v, want[i])) avx2Exact++;
      });
      avx2Total += avx2.length;
      expect(worst, 'AVX2 path: ulps from torch').toBeLessThanOrEqual(1);
    });
  }

  it('reports AVX2 exactness', () => {
    console.log(`AVX2 normal_fill: ${avx2Exact} of ${avx2Total} elements bit-exact (the rest within 1 ulp)`);
    expect(avx2Total).toBeGreaterThan(0);
  });
});

describe('generator state across calls', () => {
  it('replays a whole call sequence on one generator', async () => {
    const seqCases = meta.cases.filter((c: { call: string }) => c.call.includes('consecutive'));
    expect(seqCases.length).toBeGreaterThan(0);
    const first = parseCall(seqCases[0].call);
    for (const path of ['avx2', 'default'] as const) {
      const g = new TorchGenerator(first.seeds[0], { normalPath: path });
      for (const c of seqCases) {
        const call = parseCall(c.call);
        const out = g.randn(call.shapes[call.take]);
        const alt = `default_cpu.${c.tensor}`;
        const want = path === 'default' && stored.has(alt) ? alt : c.tensor;
        expectBitExact(out, await file.readFloat32(want), `${path} ${c.tensor}`);
      }
    }
  });

  it("reproduces the img2img run's four draws (VAE sample, latents noise, two scheduler steps)", async () => {
    const img = JSON.parse(readFileSync(`${ref}/img2img.json`, 'utf8'));
    const imgFile = await SafetensorsFile.open(new NodeFileSource(`${ref}/img2img.safetensors`));
    const names = new Set<string>(img.tensors.map((t: { name: string }) => t.name));
    for (const path of ['avx2', 'default'] as const) {
      const g = new TorchGenerator(img.args.seed, { normalPath: path });
      for (const draw of img.generator_draws) {
        const alt = `default_cpu.${draw.tensor}`;
        const want = path === 'default' && names.has(alt) ? alt : draw.tensor;
        expectBitExact(g.randn(draw.shape), await imgFile.readFloat32(want), `${path} ${draw.tensor}`);
      }
    }
  });

  it('caches the second Box–Muller sample of the scalar path until re-seeded', () => {
    const pair = new TorchGenerator(5).randn([2]);
    const g = new TorchGenerator(5);
    expect([g.randn([1])[0], g.randn([1])[0]]).toEqual(Array.from(pair));
    g.randn([1]); // leaves a cached sample behind
    g.manualSeed(5);
    expect(g.randn([1])[0]).toBe(pair[0]);
    const c = g.clone();
    expect(c.randn([17])).toEqual(g.randn([17]));
  });
});

describe('seeds', () => {
  it('uses the low 32 bits of the two’s-complement seed, as torch does', () => {
    const a = new TorchGenerator(7).randn([20]);
    expect(new TorchGenerator(2 ** 32 + 7).randn([20])).toEqual(a);
    expect(new TorchGenerator(7 - 2 ** 32).randn([20])).toEqual(a);
    expect(new TorchGenerator(-1).rand([8])).toEqual(new TorchGenerator(2 ** 32 - 1).rand([8]));
    expect(new TorchGenerator(Number.MAX_SAFE_INTEGER).rand([4])).toEqual(new TorchGenerator(2 ** 32 - 1).rand([4]));
  });

  it('rejects seeds that are not safe integers and bad shapes, naming the value', () => {
    for (const bad of [1.5, NaN, Infinity, 2 ** 53, -(2 ** 60)]) {
      expect(() => new TorchGenerator(bad)).toThrow(InvalidArgumentError);
      expect(() => new TorchGenerator(0).manualSeed(bad)).toThrow(new RegExp(String(bad).replace('+', '\\+')));
    }
    expect(() => new TorchGenerator(0).randn([2, -1])).toThrow(InvalidArgumentError);
    expect(() => new TorchGenerator(0, { normalPath: 'neon' as NormalFillPath })).toThrow(InvalidArgumentError);
  });

  it('draws SDXL-sized latents (time logged, not asserted)', () => {
    for (const path of ['avx2', 'default'] as const) {
      const t0 = performance.now();
      const x = new TorchGenerator(0, { normalPath: path }).randn([1, 4, 128, 128]);
      console.log(`randn [1, 4, 128, 128] (${path}): ${(performance.now() - t0).toFixed(1)} ms`);
      expect(x.every(Number.isFinite)).toBe(true);
    }
  });
});
