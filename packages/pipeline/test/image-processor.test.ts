// diffusers v0.26.3 VaeImageProcessor's PIL operations vs Pillow itself: Lanczos and bicubic resizes
// (L, RGB, RGBA premultiplied, zero-height boxes), convert("L"), get_crop_region, resize_mode "fill"
// and "crop", apply_overlay (plain, soft mask, with crop coordinates). PIL's outputs below were made by
// Pillow 12.3.0 (the same integer arithmetic as 9.x–11.x in Resample.c, Convert.c, Paste.c and
// AlphaComposite.c) calling exactly what image_processor.py calls, on the pattern `pat` (sharp edges,
// so Lanczos' negative lobes clip): hex bytes, or the sha256 of the bytes for the larger outputs.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { applyOverlay } from '../src/image-overlay.js';
import { getCropRegion, image8ToRgba, preprocessImage, preprocessMask, resizeAndCrop, type CropBox } from '../src/image-processor.js';
import { toGrayscale, type Image8 } from '../src/pil-image.js';
import { pilResize } from '../src/pil-resample.js';

const PIL: Record<string, string | number[]> = {
  L: "16253251bb7a71889a0e77d7d5f189382c5e9db6a49ac4bf2712722654a29d6c4598a3a254b19b7e5ca36f5e4695246f61b96cc669b2a7623b90569c93a116a28aae69bf5a89875e3d774277b05063907c3f2f59acd1ab9f9f918289d165697188a93f78d781b65086b09ba59b6371576f8f9f97c87c4f84365495ad877a8ca5658186a66c5db255545d4b748db38b7040b7b2572f45655e7883554e7db78c7c5d4a7162ac8d4796a34696b29fd9914b97725563fdf340329d31639699ff9d49b6c07442e9a73e7f9a424f4938829ec0c5726f59a42077cabb6f90b8611592c07e7e98604a684b6095ae77eda178989c4fba688b5597708575b06d9252b9877089b9488d8d599db28f95a273608c562e995b6c6acb739cb990767a878666484689506c91aa8fa77463927c77724b6a77969056b4878c915ca79277894d8fa56b5c4ea19076b194e38d96498473bda8486ad27eae75619a8d5bce3c7a7236988f4a403e9a7e4b2f7fdfc77a6aa21250c49c624e656fdccb9db3d46774f10f0d4c",
  RGB: "2845622a4764314e6b39567444617d4f6c8a55739c6681a97793b16c96b36994b27e98b590a8c37f9dbd55739d5673996e8ba67390aa7592b87f9cca95b2d09fbadda0bdd9aad196c3b870c56c84876b93456d8632506d3e5e7943738c2c49684966807e9cb49ebbd67994b74c657f657e6e86ab9d8ba9c6866c847356786a92b686c984bcae3dd5582d8f4d5c4f7a9b7297bba7bfc9bfdca6b9ce52809951516f8d679e93bf8864e4223b5a2f543e657ed96d84b353785d3f6da2bfd35f7ca52b43766f87a28eb4e58abdd0c4e62c9abd0844627b7e5fa2cd5a80c54a658672b28dd1b6d6ff366388070b265f87a3dbc0deb383a04e4b687745609e506d891e476c195b86689dbbcc8296bc608a5a70b0968155e98907b1cfee8ca58867883581bcbbbaaecdcd79949a8c9d7ba3c1809db7618e5776a45fb2b6cb895481862a40d37a8d91758b3757776380a86178b8476389738d4b6b9455587492ae6ea2a8678b3e55713a4a74595151516514517b4c53838d6a98c09b7068d8572cd8949abda9cbbb8ba6dd718db26a986581b198bba2819d7f19415d5e5618c78c18b67f88777ab7417a883a72493d685f375b88395556567a2586a225aa943b8267693e5880538a4f89be4083b4783f6a780d37629cb6d06e99bf4555836d213e6f49605d89a7ab6b92cb755594b03a2f5c551e368e5c78b05a89aa1d6e8b00526b3d224ba01b2de55e18e39e22b2b74c79977f476291425c787a854a759247496963874a4ebe4a4fc14f7ab0416aa5354cb2d0e9b5cfe8b0d0eb9bcbe577a5c05c748d6a6c84757b9c708c9c6f8c59778e32859d488c5f4f72203f670f2db6192dff1637ff0737ca02238922158481226ca364517d9d842e7aab4e54adc459cbd74fb4ac56676472504d775b5871304e7e3f5d8465829d859eb550698e092656183b6642666d587654637a4f68845c6f9e72857c8ea78385cdb352ff6732e90229510f2e2f587a6996b876a1938f8883a67c9a95a5c275abc56685b26d8dc77ca1e686abd798bd7da3c84a95ab2a5e7b3d223f6d43609b86a47295b23a4965605066698ba74d518578533e7d98204f5d326940898498d9649877385b123e4b5b7d5d8fb68ea7bab9e195aa9561802645826d9277a2c65f7e9c85a0498eaa3c637f8b7996c59db9d1",
  RGBA: "34526e9236567470000100006481a4686283a1d17490adc57d98b8d4406182b27174979d37002d33435f3f40786178856280a2c7839ebbd74f7f867080828475321f3260597f888cf8590625436b7d9885a2c1ddffff000d31450c3e4c758075788bb2c9bae1ab3444442f4b89a6c8edff314d244f425f866c98b8b1d366844d898da87cab27413a91abc9f2776b93535e6d94958aadaca68e5b703dbc779b7e778aa8ad6984a0a765959d7b6e9599768ea8928871958f5e9472755b577c9aca516d8da08d989d908a9a96816e8d8d6174939c8e4c5f4f53334e6e715d7990919d84a29a8f92afa94878944a6577949e894f6c7a457094544b64253d6e809d9b85a49971618a9b88d04c193c757297b97092b4b8668a36467899b4c39751515b4e71878b90837f786c7b64425d81a19b674d445996b1ceed784f718748658597648aa79babc5a7431a40606a721639599dbad8f2567a97a85c7894c25d76955296b0cfcc1d425f8b851e3c54",
  boxTop: "9ebbd8a2bfffa6c3ff4e6b7b4966834d6acc516ed088a5c28c9cb98ba8c58fa0bd87a4c1ff192900102d00143196f8ffdffcffe3f4ffc8e5ffcce900d4f100d0ed16d4ff1aff021f405d7a44617e4c697900042100082500005c9ebbd8a2bfffa6c3ff4e6b7b4966834d6acc516ed088a5c28c9cb98ba8c58fa0bd87a4c1ff192900102d00143196f8ffdffcffe3f4ffc8e5ffcce900d4f100d0ed16d4ff1aff021f405d7a44617e4c697900042100082500005c9ebbd8a2bfffa6c3ff4e6b7b4966834d6acc516ed088a5c28c9cb98ba8c58fa0bd87a4c1ff192900102d00143196f8ffdffcffe3f4ffc8e5ffcce900d4f100d0ed16d4ff1aff021f405d7a44617e4c697900042100082500005c9ebbd8a2bfffa6c3ff4e6b7b4966834d6acc516ed088a5c28c9cb98ba8c58fa0bd87a4c1ff192900102d00143196f8ffdffcffe3f4ffc8e5ffcce900d4f100d0ed16d4ff1aff021f405d7a44617e4c697900042100082500005c9ebbd8a2bfffa6c3ff4e6b7b4966834d6acc516ed088a5c28c9cb98ba8c58fa0bd87a4c1ff192900102d00143196f8ffdffcffe3f4ffc8e5ffcce900d4f100d0ed16d4ff1aff021f405d7a44617e4c697900042100082500005c",
  boxBottom: "425f7c003350abc8e58a9ab72a4764011e3bc6e3ff6a87a44a67842946631c3956e7002d63809df80000cfecff77daf74e6b88ff0008fdff0097a8c51a37545d7a97405d7a00314e45627f000056ffff03e1feff1b389a112e3e425f7c003350abc8e58a9ab72a4764011e3bc6e3ff6a87a44a67842946631c3956e7002d63809df80000cfecff77daf74e6b88ff0008fdff0097a8c51a37545d7a97405d7a00314e45627f000056ffff03e1feff1b389a112e3e425f7c003350abc8e58a9ab72a4764011e3bc6e3ff6a87a44a67842946631c3956e7002d63809df80000cfecff77daf74e6b88ff0008fdff0097a8c51a37545d7a97405d7a00314e45627f000056ffff03e1feff1b389a112e3e425f7c003350abc8e58a9ab72a4764011e3bc6e3ff6a87a44a67842946631c3956e7002d63809df80000cfecff77daf74e6b88ff0008fdff0097a8c51a37545d7a97405d7a00314e45627f000056ffff03e1feff1b389a112e3e425f7c003350abc8e58a9ab72a4764011e3bc6e3ff6a87a44a67842946631c3956e7002d63809df80000cfecff77daf74e6b88ff0008fdff0097a8c51a37545d7a97405d7a00314e45627f000056ffff03e1feff1b389a112e3e",
  gray: "6d747b828990979ea57a92aac2dad44f677f87b0d9477099234c7594ce4d87c147db614fa1ce7c28734fcf7dc8ae56ab685565a54da21cce3b8cdbab18ca37",
  crop: [2, 3, 44, 34],
  crop2: [5, 0, 41, 40],
  fillImage: "sha256:ac737ca1c09005d93aa074f3fe2b5ae1ffe08de937fc9587936fe83c0c268c36",
  fillImageTall: "sha256:059cb90429aa0ff1b4784b55a1b9a4783c950f95b1d907f5dbf5b011fab59b21",
  cropImage: "sha256:7253319f012d6c1f3d60ecb23f8e305a1697dd9900613d70d9c128ef4759bcbd",
  overlay: "sha256:84fa2c73f7e0618bd0ec53ab1f81752688a754745dc5ed3555659f7b4b24be56",
  overlayCrop: "sha256:9ff63b6faef1fbfe7139d0f11a606e22ad48932a98b94facdc170163c7e66fa6",
  overlaySoft: "sha256:48c10e4ba3c4c5d8bf69bd700e3a56c7e6f87bf5f1512f35693c5c2a7f4c6b16",
  maskResized: "a9797ba5c24246ad9644774f8a9c819b4a5387bf84668c9fc9ac50a5d1c95413803f9a669bb544639f8a6f4645b975667b81c44a2d7c8c7f9b4c97bf998dda729284bc4397c361b63c728a50519c405880738d6b94a8a7856647a85e715b6259a8b589b7b97570738f589871413f567880738ca68b696683776971a4422aad964eb696d183396b6e7f605762606b9e6e62a880a16460bd8aca6c96525fac6eb165d08b63434c6d5b82595c4773b33e87a5a75c4498b468cdaf60504c714f4bc71847b170738f6b5c60755249a6bab0b2b097605390857e878aa04b613b69a44c4c77355f604d89a565975769c8ac87b769c33d1b82806d4f5b83b16a4cafc77e847d8ea48b44999bac526c77db6b4a877ba29078db71547140683746a88f74c36b573c6a4f4e6da2777d856a87514db3c176d386929c8f7a8d6490ab937489bb4c4e824e525063928b7ab287383597907ea4a096a087b16471899a82657eabc7753351946556b88aa4b5af5e67bd9b699298664e80836e9bae4a62838946afa59d92b9867435b8dca04f95bd62216f958d9bd3735850c7bc58c8bd7e8f8ac0482e72ccc5c3e0669c86426a4640658d6b5ca39daf6b3f95c1d4f2a87c7389552e60679178a38e61bfa670c54e8d5530665445717c83b4be82cd8580983bb85226ba8c75c38c548e9763717c77894f696258418f79d9b89ac1a073ac5da799a274b893b6976e9a95627e935b965b646c6d5567d1b48fadaea56d928d717c9167af5d727992776b745b637361606a7e6f7b73b8a6b392be962d666f7d5a7f9b984e737097a43579a2965d5a844f68c0a48ed0de5b8ccc625a66e44d6c8aab782d58453b3e73a9badd91767a695d2e7ae3a9786a43954b7dadbb9c7caf78784e49c2539e836ba5a4c36d6393c1679e55aa886b3f526f9ca45c3fa2c1d3656f949a5c9ca8869a785488407095af6bb57cc54a6c955f8c733b927e869f2580915d906b794695624f6ca185d86d9fb45f8f9b7131824f7f5b545e9a5474789a6b7194d0ce663c596e9fcf9469a9bc6c6cab565580793a4380a3584f9394af6f699a9e4a",
};

