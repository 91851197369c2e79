// The pipeline worker: owns the WebGPU context and the StableDiffusionXLPipeline, so that loading
// (downloads, safetensors parsing, uploads) and the denoising loop never block the page. One request
// runs at a time; 'cancel' aborts the running one between steps (or between files while loading).
import { applyOverlay, encodePng, formatParameters, StableDiffusionXLPipeline } from '@ssd/pipeline';
import { CachedUrlSource, fmtBytes } from '@ssd/pipeline/browser';
import { BlobSource, createContext, FileListSource, UrlSource, type GpuContext, type ModelSource } from '@ssd/tensor';
import { isCheckpointUrl, type ErrorInfo, type FromWorker, type GenerateParams, type InpaintParams, type ModelChoice, type ToWorker } from './protocol.js';
import { throttled } from './throttle.js';
import { WorkerLoras } from './worker-loras.js';

const scope = self as unknown as {
  postMessage(m: FromWorker, transfer?: Transferable[]): void;
  addEventListener(type: 'message', fn: (e: MessageEvent<ToWorker>) => void): void;
};
const post = (m: FromWorker, transfer: Transferable[] = []) => scope.postMessage(m, transfer);

let ctx: GpuContext | null = null;
let pipe: StableDiffusionXLPipeline | null = null;
let modelName = '';
let running: AbortController | null = null;
let queue: Promise<unknown> = Promise.resolve();
let memoryBudgetBytes: number | undefined;
const loras = new WorkerLoras(post, describe);

scope.addEventListener('message', (e) => {
  const msg = e.data;
  if (msg.type === 'cancel') {
    running?.abort();
    return;
  }
  if (msg.type === 'lora-remove') loras.abort(msg.id); // a download in progress stops now; the removal itself queues
  queue = queue.then(() => handle(msg)).catch(() => {});
});

async function handle(msg: ToWorker): Promise<void> {
  if (msg.type === 'probe') {
    memoryBudgetBytes = msg.memoryBudgetBytes;
    await probe();
  }
  else if (msg.type === 'load') await load(msg.model, msg.dtype);
  else if (msg.type === 'generate') await generate(msg.params);
  else if (msg.type === 'inpaint') await inpaint(msg.params);
  else if (msg.type === 'lora-add') {
    if (pipe) await loras.add(pipe, msg.id, msg.lora, msg.scale);
    else post({ type: 'error', op: 'lora', id: msg.id, error: { kind: 'input', code: 'NO_MODEL', message: 'load a model first' } });
  } else if (msg.type === 'lora-scale') await loras.setScale(pipe, msg.id, msg.scale);
  else if (msg.type === 'lora-remove') await loras.remove(pipe, msg.id);
}

async function context(): Promise<GpuContext> {
  if (ctx && !ctx.isLost) return ctx;
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (!nav?.gpu) throw Object.assign(new Error('navigator.gpu is missing: this browser (or this worker) has no WebGPU'), { code: 'NO_WEBGPU' });
  try {
    ctx = await createContext({ label: 'demo', memoryBudgetBytes });
  } catch (e) {
    throw Object.assign(new Error(`no usable WebGPU adapter: ${(e as Error).message}`), { code: 'NO_WEBGPU', cause: e });
  }
  return ctx;
}

async function probe(): Promise<void> {
  try {
    const c = await context();
    const i = c.info;
    post({
      type: 'adapter',
      adapter: {
        description: i.description || [i.vendor, i.architecture, i.device].filter(Boolean).join(' ') || 'unknown adapter',
        vendor: i.vendor, architecture: i.architecture, features: i.features, f16: c.f16,
        maxBufferSize: i.limits.maxBufferSize, maxStorageBufferBindingSize: i.limits.maxStorageBufferBindingSize,
      },
    });
  } catch (e) {
    post({ type: 'no-webgpu', error: describe(e) });
  }
}

