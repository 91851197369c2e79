/** @ssd/vae — public API (filled in as the package grows). */
export {};
