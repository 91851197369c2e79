/**
 * @ssd/pipeline — StableDiffusionXLPipeline, schedulers, torch-compatible RNG, image encoding and
 * the `ssd` command line.
 */
export {};
