import ArgumentParser
import Datasets
import Formats
import Foundation
import ImageDecoding
import Import

/// `clipit embed`: image or text embeddings of a pretrained model folder, as a float32 .npy.
struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Embed images or texts with a pretrained CLIP / open_clip / timm model folder into a float32 .npy.",
        discussion: """
            The model folder holds the model's own config, one .safetensors file and (for text) \
            its tokenizer files; the family is detected from the config: config.json with \
            vision_config → transformers CLIPModel, open_clip_config.json → open_clip, config.json \
            with architecture → timm ViT (images only). Each output row is the model's projected \
            embedding of one input, in input order (unit length with --normalize). Images are \
            preprocessed with the model's evaluation transform (short-side bicubic resize, center \
            crop, mean/std). See docs/running-the-paper-setup.md.
            """)

    @Option(help: "Model folder (config + .safetensors + tokenizer files).")
    var model: String

    @Option(help: "Images: a .cds dataset file, one .png file, or a folder of .png files (sorted by name).")
    var images: String?

    @Option(help: "Texts: a UTF-8 file with one text per line.")
    var texts: String?

    @Option(help: "Output .npy file (float32, shape (inputs, embedding width)).")
    var out: String

    @Flag(help: "Scale every embedding to unit L2 norm.")
    var normalize = false

    @Option(help: "Inputs per forward pass.")
    var batch = 32

    func validate() throws {
        guard (images == nil) != (texts == nil) else {
            throw ValidationError("give exactly one of --images and --texts")
        }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch)") }
        guard out.hasSuffix(".npy") else { throw ValidationError("--out must end in .npy, got '\(out)'") }
    }

    func run() throws {
        let pretrained = try PretrainedModel(directory: model)
        let encoders = try PretrainedEncoders(pretrained, vision: images != nil, text: texts != nil)
        var rows: [Float] = []
        var width = 0
        if let texts {
            let lines = try readLines(texts)
            width = encoders.textEmbeddingDim!
            rows.reserveCapacity(lines.count * width)
            var start = 0
            while start < lines.count {
                let chunk = Array(lines[start..<min(start + batch, lines.count)])
                rows += encoders.embedTexts(chunk)
                start += chunk.count
            }
        } else if let images {
            let source = try ImageSource(path: images)
            let pre = pretrained.preprocessing!, size = pretrained.vision!.imageSize
            guard pre.cropSize == size else {
                throw ValidationError("the preprocessing crops \(pre.cropSize) px but the image tower takes \(size) px; "
                                      + "fix the folder's preprocessing config")
            }
            width = encoders.imageEmbeddingDim!
            rows.reserveCapacity(source.count * width)
            var pixels = [Float](repeating: 0, count: batch * pre.outputCount)
            var start = 0
            while start < source.count {
                let n = min(batch, source.count - start)
                for i in 0..<n {
                    try source.withImage(start + i) { bytes, h, w, c in
                        pixels.withUnsafeMutableBufferPointer {
                            pre.apply(bytes, height: h, width: w, channels: c, into: $0.baseAddress! + i * pre.outputCount)
                        }
                    }
                }
                rows += pixels.withUnsafeBufferPointer { encoders.embedImages($0.baseAddress!, batch: n) }
                start += n
            }
        }
        if normalize { normalizeRows(&rows, width: width) }
        try NPYWriter.write(rows, shape: [rows.count / width, width], to: out)
        let kind = texts != nil ? "texts" : "images"
        print("clipit embed: \(rows.count / width) \(kind) → \(out) (\(width)-d, \(pretrained.family.rawValue)"
              + "\(normalize ? ", normalised" : ""))")
    }

    private func readLines(_ path: String) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read --texts file '\(path)'")
        }
        var lines = String(decoding: data, as: UTF8.self).components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        return lines.map { $0.hasSuffix("\r") ? String($0.dropLast()) : $0 }
    }
}

/// The images of `--images`: a `.cds` file, a `.png` file or a folder of `.png` files.
private struct ImageSource {
    private enum Kind {
        case dataset(DatasetFile)
        case pngs([String])
    }
    private let kind: Kind

    init(path: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ValidationError("--images '\(path)' does not exist")
        }
        if isDirectory.boolValue {
            let names = try FileManager.default.contentsOfDirectory(atPath: path)
                .filter { $0.lowercased().hasSuffix(".png") }.sorted()
            guard !names.isEmpty else { throw ValidationError("--images folder '\(path)' has no .png files") }
            kind = .pngs(names.map { (path as NSString).appendingPathComponent($0) })
        } else if path.lowercased().hasSuffix(".png") {
            kind = .pngs([path])
        } else {
            kind = .dataset(try DatasetFile(path: path))
        }
    }

    var count: Int {
        switch kind {
        case .dataset(let d): return d.count
        case .pngs(let p): return p.count
        }
    }

    /// Calls `body` with the uint8 HWC bytes, height, width and channels of image `index`.
    func withImage(_ index: Int, _ body: (UnsafeBufferPointer<UInt8>, Int, Int, Int) throws -> Void) throws {
        switch kind {
        case .dataset(let d):
            try body(d.imageBytes(at: index), d.height, d.width, d.channels)
        case .pngs(let paths):
            let image = try ImageDecoder.decode(path: paths[index])
            try image.pixels.withUnsafeBufferPointer { try body($0, image.height, image.width, 3) }
        }
    }
}
