/** @ssd/kernels — public API (filled in as the package grows). */
export {};
