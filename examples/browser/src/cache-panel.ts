// "Cached models": what the weight cache holds (per model folder, or the folder of a single file — a
// checkpoint, a LoRA — with its files, size, unfinished downloads), the site's storage use and quota,
// and buttons to clear one of them or all.
import { clearCachedModels, fmtBytes, listCachedModels, weightCacheStorage } from '@ssd/pipeline/browser';
import { $, logEvent, showMessage } from './dom.js';

export function setupCachePanel(): { refresh(): Promise<void> } {
  // refreshes overlap (opening the panel, a finished load, a Clear): only the newest may show its
  // listing, or one that started before a Clear could finish last and show the cleared model again
  let latest = 0;
  async function refresh(): Promise<void> {
    const ticket = ++latest;
    const body = $('cache-list').querySelector('tbody')!;
    try {
      const [models, kind, estimate] = await Promise.all([listCachedModels(), weightCacheStorage(), navigator.storage?.estimate?.() ?? Promise.resolve(undefined)]);
      if (ticket !== latest) return;
      logEvent('cache-list', { models: models.map((m) => ({ base: m.base, files: m.files.length, paths: m.files.map((f) => f.path), sizeBytes: m.sizeBytes, partialBytes: m.partialBytes, storage: m.storage })) });
      const where = kind === 'opfs' ? 'the Origin Private File System' : kind === 'cache-api' ? 'the Cache API (no OPFS here)' : 'nowhere: this browser offers no storage for it';
      $('storage-estimate').textContent =
        `Weights are kept in ${where}.` + (estimate?.quota ? ` This site uses ${fmtBytes(estimate.usage ?? 0)} of its ${fmtBytes(estimate.quota)} quota.` : '');
      body.replaceChildren();
      if (!models.length) {
        const tr = body.insertRow();
        tr.insertCell().textContent = 'No cached models.';
      }
      for (const m of models) {
        const tr = body.insertRow();
        tr.dataset.base = m.base;
        const name = tr.insertCell();
        name.className = 'name';
        name.textContent = m.base;
        // single files (a checkpoint, a LoRA) are cached under their folder's URL: name them
        if (m.files.length && m.files.every((f) => !f.path.includes('/'))) name.append(Object.assign(document.createElement('small'), { textContent: m.files.map((f) => f.path).join(', ') }));
        name.title = m.files.map((f) => `${f.path}  ${fmtBytes(f.sizeBytes)}  ${f.etag ?? ''}`).join('\n');
        const bytes = tr.insertCell();
        bytes.className = 'bytes';
        bytes.textContent = `${m.files.length} files, ${fmtBytes(m.sizeBytes)}${m.partialBytes ? ` + ${fmtBytes(m.partialBytes)} unfinished` : ''}`;
        const btn = document.createElement('button');
        btn.textContent = 'Clear';
        btn.onclick = () => clear(m.base);
        const action = tr.insertCell();
        action.className = 'action';
        action.append(btn);
      }
    } catch (e) {
      if (ticket !== latest) return;
      body.replaceChildren();
      showMessage('error', 'Could not read the weight cache', (e as Error).message, 'cache');
    }
  }

  async function clear(base?: string): Promise<void> {
    try {
      await clearCachedModels(base);
      logEvent('cache-cleared', { base: base ?? null });
    } catch (e) {
      showMessage('error', 'Could not clear the cache', (e as Error).message, 'cache');
    }
    await refresh();
  }

  $('cache-refresh').onclick = () => void refresh();
  $('cache-clear-all').onclick = () => {
    if (confirm('Delete every cached model from this browser?')) void clear();
  };
  $('cache-box').addEventListener('toggle', () => void refresh());
  return { refresh };
}