function pat(w: number, h: number, b: 1 | 3 | 4, seed: number): Image8 {
  const d = new Uint8Array(w * h * b);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < b; c++) {
        d[(y * w + x) * b + c] = (x * 7 + y * 13 + c * 29 + ((x * y + seed) % 11) * 17 + ((Math.floor(x / 3) + Math.floor(y / 2) + seed) % 4 === 0 ? 97 : 0)) & 255;
      }
    }
  }
  return { width: w, height: h, bands: b, data: d };
}

const rgbBytes = (r: { width: number; height: number; data: ArrayLike<number> }): Uint8Array => {
  const o = new Uint8Array(r.width * r.height * 3);
  for (let p = 0; p < r.width * r.height; p++) for (let c = 0; c < 3; c++) o[p * 3 + c] = r.data[p * 4 + c];
  return o;
};

function expectPil(name: string, bytes: Uint8Array): void {
  const want = PIL[name] as string;
  if (want.startsWith('sha256:')) expect(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, name).toBe(want);
  else expect(Buffer.from(bytes).toString('hex'), name).toBe(want);
}

/** The test mask: a block of 200, a block of 90, one pixel of 255, on 56×40. */
function testMask(): Image8 {
  const m = new Uint8Array(40 * 56);
  for (let y = 10; y < 18; y++) for (let x = 30; x < 41; x++) m[y * 56 + x] = 200;
  for (let y = 12; y < 14; y++) for (let x = 20; x < 24; x++) m[y * 56 + x] = 90;
  m[25 * 56 + 5] = 255;
  return { width: 56, height: 40, bands: 1, data: m };
}

