// Decoded samples to 8-bit RGB by the rules of Pillow's `convert("RGB")` on the mode
// Pillow opens the file in, so that an image imported here equals the one a PyTorch
// pipeline reads (checked against Pillow's pixels by ImageDecodingTests):
//   grey, 8 bit (L)                 → replicated
//   grey, 16 bit (I;16)             → min(v, 255), replicated (Pillow clips, it does not scale)
//   grey + alpha (LA, LA;16B)       → the grey sample's (high) byte replicated, alpha dropped
//   RGB, RGBA, 16 bit (RGB;16B, …)  → each sample's high byte, alpha dropped (not composited)

/// How the samples of one pixel are laid out.
struct SampleLayout {
    /// Samples per pixel (grey 1, grey + alpha 2, RGB 3, RGBA 4).
    var channels: Int
    /// 8 or 16 bits per sample, 16-bit samples in host byte order.
    var bitDepth: Int
    /// True when the first three samples are R, G, B; false for grey.
    var colour: Bool
}

enum PillowRGB {
    /// `height` rows of `rowBytes` bytes each holding `width` pixels of `layout`, to RGB.
    static func convert(_ samples: UnsafeRawPointer, width: Int, height: Int, rowBytes: Int,
                        layout: SampleLayout) -> [UInt8] {
        precondition(layout.bitDepth == 8 || layout.bitDepth == 16, "PillowRGB: bit depth \(layout.bitDepth)")
        precondition(layout.colour ? layout.channels >= 3 : layout.channels >= 1, "PillowRGB: \(layout.channels) channels")
        var out = [UInt8](repeating: 0, count: width * height * 3)
        let n = layout.channels
        let clipGrey16 = !layout.colour && n == 1
        out.withUnsafeMutableBufferPointer { rgb in
            for y in 0..<height {
                let row = samples + y * rowBytes
                for x in 0..<width {
                    let o = (y * width + x) * 3
                    if layout.bitDepth == 8 {
                        let p = row.assumingMemoryBound(to: UInt8.self) + x * n
                        if layout.colour {
                            rgb[o] = p[0]; rgb[o + 1] = p[1]; rgb[o + 2] = p[2]
                        } else {
                            rgb[o] = p[0]; rgb[o + 1] = p[0]; rgb[o + 2] = p[0]
                        }
                    } else {
                        let p = row.assumingMemoryBound(to: UInt16.self) + x * n
                        if layout.colour {
                            rgb[o] = UInt8(p[0] >> 8); rgb[o + 1] = UInt8(p[1] >> 8); rgb[o + 2] = UInt8(p[2] >> 8)
                        } else {
                            let v = clipGrey16 ? UInt8(min(p[0], 255)) : UInt8(p[0] >> 8)
                            rgb[o] = v; rgb[o + 1] = v; rgb[o + 2] = v
                        }
                    }
                }
            }
        }
        return out
    }
}
