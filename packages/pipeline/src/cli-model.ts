// What `--model` names for the CLI: a diffusers folder or URL base, or a single-file checkpoint
// (`.safetensors` or `.gguf` path or URL: A1111 / ComfyUI / Segmind / stable-diffusion.cpp), opened
// with the right loader.
import { existsSync, statSync } from 'node:fs';
import { ModelLoadError } from '@ssd/tensor';
import { StableDiffusionXLPipeline, type PipelineOptions } from './stable-diffusion-xl.js';

export type ModelKind = 'folder' | 'single-file';

/** The kind of model a `--model` value names; missing local paths are a ModelLoadError now. */
export function modelKind(model: string): ModelKind {
  const isUrl = /^https?:\/\//i.test(model);
  const singleFile = isSingleFileName(model);
  if (!isUrl) {
    if (!existsSync(model)) throw new ModelLoadError(`${singleFile ? 'checkpoint file' : 'model folder'} not found: ${model}`);
    if (statSync(model).isFile()) {
      if (!singleFile) throw new ModelLoadError(`${model} is a file but not a .safetensors or .gguf checkpoint: --model takes a diffusers folder or a single-file .safetensors / .gguf`);
      return 'single-file';
    }
    return 'folder';
  }
  return singleFile ? 'single-file' : 'folder';
}

/** A single-file checkpoint's name (path or URL): .safetensors or .gguf. */
export function isSingleFileName(model: string): boolean {
  return /\.(safetensors|gguf)$/i.test(model.split(/[?#]/)[0]);
}

/** Loads the pipeline `--model` names (`base`: the folder a UNet-only single file takes the rest from). */
export function openPipeline(model: string, options: PipelineOptions, base?: string): Promise<StableDiffusionXLPipeline> {
  if (modelKind(model) === 'single-file') return StableDiffusionXLPipeline.fromSingleFile(model, { ...options, base });
  return StableDiffusionXLPipeline.fromPretrained(model, options);
}
