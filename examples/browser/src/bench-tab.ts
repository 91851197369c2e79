// The Kernel benchmark tab: runs bench/lib/kernel-cases.ts in its own worker (so Stop can terminate
// it) and fills the table row by row; "Copy JSON" gives the results in bench:kernels' format.
import { $, fmtMs, logEvent } from './dom.js';
import type { BenchMessage, BenchRequest } from './bench-worker.js';

export function setupBenchTab(): void {
  let worker: Worker | null = null;
  let result: { adapter?: { description: string }; date: string; runs: number; cases: unknown[] } | null = null;
  const body = $('bench-table').querySelector('tbody')!;
  const status = $('bench-status');
  const buttons = (running: boolean) => {
    ($('bench-run') as HTMLButtonElement).disabled = running;
    ($('bench-stop') as HTMLButtonElement).disabled = !running;
    ($('bench-copy') as HTMLButtonElement).disabled = running || !result?.cases.length;
  };

  const stop = (message: string) => {
    worker?.terminate();
    worker = null;
    status.textContent = message;
    buttons(false);
  };

  $('bench-run').onclick = () => {
    const dtypes = [...(['f32', 'f16'] as const)].filter((d) => $<HTMLInputElement>(`bench-${d}`).checked);
    if (!dtypes.length) return void (status.textContent = 'Pick f32, f16 or both.');
    const req: BenchRequest = { type: 'run', set: $<HTMLSelectElement>('bench-set').value as 'full' | 'smoke', dtypes, runs: Math.max(1, Number($<HTMLInputElement>('bench-runs').value) || 5) };
    body.replaceChildren();
    result = { date: new Date().toISOString(), runs: req.runs, cases: [] };
    let done = 0;
    let total = 0;
    worker = new Worker(new URL('./bench-worker.ts', import.meta.url), { type: 'module' });
    worker.onmessage = (e: MessageEvent<BenchMessage>) => {
      const m = e.data;
      logEvent(`bench-${m.type}`, m.type === 'row' ? { op: m.row.op, shape: m.row.shape, dtype: m.row.dtype, ms: m.row.ms } : {});
      if (m.type === 'start') {
        total = m.cases;
        result!.adapter = m.adapter;
        status.textContent = `Running on ${m.adapter.description}… (0 / ${total})`;
      } else if (m.type === 'row' || m.type === 'skip') {
        done++;
        const tr = body.insertRow();
        const cells = m.type === 'row' ? [m.row.op, m.row.shape, m.row.dtype, m.row.ms.toFixed(m.row.ms < 10 ? 2 : 1), m.perf] : [m.op, m.shape, m.dtype, '—', m.reason];
        cells.forEach((c, i) => {
          const td = tr.insertCell();
          td.textContent = c;
          if (i === 3) td.className = 'num';
        });
        if (m.type === 'row') result!.cases.push(m.row);
        status.textContent = `Running… (${done} / ${total})`;
      } else if (m.type === 'done') stop(`Done in ${fmtMs(m.ms)} on ${result?.adapter?.description ?? 'this adapter'}.`);
      else if (m.type === 'error') stop(`Failed: ${m.message}`);
    };
    worker.onerror = (e) => stop(`The benchmark worker failed: ${e.message}`);
    worker.postMessage(req);
    status.textContent = 'Starting…';
    buttons(true);
  };
  $('bench-stop').onclick = () => stop('Stopped.');
  $('bench-copy').onclick = async () => {
    await navigator.clipboard.writeText(JSON.stringify(result, null, 2));
    status.textContent = 'Copied the results as JSON.';
  };
  buttons(false);
}
