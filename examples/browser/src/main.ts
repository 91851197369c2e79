// The demo page: tabs, the WebGPU probe (adapter name and features in the header, or why there is
// no WebGPU), and the wiring between the pipeline worker and the Generate tab (with its LoRA panel)
// and the Inpaint tab.
import { $, logEvent, showMessage } from './dom.js';
import { setupBenchTab } from './bench-tab.js';
import { setupCachePanel } from './cache-panel.js';
import { setupGenerateTab } from './generate-tab.js';
import { setupInpaintTab } from './inpaint-tab.js';
import { setupLoraPanel } from './lora-panel.js';
import type { FromWorker, ToWorker } from './protocol.js';

for (const tab of document.querySelectorAll<HTMLButtonElement>('[data-tab]')) {
  tab.onclick = () => {
    for (const t of document.querySelectorAll<HTMLButtonElement>('[data-tab]')) {
      t.setAttribute('aria-selected', String(t === tab));
      $(`tab-${t.dataset.tab}`).hidden = t !== tab;
    }
  };
}

const cache = setupCachePanel();
setupBenchTab();

const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
const generate = setupGenerateTab(worker, () => void cache.refresh());
const inpaint = setupInpaintTab(worker);
const loras = setupLoraPanel(worker, () => void cache.refresh());
worker.onmessage = (e: MessageEvent<FromWorker>) => {
  const m = e.data;
  if (m.type === 'adapter') {
    logEvent('adapter', { ...m.adapter });
    const a = m.adapter;
    $('adapter').textContent = `${a.description} · ${a.f16 ? 'shader-f16' : 'no shader-f16 (f32 only)'} · features: ${a.features.join(', ') || 'none'}`;
    $('adapter').title = `maxBufferSize ${a.maxBufferSize}, maxStorageBufferBindingSize ${a.maxStorageBufferBindingSize}`;
    generate.setAdapter(a);
  } else if (m.type === 'no-webgpu') {
    logEvent('no-webgpu', { message: m.error.message });
    $('adapter').textContent = 'No WebGPU';
    showMessage(
      'error',
      'WebGPU is not available in this browser',
      `${m.error.message}\n\nUse a browser with WebGPU: Chrome or Edge 113+ on Windows, macOS, ChromeOS and Android (on Linux, enable it in chrome://flags), Safari 26, or Firefox 141+ on Windows. The page must come from https:// or localhost.`,
      'webgpu',
    );
    generate.setAdapter(null);
  } else {
    inpaint.onWorkerMessage(m);
    loras.onWorkerMessage(m);
    // the Inpaint tab's and the LoRA panel's own messages stay there
    const op = m.type === 'error' || m.type === 'cancelled' ? m.op : null;
    if (!m.type.startsWith('inpaint') && !m.type.startsWith('lora-') && op !== 'inpaint' && op !== 'lora') generate.onWorkerMessage(m);
  }
};
worker.onerror = (e) => showMessage('error', 'The pipeline worker failed to start', e.message || 'see the browser console', 'worker');
// ?gpuBudgetMiB=N caps the GPU memory the pipeline may allocate, to see how the page behaves on a smaller GPU
const budgetMiB = Number(new URLSearchParams(location.search).get('gpuBudgetMiB'));
worker.postMessage({ type: 'probe', memoryBudgetBytes: budgetMiB > 0 ? budgetMiB * 2 ** 20 : undefined } satisfies ToWorker);
