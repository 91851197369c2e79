// Finds a WebGPU implementation: the caller's, the browser's / Deno's `navigator.gpu`, or in Node the
// npm package `webgpu` (Dawn), imported lazily so that browser bundles never pull it in.
//
// The Node crash trap: dawn.node's async runner keeps a raw pointer to the instance behind the object
// that `create()` returns. If V8 collects that object while a device lives, the process crashes at
// random. We park every instance on a global that is never cleared, for the life of the process.
// And its polling: see quietPolling.

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

let quietWaits = 0;
let realSetImmediate: typeof setImmediate | null = null;
/** Milliseconds between Dawn's polls while quietPolling runs. */
const QUIET_POLL_MS = 1;

/**
 * Awaits `p` with Dawn's polling slowed from a spin to one poll per millisecond (Node only; elsewhere
 * it just returns `p`). While any GPU promise is pending, dawn.node's AsyncRunner re-schedules
 * wgpuInstanceProcessEvents with the global setImmediate (crbug.com/dawn/1127), so the main thread
 * spins for as long as a wait lasts. On a CPU adapter that spin is a third runnable thread beside the
 * driver's two workers: measured on lavapipe with 2 cores (bench/kernels-dev/steps.ts), an SSD-1B step
 * that waited un-napped took 89 s and 30.5 s of CPU against 67 s and 19–21 s for the same step napped.
 * The binding looks setImmediate up at every poll, so while a wait runs we give it one that defers
 * native callbacks (its ticks; JS callbacks pass through untouched) by a timer; completion is seen at
 * most about a millisecond later. Reentrant: the original is restored when the last wait ends.
 */
export async function quietPolling<T>(p: Promise<T>): Promise<T> {
  const g = globalThis as { setImmediate?: typeof setImmediate };
  if (!isNode() || !g.setImmediate) return p;
  if (quietWaits++ === 0) {
    const real = (realSetImmediate = g.setImmediate);
    const quiet = (fn: (...a: unknown[]) => void, ...rest: unknown[]) =>
      Function.prototype.toString.call(fn).includes('[native code]') ? setTimeout(fn, QUIET_POLL_MS, ...rest) : real(fn, ...rest);
    // keep setImmediate's own properties (util.promisify.custom) for code that calls it meanwhile
    g.setImmediate = Object.defineProperties(quiet, Object.getOwnPropertyDescriptors(real)) as unknown as typeof setImmediate;
  }
  try {
    return await p;
  } finally {
    if (--quietWaits === 0 && realSetImmediate) {
      g.setImmediate = realSetImmediate;
      realSetImmediate = null;
    }
  }
}
