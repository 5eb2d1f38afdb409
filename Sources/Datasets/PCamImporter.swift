// PatchCamelyon (PCam) from its published HDF5 files to `.cds` files, streamed a bounded
// number of images at a time through Formats' `HDF5File` (docs/importing.md).
import Formats
import Foundation

/// PatchCamelyon as published (github.com/basveeling/pcam, files on Zenodo):
/// `camelyonpatch_level_2_split_{train,valid,test}_{x,y}.h5`, dataset `x` uint8
/// (N, 96, 96, 3) RGB patches and dataset `y` uint8 (N, 1, 1, 1) labels, 1 when the centre
/// 32×32 region holds at least one pixel of tumour tissue. The published files are `.h5.gz`:
/// they must be gunzipped first (an importer that decompressed them itself would need a
/// 7 GB temporary for the training images; `gunzip` is one command and keeps nothing).
///
/// Every dimension in the files is untrusted: shapes, element types, counts and labels are
/// checked before anything is allocated or written.
public enum PCamImporter {
    /// Class names: label 0 = no tumour in the centre region, 1 = tumour.
    public static let classNames = ["normal", "tumor"]
    /// The published split names and the `.cds` split each becomes.
    public static let splits: [(published: String, split: String)] = [("train", "train"), ("valid", "val"), ("test", "test")]
    /// Largest image side accepted (PCam's is 96).
    public static let maxImageSide = 1024
    /// Most images per split accepted (PCam's training split has 262,144 = 2^18).
    public static let maxImages = 1 << 26
    /// Image bytes decoded per read, when the file's chunks allow (8 MiB: 303 PCam images).
    public static let bytesPerRead = 8 << 20
    /// Largest chunk accepted: HDF5 decompresses a whole chunk to read any part of it, so
    /// a (damaged) file declaring huge chunks would make it allocate that much.
    public static let maxChunkBytes = 256 << 20
    /// Largest decompression ratio deflate can reach is 1032:1; a dataset claiming more
    /// data than that times its stored bytes is corrupt.
    static let maxExpansion = 1100

    /// The published file name of `array` ("x" or "y") of the published split `split`.
    public static func fileName(split: String, array: String) -> String {
        "camelyonpatch_level_2_split_\(split)_\(array).h5"
    }

    /// What `importFolder` did.
    public struct Result: Equatable, Sendable {
        /// One per split written, in the order train, val, test.
        public var splits: [ImportedSplit]
        /// The published names ("valid", …) of the splits with neither file in the folder.
        public var missing: [String]
    }

    /// Writes `<outputDirectory>/{train,val,test}.cds` for every split whose two files are
    /// in `directory`; splits with neither file are listed in `missing`.
    ///
    /// Every present split is checked (files open, shapes, element types, counts) before
    /// anything is written; labels are checked as they are read. Each split is then read
    /// `rowsPerRead` images at a time (default: `bytesPerRead` of images, rounded down to
    /// whole HDF5 chunks when chunks are smaller), so memory holds one such batch of
    /// images (and, when a chunk is larger than a batch, one chunk in HDF5's chunk cache,
    /// at most 256 MiB) plus the labels the `.cds` writer keeps (4 bytes per image).
    ///
    /// - Parameter progress: called with (split, images written, images in the split).
    /// - Throws: `ImportError` naming the file: no split at all, a `.h5.gz` not yet
    ///   gunzipped, a split with only one of its two files, unusable shapes or element
    ///   types, label counts that differ from the image count (naming both files), labels
    ///   outside {0, 1}, HDF5 read failures; or the `DatasetError` of a failed write. A
    ///   split that fails leaves no `.cds` behind.
    public static func importFolder(directory: String, outputDirectory: String, rowsPerRead: Int? = nil,
                                    progress: ((_ split: String, _ done: Int, _ total: Int) -> Void)? = nil) throws -> Result {
        precondition(rowsPerRead.map { $0 > 0 } ?? true, "PCamImporter: rowsPerRead must be positive")
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ImportError(path: directory, kind: .io, reason: "not a directory; pass the folder holding the camelyonpatch_level_2_split_*.h5 files")
        }
        var plans: [Plan] = []
        var missing: [String] = []
        for (published, split) in splits {
            let paths = ["x", "y"].map { directory + "/" + fileName(split: published, array: $0) }
            let present = paths.map { FileManager.default.fileExists(atPath: $0) }
            if let zipped = paths.first(where: { !FileManager.default.fileExists(atPath: $0) && FileManager.default.fileExists(atPath: $0 + ".gz") }) {
                throw ImportError(path: zipped + ".gz", kind: .unsupported,
                                  reason: "the published files are gzip-compressed: gunzip first: gunzip '\(zipped).gz'")
            }
            switch (present[0], present[1]) {
            case (false, false): missing.append(published)
            case (true, false), (false, true):
                let (have, lack) = present[0] ? (paths[0], paths[1]) : (paths[1], paths[0])
                throw ImportError(path: lack, kind: .io,
                                  reason: "no such file, but its split's other file \((have as NSString).lastPathComponent) is there; download the missing file or move the other away")
            case (true, true): plans.append(try Plan(split: split, imagesPath: paths[0], labelsPath: paths[1], rowsPerRead: rowsPerRead))
            }
        }
        guard !plans.isEmpty else {
            throw ImportError(path: directory, kind: .invalidInput,
                              reason: "no PCam split: expected camelyonpatch_level_2_split_{train,valid,test}_{x,y}.h5 (gunzip the downloaded .h5.gz files into this folder)")
        }