function openSource(model: ModelChoice, signal: AbortSignal): ModelSource {
  if (model.kind === 'files') return new FileListSource(new Map(model.files), model.name);
  if (model.kind === 'file') return new FileListSource(new Map([[model.file.name, model.file]]), model.file.name);
  // a checkpoint URL: the folder holding it (its file then downloads and caches like a folder's weights)
  const base = isCheckpointUrl(model.url) ? model.url.split(/[?#]/)[0].replace(/\/[^/]*$/, '') : model.url;
  if (!model.cache) return new UrlSource(base);
  const fileProgress = new Map<string, (loaded: number, total: number, state: 'cached' | 'download' | 'done') => void>();
  return new CachedUrlSource(base, {
    storage: model.storage ?? 'auto',
    signal,
    onProgress: (p) => {
      let f = fileProgress.get(p.path);
      if (!f) {
        f = throttled((loadedBytes: number, totalBytes: number, state: 'cached' | 'download' | 'done') => post({ type: 'file', path: p.path, loadedBytes, totalBytes, state }), 100, (l, t, s) => s !== 'download' || l === 0 || l === t);
        fileProgress.set(p.path, f);
      }
      f(p.loadedBytes, p.totalBytes, p.state);
    },
  });
}

async function load(model: ModelChoice, dtype: 'f16' | 'f32'): Promise<void> {
  const abort = (running = new AbortController());
  try {
    const c = await context();
    if (pipe) {
      await pipe.dispose();
      pipe = null;
    }
    const source = openSource(model, abort.signal);
    const upload = throttled(
      (component: string, loadedBytes: number, totalBytes: number) => post({ type: 'upload', component, loadedBytes, totalBytes }),
      100,
      (_c, l, t) => l === t,
    );
    const t0 = performance.now();
    const options = {
      context: c,
      dtype,
      // f16 reads the fp16 files (half the download); f32 the full-precision ones (falls back to fp16 with a notice)
      variant: dtype === 'f16' ? 'fp16' : undefined,
      signal: abort.signal,
      onLoadProgress: (p: { component: string; loadedBytes: number; totalBytes: number }) => upload(p.component, p.loadedBytes, p.totalBytes),
      onNotice: (message: string) => post({ type: 'notice', message: explainNotice(message, c) }),
    };
    // a single checkpoint (.safetensors, or a quantized .gguf that stays quantized on the GPU): a local
    // File, or a URL's file read through the source of its folder (so it is cached like any weight file)
    const single = model.kind === 'file' ? new BlobSource(model.file, model.file.name) : model.kind === 'url' && isCheckpointUrl(model.url) ? await source.open(model.url.split(/[?#]/)[0].split('/').pop()!) : null;
    pipe = single ? await StableDiffusionXLPipeline.fromSingleFile(single, options) : await StableDiffusionXLPipeline.fromPretrained(source, options);
    modelName = model.kind === 'url' ? model.url : model.kind === 'file' ? model.file.name : model.name;
    const storage = source instanceof CachedUrlSource ? await source.storage() : model.kind === 'url' ? 'none' : 'local files';
    post({
      type: 'loaded', model: modelName, dtype: pipe.dtype, storage, loadMs: performance.now() - t0,
      weightBytes: c.memory.liveBytes, defaultSize: pipe.defaultSize, scheduler: pipe.scheduler,
    });
    await loras.reattach(pipe, abort.signal); // the LoRAs of the previous model, onto this one
  } catch (e) {
    pipe = null;
    if (abort.signal.aborted) post({ type: 'cancelled', op: 'load', message: 'loading was cancelled; downloaded files stay in the cache and resume next time' });
    else post({ type: 'error', op: 'load', error: describe(e) });
  } finally {
    running = null;
  }
}

/** The pipeline's f16 fallback notice, with what it costs on this model. */
function explainNotice(message: string, c: GpuContext): string {
  if (!/shader-f16/.test(message)) return message;
  return `${message}. The weights take about twice the GPU memory of f16 and every step moves twice the bytes, so expect roughly half the speed (this adapter: ${c.info.description || c.info.vendor}).`;
}

async function generate(params: GenerateParams): Promise<void> {
  if (!pipe) {
    post({ type: 'error', op: 'generate', error: { kind: 'input', code: 'NO_MODEL', message: 'load a model first' } });
    return;
  }
  const abort = (running = new AbortController());
  try {
    pipe.setScheduler(params.scheduler);
    const r = await pipe.generate({
      prompt: params.prompt,
      negativePrompt: params.negativePrompt || undefined,
      guidanceScale: params.guidanceScale,
      numInferenceSteps: params.steps,
      width: params.width,
      height: params.height,
      seed: params.seed,
      signal: abort.signal,
      preview: true,
      onStep: (s) => post({ type: 'step', step: s.step, total: s.total, timestep: s.timestep, elapsedMs: s.elapsedMs, preview: s.preview }, s.preview ? [s.preview.data.buffer] : []),
    });
    const image = r.images[0];
    const parameters = formatParameters({
      prompt: params.prompt, negativePrompt: params.negativePrompt || undefined, steps: params.steps, scheduler: params.scheduler,
      guidanceScale: params.guidanceScale, seed: r.seed, width: params.width, height: params.height, model: modelName,
      loras: loras.forPng(),
    });
    const png = encodePng(image, { text: { parameters, Software: '@ssd (WebGPU)' } });
    post(
      {
        type: 'result', image, png, seed: Number(r.seed), parameters, totalMs: r.report.totalMs, stepMs: r.report.stepMs,
        peakBytes: r.report.peakBytes, adapter: r.report.adapter, dtype: r.report.dtype,
      },
      [image.data.buffer, png.buffer],
    );
  } catch (e) {
    if (abort.signal.aborted) post({ type: 'cancelled', op: 'generate', message: (e as Error).message });
    else {
      const info = describe(e);
      if (info.kind === 'device-lost') pipe = null; // the weights went with the device: load again
      post({ type: 'error', op: 'generate', error: info });
    }
  } finally {
    running = null;
  }
}

/** The Inpaint tab: pipe.inpaint with the painted mask; optionally composited back into the image. */
async function inpaint(p: InpaintParams): Promise<void> {
  if (!pipe) {
    post({ type: 'error', op: 'inpaint', error: { kind: 'input', code: 'NO_MODEL', message: 'load a model first (Generate tab)' } });
    return;
  }
  const abort = (running = new AbortController());
  try {
    const maskImage = { ...p.mask, channels: 1 as const };
    const r = await pipe.inpaint({
      prompt: p.prompt, negativePrompt: p.negativePrompt || undefined, guidanceScale: p.guidanceScale, numInferenceSteps: p.steps, strength: p.strength, seed: p.seed,
      image: p.image, maskImage, signal: abort.signal, onStep: (s) => post({ type: 'inpaint-step', step: s.step, total: s.total }),
    });
    const image = p.composite ? applyOverlay(maskImage, p.image, r.images[0]) : r.images[0];
    const parameters = formatParameters({
      prompt: p.prompt, negativePrompt: p.negativePrompt || undefined, steps: p.steps, scheduler: pipe.scheduler, guidanceScale: p.guidanceScale, seed: r.seed,
      width: image.width, height: image.height, model: modelName, strength: p.strength, loras: loras.forPng(),
    });
    const png = encodePng(image, { text: { parameters, Software: '@ssd (WebGPU)' } });
    post({ type: 'inpaint-result', image, png, seed: Number(r.seed), totalMs: r.report.totalMs, composite: p.composite }, [image.data.buffer, png.buffer]);
  } catch (e) {
    if (abort.signal.aborted) post({ type: 'cancelled', op: 'inpaint', message: (e as Error).message });
    else post({ type: 'error', op: 'inpaint', error: describe(e) });
  } finally {
    running = null;
  }
}

/** Sorts an error into what the page explains; `code` is the stable SsdError code (class names are minified). */
function describe(e: unknown): ErrorInfo {
  const code = String((e as { code?: string })?.code ?? (e as Error)?.name ?? 'ERROR');
  let message = (e as Error)?.message ?? String(e);
  let kind: ErrorInfo['kind'] = 'other';
  if (code === 'NO_WEBGPU') kind = 'no-webgpu';
  else if (code === 'STORAGE_QUOTA') kind = 'quota';
  else if (code === 'MODEL_LOAD' && /file not found|HTTP 404|no weights for|not a diffusers pipeline folder|no config for/.test(message)) kind = 'missing-file';
  else if (code === 'MODEL_LOAD' || code === 'CONFIG' || code === 'CHECKPOINT') kind = 'model';
  else if (code === 'DEVICE_LIMIT' || code === 'GPU_OUT_OF_MEMORY') kind = 'memory';
  else if (code === 'DEVICE_LOST') kind = 'device-lost';
  else if (code === 'INVALID_ARGUMENT') kind = 'input';
  if (kind === 'memory' && ctx) message += ` (this adapter: maxBufferSize ${fmtBytes(ctx.info.limits.maxBufferSize)}, maxStorageBufferBindingSize ${fmtBytes(ctx.info.limits.maxStorageBufferBindingSize)})`;
  return { kind, code, message };
}
