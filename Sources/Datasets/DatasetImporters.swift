// Importers that turn public image datasets into `.cds` files: MedMNIST-style .npz
// archives and folders of class sub-folders of PNG, JPEG and TIFF images (docs/importing.md).
import Formats
import ImageDecoding
import Foundation

/// What an importer wrote: one `.cds` file.
public struct ImportedSplit: Equatable, Sendable {
    public var path: String
    public var split: String
    public var count: Int
    public var height: Int
    public var width: Int
    public var channels: Int
    public var classNames: [String]
    /// Images per class, indexed like `classNames`.
    public var classCounts: [Int]
}

// MARK: - MedMNIST (.npz)

/// MedMNIST-style archives: arrays `<split>_images` — (N, H, W) greyscale or (N, H, W, C)
/// with C = 1, 3 or 4, uint8 — and `<split>_labels` — (N,) or (N, 1) integers — for the
/// splits train, val and test (any subset, at least one).
public enum MedMNISTImporter {
    public static let splits = ["train", "val", "test"]

    /// Writes `<outputDirectory>/<split>.cds` for every split in the archive.
    ///
    /// - Parameter classNames: names for labels 0..<k; nil names them "0", "1", … with k =
    ///   the largest label in any split + 1. A label outside the names is an error.
    /// - Throws: `ImportError` naming the archive and member (missing or mis-shaped arrays,
    ///   multi-label targets, non-uint8 images, count mismatches, corrupt data), or the
    ///   `DatasetError` of a failed write.
    @discardableResult
    public static func importNPZ(path: String, outputDirectory: String, classNames: [String]? = nil,
                                 source: String? = nil, pieceSize: Int = 1 << 20) throws -> [ImportedSplit] {
        let archive = try NPZArchive(path: path)
        archive.pieceSize = pieceSize
        func fail(_ member: String?, _ reason: String) -> ImportError {
            ImportError(path: path, member: member, kind: .invalidInput, reason: reason)
        }
        let present = splits.filter { archive.contains("\($0)_images") }
        guard !present.isEmpty else {
            throw fail(nil, "no train_images, val_images or test_images array (the archive has: \(archive.arrayNames.joined(separator: ", "))); expected a MedMNIST-style .npz")
        }

        // Headers and labels of every split first, so the class count is known before writing.
        var plans: [(split: String, images: NPYHeader, labels: [Int])] = []
        for split in present {
            let imagesName = "\(split)_images", labelsName = "\(split)_labels"
            guard archive.contains(labelsName) else {
                throw fail(nil, "'\(imagesName)' has no matching '\(labelsName)' array")
            }
            let images = try archive.header(imagesName)
            let member = imagesName + ".npy"
            guard images.descr.hasSuffix("u1") else {
                throw fail(member, "images must be uint8 (|u1), found \(images.descr); convert with .astype(np.uint8)")
            }
            guard images.shape.count == 3 || (images.shape.count == 4 && [1, 3, 4].contains(images.shape[3])) else {
                throw fail(member, "images have shape \(images.shape); expected (N, H, W) or (N, H, W, C) with C = 1, 3 or 4")
            }
            guard images.shape[1] > 0, images.shape[2] > 0 else {
                throw fail(member, "images have shape \(images.shape); height and width must be positive")
            }
            let labelsArray = try archive.readArray(labelsName)
            let labelShape = labelsArray.header.shape
            guard labelShape.count == 1 || (labelShape.count == 2 && labelShape[1] == 1) else {
                throw fail(labelsName + ".npy", "labels have shape \(labelShape); expected (N,) or (N, 1) — multi-label targets (e.g. ChestMNIST) are not supported")
            }
            let labels = try labelsArray.integers(path: path, member: labelsName + ".npy")
            guard labels.count == images.shape[0] else {
                throw fail(labelsName + ".npy", "\(labels.count) labels for \(images.shape[0]) images in '\(imagesName)'")
            }
            if let bad = labels.firstIndex(where: { $0 < 0 }) {
                throw fail(labelsName + ".npy", "label \(labels[bad]) of image \(bad) is negative")
            }
            plans.append((split, images, labels))
        }
        let largest = plans.flatMap(\.labels).max() ?? 0
        if classNames == nil, largest >= DatasetLimits.maxClasses {
            let plan = plans.first { $0.labels.contains(largest) }!
            throw fail(plan.split + "_labels.npy", "label \(largest) of image \(plan.labels.firstIndex(of: largest)!) "
                       + "implies more than the \(DatasetLimits.maxClasses) classes a dataset may have; "
                       + "check the labels (or pass --classes)")
        }
        let names = classNames ?? (0...largest).map(String.init)
        guard !names.isEmpty else { throw fail(nil, "no class names") }
        for plan in plans {
            if let bad = plan.labels.firstIndex(where: { $0 >= names.count }) {
                throw fail(plan.split + "_labels.npy", "label \(plan.labels[bad]) of image \(bad) is outside the \(names.count) class names \(names); pass --classes with one name per class")
            }
        }

        try OutputDirectory.create(outputDirectory)
        var written: [ImportedSplit] = []
        let sourceText = source ?? "medmnist npz \((path as NSString).lastPathComponent)"
        for plan in plans {
            let (n, h, w) = (plan.images.shape[0], plan.images.shape[1], plan.images.shape[2])
            let c = plan.images.shape.count == 4 ? plan.images.shape[3] : 1
            let output = outputDirectory + "/\(plan.split).cds"
            let writer = try DatasetWriter(path: output, height: h, width: w, channels: c, count: n,
                                           info: DatasetInfo(classNames: names, split: plan.split, source: sourceText))
            let imageBytes = h * w * c
            var pending = [UInt8](repeating: 0, count: imageBytes)
            var filled = 0, index = 0
            try archive.streamArray(plan.split + "_images") { _, piece in
                var offset = 0
                // Whole images straight from the piece; partial ones through `pending`.
                while offset < piece.count {
                    if filled == 0 && piece.count - offset >= imageBytes {
                        let image = UnsafeRawBufferPointer(rebasing: piece[offset..<(offset + imageBytes)])
                        try writer.append(image: UnsafeBufferPointer(start: image.baseAddress!.assumingMemoryBound(to: UInt8.self), count: imageBytes),
                                          label: plan.labels[index])
                        index += 1
                        offset += imageBytes
                        continue
                    }
                    let take = min(imageBytes - filled, piece.count - offset)
                    pending.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: filled).copyMemory(from: piece.baseAddress! + offset, byteCount: take) }
                    filled += take
                    offset += take
                    if filled == imageBytes {
                        try writer.append(image: pending, label: plan.labels[index])
                        index += 1
                        filled = 0
                    }
                }
            }
            try writer.finish()
            var counts = [Int](repeating: 0, count: names.count)
            for label in plan.labels { counts[label] += 1 }
            written.append(ImportedSplit(path: output, split: plan.split, count: n, height: h, width: w, channels: c,
                                         classNames: names, classCounts: counts))
        }
        return written
    }
}

