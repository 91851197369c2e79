// The Inpaint tab's brush: a canvas over the image at the image's resolution, painted with pointer
// events (mouse, pen, touch). Paint is opaque, erasing makes pixels transparent; the mask is the
// canvas's alpha (255 repaints, 0 keeps), which the pipeline binarizes at 128.

export interface MaskPainter {
  /** Starts over at an image's size, with nothing painted. */
  reset(width: number, height: number): void;
  clear(): void;
  /** The mask: one byte per pixel, the paint's alpha. */
  mask(): { width: number; height: number; data: Uint8Array };
  /** Whether anything is painted. */
  isEmpty(): boolean;
}

export function setupMaskPainter(canvas: HTMLCanvasElement, brush: () => { size: number; erase: boolean }): MaskPainter {
  const g = canvas.getContext('2d', { willReadFrequently: true })!;
  let last: [number, number] | null = null;
  const at = (e: PointerEvent): [number, number] => {
    const r = canvas.getBoundingClientRect();
    return [((e.clientX - r.left) * canvas.width) / r.width, ((e.clientY - r.top) * canvas.height) / r.height];
  };
  const stroke = (from: [number, number], to: [number, number]) => {
    const { size, erase } = brush();
    const scale = canvas.width / canvas.getBoundingClientRect().width || 1;
    g.globalCompositeOperation = erase ? 'destination-out' : 'source-over';
    g.strokeStyle = g.fillStyle = 'rgba(255, 64, 64, 1)';
    g.lineWidth = size * scale;
    g.lineCap = 'round';
    g.beginPath();
    g.moveTo(...from);
    g.lineTo(...to);
    g.stroke();
  };
  canvas.addEventListener('pointerdown', (e) => {
    canvas.setPointerCapture(e.pointerId);
    last = at(e);
    stroke(last, last);
  });
  canvas.addEventListener('pointermove', (e) => {
    if (!last) return;
    const p = at(e);
    stroke(last, p);
    last = p;
  });
  const end = () => (last = null);
  canvas.addEventListener('pointerup', end);
  canvas.addEventListener('pointercancel', end);

  const mask = () => {
    const px = g.getImageData(0, 0, canvas.width, canvas.height).data;
    const data = new Uint8Array(canvas.width * canvas.height);
    for (let p = 0; p < data.length; p++) data[p] = px[p * 4 + 3];
    return { width: canvas.width, height: canvas.height, data };
  };
  return {
    reset(width, height) {
      canvas.width = width;
      canvas.height = height;
      g.clearRect(0, 0, width, height);
    },
    clear: () => g.clearRect(0, 0, canvas.width, canvas.height),
    mask,
    isEmpty: () => !mask().data.some((v) => v >= 128),
  };
}
