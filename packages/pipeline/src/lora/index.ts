// The LoRA module's face: LoraAdapters (load / setAdapters / setScale / fuse / unfuse / unload) over a
// UNet and the two text encoders, the layout tables and the file reader.
export { LoraAdapters, type LoraLoadOptions, type LoadedLora } from './lora-adapters.js';
export { openLoraFile, openLoraSource, type LoraSource, type LoraFile, type LoraModuleKeys } from './lora-file.js';
export { mapLoraFile, resolveLoraFile, modelTargets, targetsFromKeys, type LoraModels, type MappedModule, type TargetShape, type ComponentTargets } from './lora-mapping.js';
export { detectLayout, parseKey, LAYOUTS, LORA_COMPONENTS, type LoraLayout, type LoraComponent, type ParsedKey } from './layouts.js';
export { sgmBlockTable, sgmToDiffusers, diffusersToSgm, type SgmBlockTable } from './sgm-names.js';