// MARK: - Image folders

/// A folder of class sub-folders of images (torchvision `ImageFolder` layout):
/// `root/<class>/**/*.{png,jpg,jpeg,tif,tiff}`, decoded by `ImageDecoder` (libpng,
/// libjpeg-turbo, libtiff) to RGB as Pillow's `convert("RGB")`. Class names are the sorted
/// sub-folder names; files are taken in sorted path order; hidden entries (starting with
/// ".") are skipped, as are files with non-image extensions. BMP, GIF and WebP files are
/// errors (convert them). NCT-CRC-HE-100K is this layout; so is BACH's `Photos` folder,
/// whose `microscopy_ground_truth.csv` is checked against the folders (`BACHGroundTruth`).
public enum FolderImporter {
    public static let unsupportedImageExtensions: Set<String> = ["bmp", "gif", "webp"]

    /// The class names and (class, relative path) of every image under `root`.
    public static func scan(root: String) throws -> (classNames: [String], files: [(label: Int, path: String)]) {
        let manager = FileManager.default
        func fail(_ path: String, _ reason: String) -> ImportError {
            ImportError(path: path, kind: .invalidInput, reason: reason)
        }
        var isDirectory: ObjCBool = false
        guard manager.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ImportError(path: root, kind: .io, reason: "not a directory; pass the folder that holds one sub-folder per class")
        }
        func entries(_ directory: String) throws -> [String] {
            do {
                return try manager.contentsOfDirectory(atPath: directory).filter { !$0.hasPrefix(".") }.sorted()
            } catch {
                throw ImportError(path: directory, kind: .io, reason: "cannot list the directory (\(error.localizedDescription))")
            }
        }
        func isDir(_ path: String) -> Bool {
            var flag: ObjCBool = false
            return manager.fileExists(atPath: path, isDirectory: &flag) && flag.boolValue
        }
        let classNames = try entries(root).filter { isDir(root + "/" + $0) }
        guard !classNames.isEmpty else {
            throw fail(root, "no class sub-folders; expected root/<class>/<image>.png (or .jpg, .jpeg, .tif, .tiff)")
        }
        var files: [(Int, String)] = []
        for (label, name) in classNames.enumerated() {
            var found: [String] = []
            func walk(_ relative: String) throws {
                for entry in try entries(root + "/" + relative) {
                    let child = relative + "/" + entry
                    if isDir(root + "/" + child) { try walk(child); continue }
                    let ext = (entry as NSString).pathExtension.lowercased()
                    if ImageDecoder.extensions.contains(ext) {
                        found.append(child)
                    } else if unsupportedImageExtensions.contains(ext) {
                        throw fail(root + "/" + child, "\(ext.uppercased()) images are not supported; convert the folder to PNG, JPEG or TIFF (e.g. `mogrify -format png`)")
                    }
                }
            }
            try walk(name)
            guard !found.isEmpty else {
                throw fail(root + "/" + name, "class folder '\(name)' holds no PNG, JPEG or TIFF images; remove it or add images")
            }
            files += found.map { (label, $0) }
        }
        return (classNames, files)
    }

    /// Writes every image under `root` into one `.cds` file at `output`, RGB.
    ///
    /// - Parameter size: resize each image to size × size (bicubic with antialiasing as
    ///   PIL; a non-square image has its shorter side resized to `size` and is centre
    ///   cropped, as the evaluation transform); nil requires every image to have the size
    ///   of the first.
    /// - Throws: `ImportError` naming the offending file (undecodable image, size mismatch,
    ///   unsupported format, a BACH ground-truth file that disagrees with the folders), or
    ///   the `DatasetError` of a failed write.
    @discardableResult
    public static func importFolder(root: String, output: String, size: Int? = nil, split: String = "train",
                                    interpolation: ResizeFilter = .bicubic,
                                    progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws -> ImportedSplit {
        precondition(size.map { $0 > 0 } ?? true, "FolderImporter: size must be positive")
        let (classNames, files) = try scan(root: root)
        try BACHGroundTruth.check(root: root, classNames: classNames, files: files)
        let (height, width): (Int, Int)
        if let size {
            (height, width) = (size, size)
        } else {
            let first = try ImageDecoder.decode(path: root + "/" + files[0].path)
            (height, width) = (first.height, first.width)
        }
        let info = DatasetInfo(classNames: classNames, split: split, source: "image folder \(root)",
                               ids: files.map(\.path))
        let writer = try DatasetWriter(path: output, height: height, width: width, channels: 3, count: files.count, info: info)
        let transformer = size.map { ImageTransformer(config: .evaluation(outputSize: $0, normalization: .unit, interpolation: interpolation)) }
        var planes = [Float](repeating: 0, count: 3 * height * width)
        var resized = [UInt8](repeating: 0, count: 3 * height * width)
        var counts = [Int](repeating: 0, count: classNames.count)
        for (done, (label, relative)) in files.enumerated() {
            defer { progress?(done + 1, files.count) }
            let path = root + "/" + relative
            let image = try ImageDecoder.decode(path: path)
            if image.height == height && image.width == width {
                try writer.append(image: image.pixels, label: label)
            } else if let transformer {
                image.pixels.withUnsafeBufferPointer { source in
                    planes.withUnsafeMutableBufferPointer { out in
                        transformer.apply(source, height: image.height, width: image.width, channels: 3,
                                          seed: 0, epoch: 0, index: 0, into: out.baseAddress!)
                    }
                }
                let plane = height * width
                for i in 0..<plane {
                    for c in 0..<3 { resized[3 * i + c] = UInt8(min(max((planes[c * plane + i] * 255).rounded(), 0), 255)) }
                }
                try writer.append(image: resized, label: label)
            } else {
                throw ImportError(path: path, kind: .invalidInput,
                                  reason: "the image is \(image.width)×\(image.height) but the first image (\(files[0].path)) is \(width)×\(height); pass --size N to resize every image to N×N")
            }
            counts[label] += 1
        }
        try writer.finish()
        return ImportedSplit(path: output, split: split, count: files.count, height: height, width: width, channels: 3,
                             classNames: classNames, classCounts: counts)
    }
}
