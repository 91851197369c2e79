// The Inpaint tab: load or drop an image, paint the region to repaint with a brush (size, erase,
// clear), choose strength and the usual settings, and run pipe.inpaint in the worker with the model
// loaded on the Generate tab. The result is shown composited into the image by default (diffusers'
// apply_overlay: outside the mask the image stays exactly as it was) and offered as a PNG.
import { $, clearMessages, fmtMs, logEvent, showMessage } from './dom.js';
import { setupMaskPainter } from './mask-painter.js';
import type { FromWorker, InpaintParams, Rgba, ToWorker } from './protocol.js';

export interface InpaintTab {
  onWorkerMessage(m: FromWorker): void;
}

export function setupInpaintTab(worker: Worker): InpaintTab {
  const send = (m: ToWorker) => worker.postMessage(m);
  let image: Rgba | null = null;
  let loaded = false;
  let busy = false;
  let downloadUrl: string | null = null;
  const painter = setupMaskPainter($<HTMLCanvasElement>('inpaint-mask'), () => ({
    size: Number($<HTMLInputElement>('brush-size').value) || 32,
    erase: $<HTMLInputElement>('brush-erase').checked,
  }));

  const update = () => {
    ($('inpaint-run') as HTMLButtonElement).disabled = busy || !loaded || !image;
    ($('inpaint-cancel') as HTMLButtonElement).disabled = !busy;
    $('inpaint-hint').textContent = !loaded ? 'Load a model on the Generate tab first.' : !image ? 'Choose or drop an image.' : 'Paint over what to repaint.';
  };

  async function setImage(file: Blob) {
    try {
      const bmp = await createImageBitmap(file, { premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
      const off = new OffscreenCanvas(bmp.width, bmp.height);
      const g = off.getContext('2d')!;
      g.drawImage(bmp, 0, 0);
      const d = g.getImageData(0, 0, bmp.width, bmp.height);
      image = { width: bmp.width, height: bmp.height, data: d.data };
      const c = $<HTMLCanvasElement>('inpaint-image');
      c.width = bmp.width;
      c.height = bmp.height;
      c.getContext('2d')!.putImageData(d, 0, 0);
      painter.reset(bmp.width, bmp.height);
      logEvent('inpaint-image', { width: bmp.width, height: bmp.height });
      update();
    } catch (e) {
      showMessage('error', 'Could not read the image', `${(e as Error).message}\n\nUse a PNG, JPEG or WebP file.`, 'inpaint');
    }
  }

  $<HTMLInputElement>('inpaint-file').onchange = (e) => {
    const f = (e.target as HTMLInputElement).files?.[0];
    if (f) void setImage(f);
  };
  const drop = $('inpaint-stack');
  drop.addEventListener('dragover', (e) => e.preventDefault());
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    const f = e.dataTransfer?.files?.[0];
    if (f) void setImage(f);
  });
  $('mask-clear').onclick = () => painter.clear();
  $('inpaint-random-seed').onclick = () => ($<HTMLInputElement>('inpaint-seed').value = String(crypto.getRandomValues(new Uint32Array(1))[0]));

  $('inpaint-run').onclick = () => {
    if (!image) return;
    if (painter.isEmpty()) return void showMessage('warning', 'Nothing to repaint', 'Paint over the part of the image to change (white in a mask file; here, the red brush).', 'inpaint');
    const params: InpaintParams = {
      prompt: $<HTMLTextAreaElement>('inpaint-prompt').value, negativePrompt: $<HTMLTextAreaElement>('inpaint-negative').value,
      steps: Number($<HTMLInputElement>('inpaint-steps').value), guidanceScale: Number($<HTMLInputElement>('inpaint-guidance').value),
      strength: Number($<HTMLInputElement>('inpaint-strength').value), seed: Number($<HTMLInputElement>('inpaint-seed').value),
      image: { ...image, data: new Uint8ClampedArray(image.data) }, mask: painter.mask(), composite: $<HTMLInputElement>('inpaint-composite').checked,
    };
    clearMessages(['inpaint']);
    busy = true;
    update();
    $<HTMLProgressElement>('inpaint-bar').value = 0;
    $('inpaint-status').textContent = `Encoding (${image.width} × ${image.height}, strength ${params.strength})…`;
    logEvent('inpaint', { prompt: params.prompt, steps: params.steps, strength: params.strength, seed: params.seed, composite: params.composite, width: image.width, height: image.height });
    send({ type: 'inpaint', params });
  };
  $('inpaint-cancel').onclick = () => send({ type: 'cancel' });

  function done(text: string) {
    busy = false;
    $('inpaint-status').textContent = text;
    update();
  }

  update();
  return {
    onWorkerMessage(m) {
      if (m.type === 'loaded') {
        loaded = true;
        update();
      } else if (m.type === 'inpaint-step') {
        $<HTMLProgressElement>('inpaint-bar').max = m.total;
        $<HTMLProgressElement>('inpaint-bar').value = m.step;
        $('inpaint-status').textContent = `Step ${m.step} / ${m.total}`;
        logEvent('inpaint-step', { step: m.step, total: m.total });
      } else if (m.type === 'inpaint-result') {
        const c = $<HTMLCanvasElement>('inpaint-result');
        c.width = m.image.width;
        c.height = m.image.height;
        c.getContext('2d')!.putImageData(new ImageData(new Uint8ClampedArray(m.image.data), m.image.width, m.image.height), 0, 0);
        c.hidden = false;
        if (downloadUrl) URL.revokeObjectURL(downloadUrl);
        downloadUrl = URL.createObjectURL(new Blob([m.png as Uint8Array<ArrayBuffer>], { type: 'image/png' }));
        const a = $<HTMLAnchorElement>('inpaint-download');
        a.href = downloadUrl;
        a.download = `ssd-inpaint-${m.seed}.png`;
        a.hidden = false;
        logEvent('inpaint-result', { seed: m.seed, width: m.image.width, height: m.image.height, composite: m.composite, totalMs: m.totalMs });
        done(`Done in ${fmtMs(m.totalMs)}${m.composite ? ' (composited: outside the mask the image is unchanged)' : ''}.`);
      } else if ((m.type === 'error' || m.type === 'cancelled') && m.op === 'inpaint') {
        logEvent(m.type, { op: m.op, ...(m.type === 'error' ? { code: m.error.code, message: m.error.message } : {}) });
        if (m.type === 'error') showMessage('error', 'Inpainting failed', m.error.message, 'inpaint');
        done(m.type === 'error' ? 'Failed.' : `Cancelled (${m.message}).`);
      } else if (m.type === 'error' && m.op === 'load') {
        loaded = false;
        update();
      }
    },
  };
}