        try OutputDirectory.create(outputDirectory)
        var written: [ImportedSplit] = []
        for plan in plans {
            written.append(try plan.write(to: outputDirectory + "/\(plan.split).cds", progress: progress))
        }
        return Result(splits: written, missing: missing)
    }

    /// One split's two files, opened and checked.
    struct Plan {
        let split: String
        let images: HDF5Dataset  // (N, H, W, 3) uint8
        let labels: HDF5Dataset  // (N, …) integers, one per image
        let rowsPerRead: Int

        var count: Int { images.shape[0] }
        var height: Int { images.shape[1] }
        var width: Int { images.shape[2] }

        init(split: String, imagesPath: String, labelsPath: String, rowsPerRead: Int?) throws {
            self.split = split
            func invalid(_ path: String, _ reason: String) -> ImportError { ImportError(path: path, kind: .invalidInput, reason: reason) }
            let imageFile = try HDF5File(path: imagesPath)
            let labelFile = try HDF5File(path: labelsPath)

            // Images: the shape first, then the chunk cache it needs, then the data size.
            let probe = try imageFile.dataset("x")
            let shape = probe.shape
            guard shape.count == 4, shape[3] == 3 else {
                throw invalid(imagesPath, "dataset 'x' has shape \(shape); expected (N, H, W, 3) RGB images as PCam publishes them")
            }
            guard probe.elementType == .unsignedInteger(bytes: 1) else {
                throw invalid(imagesPath, "dataset 'x' holds \(probe.elementType); expected uint8 pixels")
            }
            guard (1...maxImageSide).contains(shape[1]), (1...maxImageSide).contains(shape[2]) else {
                throw invalid(imagesPath, "dataset 'x' has images of \(shape[1])×\(shape[2]); expected sides of 1 to \(maxImageSide) (PCam's are 96)")
            }
            guard (1...maxImages).contains(shape[0]) else {
                throw invalid(imagesPath, "dataset 'x' has \(shape[0]) images; expected 1 to \(maxImages) (PCam's training split has 262144)")
            }
            let imageBytes = shape[1] * shape[2] * 3
            let chunkRows = min(probe.chunkShape?[0] ?? 1, shape[0])
            let rows = rowsPerRead ?? PCamImporter.rowsPerRead(imageBytes: imageBytes, chunkRows: chunkRows)
            if let chunkBytes = probe.chunkBytes, chunkBytes > maxChunkBytes {
                throw ImportError(path: imagesPath, kind: .unsupported,
                                  reason: "dataset 'x' is stored in chunks of \(chunkBytes) bytes, more than the \(maxChunkBytes) a read may hold (PCam's are far smaller); rewrite it with smaller chunks (h5repack -l CHUNK=…)")
            }
            // When reads cover part of a chunk, every read would decompress it again unless
            // the chunk cache (HDF5's default: 1 MiB) holds it.
            if let chunkBytes = probe.chunkBytes, rows % chunkRows != 0, chunkBytes > 1 << 20 {
                images = try imageFile.dataset("x", chunkCacheBytes: chunkBytes + (1 << 20))
            } else {
                images = probe
            }
            let stored = images.storageBytes
            guard stored > 0 else {
                throw ImportError(path: imagesPath, kind: .corrupt,
                                  reason: "dataset 'x' stores no data (never written, or its index is damaged); download the file again")
            }
            let (limit, overflow) = stored.multipliedReportingOverflow(by: maxExpansion)
            guard overflow || shape[0] * imageBytes <= limit else {
                throw ImportError(path: imagesPath, kind: .corrupt,
                                  reason: "dataset 'x' claims \(shape[0]) images of \(imageBytes) bytes but stores only \(stored) bytes, less than any deflate stream needs for them; the file is corrupt")
            }

            // Labels.
            labels = try labelFile.dataset("y")
            guard labels.elementType.isInteger else {
                throw invalid(labelsPath, "dataset 'y' holds \(labels.elementType); expected integer labels (uint8 as published)")
            }
            guard let first = labels.shape.first, labels.elementsPerRow == 1 else {
                throw invalid(labelsPath, "dataset 'y' has shape \(labels.shape); expected (N, 1, 1, 1) as published, or (N,)")
            }
            if let chunkBytes = labels.chunkBytes, chunkBytes > maxChunkBytes {
                throw ImportError(path: labelsPath, kind: .unsupported,
                                  reason: "dataset 'y' is stored in chunks of \(chunkBytes) bytes, more than the \(maxChunkBytes) a read may hold; rewrite it with smaller chunks (h5repack -l CHUNK=…)")
            }
            guard labels.storageBytes > 0 else {
                throw ImportError(path: labelsPath, kind: .corrupt,
                                  reason: "dataset 'y' stores no data (never written, or its index is damaged); download the file again")
            }
            guard first == shape[0] else {
                throw invalid(labelsPath, "dataset 'y' has \(first) labels but dataset 'x' of \(imagesPath) has \(shape[0]) images; the two files are from different splits or one is incomplete")
            }
            self.rowsPerRead = rows
        }

        /// Streams the split into `path`, `rowsPerRead` images at a time.
        func write(to path: String, progress: ((String, Int, Int) -> Void)?) throws -> ImportedSplit {
            let imageBytes = height * width * 3
            let source = "PCam \((images.path as NSString).lastPathComponent)"
            let writer = try DatasetWriter(path: path, height: height, width: width, channels: 3, count: count,
                                           info: DatasetInfo(classNames: PCamImporter.classNames, split: split, source: source))
            let batch = min(rowsPerRead, count)
            var pixels = [UInt8](repeating: 0, count: batch * imageBytes)  // (batch, H, W, 3)
            var values = [Int64](repeating: 0, count: batch)                // (batch,)
            var counts = [0, 0]
            var start = 0
            while start < count {
                let rows = start..<min(start + batch, count)
                try pixels.withUnsafeMutableBufferPointer { buffer in
                    try images.readUInt8(rows: rows, into: UnsafeMutableBufferPointer(rebasing: buffer[0..<(rows.count * imageBytes)]))
                }
                try values.withUnsafeMutableBufferPointer { buffer in
                    try labels.readInt64(rows: rows, into: UnsafeMutableBufferPointer(rebasing: buffer[0..<rows.count]))
                }
                try pixels.withUnsafeBufferPointer { buffer in
                    for (offset, index) in rows.enumerated() {
                        let label = values[offset]
                        guard label == 0 || label == 1 else {
                            throw ImportError(path: labels.path, kind: .invalidInput,
                                              reason: "label \(label) of image \(index) is not 0 (normal) or 1 (tumor)")
                        }
                        counts[Int(label)] += 1
                        try writer.append(image: UnsafeBufferPointer(rebasing: buffer[(offset * imageBytes)..<((offset + 1) * imageBytes)]),
                                          label: Int(label))
                    }
                }
                start = rows.upperBound
                progress?(split, start, count)
            }
            try writer.finish()
            return ImportedSplit(path: path, split: split, count: count, height: height, width: width, channels: 3,
                                 classNames: PCamImporter.classNames, classCounts: counts)
        }
    }

    /// Images per read: about `bytesPerRead` of them, rounded down to whole chunks of
    /// `chunkRows` images when a chunk is smaller than that, so that no chunk is
    /// decompressed twice; a larger chunk is read in parts through the chunk cache.
    static func rowsPerRead(imageBytes: Int, chunkRows: Int) -> Int {
        let rows = max(1, bytesPerRead / imageBytes)
        return chunkRows <= rows ? rows / chunkRows * chunkRows : rows
    }
}
