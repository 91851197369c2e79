// The bytes a UNet's weights take once loaded, from tensor headers alone (low-memory plans): the file's
// elements, except the 3×3 convs that load in another layout (Winograd: (m+2)² instead of 9 taps per
// channel pair), found by the same keys the blocks build them from (CONV_ALGORITHM_BY_KEY).
import { convWeightElements } from '@ssd/kernels';
import { shapeSize, type GpuContext } from '@ssd/tensor';
import { CONV_ALGORITHM_BY_KEY } from './unet-2d-blocks.js';

/** Elements of one UNet tensor as loaded on this context in `dtype`. */
export function unetLoadedElements(ctx: GpuContext, key: string, fileShape: readonly number[], dtype: 'f16' | 'f32'): number {
  const rule = CONV_ALGORITHM_BY_KEY.find(([re]) => re.test(key));
  if (!rule || fileShape.length !== 4) return shapeSize(fileShape);
  const [outChannels, inChannels, kh, kw] = fileShape;
  if (kh !== kw) return shapeSize(fileShape);
  return convWeightElements(ctx, { dtype, inChannels, outChannels, kernelSize: kh, stride: 1 }, rule[1]);
}
