// The Generate tab's LoRA panel: add a LoRA by URL (cached like model files) or as a local file (picked
// or dropped), each with a weight slider (−2…2) and a remove button, several at once; and the
// "Few-step (LCM)" preset (scheduler lcm, 4 steps, guidance 1) for an LCM-LoRA. The worker loads each
// LoRA once; moving a slider only sends the new weight (set_adapters), nothing is reloaded.
import { fmtBytes } from '@ssd/pipeline/browser';
import { $, fmtMs, logEvent, showMessage } from './dom.js';
import type { ErrorInfo, FromWorker, LoraChoice, LoraInfo, ToWorker } from './protocol.js';

export interface LoraPanel {
  onWorkerMessage(m: FromWorker): void;
}

export function setupLoraPanel(worker: Worker, onCacheChanged: () => void): LoraPanel {
  const send = (m: ToWorker) => worker.postMessage(m);
  const rows = new Map<string, HTMLLIElement>();
  const ready = new Set<string>();
  let count = 0;

  function add(lora: LoraChoice, label: string) {
    const id = `lora-${++count}`;
    const li = document.createElement('li');
    li.dataset.id = id;
    li.dataset.state = 'loading';
    li.innerHTML =
      '<div class="row"><span class="name"></span><input class="weight" type="range" min="-2" max="2" step="0.05" value="1" />' +
      '<output class="weight-value">1.00</output><button type="button" class="remove" title="remove this LoRA">×</button></div>' +
      '<progress value="0" max="1"></progress><div class="muted info">loading…</div>';
    li.querySelector('.name')!.textContent = label;
    const slider = li.querySelector<HTMLInputElement>('.weight')!;
    const shown = li.querySelector('output')!;
    slider.oninput = () => (shown.textContent = Number(slider.value).toFixed(2));
    slider.onchange = () => {
      const scale = Number(slider.value);
      shown.textContent = scale.toFixed(2);
      logEvent('lora-scale', { id, scale });
      send({ type: 'lora-scale', id, scale });
    };
    li.querySelector<HTMLButtonElement>('.remove')!.onclick = () => {
      logEvent('lora-remove', { id });
      send({ type: 'lora-remove', id });
      drop(id);
    };
    $('lora-list').append(li);
    rows.set(id, li);
    logEvent('lora-add', { id, kind: lora.kind, source: lora.kind === 'url' ? lora.url : lora.file.name });
    send({ type: 'lora-add', id, lora, scale: Number(slider.value) });
  }

  function drop(id: string) {
    rows.get(id)?.remove();
    rows.delete(id);
    ready.delete(id);
  }

  function addFiles(files: Iterable<File>) {
    for (const f of files) {
      if (/\.safetensors$/i.test(f.name)) add({ kind: 'file', file: f }, f.name);
      else showMessage('warning', 'Not a LoRA file', `${f.name}: a LoRA is one .safetensors file.`, `lora-file:${f.name}`);
    }
  }

  $('lora-add-url').onclick = () => {
    const raw = $<HTMLInputElement>('lora-url').value.trim();
    if (!raw) return void showMessage('warning', 'No LoRA URL', 'Enter the URL of a LoRA .safetensors file, e.g. https://huggingface.co/latent-consistency/lcm-lora-ssd-1b/resolve/main/pytorch_lora_weights.safetensors', 'lora-url');
    const url = new URL(raw, location.href).href;
    const storage = new URLSearchParams(location.search).get('storage');
    const cache = $<HTMLInputElement>('use-cache').checked; // the model's choice: LoRA files are weights like any other
    add({ kind: 'url', url, cache, storage: storage === 'opfs' || storage === 'cache-api' ? storage : 'auto' }, url.split(/[?#]/)[0].split('/').slice(-1)[0]);
    $<HTMLInputElement>('lora-url').value = '';
  };
  for (const b of document.querySelectorAll<HTMLButtonElement>('[data-lora-preset]')) b.onclick = () => ($<HTMLInputElement>('lora-url').value = b.dataset.loraPreset!);
  $('lora-pick').onclick = () => $<HTMLInputElement>('lora-file').click();
  $<HTMLInputElement>('lora-file').onchange = (e) => {
    const input = e.target as HTMLInputElement;
    addFiles([...(input.files ?? [])]);
    input.value = '';
  };
  const box = $<HTMLFieldSetElement>('lora-box');
  box.addEventListener('dragover', (e) => e.preventDefault());
  box.addEventListener('drop', (e) => {
    e.preventDefault();
    if (!box.disabled) addFiles([...(e.dataTransfer?.files ?? [])]);
  });

  // few-step generation in one click: what Segmind-VegaRT and lcm-lora-ssd-1b are made for (no CFG batch at guidance 1)
  $('preset-lcm').onclick = () => {
    $<HTMLSelectElement>('scheduler').value = 'lcm';
    $<HTMLInputElement>('steps').value = '4';
    $<HTMLInputElement>('guidance').value = '1';
    logEvent('preset-lcm', { loras: ready.size });
    if (!ready.size) {
      showMessage('info', 'Few-step generation needs an LCM-LoRA', 'Add lcm-lora-ssd-1b (for SSD-1B) or Segmind-VegaRT (for Segmind-Vega) under LoRA: without one, 4 LCM steps give a blurry image.', 'preset-lcm');
    }
  };

  function explain(id: string, e: ErrorInfo) {
    const label = rows.get(id)?.querySelector('.name')?.textContent ?? id;
    const advice: Partial<Record<ErrorInfo['kind'], string>> = {
      'missing-file': 'Check the URL: it must name one .safetensors file (on huggingface.co, a …/resolve/main/<file>.safetensors link).',
      model: 'A LoRA is one .safetensors file of low-rank pairs (lora_down/lora_up or lora_A/lora_B) made for the loaded model’s architecture: SSD-1B, Segmind-Vega and SDXL LoRAs do not fit each other.',
      memory: 'Not enough GPU memory for this LoRA beside the model: remove other LoRAs or load the model in f16.',
    };
    showMessage('error', `The LoRA ${label} could not be added`, `${e.message}${advice[e.kind] ? `\n\n${advice[e.kind]}` : ''}`, `lora:${id}`);
  }

  function describeInfo(l: LoraInfo, loadMs: number): string {
    const modules = Object.entries(l.modules).filter(([, n]) => n).map(([c, n]) => `${c} ${n}`).join(', ');
    return `${l.layout} · ${modules} modules · ${(l.parameters / 1e6).toFixed(2)} M parameters · ${fmtBytes(l.bytes)} on the GPU · loaded in ${fmtMs(loadMs)}${l.hash ? ` · hash ${l.hash}` : ''}`;
  }

  const setEnabled = (on: boolean) => (box.disabled = !on);

  return {
    onWorkerMessage(m) {
      if (m.type === 'loaded') setEnabled(true);
      else if (m.type === 'error' && m.op === 'load') setEnabled(false);
      else if (m.type === 'lora-progress') {
        const li = rows.get(m.id);
        if (!li) return;
        const bar = li.querySelector('progress')!;
        if (Number.isFinite(m.totalBytes) && m.totalBytes > 0) [bar.max, bar.value] = [m.totalBytes, m.loadedBytes];
        li.querySelector('.info')!.textContent = `${fmtBytes(m.loadedBytes)}${Number.isFinite(m.totalBytes) ? ` / ${fmtBytes(m.totalBytes)}` : ''} ${m.state === 'cached' ? 'from the cache' : m.state === 'done' ? 'downloaded' : 'downloading'}`;
      } else if (m.type === 'lora-loaded') {
        logEvent('lora-loaded', { ...m.lora, loadMs: m.loadMs });
        const li = rows.get(m.lora.id);
        if (!li) return;
        ready.add(m.lora.id);
        li.dataset.state = 'ready';
        li.querySelector('progress')!.hidden = true;
        li.querySelector('.name')!.textContent = m.lora.name;
        li.querySelector('.info')!.textContent = describeInfo(m.lora, m.loadMs);
        onCacheChanged();
      } else if (m.type === 'lora-removed') {
        logEvent('lora-removed', { id: m.id });
        drop(m.id);
      } else if ((m.type === 'error' || m.type === 'cancelled') && m.op === 'lora') {
        logEvent(m.type, { op: m.op, id: m.id, ...(m.type === 'error' ? { kind: m.error.kind, code: m.error.code, message: m.error.message } : {}) });
        if (m.type === 'error') explain(m.id!, m.error);
        drop(m.id!);
        onCacheChanged();
      }
    },
  };
}
