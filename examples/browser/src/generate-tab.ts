// The Generate tab: model source (URL, local folder or checkpoint file — a single .safetensors or a
// quantized .gguf, whose size is shown before loading), per-file download and upload progress, the
// generation controls, per-step progress with a live preview, Cancel, and the final PNG. All work
// happens in the pipeline worker; this file only sends requests and draws what comes back.
import { SCHEDULER_NAMES } from '@ssd/pipeline';
import { fmtBytes } from '@ssd/pipeline/browser';
import { $, clearMessages, fmtMs, logEvent, showMessage } from './dom.js';
import { isCheckpointUrl, type AdapterSummary, type ErrorInfo, type FromWorker, type GenerateParams, type ModelChoice, type Rgba, type ToWorker } from './protocol.js';

/** SSD-1B's nine training resolutions (segmind/SSD-1B model card), width × height. */
export const SSD1B_RESOLUTIONS: [number, number][] = [
  [1024, 1024], [1152, 896], [896, 1152], [1216, 832], [832, 1216], [1344, 768], [768, 1344], [1536, 640], [640, 1536],
];

export interface GenerateTab {
  onWorkerMessage(m: FromWorker): void;
  setAdapter(a: AdapterSummary | null): void;
}

export function setupGenerateTab(worker: Worker, onCacheChanged: () => void): GenerateTab {
  const send = (m: ToWorker) => worker.postMessage(m);
  let folder: { name: string; files: [string, File][] } | null = null;
  let checkpoint: File | null = null;
  let busy: 'load' | 'generate' | null = null;
  let loaded = false;
  let hasWebGpu = false;
  let lastParams: GenerateParams | null = null;
  let stepStart = 0;
  let downloadUrl: string | null = null;
  const fileRows = new Map<string, HTMLTableRowElement>();

  // ---- controls
  $<HTMLInputElement>('model-url').value = new URL('models/tiny-ssd1b', location.href).href;
  for (const b of document.querySelectorAll<HTMLButtonElement>('[data-preset]')) {
    b.onclick = () => {
      $<HTMLInputElement>('model-url').value = new URL(b.dataset.preset!, location.href).href;
      (document.querySelector('input[name=source][value=url]') as HTMLInputElement).checked = true;
    };
  }
  const sched = $<HTMLSelectElement>('scheduler');
  for (const n of SCHEDULER_NAMES) sched.add(new Option(n, n));
  const size = $<HTMLSelectElement>('size');
  for (const [w, h] of SSD1B_RESOLUTIONS) size.add(new Option(`${w} × ${h}`, `${w}x${h}`));
  size.add(new Option('custom…', 'custom'));
  size.onchange = () => {
    const custom = size.value === 'custom';
    $('custom-w').hidden = !custom;
    $('custom-h').hidden = !custom;
  };
  $('random-seed').onclick = () => ($<HTMLInputElement>('seed').value = String(crypto.getRandomValues(new Uint32Array(1))[0]));

  $('pick-folder').onclick = async () => {
    const picker = (window as { showDirectoryPicker?: () => Promise<FileSystemDirectoryHandle> }).showDirectoryPicker;
    if (!picker) return $<HTMLInputElement>('folder-input').click();
    try {
      const dir = await picker();
      const files: [string, File][] = [];
      await walk(dir, '', files);
      setFolder(dir.name, files);
    } catch (e) {
      if ((e as Error).name !== 'AbortError') showMessage('error', 'Could not read the folder', (e as Error).message);
    }
  };
  $<HTMLInputElement>('folder-input').onchange = (e) => {
    const list = [...((e.target as HTMLInputElement).files ?? [])];
    if (!list.length) return;
    const rel = list.map((f) => f.webkitRelativePath || f.name);
    const top = rel[0].split('/')[0];
    setFolder(top, list.map((f, i) => [rel[i].startsWith(`${top}/`) ? rel[i].slice(top.length + 1) : rel[i], f]));
  };
  function setFolder(name: string, files: [string, File][]) {
    folder = { name, files };
    const total = files.reduce((a, [, f]) => a + f.size, 0);
    $('folder-name').textContent = `${name} (${files.length} files, ${fmtBytes(total)})`;
    (document.querySelector('input[name=source][value=folder]') as HTMLInputElement).checked = true;
  }

  $('pick-file').onclick = () => $<HTMLInputElement>('file-input').click();
  $<HTMLInputElement>('file-input').onchange = (e) => {
    const f = (e.target as HTMLInputElement).files?.[0];
    if (!f) return;
    checkpoint = f;
    $('file-name').textContent = `${f.name} (${fmtBytes(f.size)})`;
    (document.querySelector('input[name=source][value=file]') as HTMLInputElement).checked = true;
  };
  // a single checkpoint at a URL: its size (one 1-byte range request) before anything is downloaded
  const urlInput = $<HTMLInputElement>('model-url');
  let sizeProbe = 0;
  urlInput.oninput = () => {
    const probe = ++sizeProbe;
    const url = urlInput.value.trim();
    $('url-size').textContent = '';
    if (!isCheckpointUrl(url)) return;
    void checkpointSize(new URL(url, location.href).href).then((bytes) => {
      if (probe === sizeProbe) $('url-size').textContent = bytes === null ? '' : `${url.split(/[?#]/)[0].split('/').pop()}: ${fmtBytes(bytes)}`;
    });
  };

  $('load').onclick = () => {
    const kind = (document.querySelector('input[name=source]:checked') as HTMLInputElement).value;
    let model: ModelChoice;
    if (kind === 'folder') {
      if (!folder) return void showMessage('warning', 'No folder chosen', 'Choose the model folder (the one holding model_index.json) first.');
      model = { kind: 'files', name: folder.name, files: folder.files };
    } else if (kind === 'file') {
      if (!checkpoint) return void showMessage('warning', 'No file chosen', 'Choose a checkpoint file (.safetensors or .gguf) first.');
      model = { kind: 'file', file: checkpoint };
    } else {
      const raw = $<HTMLInputElement>('model-url').value.trim();
      if (!raw) return void showMessage('warning', 'No model URL', 'Enter the URL of a diffusers folder, e.g. https://huggingface.co/segmind/SSD-1B/resolve/main');
      // ?storage=cache-api forces the weight cache's fallback (to try it where OPFS exists)
      const storage = new URLSearchParams(location.search).get('storage');
      model = {
        kind: 'url', url: new URL(raw, location.href).href.replace(/\/+$/, ''), cache: $<HTMLInputElement>('use-cache').checked,
        storage: storage === 'opfs' || storage === 'cache-api' ? storage : 'auto',
      };
      if ($<HTMLInputElement>('use-cache').checked) void navigator.storage?.persist?.().catch(() => {});
    }
    clearMessages();
    fileRows.clear();
    $('files').querySelector('tbody')!.replaceChildren();
    loaded = false;
    setBusy('load');
    $('load-status').textContent = 'Loading…';
    logEvent('load', { model: model.kind === 'url' ? model.url : model.kind === 'file' ? model.file.name : model.name });
    send({ type: 'load', model, dtype: $<HTMLSelectElement>('dtype').value as 'f16' | 'f32' });
  };
  $('cancel-load').onclick = () => {
    send({ type: 'cancel' });
    $('load-status').textContent = 'Cancelling…';
  };

  $('generate').onclick = () => {
    const [w, h] = size.value === 'custom' ? [Number($<HTMLInputElement>('width').value), Number($<HTMLInputElement>('height').value)] : size.value.split('x').map(Number);
    let seed = Number($<HTMLInputElement>('seed').value);
    if (!Number.isSafeInteger(seed) || seed < 0) {
      seed = crypto.getRandomValues(new Uint32Array(1))[0];
      $<HTMLInputElement>('seed').value = String(seed);
    }
    lastParams = {
      prompt: $<HTMLTextAreaElement>('prompt').value, negativePrompt: $<HTMLTextAreaElement>('negative').value,
      steps: Number($<HTMLInputElement>('steps').value), guidanceScale: Number($<HTMLInputElement>('guidance').value),
      width: w, height: h, seed, scheduler: sched.value,
    };
    clearMessages(['generate']);
    setBusy('generate');
    stepStart = performance.now();
    $<HTMLProgressElement>('step-bar').value = 0;
    $('step-status').textContent = `Encoding the prompt (${w} × ${h}, ${lastParams.steps} steps)…`;
    logEvent('generate', { ...lastParams });
    send({ type: 'generate', params: lastParams });
  };
  $('cancel').onclick = () => {
    send({ type: 'cancel' });
    ($('cancel') as HTMLButtonElement).disabled = true;
    $('step-status').textContent += ' — cancelling after the current step…';
  };

  function setBusy(what: typeof busy) {
    busy = what;
    ($('load') as HTMLButtonElement).disabled = !!busy || !hasWebGpu;
    ($('cancel-load') as HTMLButtonElement).disabled = busy !== 'load';
    ($('generate') as HTMLButtonElement).disabled = !!busy || !loaded;
    ($('cancel') as HTMLButtonElement).disabled = busy !== 'generate';
    ($('gen-box') as HTMLFieldSetElement).disabled = !loaded;
  }

  // ---- progress rows: one per file, bytes from the network (or cache) and bytes uploaded per component
  function row(key: string, label: string): HTMLTableRowElement {
    let tr = fileRows.get(key);
    if (!tr) {
      tr = document.createElement('tr');
      tr.dataset.key = key;
      tr.innerHTML = '<td class="name"></td><td class="bar"><progress value="0" max="1"></progress></td><td class="bytes"></td>';
      tr.cells[0].textContent = label;
      $('files').querySelector('tbody')!.append(tr);
      fileRows.set(key, tr);
    }
    return tr;
  }
  function setRow(tr: HTMLTableRowElement, loadedBytes: number, totalBytes: number, note: string) {
    const bar = tr.querySelector('progress')!;
    if (Number.isFinite(totalBytes) && totalBytes > 0) {
      bar.max = totalBytes;
      bar.value = loadedBytes;
    } else bar.removeAttribute('value');
    tr.cells[2].textContent = `${fmtBytes(loadedBytes)}${Number.isFinite(totalBytes) ? ` / ${fmtBytes(totalBytes)}` : ''}`;
    if (note) tr.cells[2].append(Object.assign(document.createElement('small'), { textContent: note }));
  }

  function draw(img: Rgba, scaleTo?: [number, number]) {
    const canvas = $<HTMLCanvasElement>('image');
    const data = new ImageData(new Uint8ClampedArray(img.data), img.width, img.height);
    if (!scaleTo) {
      canvas.width = img.width;
      canvas.height = img.height;
      canvas.getContext('2d')!.putImageData(data, 0, 0);
      return;
    }
    const off = new OffscreenCanvas(img.width, img.height);
    off.getContext('2d')!.putImageData(data, 0, 0);
    canvas.width = scaleTo[0];
    canvas.height = scaleTo[1];
    const g = canvas.getContext('2d')!;
    g.imageSmoothingQuality = 'high';
    g.drawImage(off, 0, 0, scaleTo[0], scaleTo[1]);
  }

  function explain(op: 'load' | 'generate', e: ErrorInfo) {
    const p = lastParams;
    const titles: Record<ErrorInfo['kind'], string> = {
      'no-webgpu': 'WebGPU is not available',
      'missing-file': 'A file of the model is missing',
      model: 'The model could not be loaded',
      quota: 'Storage quota exceeded',
      memory: op === 'generate' && p ? `Not enough GPU memory for ${p.width} × ${p.height}` : 'Not enough GPU memory for this model',
      'device-lost': 'The GPU device was lost',
      input: 'Check the settings',
      other: op === 'load' ? 'Loading failed' : 'Generation failed',
    };
    const advice: Partial<Record<ErrorInfo['kind'], string>> = {
      'missing-file': 'The folder must be a diffusers pipeline (model_index.json, unet/, vae/, text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/, scheduler/) with safetensors weights.',
      model: 'For a URL on another site, that server must allow cross-origin requests (CORS); huggingface.co does.',
      quota: 'Use “Cached models” below to clear models you no longer need, or untick “Keep downloaded weights” to stream the weights without storing them.',
      memory: 'A buffer or the GPU memory is too small for this size: choose a smaller size, use f16 (if the adapter has shader-f16), or close other tabs and apps that use the GPU.',
      'device-lost': 'This usually means the GPU ran out of memory or the driver restarted. Load the model again (cached weights are not downloaded again), then try a smaller size.',
    };
    showMessage('error', titles[e.kind], `${e.message}${advice[e.kind] ? `\n\n${advice[e.kind]}` : ''}`, op);
  }

  return {
    setAdapter(a) {
      hasWebGpu = !!a;
      const dtype = $<HTMLSelectElement>('dtype');
      if (a && !a.f16) {
        dtype.value = 'f32';
        $('dtype-note').textContent = 'This adapter has no shader-f16: f16 falls back to f32, which needs about twice the GPU memory and runs at roughly half the speed (the fp16 files are still downloaded, and upcast).';
      }
      setBusy(busy);
    },

    onWorkerMessage(m) {
      switch (m.type) {
        case 'file': {
          logEvent('file', { path: m.path, state: m.state, loadedBytes: m.loadedBytes, totalBytes: m.totalBytes });
          const note = m.state === 'cached' ? 'from the cache' : m.state === 'done' ? 'downloaded' : 'downloading';
          setRow(row(`file:${m.path}`, m.path), m.loadedBytes, m.totalBytes, note);
          break;
        }
        case 'upload':
          setRow(row(`gpu:${m.component}`, `${m.component} → GPU`), m.loadedBytes, m.totalBytes, m.loadedBytes === m.totalBytes ? 'uploaded' : 'uploading');
          break;
        case 'notice':
          logEvent('notice', { message: m.message });
          showMessage('warning', 'Note', m.message, m.message.slice(0, 40));
          break;
        case 'loaded': {
          logEvent('loaded', { dtype: m.dtype, storage: m.storage, defaultSize: m.defaultSize });
          loaded = true;
          $('load-status').textContent = `Loaded ${m.model} in ${fmtMs(m.loadMs)} — ${m.dtype}, ${fmtBytes(m.weightBytes)} on the GPU, storage: ${m.storage}.`;
          sched.value = SCHEDULER_NAMES.find((n) => n === m.scheduler) ?? 'euler';
          if (m.defaultSize !== 1024) {
            size.value = 'custom';
            $<HTMLInputElement>('width').value = $<HTMLInputElement>('height').value = String(m.defaultSize);
            size.onchange!(new Event('change'));
          }
          setBusy(null);
          onCacheChanged();
          break;
        }
        case 'step': {
          logEvent('step', { step: m.step, total: m.total, timestep: m.timestep, hasPreview: !!m.preview });
          $<HTMLProgressElement>('step-bar').max = m.total;
          $<HTMLProgressElement>('step-bar').value = m.step;
          const per = (performance.now() - stepStart) / m.step;
          $('step-status').textContent = `Step ${m.step} / ${m.total} · ${fmtMs(per)} per step · about ${fmtMs(per * (m.total - m.step))} left`;
          if (m.preview && lastParams) draw(m.preview, [lastParams.width, lastParams.height]);
          break;
        }
        case 'result': {
          logEvent('result', { seed: m.seed, width: m.image.width, height: m.image.height, totalMs: m.totalMs });
          draw(m.image);
          if (downloadUrl) URL.revokeObjectURL(downloadUrl);
          downloadUrl = URL.createObjectURL(new Blob([m.png as Uint8Array<ArrayBuffer>], { type: 'image/png' }));
          const a = $<HTMLAnchorElement>('download');
          a.href = downloadUrl;
          a.download = `ssd-${m.seed}.png`;
          a.hidden = false;
          const stepAvg = m.stepMs.reduce((x, y) => x + y, 0) / Math.max(1, m.stepMs.length);
          $('step-status').textContent = `Done in ${fmtMs(m.totalMs)} (${fmtMs(stepAvg)} per step).`;
          $('result-info').textContent = `seed ${m.seed} · ${m.image.width} × ${m.image.height} · ${m.dtype} · peak GPU memory ${fmtBytes(m.peakBytes)} · ${m.adapter}`;
          setBusy(null);
          break;
        }
        case 'cancelled':
          logEvent('cancelled', { op: m.op });
          if (m.op === 'load') $('load-status').textContent = `Cancelled: ${m.message}`;
          else $('step-status').textContent = `Cancelled (${m.message}).`;
          setBusy(null);
          onCacheChanged();
          break;
        case 'error':
          logEvent('error', { op: m.op, kind: m.error.kind, code: m.error.code, message: m.error.message });
          if (m.op === 'load') {
            $('load-status').textContent = 'Loading failed.';
            loaded = false;
          } else $('step-status').textContent = 'Generation failed.';
          if (m.error.kind === 'device-lost') loaded = false;
          explain(m.op === 'load' ? 'load' : 'generate', m.error);
          setBusy(null);
          onCacheChanged();
          break;
      }
    },
  };
}

async function walk(dir: FileSystemDirectoryHandle, prefix: string, out: [string, File][]): Promise<void> {
  for await (const [name, h] of (dir as unknown as { entries(): AsyncIterable<[string, FileSystemHandle]> }).entries()) {
    if (h.kind === 'file') out.push([prefix + name, await (h as FileSystemFileHandle).getFile()]);
    else if (!name.startsWith('.')) await walk(h as FileSystemDirectoryHandle, `${prefix}${name}/`, out);
  }
}

/** The file's size from a one-byte range request (null when the server does not say). */
async function checkpointSize(url: string): Promise<number | null> {
  try {
    const res = await fetch(url, { headers: { Range: 'bytes=0-0' } });
    await res.body?.cancel().catch(() => {});
    const total = Number(/\/(\d+)\s*$/.exec(res.headers.get('content-range') ?? '')?.[1]);
    if (Number.isFinite(total)) return total;
    const len = Number(res.headers.get('content-length'));
    return res.status === 200 && Number.isFinite(len) ? len : null;
  } catch {
    return null;
  }
}
