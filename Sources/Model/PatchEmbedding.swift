
/// ViT patch embedding: a Conv2d with kernel = stride = P over NCHW images, computed as
/// unfold + GEMM. Patch (py, px) of image b is the row b·N + py·Gw + px of the unfolded
/// matrix, with columns ordered (c, ky, kx) — exactly the Conv2d weight `(E, C, P, P)` read
/// as `(E, C·P·P)`. Parameters `<name>.proj.weight (E, C, P, P)` and, optionally,
/// `<name>.proj.bias (E)` (CLIP towers have none). With LoRA the Linear's conv-shaped
/// `lora_A (r, C, P, P)` / `lora_B (E, r, 1, 1)` are PEFT's Conv2d LoRA.
public final class PatchEmbedding {
    public let name: String
    public let patchSize: Int
    public let channels: Int
    public let width: Int
    public let proj: Linear

    /// N, the patches per image (shared with the projection).
    public let rowsPerSample: SampleRows
    private let arena: ActivationArena
    private var batch = 0, height = 0, imageWidth = 0
    private let patches: ActivationBuffer    // (B·N, C·P·P)
    private let dPatches: ActivationBuffer   // (B·N, C·P·P)

    /// `patchesPerImage`: N of the owning tower's image size (a patch embedding used on
    /// its own takes it from each forward's image size).
    public init(_ name: String, patchSize: Int, channels: Int = 3, width: Int, bias: Bool,
                region: ParameterRegion, lora: LoRAConfig?, store: ParameterStore, patchesPerImage: Int = 1) {
        self.name = name
        self.patchSize = patchSize
        self.channels = channels
        self.width = width
        let rowsPerSample = SampleRows(patchesPerImage)
        self.rowsPerSample = rowsPerSample
        arena = store.activations
        proj = Linear(name + ".proj", in: channels * patchSize * patchSize, out: width, bias: bias,
                      weightShape: [width, channels, patchSize, patchSize], region: region,
                      lora: lora, store: store, rowsPerSample: rowsPerSample)
        let K = channels * patchSize * patchSize
        patches = arena.buffer(name + ".patches") { $0.samples * rowsPerSample.count * K }
        dPatches = arena.buffer(name + ".d_patches") { $0.samples * rowsPerSample.count * K }
    }

    /// Patches per image for an H×W image (H and W must be multiples of P).
    public func patchCount(height: Int, width: Int) -> Int { (height / patchSize) * (width / patchSize) }

    public func forwardFlops(batch: Int, height: Int, width: Int) -> Double {
        proj.forwardFlops(rows: batch * patchCount(height: height, width: width))
    }

    /// y (B·N, E) ← patch embeddings of images (B, C, H, W).
    public func forward(_ images: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                        batch: Int, height: Int, width: Int) {
        precondition(height % patchSize == 0 && width % patchSize == 0,
                     "PatchEmbedding \(name): image \(height)×\(width) is not a multiple of the patch size \(patchSize)")
        self.batch = batch
        self.height = height
        self.imageWidth = width
        let P = patchSize, C = channels, K = C * P * P
        let gh = height / P, gw = width / P, N = gh * gw
        arena.reserve(samples: batch, rows: rowsPerSample, perSample: N)   // on its own: the call's count
        for b in 0..<batch {
            let image = images + b * C * height * width          // (C, H, W)
            for py in 0..<gh {
                for px in 0..<gw {
                    var row = patches.data + (b * N + py * gw + px) * K   // (C·P·P)
                    for c in 0..<C {
                        for ky in 0..<P {
                            row.update(from: image + (c * height + py * P + ky) * width + px * P, count: P)
                            row += P
                        }
                    }
                }
            }
        }
        proj.forward(patches.data, y, rows: batch * N)
    }

    /// Parameter gradients from dy (B·N, E); if `dImages` (B, C, H, W) is given, adds ∂L/∂images.
    public func backward(_ dy: UnsafePointer<Float>, dImages: UnsafeMutablePointer<Float>?) {
        let P = patchSize, C = channels, K = C * P * P, H = height, W = imageWidth
        let gh = H / P, gw = W / P, N = gh * gw
        guard let dImages else { proj.backward(dy, dx: nil); return }
        dPatches.data.update(repeating: 0, count: batch * N * K)
        proj.backward(dy, dx: dPatches.data)
        // Fold: the transpose of the unfold above (patches do not overlap).
        for b in 0..<batch {
            let dImage = dImages + b * C * H * W
            for py in 0..<gh {
                for px in 0..<gw {
                    var row = UnsafePointer(dPatches.data + (b * N + py * gw + px) * K)
                    for c in 0..<C {
                        for ky in 0..<P {
                            let dst = dImage + (c * H + py * P + ky) * W + px * P
                            for kx in 0..<P { dst[kx] += row[kx] }
                            row += P
                        }
                    }
                }
            }
        }
    }
}