describe('VaeImageProcessor PIL operations match Pillow', () => {
  it('resize with Lanczos: L, RGB, RGBA (premultiplied), up and down', () => {
    expectPil('L', pilResize(pat(37, 23, 1, 1), 16, 24).data);
    expectPil('RGB', pilResize(pat(20, 15, 3, 2), 31, 9).data);
    expectPil('RGBA', pilResize(pat(12, 10, 4, 3), 7, 13).data);
    expectPil('maskResized', toGrayscale(pilResize(pat(56, 40, 1, 9), 32, 24)).data);
  });

  it('resize of a zero-height box (resize_mode "fill"\'s edge stretch) and convert("L")', () => {
    const r = pat(30, 20, 3, 4);
    expectPil('boxTop', pilResize(r, 30, 5, [0, 0, 30, 0]).data);
    expectPil('boxBottom', pilResize(r, 30, 5, [0, 20, 30, 20]).data);
    expectPil('gray', toGrayscale(pat(9, 7, 3, 5)).data);
  });

  it('get_crop_region, then the image cropped and resized with "fill" (wide and tall), and _resize_and_crop', () => {
    const mask = testMask();
    const crop = getCropRegion(mask, 64, 48, 3);
    const cropTall = getCropRegion(mask, 32, 64, 0);
    expect(crop).toEqual(PIL.crop);
    expect(cropTall).toEqual(PIL.crop2);
    const src = image8ToRgba(pat(56, 40, 3, 6));
    expectPil('fillImage', rgbBytes(preprocessImage(src, 64, 48, crop) as never));
    expectPil('fillImageTall', rgbBytes(preprocessImage(src, 32, 64, cropTall) as never));
    expectPil('cropImage', resizeAndCrop(pat(56, 40, 3, 6), 23, 31).data);
  });

  it('apply_overlay: binary and soft masks, with crop coordinates', () => {
    const m = testMask();
    const mask = { width: 56, height: 40, data: m.data, channels: 1 as const };
    const src = image8ToRgba(pat(56, 40, 3, 6));
    const out = image8ToRgba(pat(56, 40, 3, 8));
    expectPil('overlay', rgbBytes(applyOverlay(mask, src, src, null)));
    expectPil('overlayCrop', rgbBytes(applyOverlay(mask, src, out, getCropRegion(m, 64, 48, 3) as CropBox)));
    expectPil('overlaySoft', rgbBytes(applyOverlay({ width: 56, height: 40, data: pat(56, 40, 1, 9).data, channels: 1 }, src, out, null)));
  });

  it('mask_processor: resized masks binarize at 128 (8-bit) and 0.5 (float, nearest resize)', () => {
    const soft = pat(56, 40, 1, 9);
    const resized = toGrayscale(pilResize(soft, 32, 24)).data;
    const bin = preprocessMask({ width: 56, height: 40, data: soft.data, channels: 1 }, 32, 24, null);
    expect(Array.from(bin)).toEqual(Array.from(resized, (v) => (v >= 128 ? 1 : 0)));
    // float masks: torch's legacy nearest (source index floorf(i · (float)(in/out)), in float32), threshold 0.5
    const f = Float32Array.from(soft.data, (v) => v / 255);
    const fb = preprocessMask({ width: 56, height: 40, data: f, channels: 1 }, 32, 24, null);
    for (let y = 0; y < 24; y++) for (let x = 0; x < 32; x++) expect(fb[y * 32 + x]).toBe(f[Math.floor(Math.fround(y * Math.fround(40 / 24))) * 56 + Math.floor(Math.fround(x * Math.fround(56 / 32)))] < 0.5 ? 0 : 1);
  });
});
