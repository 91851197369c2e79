// Finds a WebGPU implementation: the caller's, the browser's / Deno's `navigator.gpu`, or in Node the
// npm package `webgpu` (Dawn), imported lazily so that browser bundles never pull it in.
//
// The Node crash trap: dawn.node's async runner keeps a raw pointer to the instance behind the object
// that `create()` returns. If V8 collects that object while a device lives, the process crashes at
// random. We park every instance on a global that is never cleared, for the life of the process.

interface DawnModule {
  create(options: string[]): GPU;
  globals: Record<string, unknown>;
}

const KEEP_ALIVE_KEY = '__ssdWebGpuInstances';

function keepAlive(gpu: GPU): void {
  const g = globalThis as unknown as Record<string, GPU[] | undefined>;
  (g[KEEP_ALIVE_KEY] ??= []).push(gpu);
}

export function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string; deno?: string; bun?: string } } }).process;
  return !!p?.versions?.node && !p.versions.deno && !p.versions.bun;
}

export function runtimeName(): 'node' | 'deno' | 'browser' | 'bun' | 'unknown' {
  const g = globalThis as { Deno?: unknown; process?: { versions?: { bun?: string } }; window?: unknown; WorkerGlobalScope?: unknown };
  if (g.Deno) return 'deno';
  if (g.process?.versions?.bun) return 'bun';
  if (isNode()) return 'node';
  if (g.window || g.WorkerGlobalScope) return 'browser';
  return 'unknown';
}

export function envVar(name: string): string | undefined {
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  const v = p?.env?.[name];
  return v === '' ? undefined : v;
}

const dawnInstances = new Map<string, GPU>();
let globalsInstalled = false;

/** Returns a GPU object. In Node, one Dawn instance per adapter filter, kept alive forever. */
export async function getGpu(adapterFilter?: string): Promise<GPU> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu && !isNode()) return nav.gpu;
  if (!isNode()) {
    throw new Error('WebGPU is not available here: navigator.gpu is missing (use a WebGPU-enabled browser)');
  }
  const key = adapterFilter ?? '';
  const existing = dawnInstances.get(key);
  if (existing) return existing;
  const moduleName = 'webgpu'; // hidden from bundlers on purpose
  let mod: DawnModule;
  try {
    mod = (await import(/* @vite-ignore */ moduleName)) as DawnModule;
  } catch (e) {
    throw new Error(`the npm package "webgpu" (Dawn for Node) could not be loaded: ${(e as Error).message}. Install it with \`npm i webgpu\`.`, { cause: e });
  }
  if (!globalsInstalled) {
    // GPUBufferUsage, GPUMapMode, GPUShaderStage … as in browsers; never overwrite existing ones
    for (const [k, v] of Object.entries(mod.globals)) {
      if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
    }
    globalsInstalled = true;
  }
  const opts: string[] = [];
  if (adapterFilter) opts.push(`adapter=${adapterFilter}`);
  const gpu = mod.create(opts);
  keepAlive(gpu);
  dawnInstances.set(key, gpu);
  return gpu;
}
